// The order saga's decisions, the read model's rule, and the inventory's reservation rule,
// without Kafka.
#include "saga.hpp"
#include "order_record.hpp"
#include "read_model.hpp"
#include "reservation.hpp"

#include <catch2/catch.hpp>

using namespace orderpipe;
using namespace orderpipe::order;
using nlohmann::json;

namespace {

SagaTopics kTopics() {
    return {"orders.events", "inventory.requests", "inventory.responses", "notifications.requests"};
}

json order_doc() {
    return {
        {"order_id", "o-1"},
        {"customer_id", "c-1"},
        {"customer_email", "ana@example.com"},
        {"total", "59.98"},
        {"currency", "USD"},
        {"status", "PENDING"},
        {"created_at", "2026-12-01T10:00:00.000Z"},
        {"items", json::array({{{"sku", "MOUSE-001"}, {"quantity", 2}, {"unit_price", "29.99"}}})}};
}

OrderRecord pending_order() {
    OrderRecord o;
    o.order_id = "o-1";
    o.correlation_id = "saga-1";
    o.traceparent = TraceContext::fresh().header();
    o.last_event_id = "created-1";
    o.doc = order_doc();
    return o;
}

CloudEvent result_event(const std::string& status) {
    return CloudEvent::make("INVENTORY_RESERVE_RESULT", "/inventory-service", "o-1", "saga-1",
                            "req-1", TraceContext::fresh().header(),
                            {{"order_id", "o-1"},
                             {"status", status},
                             {"reason", "why"},
                             {"lines", json::array()},
                             {"order", order_doc()}});
}

SagaStep answer(const OrderRecord& o, const std::string& status) {
    auto e = result_event(status);
    return on_reserve_result(o, e, contract::InventoryReserveResult::read(e.data), kTopics());
}

std::vector<std::string> types(const SagaStep& s) {
    std::vector<std::string> out;
    for (const auto& [topic, e] : s.emit) out.push_back(topic + ":" + e.type);
    return out;
}

/// The order after the step's orders.events events, by the read model's rule.
OrderRecord after(OrderRecord o, const SagaStep& s) {
    for (const auto& [topic, e] : s.emit) {
        if (auto t = transition_for(e)) apply_transition(o, e.id, *t);
    }
    if (s.requests_release) o.release_requested = true;
    return o;
}

}  // namespace

TEST_CASE("RESERVED confirms a pending order and requests its notification", "[saga]") {
    const auto reserved = result_event("RESERVED");
    auto step = on_reserve_result(pending_order(), reserved,
                                  contract::InventoryReserveResult::read(reserved.data), kTopics());
    CHECK(types(step) == std::vector<std::string>{"orders.events:ORDER_CONFIRMED",
                                                  "notifications.requests:NOTIFICATION_REQUESTED"});
    const auto o = after(pending_order(), step);
    CHECK(o.status == contract::OrderStatus::kConfirmed);
    CHECK(o.decided);
    const auto& confirmed = step.emit[0].second;
    CHECK(confirmed.causation_id == reserved.id);
    CHECK(confirmed.correlation_id == "saga-1");
    CHECK(confirmed.data["total"] == "59.98");
    const auto& note = step.emit[1].second;
    CHECK(note.causation_id == confirmed.id);
    CHECK(note.data["kind"] == "ORDER_CONFIRMED");
    CHECK(note.data["to"] == "ana@example.com");
    CHECK_NOTHROW(contract::NotificationRequested::read(note.data));
}

TEST_CASE("a stock shortage or unknown SKU cancels with that reason", "[saga]") {
    for (const char* status : {"INSUFFICIENT_STOCK", "UNKNOWN_SKU"}) {
        auto step = answer(pending_order(), status);
        CHECK(types(step) ==
              std::vector<std::string>{"orders.events:ORDER_CANCELLED",
                                       "notifications.requests:NOTIFICATION_REQUESTED"});
        CHECK(step.emit[0].second.data["reason"] == status);
        const auto o = after(pending_order(), step);
        CHECK(o.status == contract::OrderStatus::kCancelled);
        CHECK(contract::to_string(*o.reason) == status);
        CHECK(o.decided);
        CHECK_FALSE(o.release_requested);
    }
}

TEST_CASE("a late RESERVED for a cancelled order is answered with a release, never a confirmation",
          "[saga]") {
    auto cancelled = pending_order();
    cancelled.status = contract::OrderStatus::kCancelled;
    cancelled.reason = contract::CancelReason::kInsufficientStock;
    auto step = answer(cancelled, "RESERVED");
    CHECK(types(step) ==
          std::vector<std::string>{"inventory.requests:INVENTORY_RELEASE_REQUESTED"});
    CHECK(step.requests_release);
    // Once a release was requested (by the cancel itself), nothing more is sent.
    cancelled.release_requested = true;
    CHECK(answer(cancelled, "RESERVED").emit.empty());
    // A rejection for a cancelled order needs nothing.
    CHECK(answer(cancelled, "INSUFFICIENT_STOCK").emit.empty());
}

TEST_CASE("a second answer for a decided order changes nothing", "[saga]") {
    auto confirmed = pending_order();
    confirmed.status = contract::OrderStatus::kConfirmed;
    CHECK(answer(confirmed, "RESERVED").emit.empty());
    CHECK(answer(confirmed, "INSUFFICIENT_STOCK").emit.empty());
}

TEST_CASE("malformed results are refused by the contract", "[saga]") {
    auto maybe = result_event("MAYBE");
    CHECK_THROWS_WITH(contract::InventoryReserveResult::read(maybe.data), Catch::Contains("MAYBE"));
    auto no_id = result_event("RESERVED");
    no_id.data.erase("order_id");
    CHECK_THROWS_AS(contract::InventoryReserveResult::read(no_id.data), contract::ContractError);
    auto bad_order = result_event("RESERVED");
    bad_order.data["order"].erase("total");
    const auto r = contract::InventoryReserveResult::read(bad_order.data);
    CHECK_THROWS_AS(record_from_result(bad_order, r), contract::ContractError);
}

TEST_CASE("customer cancel and timeout release the stock and notify", "[saga]") {
    auto pending = pending_order();
    auto cancel = on_customer_cancel(pending, kTopics());
    const std::vector<std::string> cancel_types{"orders.events:ORDER_CANCELLED",
                                                "inventory.requests:INVENTORY_RELEASE_REQUESTED",
                                                "notifications.requests:NOTIFICATION_REQUESTED"};
    CHECK(types(cancel) == cancel_types);
    CHECK(cancel.emit[0].second.data["reason"] == "CUSTOMER_REQUEST");
    CHECK(cancel.emit[0].second.causation_id == "created-1");
    auto o = after(pending, cancel);
    CHECK(o.release_requested);
    CHECK_FALSE(o.decided);  // a customer cancel is not the order's decision (I1)

    auto confirmed = pending_order();
    confirmed.status = contract::OrderStatus::kConfirmed;
    confirmed.decided = true;
    // The customer is told, also when the order had been confirmed.
    auto cancel_confirmed = on_customer_cancel(confirmed, kTopics());
    CHECK(types(cancel_confirmed) == cancel_types);
    CHECK(cancel_confirmed.emit[2].second.data["kind"] == "ORDER_CANCELLED");

    auto timeout = on_timeout(pending, kTopics());
    CHECK(timeout.emit[0].second.data["reason"] == "TIMEOUT");
    CHECK(after(pending, timeout).decided);
    CHECK(timeout.emit[1].second.data["items"] ==
          json::array({{{"sku", "MOUSE-001"}, {"quantity", 2}}}));
}

TEST_CASE("the read model's rule: which event changes what", "[read-model]") {
    auto event = [](const char* type, json data) {
        return CloudEvent::make(type, "/order-service", "o-1", "saga-1", "x",
                                TraceContext::fresh().header(), std::move(data));
    };
    auto confirmed =
        transition_for(event("ORDER_CONFIRMED", {{"order_id", "o-1"},
                                                 {"total", "1.00"},
                                                 {"currency", "USD"},
                                                 {"confirmed_at", "2026-12-01T10:00:00.000Z"}}));
    REQUIRE(confirmed);
    CHECK(confirmed->status == contract::OrderStatus::kConfirmed);
    CHECK(confirmed->decided);
    CHECK_FALSE(confirmed->releases);
    auto cancelled = [&](const char* reason) {
        return transition_for(
            event("ORDER_CANCELLED", {{"order_id", "o-1"},
                                      {"total", "1.00"},
                                      {"currency", "USD"},
                                      {"reason", reason},
                                      {"detail", ""},
                                      {"cancelled_at", "2026-12-01T10:00:00.000Z"}}));
    };
    CHECK(cancelled("INSUFFICIENT_STOCK")->decided);
    CHECK_FALSE(cancelled("INSUFFICIENT_STOCK")->releases);
    CHECK(cancelled("TIMEOUT")->decided);
    CHECK(cancelled("TIMEOUT")->releases);
    CHECK_FALSE(cancelled("CUSTOMER_REQUEST")->decided);
    CHECK(cancelled("CUSTOMER_REQUEST")->releases);
    CHECK_THROWS_AS(cancelled("BORED"), contract::ContractError);
    CHECK_FALSE(transition_for(event("NOTIFICATION_SENT", json::object())));
}

TEST_CASE("reservations are all or nothing; an unknown SKU wins over a shortage", "[inventory]") {
    using namespace orderpipe::inventory;
    std::map<std::string, StockLevel> stock{{"A", {5, 0, {}, "USD"}}, {"B", {1, 3, {}, "USD"}}};
    auto lookup = [&](const std::string& sku) -> std::optional<StockLevel> {
        auto it = stock.find(sku);
        if (it == stock.end()) return std::nullopt;
        return it->second;
    };
    CHECK(decide_reservation({{"A", 5}, {"B", 1}}, lookup).status == ReserveStatus::kReserved);
    auto short_b = decide_reservation({{"A", 1}, {"B", 2}}, lookup);
    CHECK(short_b.status == ReserveStatus::kInsufficientStock);
    CHECK(short_b.reason.find("B: requested 2, available 1") != std::string::npos);
    CHECK(short_b.lines[1].available == 1);
    auto unknown = decide_reservation({{"A", 100}, {"Z", 1}}, lookup);
    CHECK(unknown.status == ReserveStatus::kUnknownSku);
    CHECK(unknown.reason == "unknown SKU: Z");
}

TEST_CASE("the catalog is the price authority: another price or currency is PRICE_MISMATCH",
          "[inventory]") {
    using namespace orderpipe::inventory;
    const auto price = [](const char* p) { return *orderpipe::Money::parse(p); };
    std::map<std::string, StockLevel> stock{{"A", {5, 0, price("999.99"), "USD"}},
                                            {"B", {1, 0, price("10.00"), "EUR"}}};
    auto lookup = [&](const std::string& sku) -> std::optional<StockLevel> {
        auto it = stock.find(sku);
        if (it == stock.end()) return std::nullopt;
        return it->second;
    };
    const RequestedLine a{"A", 1, price("999.99"), "USD"};
    CHECK(decide_reservation({a}, lookup).status == ReserveStatus::kReserved);
    auto cheap = decide_reservation({{"A", 1, price("0.01"), "USD"}}, lookup);
    CHECK(cheap.status == ReserveStatus::kPriceMismatch);
    CHECK(cheap.reason.find("A: ordered at 0.01 USD, the catalog says 999.99 USD") !=
          std::string::npos);
    CHECK(decide_reservation({{"A", 1, price("999.99"), "EUR"}}, lookup).status ==
          ReserveStatus::kPriceMismatch);
    CHECK(decide_reservation({{"A", 1, price("1000.00"), "USD"}}, lookup).status ==
          ReserveStatus::kPriceMismatch);
    // An unknown SKU wins over a price mismatch, which wins over a shortage.
    CHECK(
        decide_reservation({{"A", 1, price("0.01"), "USD"}, {"Z", 1, price("1.00"), "USD"}}, lookup)
            .status == ReserveStatus::kUnknownSku);
    CHECK(decide_reservation({{"A", 100, price("999.99"), "USD"}, {"B", 1, price("9.99"), "EUR"}},
                             lookup)
              .status == ReserveStatus::kPriceMismatch);
    CHECK(orderpipe::contract::cancel_reason_for(ReserveStatus::kPriceMismatch) ==
          orderpipe::contract::CancelReason::kPriceMismatch);
    CHECK(orderpipe::contract::to_string(orderpipe::contract::CancelReason::kPriceMismatch) ==
          "PRICE_MISMATCH");
}

TEST_CASE("events written through are skipped once by the projection; old ones age out",
          "[read-model]") {
    WrittenThrough written(3);
    ReadModelChanges changes;
    changes.created.push_back({OrderRecord{}, "e-created"});
    changes.applied.push_back({"e-confirmed", Transition{}});
    CHECK_FALSE(written.take("e-created"));  // not written yet: the projection applies it
    written.add(changes);
    CHECK(written.take("e-created"));
    CHECK_FALSE(written.take("e-created"));  // once
    CHECK_FALSE(written.take("e-other"));
    // Ids never taken (the projection applied them before they were remembered) do not stay.
    ReadModelChanges more;
    for (const char* id : {"e-1", "e-2", "e-3"}) more.applied.push_back({id, Transition{}});
    written.add(more);
    CHECK(written.size() == 3);
    CHECK_FALSE(written.take("e-confirmed"));  // the oldest, gone
    CHECK(written.take("e-3"));
}
