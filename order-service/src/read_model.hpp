#pragma once
/// The order read model's store: status, reason, history and the full order of every order,
/// kept from orders.events by three writers: the intake's write-through (read-your-writes), the
/// saga's write-through after its commits, and the projection of orders.events (which repairs
/// both after a crash). Every write is idempotent by event id, so they can apply the same event
/// in any order without harm; what an event changes is order_record.hpp's rule.
///
/// OrderStore is not thread-safe: each thread uses its own connection (sqlite::Database).

#include "order_record.hpp"

#include "orderpipe/common/cloudevent.hpp"
#include "orderpipe/common/sqlite.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace orderpipe::order {

class OrderStore {
  public:
    /// Creates the tables if needed.
    explicit OrderStore(sqlite::Database& db);
    sqlite::Database& db() { return db_; }

    std::optional<OrderRecord> get(const std::string& order_id, bool with_history = true);
    /// True when the order's history holds the event `event_id`.
    bool has_event(const std::string& event_id);

    /// Applies an orders.events event: inserts a PENDING order from ORDER_CREATED (no-op if it
    /// exists), or applies its transition (no-op if this event was already applied). Other
    /// types change nothing. @throws contract::ContractError when the data is malformed.
    void apply(const CloudEvent& event);
    /// Inserts `record` as created by event `created_event_id` if the order is not there yet.
    void insert(const OrderRecord& record, const std::string& created_event_id);
    /// Remembers that a release was requested (an event that is not on orders.events).
    void mark_release_requested(const std::string& order_id);

    /// PENDING orders created before `created_before_ms`, oldest first.
    std::vector<std::string> pending_before(std::int64_t created_before_ms, std::size_t limit);

  private:
    void apply_transition(const std::string& order_id, const std::string& event_id,
                          const Transition& t);
    sqlite::Database& db_;
};

}  // namespace orderpipe::order
