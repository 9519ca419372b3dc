#pragma once
/// `Idempotency-Key` records (SPEC §8), in SQLite so they survive restarts.
///
/// A key is claimed (`pending`) before its order enters a Kafka transaction and completed with
/// the stored response after the commit, or released if the transaction aborted. A key left
/// `pending` by a crash is resolved at start-up from what orders.events actually holds.
///
/// Thread-safe: one mutex around the connection (HTTP threads claim, the intake thread completes).

#include "orderpipe/common/sqlite.hpp"

#include <chrono>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace orderpipe::order {

class IdempotencyStore {
  public:
    struct Stored {
        int status = 0;
        std::string order_id;
        std::string response;  ///< the JSON body returned the first time
    };
    enum class ClaimResult { kClaimed, kReplay, kMismatch, kInProgress };
    struct Claim {
        ClaimResult result;
        std::optional<Stored> stored;  ///< for kReplay; for kInProgress, the order id
    };
    struct PendingKey {
        std::string key;
        std::string order_id;
        std::int64_t created_ms = 0;
    };

    IdempotencyStore(const std::string& path, std::chrono::hours retention);

    /// Claims `key` for a new order, or says why not: same body already answered (replay),
    /// another body used the key (mismatch), or the first request is still in flight.
    Claim claim(const std::string& key, const std::string& body, const std::string& order_id);
    /// Stores the answer for a committed order.
    void complete(const std::vector<std::pair<std::string, Stored>>& answered);
    /// Forgets keys whose transaction aborted: a retry may use them again.
    void release(const std::vector<std::string>& keys);

    /// Pending keys claimed before `older_than_ms` (epoch ms): a crash, or a commit whose
    /// outcome Kafka never confirmed, left them so.
    std::vector<PendingKey> pending(std::int64_t older_than_ms) const;
    /// Deletes keys older than the retention (at least 24 h, SPEC §8). @returns rows removed.
    std::int64_t purge_expired();

  private:
    mutable std::mutex mu_;
    sqlite::Database db_;
    std::chrono::hours retention_;
};

}  // namespace orderpipe::order
