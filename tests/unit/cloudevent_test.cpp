#include "orderpipe/common/cloudevent.hpp"
#include "orderpipe/common/time.hpp"

#include <catch2/catch.hpp>

#include <regex>
#include <set>

using namespace orderpipe;

TEST_CASE("uuid v7 has the right shape and is unique and time-ordered", "[cloudevent]") {
    const std::regex shape("^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$");
    std::set<std::string> seen;
    std::string prev;
    for (int i = 0; i < 10000; ++i) {
        auto id = new_uuid_v7();
        REQUIRE(std::regex_match(id, shape));
        REQUIRE(seen.insert(id).second);
        REQUIRE(id.substr(0, 18) >= prev.substr(0, std::min<std::size_t>(18, prev.size())));
        prev = id;
    }
}

TEST_CASE("traceparent parses, rejects junk and continues the trace", "[cloudevent]") {
    auto tc = TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    REQUIRE(tc);
    CHECK(tc->trace_id == "4bf92f3577b34da6a3ce929d0e0e4736");
    auto child = tc->child();
    CHECK(child.trace_id == tc->trace_id);
    CHECK(child.span_id != tc->span_id);
    CHECK_FALSE(TraceContext::parse("00-00000000000000000000000000000000-00f067aa0ba902b7-01"));
    CHECK_FALSE(TraceContext::parse("garbage"));
    CHECK(TraceContext::parse(TraceContext::fresh().header()));
}

TEST_CASE("an event round-trips through headers and value", "[cloudevent]") {
    auto created =
        CloudEvent::make("ORDER_CREATED", "/order-service", "o-1", "saga-1", std::nullopt,
                         TraceContext::fresh().header(), {{"order_id", "o-1"}});
    auto next = CloudEvent::caused_by(created, "INVENTORY_RESERVE_REQUESTED", "/order-service",
                                      {{"order_id", "o-1"}});
    CHECK(next.causation_id == created.id);
    CHECK(next.correlation_id == "saga-1");
    CHECK(next.subject == "o-1");

    std::vector<std::pair<std::string, std::optional<std::string>>> hs;
    for (auto& [k, v] : next.headers()) hs.emplace_back(k, v);
    auto decoded = decode_event(hs, next.value());
    REQUIRE(std::holds_alternative<CloudEvent>(decoded));
    auto& e = std::get<CloudEvent>(decoded);
    CHECK(e.id == next.id);
    CHECK(e.type == "INVENTORY_RESERVE_REQUESTED");
    CHECK(e.causation_id == created.id);
    CHECK(e.data["order_id"] == "o-1");
    CHECK(parse_rfc3339(e.time).has_value());
    bool has_content_type = false;
    for (auto& [k, v] : next.headers())
        has_content_type |= (k == "content-type" && v == "application/json");
    CHECK(has_content_type);
}

TEST_CASE("poison records are described, not thrown", "[cloudevent]") {
    std::vector<std::pair<std::string, std::optional<std::string>>> none;
    auto r = decode_event(none, std::string_view("{}"));
    REQUIRE(std::holds_alternative<EnvelopeError>(r));
    CHECK(std::get<EnvelopeError>(r).message == "missing header ce_specversion");

    auto ok = CloudEvent::make("X", "/s", "o", "c", std::nullopt, "", {});
    std::vector<std::pair<std::string, std::optional<std::string>>> hs;
    for (auto& [k, v] : ok.headers()) hs.emplace_back(k, v);
    CHECK(std::get<EnvelopeError>(decode_event(hs, std::string_view("\xff\xfe garbage")))
              .message.rfind("value is not JSON", 0) == 0);
    CHECK(std::get<EnvelopeError>(decode_event(hs, std::string_view("[1]"))).message ==
          "value is not a JSON object");
    CHECK(std::get<EnvelopeError>(decode_event(hs, std::nullopt)).message == "record has no value");
    auto bad_time = hs;
    for (auto& [k, v] : bad_time) {
        if (k == "ce_time") v = "yesterday";
    }
    CHECK(std::get<EnvelopeError>(decode_event(bad_time, std::string_view("{}"))).message ==
          "ce_time \"yesterday\" is not an RFC 3339 time");
    hs.erase(hs.begin() + 2);  // ce_type
    CHECK(std::get<EnvelopeError>(decode_event(hs, std::string_view("{}"))).message ==
          "missing header ce_type");
}

TEST_CASE("RFC 3339 times format with milliseconds and parse back", "[time]") {
    auto t = parse_rfc3339("2026-11-23T19:40:00.123Z");
    REQUIRE(t);
    CHECK(format_rfc3339(*t) == "2026-11-23T19:40:00.123Z");
    CHECK(format_rfc3339(*parse_rfc3339("2026-11-23T21:40:00+02:00")) ==
          "2026-11-23T19:40:00.000Z");
    CHECK_FALSE(parse_rfc3339("2026-02-30T00:00:00Z"));
    CHECK_FALSE(parse_rfc3339("yesterday"));
}

TEST_CASE("ce_ headers must be UTF-8 text", "[cloudevent]") {
    auto ok = CloudEvent::make("X", "/s", "o", "c", std::nullopt, "", {});
    std::vector<std::pair<std::string, std::optional<std::string>>> hs;
    for (auto& [k, v] : ok.headers())
        hs.emplace_back(k, k == "ce_subject" ? std::string("o-\xff\xfe") : v);
    auto r = decode_event(hs, std::string_view("{}"));
    REQUIRE(std::holds_alternative<EnvelopeError>(r));
    CHECK(std::get<EnvelopeError>(r).message == "header ce_subject is not UTF-8 text");
    hs.clear();
    for (auto& [k, v] : ok.headers())
        hs.emplace_back(k, k == "ce_subject" ? std::string("pedido-ñ-✓-😀") : v);
    CHECK(std::holds_alternative<CloudEvent>(decode_event(hs, std::string_view("{}"))));
    hs.clear();
    for (auto& [k, v] : ok.headers())
        hs.emplace_back(k, k == "ce_subject" ? std::string("\xed\xa0\x80") : v);  // surrogate
    CHECK(std::holds_alternative<EnvelopeError>(decode_event(hs, std::string_view("{}"))));
}

TEST_CASE("next_hop continues a valid trace with a new span, or starts one", "[cloudevent]") {
    const std::string caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    auto next = orderpipe::TraceContext::parse(orderpipe::next_hop(caller));
    REQUIRE(next.has_value());
    CHECK(next->trace_id == "4bf92f3577b34da6a3ce929d0e0e4736");
    CHECK(next->span_id != "00f067aa0ba902b7");
    for (const std::string bad :
         {"", "junk", "00-00000000000000000000000000000000-00f067aa0ba902b7-01"}) {
        auto fresh = orderpipe::TraceContext::parse(orderpipe::next_hop(bad));
        REQUIRE(fresh.has_value());
        CHECK(fresh->trace_id != "4bf92f3577b34da6a3ce929d0e0e4736");
    }
}
