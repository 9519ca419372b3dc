#pragma once
/// The order saga's decisions (docs/CONTRACT.md "The saga"), as pure functions of the order's
/// current state and what happened. No I/O: the SagaProcessor applies them. The state change an
/// emitted orders.events event makes is not decided here: it is the read model's rule
/// (order_record.hpp transition_for), applied to the events.

#include "order_record.hpp"

#include "orderpipe/common/cloudevent.hpp"
#include "orderpipe/contract/events.hpp"

#include <optional>
#include <string>
#include <vector>

namespace orderpipe::order {

struct SagaTopics {
    std::string orders;
    std::string inventory_requests;
    std::string inventory_responses;
    std::string notifications;
    /// orders.commands: customer cancels routed to the instance that owns the order (scaled
    /// out); empty when this instance owns every order (one instance).
    std::string commands{};
};

/// Events to write, each with its topic, in order.
struct SagaStep {
    std::vector<std::pair<std::string, CloudEvent>> emit;
    /// An INVENTORY_RELEASE_REQUESTED is among `emit`.
    bool requests_release = false;
};

/// The inventory answered. A duplicate answer for a decided order changes nothing; a RESERVED
/// for an order cancelled meanwhile is answered with a release (if none was requested yet),
/// never a confirmation.
SagaStep on_reserve_result(const OrderRecord& order, const CloudEvent& result_event,
                           const contract::InventoryReserveResult& result,
                           const SagaTopics& topics);

/// Customer cancel of a PENDING or CONFIRMED order: ORDER_CANCELLED (CUSTOMER_REQUEST), the
/// customer's NOTIFICATION_REQUESTED (also when the order had been confirmed), and
/// INVENTORY_RELEASE_REQUESTED (the inventory releases only what it reserved, exactly once).
/// `cancelled_id`: the ORDER_CANCELLED's id, when the instance that took the request chose it
/// (a cancel routed through orders.commands); otherwise a new one.
SagaStep on_customer_cancel(const OrderRecord& order, const SagaTopics& topics,
                            const std::string& cancelled_id = {});

/// An order still PENDING after ORDER_TIMEOUT: cancelled with TIMEOUT, released, notified.
SagaStep on_timeout(const OrderRecord& order, const SagaTopics& topics);

/// The state of an order the read model has not seen yet, from a reserve result's embedded
/// order. @throws contract::ContractError when that order is malformed.
OrderRecord record_from_result(const CloudEvent& result_event,
                               const contract::InventoryReserveResult& result);

}  // namespace orderpipe::order
