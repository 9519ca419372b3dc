#pragma once
/// The order read model: status, reason, history and the full order of every order, kept from
/// orders.events. The rule of which event changes what (transition_for) is written once, here,
/// and used by all three writers: the intake's write-through (read-your-writes), the saga's
/// write-through after its commits, and the projection of orders.events (which repairs both
/// after a crash). Every write is idempotent by event id, so they can apply the same event in
/// any order without harm.
///
/// OrderStore is not thread-safe: each thread uses its own connection (sqlite::Database).

#include "orderpipe/common/cloudevent.hpp"
#include "orderpipe/common/sqlite.hpp"
#include "orderpipe/contract/events.hpp"

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

namespace orderpipe::order {

struct OrderRecord {
    std::string order_id;
    contract::OrderStatus status = contract::OrderStatus::kPending;
    std::optional<contract::CancelReason> reason;
    std::string detail;
    nlohmann::json doc;  ///< ORDER_CREATED's data as it was written
    std::string correlation_id;
    std::string traceparent;
    std::string last_event_id;  ///< ce_id of the last orders.events event applied
    std::int64_t created_ms = 0;
    bool decided = false;  ///< got its decision (confirmed, or cancelled by stock or timeout)
    bool release_requested = false;  ///< an INVENTORY_RELEASE_REQUESTED was written for it
    nlohmann::json history = nlohmann::json::array();  ///< [{status, at}]

    /// The order as ORDER_CREATED described it. @throws contract::ContractError
    contract::OrderCreated order() const { return contract::OrderCreated::read(doc); }
};

/// How an orders.events event changes its order.
struct Transition {
    std::string order_id;
    contract::OrderStatus status;
    std::optional<contract::CancelReason> reason;
    std::string detail;
    bool decided = false;
    /// The event is always accompanied by an INVENTORY_RELEASE_REQUESTED (customer cancel,
    /// timeout).
    bool releases = false;
    std::string at;  ///< RFC 3339, the event's time
};

/// The read model's rule. nullopt for ORDER_CREATED (see record_for_created) and for types
/// that are not status changes. @throws contract::ContractError when the data is malformed.
std::optional<Transition> transition_for(const CloudEvent& event);

/// A PENDING record of `order` (whose data as written is `doc`), in saga `correlation_id`.
OrderRecord pending_record(const contract::OrderCreated& order, nlohmann::json doc,
                           std::string correlation_id, std::string traceparent);

/// A PENDING record from an ORDER_CREATED event. @throws contract::ContractError
OrderRecord record_for_created(const CloudEvent& created);

/// Applies `t` (made by event `event_id`) to a record in memory (the saga's pending state).
void apply_transition(OrderRecord& record, const std::string& event_id, const Transition& t);

class OrderStore {
  public:
    /// Creates the tables if needed.
    explicit OrderStore(sqlite::Database& db);
    sqlite::Database& db() { return db_; }

    std::optional<OrderRecord> get(const std::string& order_id, bool with_history = true);
    bool exists(const std::string& order_id);
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

/// The GET /orders/{id} body.
nlohmann::json order_view(const OrderRecord& r);

}  // namespace orderpipe::order
