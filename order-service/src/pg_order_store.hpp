#pragma once
/// The order read model in a PostgreSQL database shared by N order-service instances
/// (DATABASE_URL). Every writer's write is idempotent by event id as in SQLite; what a shared
/// database adds (docs/ARCHITECTURE.md "Storage"):
/// - order_history is keyed by event id and unique per (order, seq): the same event applied by
///   two writers at once is written once (the second skips it); two different events of one
///   order racing for the same seq make the later unit fail (a unique violation, transient), to
///   be applied again after the first — never an entry lost.
/// - The projection's positions are rows per projection name, written in the projection's unit
///   of work on the same connection as the orders it applied.

#include "read_model.hpp"

#include "orderpipe/pg/pg.hpp"

#include <memory>
#include <span>

namespace orderpipe::order {

/// The read model's schema, in order (pg::migrate component "order-read-model").
std::span<const pg::Migration> order_store_migrations();

/// A read model on `pool` (migrated already). One per thread, as with SQLite.
std::unique_ptr<OrderStore> open_pg_orders(std::shared_ptr<pg::Pool> pool);

}  // namespace orderpipe::order
