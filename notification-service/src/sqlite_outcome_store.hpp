#pragma once
/// The notification outcomes in one SQLite file in DATA_DIR (ProcessedEvents rows, durable):
/// each instance keeps its own.

#include "outcome_store.hpp"

#include <chrono>
#include <memory>
#include <string>

namespace orderpipe::notification {

/// Opens (creating) the store at `path`. @throws sqlite::SqliteError
std::unique_ptr<OutcomeStore> open_sqlite_outcomes(const std::string& path,
                                                   std::chrono::hours retention);

}  // namespace orderpipe::notification
