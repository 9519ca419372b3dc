#pragma once
/// `Idempotency-Key` records (docs/CONTRACT.md "POST /orders"): the port the intake uses
/// (docs/ARCHITECTURE.md "Storage"); the SQLite adapter is sqlite_idempotency_store.hpp. They
/// survive restarts. A key moves through:
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
/// A claim must be durable (survive a power loss) whenever the order it guards may be in Kafka,
/// or a retry could create the order twice.
///
/// Not thread-safe: used by the intake thread (and the start-up step before it runs).

#include <chrono>
#include <cstdint>
#include <functional>
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

    virtual ~IdempotencyStore() = default;

    /// Runs `work`'s calls as one unit: all of them are kept, or (when it throws) none.
    virtual void together(const std::function<void()>& work) = 0;
    /// Claims `key` for a new order, or says why not. A key stored before bodies were kept in
    /// canonical_json() form ("v2:" + it) is compared with `legacy_body` (the old form), when
    /// given.
    virtual Claim claim(const std::string& key, const std::string& body,
                        const std::string& order_id, const std::string& legacy_body = {}) = 0;
    /// The order (answer.order_id) committed: store its answer.
    virtual void complete(const std::string& key, const Stored& answer) = 0;
    /// Order `order_id` surely did not commit: forget its claim of the key. (Each of these names
    /// the order: a key released and claimed again since, by a retry, is another claim, left
    /// alone.)
    virtual void release(const std::string& key, const std::string& order_id) = 0;
    /// Nobody can tell yet whether order `order_id` committed.
    virtual void mark_unknown(const std::string& key, const std::string& order_id) = 0;
    /// At start: keys left pending by a process that is gone become unknown. @returns how many.
    virtual std::int64_t pending_to_unknown() = 0;
    /// Keys another owner (another instance) left pending for longer than `older_than` — its
    /// Kafka transaction has ended by then, committed or aborted by the broker, whatever became
    /// of the owner — become unknown, to be resolved. @returns how many.
    virtual std::int64_t abandoned_to_unknown(std::chrono::milliseconds older_than) = 0;
    virtual std::vector<UnknownKey> unknown(std::size_t limit) = 0;
    /// Deletes keys older than the retention (at least 24 h). @returns rows removed.
    virtual std::int64_t purge_expired() = 0;
};

}  // namespace orderpipe::order
