#pragma once
/// The order read model in a SQLite file of DATA_DIR (orders.db; one instance). Each thread
/// opens its own (one connection each, WAL).

#include "read_model.hpp"

#include <memory>
#include <string>

namespace orderpipe::order {

/// Opens (creating the tables if needed) the read model in SQLite file `path` (":memory:": a
/// private one). @throws sqlite::SqliteError when the file cannot be opened.
std::unique_ptr<OrderStore> open_sqlite_orders(const std::string& path);

}  // namespace orderpipe::order
