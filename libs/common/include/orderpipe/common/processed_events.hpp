#pragma once
/// The ProcessedEvents store (docs/ARCHITECTURE.md "Exactly once"): which events a consumer has
/// handled, keyed by
/// `(consumer, ce_id)`, with the stored result so a redelivered event re-emits what the first
/// delivery decided instead of acting twice.
///
/// It lives in the service's own SQLite file so that a state change and its ProcessedEvents row
/// commit in ONE SQLite transaction (the caller's). Not thread-safe: use from the thread that
/// owns the Database.

#include "orderpipe/common/sqlite.hpp"

#include <chrono>
#include <optional>
#include <string>

namespace orderpipe {

class ProcessedEvents {
  public:
    /// Creates the table if needed. `retention`: rows older than this are purged (default 7 d).
    ProcessedEvents(sqlite::Database& db,
                    std::chrono::hours retention = std::chrono::hours(24 * 7));

    /// The stored result of an event already processed by `consumer`, or nullopt.
    std::optional<std::string> find(const std::string& consumer, const std::string& ce_id);
    /// Records `ce_id` as processed, with its result. Call inside the caller's transaction.
    void record(const std::string& consumer, const std::string& ce_id, const std::string& result);
    /// Deletes rows older than the retention. @returns the number deleted.
    std::int64_t purge_expired();

    std::chrono::hours retention() const { return retention_; }

  private:
    sqlite::Database& db_;
    std::chrono::hours retention_;
    sqlite::Statement find_;
    sqlite::Statement insert_;
};

}  // namespace orderpipe
