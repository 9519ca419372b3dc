#pragma once
/// The inventory's state in a PostgreSQL database shared by N instances (DATABASE_URL). What
/// makes it safe with several writers (docs/ARCHITECTURE.md "Storage"):
/// - hold_stock locks the SKUs' rows (SELECT … ORDER BY sku FOR UPDATE): two instances never
///   decide on the same unit; the processor holds a whole batch's SKUs in one statement first,
///   in SKU order, so two batches cannot deadlock (one that does anyway is retried whole).
/// - ProcessedEvents and reservations are keyed rows: a request processed by two instances at
///   once (a partition moving) makes the second's batch fail on the key and run again, finding
///   the first's stored records — the same ce_ids.
/// - The catalog is seeded by the instance that inserts the 'seeded_at' row, once.
/// - Outbox entries are claimed (FOR UPDATE SKIP LOCKED, with an expiry for a claimant that
///   died), so one instance produces each, and removed by id once its transaction committed.

#include "inventory_state.hpp"

#include "orderpipe/pg/pg.hpp"

#include <chrono>
#include <memory>
#include <span>
#include <string>

namespace orderpipe::inventory {

/// The inventory's schema, in order (pg::migrate component "inventory").
std::span<const pg::Migration> inventory_migrations();

/// A state on `pool` (migrated already). `instance` names this instance's outbox claims.
std::unique_ptr<InventoryState> open_pg_inventory(std::shared_ptr<pg::Pool> pool,
                                                  std::chrono::hours processed_retention,
                                                  std::string instance);

}  // namespace orderpipe::inventory
