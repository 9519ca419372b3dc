#pragma once
/// `Idempotency-Key` records (docs/CONTRACT.md "POST /orders"), in SQLite so they survive
/// restarts. A key moves through:
///
///   claimed (`pending`)  — its order is about to enter, or is in, a Kafka transaction of this
///                          process;
///   `committed`          — the transaction committed: the stored 201 answers every retry;
///   released (deleted)   — the transaction surely aborted: a retry may use the key again;
///   `unknown`            — nobody can tell yet whether the order committed (the commit's
///                          outcome was unknown past the answer's deadline, or the process died
///                          with the key pending). Only such keys are resolved, and only from a
///                          read model that has caught up after the outcome was settled.
///
/// The file is opened with synchronous=FULL: a claim must survive a power loss whenever the
/// order it guards may be in Kafka, or a retry could create the order twice.
///
/// Not thread-safe: used by the intake thread (and the start-up step before it runs).

#include "orderpipe/common/sqlite.hpp"

#include <chrono>
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
    enum class ClaimResult {
        kClaimed,     ///< new: the order may go ahead
        kReplay,      ///< answered before with this body: `stored` is the answer
        kMismatch,    ///< used before with another body
        kInProgress,  ///< its first request is still in flight, or its outcome is unknown
    };
    struct Claim {
        ClaimResult result;
        std::optional<Stored> stored;  ///< for kReplay; for kInProgress, the order id
    };
    struct UnknownKey {
        std::string key;
        std::string order_id;
    };

    /// Creates the table if needed.
    IdempotencyStore(sqlite::Database& db, std::chrono::hours retention);
    sqlite::Database& db() { return db_; }

    /// Claims `key` for a new order, or says why not. Within the caller's transaction. A key
    /// stored before bodies were kept in canonical_json() form ("v2:" + it) is compared with
    /// `legacy_body` (the old form), when given.
    Claim claim(const std::string& key, const std::string& body, const std::string& order_id,
                const std::string& legacy_body = {});
    /// The order committed: store its answer.
    void complete(const std::string& key, const Stored& answer);
    /// The order surely did not commit: forget the key.
    void release(const std::string& key);
    /// Nobody can tell yet whether the order committed.
    void mark_unknown(const std::string& key);
    /// At start: keys left pending by a process that is gone become unknown. @returns how many.
    std::int64_t pending_to_unknown();
    std::vector<UnknownKey> unknown(std::size_t limit);

    /// Deletes keys older than the retention (at least 24 h). @returns rows removed.
    std::int64_t purge_expired();

  private:
    sqlite::Database& db_;
    std::chrono::hours retention_;
};

}  // namespace orderpipe::order
