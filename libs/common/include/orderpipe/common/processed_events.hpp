#pragma once
/// The ProcessedEvents store (docs/ARCHITECTURE.md "Where each guarantee comes from"): which events a consumer has
/// handled, keyed by
/// `(consumer, ce_id)`, with the stored result so a redelivered event re-emits what the first
/// delivery decided instead of acting twice.
///
/// It lives in the service's own SQLite file so that a state change and its ProcessedEvents row
/// commit in ONE SQLite transaction (the caller's). Not thread-safe: use from the thread that
/// owns the Database.

#include "orderpipe/common/sqlite.hpp"

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <utility>

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
    /// Records that `consumer` has processed `topic[partition]` up to `next_offset` (exclusive),
    /// never moving back. Call inside the transaction of the state it processed into: the state
    /// then says how far it goes, which a start compares with the consumer group's committed
    /// offsets (a state older than them was restored from a stale backup).
    void advance(const std::string& consumer, const std::string& topic, std::int32_t partition,
                 std::int64_t next_offset);
    /// Every position `consumer` recorded: (topic, partition) → next offset.
    std::map<std::pair<std::string, std::int32_t>, std::int64_t> positions(
        const std::string& consumer);

    /// Deletes rows older than the retention. @returns the number deleted.
    std::int64_t purge_expired();

  private:
    sqlite::Database& db_;
    std::chrono::hours retention_;
    sqlite::Statement find_;
    sqlite::Statement insert_;
    sqlite::Statement advance_;
};

}  // namespace orderpipe
