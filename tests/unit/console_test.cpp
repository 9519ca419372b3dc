// The console's order timeline, without Kafka: the order of records, the gaps, what is missing,
// and what a saga waits for.
#include "timeline.hpp"

#include <catch2/catch.hpp>

using namespace orderpipe;
using namespace orderpipe::console;
using nlohmann::json;

namespace {

json at(const std::string& topic, std::int32_t partition, std::int64_t offset,
        const std::string& type, std::int64_t ts) {
    return {{"topic", topic},
            {"partition", partition},
            {"offset", offset},
            {"type", type},
            {"timestamp_ms", ts}};
}

kafka::ConsumedRecord record(const std::string& topic, std::int32_t partition, std::int64_t offset,
                             const std::string& type, std::string value) {
    kafka::ConsumedRecord r;
    r.topic = topic;
    r.partition = partition;
    r.offset = offset;
    r.key = "o-1";
    r.value = std::move(value);
    r.headers = {{"ce_type", type},
                 {"ce_source", "/order-service"},
                 {"ce_id", "id-" + std::to_string(offset)},
                 {"traceparent", "00-0123456789abcdef0123456789abcdef-0123456789abcdef-01"}};
    return r;
}

}  // namespace

TEST_CASE("a timeline: by time, one transaction's records in saga order, gaps, missing records",
          "[console]") {
    // As the index lists them: by timestamp, then topic name (inventory.requests sorts before
    // orders.events, though ORDER_CREATED caused it).
    const json index =
        json::array({at("p.inventory.requests", 1, 4, "INVENTORY_RESERVE_REQUESTED", 100),
                     at("p.orders.events", 1, 7, "ORDER_CREATED", 100),
                     at("p.inventory.responses", 1, 2, "INVENTORY_RESERVE_RESULT", 130),
                     at("p.orders.events", 1, 9, "ORDER_CONFIRMED", 145)});
    const std::vector<kafka::ConsumedRecord> records{
        record("p.orders.events", 1, 7, "ORDER_CREATED", R"({"order_id":"o-1"})"),
        record("p.inventory.requests", 1, 4, "INVENTORY_RESERVE_REQUESTED", "not JSON"),
        record("p.orders.events", 1, 9, "ORDER_CONFIRMED", "{}")};
    const json state = {{"order_id", "o-1"}, {"status", "CONFIRMED"}};
    const auto t = timeline_json("o-1", index, records, state);
    REQUIRE(t["records"].size() == 4);
    CHECK(t["records"][0]["type"] == "ORDER_CREATED");
    CHECK(t["records"][0]["gap_ms"].is_null());
    CHECK(t["records"][0]["value"]["order_id"] == "o-1");
    CHECK(t["records"][0]["trace_id"] == "0123456789abcdef0123456789abcdef");
    CHECK(t["records"][0]["source"] == "/order-service");
    CHECK(t["records"][1]["type"] == "INVENTORY_RESERVE_REQUESTED");
    CHECK(t["records"][1]["gap_ms"] == 0);
    CHECK(t["records"][1]["value"] == "not JSON");  // shown as text
    CHECK(t["records"][2]["fetched"] == false);     // not read: shown, marked
    CHECK(t["records"][2]["gap_ms"] == 30);
    CHECK(t["records"][3]["gap_ms"] == 15);
    CHECK(t["state"] == state);
    // Confirmed, and no email asked for yet in what was read: nothing to wait for.
    CHECK(t["waiting_for"] == "");
}

TEST_CASE("what a saga waits for", "[console]") {
    const json pending = {{"status", "PENDING"}};
    const json confirmed = {{"status", "CONFIRMED"}};
    const auto waits = [](const json& state, const json& index) {
        return timeline_json("o-1", index, {}, state)["waiting_for"].get<std::string>();
    };
    CHECK(waits(pending, json::array({at("orders.events", 0, 0, "ORDER_CREATED", 1)}))
              .find("inventory") != std::string::npos);
    CHECK(waits(pending,
                json::array({at("orders.events", 0, 0, "ORDER_CREATED", 1),
                             at("inventory.responses", 0, 0, "INVENTORY_RESERVE_RESULT", 2)}))
              .find("decision") != std::string::npos);
    const json emailed =
        json::array({at("orders.events", 0, 1, "ORDER_CONFIRMED", 3),
                     at("notifications.requests", 0, 0, "NOTIFICATION_REQUESTED", 3)});
    CHECK(waits(confirmed, emailed).find("email") != std::string::npos);
    json dead = emailed;
    dead.push_back(at("notifications.dlq", 0, 0, "NOTIFICATION_REQUESTED", 9));
    CHECK(waits(confirmed, dead).find("dead letter") != std::string::npos);
    dead.push_back(at("dlq.resolutions", 0, 0, "DISCARDED", 10));
    CHECK(waits(confirmed, dead) == "the notification-service: the email is not sent yet");
    CHECK(trace_id_of("garbage") == "");
}
