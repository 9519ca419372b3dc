#pragma once
/// The notification outcomes in a PostgreSQL database shared by N instances (DATABASE_URL): a
/// request finished by one instance is found by any other that gets it again (a replay, a
/// moved partition), so it is not sent twice. Keyed rows decide a race between two instances:
/// the first outcome stored stays, and the other instance writes that one.

#include "outcome_store.hpp"

#include "orderpipe/pg/pg.hpp"

#include <chrono>
#include <memory>
#include <span>

namespace orderpipe::notification {

/// The schema, in order (pg::migrate component "notification").
std::span<const pg::Migration> notification_migrations();

/// A store on `pool` (migrated already).
std::unique_ptr<OutcomeStore> open_pg_outcomes(std::shared_ptr<pg::Pool> pool,
                                               std::chrono::hours retention);

}  // namespace orderpipe::notification
