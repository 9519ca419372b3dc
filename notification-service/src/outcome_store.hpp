#pragma once
/// The notification service's state in its own terms: the port its processor uses
/// (docs/ARCHITECTURE.md "Storage"). What a request's processing finished with is stored
/// *before* the Kafka transaction that writes it commits, so a request delivered again — to
/// this instance or, scaled out, to another — finds it and is not sent again. Adapters: SQLite
/// in DATA_DIR (one file per instance) and PostgreSQL (DATABASE_URL, shared by every instance:
/// a replay, or a request another instance finished, is not sent again — see
/// docs/ARCHITECTURE.md "Storage" for the one window where a moved partition may resend).
///
/// Not thread-safe: the loop thread's own.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace orderpipe::notification {

/// One request's finish.
struct FinishedRequest {
    std::string key;      ///< the request's ce_id, plus its replay count
    std::string outcome;  ///< {"at": position, "records": [...]} (serialised)
    /// The notification_id when the provider accepted it (it is sent, whatever replays come).
    std::optional<std::string> sent;
    int attempts = 0;
};

class OutcomeStore {
  public:
    virtual ~OutcomeStore() = default;
    /// The stored outcome of request `key`, or nullopt.
    virtual std::optional<std::string> outcome(const std::string& key) = 0;
    /// Whether notification `notification_id` was accepted by the provider (by any request).
    virtual bool sent(const std::string& notification_id) = 0;
    /// Stores `finished` together, all or none, except keys stored already (by another instance
    /// that held the request while its partition moved): the first writer's outcome stays, and
    /// is returned (key -> stored outcome) for the caller to use instead of its own.
    /// @throws StorageError (transient: nothing was stored; try again later).
    virtual std::map<std::string, std::string> store(
        const std::vector<FinishedRequest>& finished) = 0;
    /// Forgets outcomes older than the retention. @returns how many.
    virtual std::int64_t purge_expired() = 0;
};

}  // namespace orderpipe::notification
