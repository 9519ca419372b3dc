#include "saga.hpp"

#include "orderpipe/common/json.hpp"

#include "orderpipe/common/time.hpp"

namespace orderpipe::order {
namespace {

using nlohmann::json;

constexpr const char* kSource = "/order-service";

/// An event of this order caused by `cause_id` (the triggering event).
CloudEvent order_event(const OrderRecord& o, const std::string& cause_id,
                       const std::string& traceparent, std::string type, json data) {
    auto parent = TraceContext::parse(traceparent).value_or(TraceContext::fresh());
    return CloudEvent::make(std::move(type), kSource, o.order_id, o.correlation_id, cause_id,
                            parent.child().header(), std::move(data));
}

CloudEvent notification(const OrderRecord& o, const CloudEvent& decision, const std::string& kind) {
    const std::string total = string_field(o.doc, "total");
    const std::string currency = string_field(o.doc, "currency");
    std::string subject;
    std::string text;
    if (kind == "ORDER_CONFIRMED") {
        subject = "Your order " + o.order_id + " is confirmed";
        text = "Thank you! Your order " + o.order_id + " of " + total + " " + currency +
               " is confirmed.";
    } else {
        subject = "Your order " + o.order_id + " was cancelled";
        text = "Your order " + o.order_id + " of " + total + " " + currency +
               " was cancelled: " + string_field(decision.data, "reason") + ".";
        if (const auto d = string_field(decision.data, "detail"); !d.empty()) text += " " + d;
    }
    return order_event(o, decision.id, decision.traceparent, "NOTIFICATION_REQUESTED",
                       {{"notification_id", new_uuid_v7()},
                        {"order_id", o.order_id},
                        {"kind", kind},
                        {"channel", "email"},
                        {"to", string_field(o.doc, "customer_email")},
                        {"subject", subject},
                        {"text", text}});
}

json release_data(const OrderRecord& o, const std::string& reason) {
    json items = json::array();
    for (const auto& i : o.doc.value("items", json::array())) {
        items.push_back({{"sku", string_field(i, "sku")}, {"quantity", int_field(i, "quantity")}});
    }
    return {{"order_id", o.order_id}, {"items", std::move(items)}, {"reason", reason}};
}

/// CANCELLED with `reason`; optionally release and notify.
SagaStep cancel(const OrderRecord& o, const std::string& cause_id, const std::string& traceparent,
                const std::string& reason, const std::string& detail, bool release, bool notify,
                bool decided, const SagaTopics& topics) {
    SagaStep step;
    auto cancelled = order_event(o, cause_id, traceparent, "ORDER_CANCELLED",
                                 {{"order_id", o.order_id},
                                  {"total", string_field(o.doc, "total")},
                                  {"currency", string_field(o.doc, "currency")},
                                  {"reason", reason},
                                  {"detail", detail},
                                  {"cancelled_at", now_rfc3339()}});
    step.change =
        OrderChange{o.order_id, cancelled.id, "CANCELLED", cancelled.time,
                    reason,     detail,       decided,     release || o.release_requested};
    if (release) {
        step.emit.emplace_back(topics.inventory_requests,
                               order_event(o, cancelled.id, cancelled.traceparent,
                                           "INVENTORY_RELEASE_REQUESTED", release_data(o, reason)));
    }
    if (notify)
        step.emit.emplace_back(topics.notifications, notification(o, cancelled, "ORDER_CANCELLED"));
    step.emit.insert(step.emit.begin(), {topics.orders, std::move(cancelled)});
    return step;
}

}  // namespace

OrderRecord record_from_result(const CloudEvent& result) {
    OrderRecord r;
    r.doc = result.data.value("order", json::object());
    r.order_id = string_field(result.data, "order_id");
    r.status = "PENDING";
    r.correlation_id = result.correlation_id;
    r.traceparent = result.traceparent;
    return r;
}

std::optional<SagaStep> on_reserve_result(const std::optional<OrderRecord>& current,
                                          const CloudEvent& result, const SagaTopics& topics,
                                          std::string& why) {
    if (!result.data.contains("order_id") || !result.data["order_id"].is_string()) {
        why = "order_id is missing";
        return std::nullopt;
    }
    const std::string status = string_field(result.data, "status");
    if (status != "RESERVED" && status != "INSUFFICIENT_STOCK" && status != "UNKNOWN_SKU") {
        why = "unknown reservation status \"" + status + "\"";
        return std::nullopt;
    }
    const OrderRecord o = current ? *current : record_from_result(result);
    if (!current && !o.doc.is_object()) {
        why = "the order is unknown and the result carries no order";
        return std::nullopt;
    }
    SagaStep step;
    if (o.status == "CANCELLED") {
        // Late answer for an order already cancelled (customer or timeout): never confirm. A
        // reservation is released; the cancel already asked for that unless it predates it.
        if (status == "RESERVED" && !o.release_requested) {
            auto release =
                order_event(o, result.id, result.traceparent, "INVENTORY_RELEASE_REQUESTED",
                            release_data(o, o.reason.empty() ? "CANCELLED" : o.reason));
            step.change =
                OrderChange{o.order_id, release.id, o.status, release.time,         o.reason,
                            o.detail,   o.decided,  true,     /*add_history=*/false};
            step.emit.emplace_back(topics.inventory_requests, std::move(release));
        }
        return step;
    }
    if (o.status != "PENDING") return step;  // already decided: a duplicate answer
    if (status == "RESERVED") {
        auto confirmed = order_event(o, result.id, result.traceparent, "ORDER_CONFIRMED",
                                     {{"order_id", o.order_id},
                                      {"total", string_field(o.doc, "total")},
                                      {"currency", string_field(o.doc, "currency")},
                                      {"confirmed_at", now_rfc3339()}});
        step.change = OrderChange{o.order_id, confirmed.id, "CONFIRMED", confirmed.time,
                                  "",         "",           true,        o.release_requested};
        auto note = notification(o, confirmed, "ORDER_CONFIRMED");
        step.emit.emplace_back(topics.orders, std::move(confirmed));
        step.emit.emplace_back(topics.notifications, std::move(note));
        return step;
    }
    return cancel(o, result.id, result.traceparent, status, string_field(result.data, "reason"),
                  /*release=*/false, /*notify=*/true, /*decided=*/true, topics);
}

SagaStep on_customer_cancel(const OrderRecord& o, const SagaTopics& topics) {
    const bool pending = o.status == "PENDING";
    return cancel(o, o.last_event_id, o.traceparent, "CUSTOMER_REQUEST",
                  "cancelled by the customer",
                  /*release=*/true, /*notify=*/pending, /*decided=*/o.decided, topics);
}

SagaStep on_timeout(const OrderRecord& o, const SagaTopics& topics) {
    return cancel(o, o.last_event_id, o.traceparent, "TIMEOUT",
                  "no inventory answer within the order timeout", /*release=*/true,
                  /*notify=*/true, /*decided=*/true, topics);
}

}  // namespace orderpipe::order
