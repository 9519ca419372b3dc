#pragma once
/// The order read model in SQLite: status, reason, history and the full order document, kept
/// from orders.events. Every write is idempotent by event id (history rows are keyed by ce_id),
/// so the intake's write-through, the saga's write-through and the projection of orders.events
/// can all apply the same event without harm.
///
/// Not thread-safe: each thread opens its own OrderStore on the same file.

#include "orderpipe/common/sqlite.hpp"

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

namespace orderpipe::order {

struct OrderRecord {
    std::string order_id;
    std::string status;  ///< PENDING, CONFIRMED, CANCELLED
    std::string reason;
    std::string detail;
    nlohmann::json doc;  ///< ORDER_CREATED's data
    std::string correlation_id;
    std::string traceparent;
    std::string last_event_id;
    std::int64_t created_ms = 0;
    bool decided = false;  ///< got its decision (confirmed, or cancelled by stock/timeout)
    bool release_requested = false;  ///< an INVENTORY_RELEASE_REQUESTED was written for it
    nlohmann::json history = nlohmann::json::array();  ///< [{status, at}]
};

/// A state change to apply (from an event, or decided by the saga).
struct OrderChange {
    std::string order_id;
    std::string event_id;  ///< the ce_id of the event that made the change
    std::string status;
    std::string at;  ///< RFC 3339
    std::string reason;
    std::string detail;
    bool decided = false;
    bool release_requested = false;
    bool add_history = true;  ///< false for a change that is not an orders.events event
};

class OrderStore {
  public:
    explicit OrderStore(const std::string& path);
    sqlite::Database& db() { return db_; }

    std::optional<OrderRecord> get(const std::string& order_id, bool with_history = true);

    /// Inserts a PENDING order from ORDER_CREATED (no-op if the order exists).
    void apply_created(const std::string& event_id, const std::string& correlation_id,
                       const std::string& traceparent, const nlohmann::json& doc);
    /// Applies a transition (no-op if this event was already applied).
    void apply_change(const OrderChange& change);

    /// PENDING orders created before `created_before_ms`, oldest first.
    std::vector<std::string> pending_before(std::int64_t created_before_ms, std::size_t limit);

    /// Projection offsets (next offset to read) per partition of `topic`.
    std::vector<std::pair<int, std::int64_t>> offsets(const std::string& topic);
    void set_offset(const std::string& topic, int partition, std::int64_t next);

  private:
    sqlite::Database db_;
};

/// The GET /orders/{id} body.
nlohmann::json order_view(const OrderRecord& r);

}  // namespace orderpipe::order
