#pragma once
/// The analytics state in a PostgreSQL database shared by N instances of one consumer group
/// (DATABASE_URL). What makes it exact with several writers (docs/ARCHITECTURE.md "Storage"):
/// - hold_positions locks the batch's partitions' rows (created at 0 first, so there is always
///   a row to lock; SELECT … ORDER BY topic, partition FOR UPDATE): an instance that gets a
///   partition back counts from where the other left it, never twice.
/// - No hot row: counters and per-minute series are rows per (instance, name), summed on read;
///   one instance's batches never wait on another's.
/// - Orders and dead letters are keyed rows; an order's events share its partition, so one
///   instance at a time writes an order's row.

#include "analytics_state.hpp"

#include "orderpipe/pg/pg.hpp"

#include <memory>
#include <span>
#include <string>

namespace orderpipe::analytics {

/// The schema, in order (pg::migrate component "analytics").
std::span<const pg::Migration> analytics_migrations();

/// A state on `pool` (migrated already). `shard`: this instance's rows of the counters.
std::unique_ptr<AnalyticsState> open_pg_analytics(std::shared_ptr<pg::Pool> pool,
                                                  std::string shard);

}  // namespace orderpipe::analytics
