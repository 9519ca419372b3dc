#pragma once
/// The order saga's decisions (SPEC §5.3, §5.5), as pure functions of the order's current state
/// and what happened. No I/O: the SagaProcessor applies them.

#include "order_store.hpp"

#include "orderpipe/common/cloudevent.hpp"

#include <optional>
#include <string>
#include <vector>

namespace orderpipe::order {

struct SagaTopics {
    std::string orders = "orders.events";
    std::string inventory_requests = "inventory.requests";
    std::string inventory_responses = "inventory.responses";
    std::string notifications = "notifications.requests";
};

/// Events to write (topic + event) and the state change they make.
struct SagaStep {
    std::vector<std::pair<std::string, CloudEvent>> emit;
    std::optional<OrderChange> change;
};

/// What the inventory answered. Unknown statuses are poison (the caller dead-letters them).
/// @param order the current state, or nullopt if the read model has not seen the order yet
///        (then the result's embedded `order` is the state: PENDING).
/// @returns nullopt when the result is malformed (`why` says what is wrong).
std::optional<SagaStep> on_reserve_result(const std::optional<OrderRecord>& order,
                                          const CloudEvent& result, const SagaTopics& topics,
                                          std::string& why);

/// Customer cancel of a PENDING or CONFIRMED order: ORDER_CANCELLED (CUSTOMER_REQUEST) and
/// INVENTORY_RELEASE_REQUESTED (inventory releases only what it reserved, exactly once). A
/// still-PENDING order also gets its NOTIFICATION_REQUESTED (its only terminal event).
SagaStep on_customer_cancel(const OrderRecord& order, const SagaTopics& topics);

/// An order still PENDING after ORDER_TIMEOUT: cancelled with TIMEOUT, released, notified.
SagaStep on_timeout(const OrderRecord& order, const SagaTopics& topics);

/// An OrderRecord from a reserve result's embedded order (read model not caught up yet).
OrderRecord record_from_result(const CloudEvent& result);

}  // namespace orderpipe::order
