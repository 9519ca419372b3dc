#pragma once
/// An order as the order-service knows it (OrderRecord), and the rule of how each orders.events
/// event changes it (transition_for). Pure: no I/O. The rule is written once, here, and used by
/// every writer of the read model (intake write-through, saga write-through, projection) and by
/// the saga's in-memory state, so they cannot disagree.

#include "orderpipe/common/cloudevent.hpp"
#include "orderpipe/contract/events.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>

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

/// Where a status stands in every order's life: PENDING 0, CONFIRMED 1, CANCELLED 2. A status
/// only moves forward (CANCELLED can follow CONFIRMED, never the other way round), so a read
/// model applying one order's events in another order than the topic's — several writers on a
/// shared database, a write-through ahead of a lagging projection — ends in the same state: a
/// transition to a status not past the current one leaves it (and its reason) as it is. It is
/// also the transition's place in the order's history.
constexpr int status_rank(contract::OrderStatus s) {
    return s == contract::OrderStatus::kPending     ? 0
           : s == contract::OrderStatus::kConfirmed ? 1
                                                    : 2;
}
/// status_rank() of a `status` column, in SQL.
inline constexpr const char* kStatusRankSql =
    "(CASE status WHEN 'PENDING' THEN 0 WHEN 'CONFIRMED' THEN 1 ELSE 2 END)";

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

}  // namespace orderpipe::order
