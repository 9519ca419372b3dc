#pragma once
/// The inventory's state in one SQLite file (WAL, synchronous=FULL): stock per SKU, the
/// reservation of each order, the outbox of STOCK_ADJUSTED events and the ProcessedEvents rows,
/// so a stock change and its ProcessedEvents row commit together. One writer at a time (SQLite's
/// lock): hold_stock needs no row locks. One instance per file (the runtime refuses a second).

#include "inventory_state.hpp"

#include <chrono>
#include <memory>
#include <string>

namespace orderpipe::inventory {

/// Opens (creating) the state at `path`. @throws sqlite::SqliteError
std::unique_ptr<InventoryState> open_sqlite_inventory(const std::string& path,
                                                      std::chrono::hours processed_retention);

}  // namespace orderpipe::inventory
