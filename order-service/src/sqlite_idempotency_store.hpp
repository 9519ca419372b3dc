#pragma once
/// The Idempotency-Keys in a SQLite file of DATA_DIR (one instance), opened with
/// synchronous=FULL: a claim survives a power loss.

#include "idempotency_store.hpp"

#include <chrono>
#include <memory>
#include <string>

namespace orderpipe::order {

/// Opens (creating the table if needed) the keys in SQLite file `path` (":memory:" for tests).
/// @throws sqlite::SqliteError when the file cannot be opened.
std::unique_ptr<IdempotencyStore> open_sqlite_keys(const std::string& path,
                                                   std::chrono::hours retention);

}  // namespace orderpipe::order
