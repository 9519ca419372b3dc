#pragma once
/// The analytics state in one SQLite file in DATA_DIR (analytics_store.hpp): one instance (the
/// runtime refuses a second), one writer at a time (SQLite's lock), so hold_positions needs no
/// row locks.

#include "analytics_state.hpp"

#include <memory>
#include <string>

namespace orderpipe::analytics {

/// Opens (creating) the state at `path`. @throws sqlite::SqliteError
std::unique_ptr<AnalyticsState> open_sqlite_analytics(const std::string& path);

}  // namespace orderpipe::analytics
