#include "orderpipe/common/logging.hpp"
#include "orderpipe/contract/events.hpp"

#include <catch2/catch.hpp>

using nlohmann::json;
using orderpipe::log::format_line;
using orderpipe::log::Scope;

namespace {
json line(const json* fields = nullptr) {
    return json::parse(format_line("order-service", spdlog::level::info, "hello", fields,
                                   spdlog::log_clock::now()));
}
}  // namespace

TEST_CASE("a log scope adds its fields to every line of its thread while it lives", "[log]") {
    CHECK_FALSE(line().contains("order_id"));
    {
        Scope order({{"order_id", "o-1"}, {"traceparent", "00-aa-bb-01"}});
        auto l = line();
        CHECK(l["order_id"] == "o-1");
        CHECK(l["traceparent"] == "00-aa-bb-01");
        CHECK(l["msg"] == "hello");
        CHECK(l["service"] == "order-service");
        {
            Scope inner({{"order_id", "o-2"}, {"attempt", 3}});
            l = line();
            CHECK(l["order_id"] == "o-2");  // the inner scope wins
            CHECK(l["attempt"] == 3);
            CHECK(l["traceparent"] == "00-aa-bb-01");
        }
        const json own = {{"order_id", "o-3"}};
        CHECK(line(&own)["order_id"] == "o-3");  // a call's own fields win
        CHECK_FALSE(line().contains("attempt"));
    }
    CHECK_FALSE(line().contains("order_id"));
    CHECK_FALSE(line().contains("traceparent"));
}

TEST_CASE("an event's log fields: order, correlation id, traceparent", "[log]") {
    auto e = orderpipe::contract::new_event(
        orderpipe::contract::EventType::kOrderCreated, "/order-service", "o-9", "c-9", std::nullopt,
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", json::object());
    auto f = orderpipe::contract::log_fields(e);
    CHECK(f == json{{"order_id", "o-9"},
                    {"correlation_id", "c-9"},
                    {"traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}});
    // A record that may not decode: from its key and headers.
    auto r = orderpipe::contract::log_fields(
        std::optional<std::string>("o-9"),
        {{"ce_correlationid", std::optional<std::string>("c-9")},
         {"traceparent", std::nullopt},
         {"ce_type", std::optional<std::string>("STOCK_ADJUSTED")}});
    CHECK(r == json{{"sku", "o-9"}, {"correlation_id", "c-9"}});
}
