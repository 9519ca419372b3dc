#include "saga.hpp"

#include "orderpipe/common/time.hpp"

namespace orderpipe::order {
namespace {

using contract::CancelReason;
using contract::EventType;
using contract::NotificationKind;
using contract::OrderStatus;
using nlohmann::json;

/// An event of this order caused by `cause_id`, continuing the trace of `traceparent`.
CloudEvent order_event(const OrderRecord& o, const std::string& cause_id,
                       const std::string& traceparent, EventType type, json data) {
    return contract::new_event(type, contract::source::kOrderService, o.order_id, o.correlation_id,
                               cause_id, next_hop(traceparent), std::move(data));
}

CloudEvent notification(const OrderRecord& o, const contract::OrderCreated& order,
                        const CloudEvent& decision, NotificationKind kind,
                        const std::string& why = {}) {
    contract::NotificationRequested n;
    n.notification_id = new_uuid_v7();
    n.order_id = o.order_id;
    n.kind = kind;
    n.to = order.customer_email;
    const std::string amount = order.total.to_string() + " " + order.currency;
    if (kind == NotificationKind::kOrderConfirmed) {
        n.subject = "Your order " + o.order_id + " is confirmed";
        n.text = "Thank you! Your order " + o.order_id + " of " + amount + " is confirmed.";
    } else {
        n.subject = "Your order " + o.order_id + " was cancelled";
        n.text = "Your order " + o.order_id + " of " + amount + " was cancelled: " + why + ".";
    }
    return order_event(o, decision.id, decision.traceparent, EventType::kNotificationRequested,
                       n.to_json());
}

CloudEvent release_request(const OrderRecord& o, const contract::OrderCreated& order,
                           const CloudEvent& cause, const std::string& reason) {
    contract::InventoryReleaseRequested r{o.order_id, order.stock_lines(), reason};
    return order_event(o, cause.id, cause.traceparent, EventType::kInventoryReleaseRequested,
                       r.to_json());
}

/// CANCELLED with `reason`, notified; released when `release`.
SagaStep cancel(const OrderRecord& o, const std::string& cause_id, const std::string& traceparent,
                CancelReason reason, const std::string& detail, bool release,
                const SagaTopics& topics, const std::string& cancelled_id = {}) {
    const auto order = o.order();
    contract::OrderCancelled data{o.order_id, order.total, order.currency,
                                  reason,     detail,      now_rfc3339()};
    SagaStep step;
    auto cancelled =
        order_event(o, cause_id, traceparent, EventType::kOrderCancelled, data.to_json());
    if (!cancelled_id.empty()) cancelled.id = cancelled_id;
    std::string why(contract::to_string(reason));
    if (!detail.empty()) why += " (" + detail + ")";
    auto note = notification(o, order, cancelled, NotificationKind::kOrderCancelled, why);
    std::optional<CloudEvent> released;
    if (release) released = release_request(o, order, cancelled, std::string(to_string(reason)));
    step.emit.emplace_back(topics.orders, std::move(cancelled));
    if (released) {
        step.emit.emplace_back(topics.inventory_requests, std::move(*released));
        step.requests_release = true;
    }
    step.emit.emplace_back(topics.notifications, std::move(note));
    return step;
}

}  // namespace

OrderRecord record_from_result(const CloudEvent& result_event,
                               const contract::InventoryReserveResult& result) {
    const auto order = contract::OrderCreated::read(result.order);
    if (order.order_id != result.order_id) {
        throw contract::ContractError("the result's order is " + order.order_id + ", not " +
                                      result.order_id);
    }
    return pending_record(order, result.order, result_event.correlation_id,
                          result_event.traceparent);
}

SagaStep on_reserve_result(const OrderRecord& o, const CloudEvent& result_event,
                           const contract::InventoryReserveResult& result,
                           const SagaTopics& topics) {
    SagaStep step;
    const bool reserved = result.status == contract::ReserveStatus::kReserved;
    if (o.status == OrderStatus::kCancelled) {
        // Late answer for an order already cancelled (customer or timeout): never confirm. A
        // reservation is released, unless the cancel already asked for that.
        if (reserved && !o.release_requested) {
            step.emit.emplace_back(
                topics.inventory_requests,
                release_request(o, o.order(), result_event,
                                std::string(o.reason ? to_string(*o.reason)
                                                     : to_string(OrderStatus::kCancelled))));
            step.requests_release = true;
        }
        return step;
    }
    if (o.status != OrderStatus::kPending) return step;  // already decided: a duplicate answer
    if (reserved) {
        const auto order = o.order();
        contract::OrderConfirmed data{o.order_id, order.total, order.currency, now_rfc3339()};
        auto confirmed = order_event(o, result_event.id, result_event.traceparent,
                                     EventType::kOrderConfirmed, data.to_json());
        auto note = notification(o, order, confirmed, NotificationKind::kOrderConfirmed);
        step.emit.emplace_back(topics.orders, std::move(confirmed));
        step.emit.emplace_back(topics.notifications, std::move(note));
        return step;
    }
    return cancel(o, result_event.id, result_event.traceparent,
                  contract::cancel_reason_for(result.status), result.reason, /*release=*/false,
                  topics);
}

SagaStep on_customer_cancel(const OrderRecord& o, const SagaTopics& topics,
                            const std::string& cancelled_id) {
    return cancel(o, o.last_event_id, o.traceparent, CancelReason::kCustomerRequest,
                  "cancelled by the customer", /*release=*/true, topics, cancelled_id);
}

SagaStep on_timeout(const OrderRecord& o, const SagaTopics& topics) {
    return cancel(o, o.last_event_id, o.traceparent, CancelReason::kTimeout,
                  "no inventory answer within the order timeout", /*release=*/true, topics);
}

}  // namespace orderpipe::order
