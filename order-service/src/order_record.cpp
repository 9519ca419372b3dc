#include "order_record.hpp"

#include "orderpipe/common/time.hpp"

namespace orderpipe::order {

using contract::CancelReason;
using contract::EventType;
using contract::OrderStatus;
using nlohmann::json;

namespace {

std::int64_t epoch_ms(const std::string& rfc3339) {
    auto t = parse_rfc3339(rfc3339);
    if (!t) return 0;
    return std::chrono::duration_cast<std::chrono::milliseconds>(t->time_since_epoch()).count();
}

}  // namespace

std::optional<Transition> transition_for(const CloudEvent& e) {
    const auto type = contract::type_of(e);
    if (type == EventType::kOrderConfirmed) {
        auto c = contract::OrderConfirmed::read(e.data);
        return Transition{c.order_id, OrderStatus::kConfirmed, std::nullopt, "", true, false,
                          e.time};
    }
    if (type == EventType::kOrderCancelled) {
        auto c = contract::OrderCancelled::read(e.data);
        // Stock reasons and timeouts are the order's decision; a customer cancel comes on top.
        // Customer cancels and timeouts always come with a release request.
        const bool releases =
            c.reason == CancelReason::kCustomerRequest || c.reason == CancelReason::kTimeout;
        return Transition{c.order_id, OrderStatus::kCancelled,         c.reason,
                          c.detail,   contract::is_decision(c.reason), releases,
                          e.time};
    }
    return std::nullopt;
}

OrderRecord pending_record(const contract::OrderCreated& order, json doc,
                           std::string correlation_id, std::string traceparent) {
    OrderRecord r;
    r.order_id = order.order_id;
    r.doc = std::move(doc);
    r.correlation_id = std::move(correlation_id);
    r.traceparent = std::move(traceparent);
    r.created_ms = epoch_ms(order.created_at);
    r.history = json::array(
        {{{"status", contract::to_string(OrderStatus::kPending)}, {"at", order.created_at}}});
    return r;
}

OrderRecord record_for_created(const CloudEvent& created) {
    auto r = pending_record(contract::OrderCreated::read(created.data), created.data,
                            created.correlation_id, created.traceparent);
    r.last_event_id = created.id;
    return r;
}

void apply_transition(OrderRecord& r, const std::string& event_id, const Transition& t) {
    r.status = t.status;
    r.reason = t.reason;
    r.detail = t.detail;
    r.decided = r.decided || t.decided;
    r.release_requested = r.release_requested || t.releases;
    r.last_event_id = event_id;
    r.history.push_back({{"status", contract::to_string(t.status)}, {"at", t.at}});
}

}  // namespace orderpipe::order
