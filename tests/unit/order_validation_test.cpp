#include "order.hpp"

#include "orderpipe/common/json.hpp"

#include <catch2/catch.hpp>

using namespace orderpipe;
using namespace orderpipe::order;
using nlohmann::json;

namespace {

const char* kSpecExample =
    R"({"customer_id":"c-42","customer_email":"ana@example.com","currency":"USD","items":[{"sku":"LAPTOP-001","quantity":1,"unit_price":"999.99"},{"sku":"MOUSE-001","quantity":2,"unit_price":"29.99"}]})";

json parse(const std::string& s) { return std::get<json>(parse_untrusted_json(s)); }

std::vector<FieldError> errors_of(const json& body) {
    auto r = validate_order(body);
    REQUIRE(std::holds_alternative<std::vector<FieldError>>(r));
    return std::get<std::vector<FieldError>>(r);
}

bool has_error(const std::vector<FieldError>& errs, const std::string& field) {
    for (const auto& e : errs) {
        if (e.field == field) return true;
    }
    return false;
}

}  // namespace

TEST_CASE("the contract example is valid and totals 1059.97", "[order]") {
    auto r = validate_order(parse(kSpecExample));
    REQUIRE(std::holds_alternative<OrderRequest>(r));
    const auto& o = std::get<OrderRequest>(r);
    CHECK(o.total.to_string() == "1059.97");
    CHECK(o.items.size() == 2);
    CHECK(o.items[1].quantity == 2);
}

TEST_CASE("unit_price may be a JSON number with two decimals, parsed exactly", "[order]") {
    auto body = parse(R"({"customer_id":"c","customer_email":"a@b.co","currency":"EUR",
        "items":[{"sku":"A","quantity":3,"unit_price":0.1},{"sku":"B","quantity":1,"unit_price":5}]})");
    auto r = validate_order(body);
    REQUIRE(std::holds_alternative<OrderRequest>(r));
    CHECK(std::get<OrderRequest>(r).total.to_string() == "5.30");
}

TEST_CASE("every invalid field is reported", "[order]") {
    auto base = parse(kSpecExample);
    SECTION("missing fields") {
        auto errs = errors_of(json::object());
        CHECK(has_error(errs, "customer_id"));
        CHECK(has_error(errs, "customer_email"));
        CHECK(has_error(errs, "currency"));
        CHECK(has_error(errs, "items"));
    }
    SECTION("not an object") { CHECK(has_error(errors_of(json::array()), "")); }
    SECTION("quantity 0, negative, over 1000, fractional, string") {
        for (json q : {json(0), json(-1), json(1001), json("1.5"), json("2")}) {
            auto b = base;
            b["items"][0]["quantity"] = q;
            INFO(q.dump());
            CHECK(has_error(errors_of(b), "items[0].quantity"));
        }
        auto b = base;
        b["items"][0]["quantity"] = 1000;
        CHECK(std::holds_alternative<OrderRequest>(validate_order(b)));
    }
    SECTION("more than 100 lines") {
        auto b = base;
        b["items"] = json::array();
        for (int i = 0; i < 101; ++i) {
            b["items"].push_back(
                {{"sku", "S" + std::to_string(i)}, {"quantity", 1}, {"unit_price", "1.00"}});
        }
        CHECK(has_error(errors_of(b), "items"));
        b["items"].erase(b["items"].begin());
        CHECK(std::holds_alternative<OrderRequest>(validate_order(b)));
    }
    SECTION("bad emails") {
        for (const char* e :
             {"", "ana", "ana@", "@example.com", "ana@example", "a b@c.de", "a@@b.co"}) {
            auto b = base;
            b["customer_email"] = e;
            INFO(e);
            CHECK(has_error(errors_of(b), "customer_email"));
        }
    }
    SECTION("bad prices") {
        for (json p :
             {json("-1.00"), json("1.234"), json("abc"), json("0"), json(nullptr), json("1e3")}) {
            auto b = base;
            b["items"][1]["unit_price"] = p;
            INFO(p.dump());
            CHECK(has_error(errors_of(b), "items[1].unit_price"));
        }
        auto errs =
            errors_of(parse(R"({"customer_id":"c","customer_email":"a@b.co","currency":"USD",
            "items":[{"sku":"A","quantity":1,"unit_price":9.999}]})"));
        CHECK(has_error(errs, "items[0].unit_price"));
    }
    SECTION("bad currency and duplicate skus") {
        auto b = base;
        b["currency"] = "usd";
        b["items"][1]["sku"] = "LAPTOP-001";
        auto errs = errors_of(b);
        CHECK(has_error(errs, "currency"));
        CHECK(has_error(errs, "items[1].sku"));
    }
}

TEST_CASE("intake events carry the ids, headers and data of the contract", "[order]") {
    const std::string incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    AcceptedOrder o = accept(std::get<OrderRequest>(validate_order(parse(kSpecExample))), incoming);
    CHECK(TraceContext::parse(o.traceparent)->trace_id == "4bf92f3577b34da6a3ce929d0e0e4736");
    CHECK(o.traceparent != incoming);  // a child span
    auto [created, reserve] = intake_events(o);
    CHECK(created.type == "ORDER_CREATED");
    CHECK(created.id == o.created_event_id);
    CHECK_FALSE(created.causation_id);
    CHECK(created.subject == o.order_id());
    CHECK(created.time == o.created.created_at);
    CHECK(created.data["status"] == "PENDING");
    CHECK(created.data["total"] == "1059.97");
    CHECK(created.data["items"][0]["unit_price"] == "999.99");
    CHECK(created.data["customer_email"] == "ana@example.com");
    CHECK(reserve.type == "INVENTORY_RESERVE_REQUESTED");
    CHECK(reserve.id == o.reserve_event_id);
    CHECK(reserve.causation_id == created.id);
    CHECK(reserve.correlation_id == o.correlation_id);
    CHECK(reserve.data["items"] == json::array({{{"sku", "LAPTOP-001"}, {"quantity", 1}},
                                                {{"sku", "MOUSE-001"}, {"quantity", 2}}}));
    CHECK(reserve.data["order"]["order_id"] == o.order_id());
    CHECK(TraceContext::parse(reserve.traceparent)->trace_id ==
          TraceContext::parse(o.traceparent)->trace_id);
    CHECK_NOTHROW(contract::OrderCreated::read(created.data));
    CHECK_NOTHROW(contract::InventoryReserveRequested::read(reserve.data));
    CHECK(created_response(o.created)["total"] == "1059.97");
}

TEST_CASE("a request without a valid traceparent starts a trace", "[order]") {
    auto request = std::get<OrderRequest>(validate_order(parse(kSpecExample)));
    AcceptedOrder o = accept(request, std::string("garbage"));
    CHECK(TraceContext::parse(o.traceparent));
    AcceptedOrder p = accept(request, std::nullopt);
    CHECK(TraceContext::parse(p.traceparent));
    CHECK(o.order_id() != p.order_id());
}
