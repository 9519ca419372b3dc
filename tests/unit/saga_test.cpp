// The order saga's decisions and the inventory's reservation rule, without Kafka.
#include "saga.hpp"
#include "reservation.hpp"

#include <catch2/catch.hpp>

using namespace orderpipe;
using namespace orderpipe::order;
using nlohmann::json;

namespace {

OrderRecord pending_order() {
    OrderRecord o;
    o.order_id = "o-1";
    o.status = "PENDING";
    o.correlation_id = "saga-1";
    o.traceparent = TraceContext::fresh().header();
    o.last_event_id = "created-1";
    o.doc = {
        {"order_id", "o-1"},
        {"customer_email", "ana@example.com"},
        {"total", "59.98"},
        {"currency", "USD"},
        {"items", json::array({{{"sku", "MOUSE-001"}, {"quantity", 2}, {"unit_price", "29.99"}}})}};
    return o;
}

CloudEvent result(const std::string& status) {
    return CloudEvent::make("INVENTORY_RESERVE_RESULT", "/inventory-service", "o-1", "saga-1",
                            "req-1", TraceContext::fresh().header(),
                            {{"order_id", "o-1"},
                             {"status", status},
                             {"reason", "why"},
                             {"lines", json::array()},
                             {"order", pending_order().doc}});
}

std::vector<std::string> types(const SagaStep& s) {
    std::vector<std::string> out;
    for (const auto& [topic, e] : s.emit) out.push_back(topic + ":" + e.type);
    return out;
}

const SagaTopics kTopics;

}  // namespace

TEST_CASE("RESERVED confirms a pending order and requests its notification", "[saga]") {
    std::string why;
    const auto reserved = result("RESERVED");
    auto step = on_reserve_result(pending_order(), reserved, kTopics, why);
    REQUIRE(step);
    CHECK(types(*step) ==
          std::vector<std::string>{"orders.events:ORDER_CONFIRMED",
                                   "notifications.requests:NOTIFICATION_REQUESTED"});
    CHECK(step->change->status == "CONFIRMED");
    CHECK(step->change->decided);
    const auto& confirmed = step->emit[0].second;
    CHECK(confirmed.causation_id == reserved.id);
    CHECK(confirmed.correlation_id == "saga-1");
    CHECK(confirmed.data["total"] == "59.98");
    const auto& note = step->emit[1].second;
    CHECK(note.causation_id == confirmed.id);
    CHECK(note.data["kind"] == "ORDER_CONFIRMED");
    CHECK(note.data["to"] == "ana@example.com");
}

TEST_CASE("a stock shortage or unknown SKU cancels with that reason", "[saga]") {
    for (const char* status : {"INSUFFICIENT_STOCK", "UNKNOWN_SKU"}) {
        std::string why;
        auto step = on_reserve_result(pending_order(), result(status), kTopics, why);
        REQUIRE(step);
        CHECK(types(*step) ==
              std::vector<std::string>{"orders.events:ORDER_CANCELLED",
                                       "notifications.requests:NOTIFICATION_REQUESTED"});
        CHECK(step->emit[0].second.data["reason"] == status);
        CHECK(step->change->reason == status);
    }
}

TEST_CASE("a late RESERVED for a cancelled order is answered with a release, never a confirmation",
          "[saga]") {
    auto cancelled = pending_order();
    cancelled.status = "CANCELLED";
    cancelled.reason = "TIMEOUT";
    std::string why;
    auto step = on_reserve_result(cancelled, result("RESERVED"), kTopics, why);
    REQUIRE(step);
    CHECK(types(*step) ==
          std::vector<std::string>{"inventory.requests:INVENTORY_RELEASE_REQUESTED"});
    CHECK_FALSE(step->change->add_history);
    // Once a release was requested (by the cancel itself), nothing more is sent.
    cancelled.release_requested = true;
    CHECK(on_reserve_result(cancelled, result("RESERVED"), kTopics, why)->emit.empty());
    // A rejection for a cancelled order needs nothing.
    CHECK(on_reserve_result(cancelled, result("INSUFFICIENT_STOCK"), kTopics, why)->emit.empty());
}

TEST_CASE("a second answer for a decided order changes nothing", "[saga]") {
    auto confirmed = pending_order();
    confirmed.status = "CONFIRMED";
    std::string why;
    auto step = on_reserve_result(confirmed, result("RESERVED"), kTopics, why);
    REQUIRE(step);
    CHECK(step->emit.empty());
    CHECK_FALSE(step->change);
}

TEST_CASE("malformed results are refused with a reason", "[saga]") {
    std::string why;
    CHECK_FALSE(on_reserve_result(pending_order(), result("MAYBE"), kTopics, why));
    CHECK(why.find("MAYBE") != std::string::npos);
    auto no_id = result("RESERVED");
    no_id.data.erase("order_id");
    CHECK_FALSE(on_reserve_result(pending_order(), no_id, kTopics, why));
}

TEST_CASE("customer cancel and timeout release the stock", "[saga]") {
    auto pending = pending_order();
    auto cancel = on_customer_cancel(pending, kTopics);
    CHECK(types(cancel) ==
          std::vector<std::string>{"orders.events:ORDER_CANCELLED",
                                   "inventory.requests:INVENTORY_RELEASE_REQUESTED",
                                   "notifications.requests:NOTIFICATION_REQUESTED"});
    CHECK(cancel.emit[0].second.data["reason"] == "CUSTOMER_REQUEST");
    CHECK(cancel.emit[0].second.causation_id == "created-1");
    CHECK(cancel.change->release_requested);

    auto confirmed = pending_order();
    confirmed.status = "CONFIRMED";
    confirmed.decided = true;
    // A confirmed order already had its one notification (I4).
    CHECK(types(on_customer_cancel(confirmed, kTopics)) ==
          std::vector<std::string>{"orders.events:ORDER_CANCELLED",
                                   "inventory.requests:INVENTORY_RELEASE_REQUESTED"});

    auto timeout = on_timeout(pending, kTopics);
    CHECK(timeout.emit[0].second.data["reason"] == "TIMEOUT");
    CHECK(timeout.change->decided);
    CHECK(timeout.emit[1].second.data["items"] ==
          json::array({{{"sku", "MOUSE-001"}, {"quantity", 2}}}));
}

TEST_CASE("reservations are all or nothing; an unknown SKU wins over a shortage", "[inventory]") {
    using namespace orderpipe::inventory;
    std::map<std::string, StockLevel> stock{{"A", {5, 0}}, {"B", {1, 3}}};
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
