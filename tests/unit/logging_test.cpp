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
    auto f = orderpipe::contract::log_fields(e).to_json();
    CHECK(f == json{{"order_id", "o-9"},
                    {"correlation_id", "c-9"},
                    {"traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}});
    // A record that may not decode: from its key and headers.
    auto r =
        orderpipe::contract::log_fields(std::optional<std::string>("o-9"),
                                        {{"ce_correlationid", std::optional<std::string>("c-9")},
                                         {"traceparent", std::nullopt},
                                         {"ce_type", std::optional<std::string>("STOCK_ADJUSTED")}})
            .to_json();
    CHECK(r == json{{"sku", "o-9"}, {"correlation_id", "c-9"}});
}

TEST_CASE("a log line is valid JSON whatever its strings hold, and scopes of fields refer to them",
          "[log]") {
    const std::string order = "o-7", correlation = "c-7";
    Scope about(orderpipe::log::Fields()
                    .add("order_id", order)
                    .add("correlation_id", correlation)
                    .add("traceparent", ""));  // empty: left out
    const json own = {{"detail", "quote \" backslash \\ newline \n tab \t bell \x07 é ☃ 😀"},
                      {"bad", std::string("a\xff"
                                          "b\xc3"
                                          "\xe0\x80\x80"
                                          "c\xed\xa0\x80")},
                      {"n", 3},
                      {"list", {1, "x"}},
                      {"order_id", "o-own"}};
    const std::string text = format_line("order-service", spdlog::level::warn, "msg \"quoted\"\r",
                                         &own, spdlog::log_clock::now());
    CHECK(text.find('\n') == std::string::npos);
    const json l = json::parse(text);  // throws if it is not valid JSON (and UTF-8)
    CHECK(l["msg"] == "msg \"quoted\"\r");
    CHECK(l["level"] == "warning");
    CHECK(l["detail"] == "quote \" backslash \\ newline \n tab \t bell \x07 é ☃ 😀");
    CHECK(l["bad"] ==
          "a\xef\xbf\xbd"
          "b\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
          "c\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    CHECK(l["n"] == 3);
    CHECK(l["list"] == json::array({1, "x"}));
    CHECK(l["order_id"] == "o-own");  // the call's own field wins over the scope's
    CHECK(l["correlation_id"] == "c-7");
    CHECK_FALSE(l.contains("traceparent"));
    CHECK(text.starts_with("{\"ts\":\""));
}
