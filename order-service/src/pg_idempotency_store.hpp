#pragma once
/// The Idempotency-Keys in a PostgreSQL database shared by N order-service instances
/// (DATABASE_URL). What makes it safe with several writers (docs/ARCHITECTURE.md "Storage"):
/// - A claim is an INSERT … ON CONFLICT DO NOTHING on the key: of two instances claiming one key
///   at once, the second waits for the first's unit to end and then sees its row (a replay, a
///   mismatch or "in progress"); never two orders for one key.
/// - Every claim records its owner (the intake's transactional id) and when: at start an
///   instance turns only its own previous run's pending keys unknown, never a live peer's; a
///   pending key of another owner older than the Kafka transaction timeout (its transaction has
///   surely ended: committed, or aborted by the broker) is turned unknown by any instance and
///   resolved from the read model, so a dead instance's keys do not answer 409 for ever.
/// - complete, release and mark_unknown name the order: a key released by a resolver and
///   claimed again by a retry is never completed with the first order's answer.

#include "idempotency_store.hpp"

#include "orderpipe/pg/pg.hpp"

#include <chrono>
#include <memory>
#include <span>
#include <string>

namespace orderpipe::order {

/// The keys' schema, in order (pg::migrate component "order-keys").
std::span<const pg::Migration> idempotency_migrations();

/// Keys on `pool` (migrated already), claimed as `owner` (the intake's transactional id).
std::unique_ptr<IdempotencyStore> open_pg_keys(std::shared_ptr<pg::Pool> pool,
                                               std::chrono::hours retention, std::string owner);

}  // namespace orderpipe::order
