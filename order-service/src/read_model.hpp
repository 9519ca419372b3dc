#pragma once
/// The order read model's store: status, reason, history and the full order of every order,
/// kept from orders.events by three writers: the intake's write-through (read-your-writes), the
/// saga's write-through after its commits, and the projection of orders.events (which repairs
/// both after a crash). Every write is idempotent by event id, so they can apply the same event
/// in any order without harm; what an event changes is order_record.hpp's rule.
///
/// The port the intake, the saga and the projection use (docs/ARCHITECTURE.md "Storage");
/// sqlite_order_store.hpp is its SQLite adapter. Not thread-safe: each thread opens its own.

#include "order_record.hpp"

#include "orderpipe/common/cloudevent.hpp"
#include "orderpipe/runtime/projection.hpp"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace orderpipe::order {

class OrderStore {
  public:
    virtual ~OrderStore() = default;

    /// Runs `work`'s writes as one unit: all of them are kept, or (when it throws) none.
    virtual void together(const std::function<void()>& work) = 0;

    virtual std::optional<OrderRecord> get(const std::string& order_id,
                                           bool with_history = true) = 0;
    /// True when the order's history holds the event `event_id`.
    virtual bool has_event(const std::string& event_id) = 0;

    /// Applies an orders.events event: inserts a PENDING order from ORDER_CREATED (no-op if it
    /// exists), or applies its transition (no-op if this event was already applied). Other
    /// types change nothing. @throws contract::ContractError when the data is malformed.
    void apply(const CloudEvent& event);
    /// Inserts `record` as created by event `created_event_id` if the order is not there yet.
    virtual void insert(const OrderRecord& record, const std::string& created_event_id) = 0;
    /// Applies `t`, made by event `event_id`, to order `order_id` (no-op if that event was
    /// applied already), with its history entry.
    virtual void apply_transition(const std::string& order_id, const std::string& event_id,
                                  const Transition& t) = 0;
    /// Remembers that a release was requested (an event that is not on orders.events).
    virtual void mark_release_requested(const std::string& order_id) = 0;

    /// PENDING orders created before `created_before_ms`, oldest first.
    virtual std::vector<std::string> pending_before(std::int64_t created_before_ms,
                                                    std::size_t limit) = 0;

    /// The projection of orders.events keeps its positions here, with the orders.
    virtual runtime::ProjectionStore& projection_positions() = 0;
};

}  // namespace orderpipe::order
