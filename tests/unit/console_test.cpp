// The console's order timeline, without Kafka: the order of records, the gaps, what is missing,
// and what a saga waits for.
#include "live.hpp"
#include "operators.hpp"
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

TEST_CASE("operators: the file holds digests; a bearer token names its operator", "[console]") {
    const auto ana = sha256_hex("ana-token");
    CHECK(ana.size() == 64);
    CHECK(sha256_hex("abc") ==
          "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");  // FIPS 180-2
    const auto ops = Operators::parse("# who may replay\n\nana:" + ana +
                                      "\r\n  bo@ops:" + sha256_hex("bo-token") + "\n");
    CHECK(ops.size() == 2);
    CHECK(ops.who("Bearer ana-token") == "ana");
    CHECK(ops.who("bearer bo-token") == "bo@ops");
    CHECK_FALSE(ops.who("Bearer ana-token "));
    CHECK_FALSE(ops.who("Bearer " + ana));  // the digest is not the token
    CHECK_FALSE(ops.who("Basic YW5hOmFuYS10b2tlbg=="));
    CHECK_FALSE(ops.who("Bearer "));
    CHECK_FALSE(ops.who(""));
    const auto refused = [](const std::string& text) {
        try {
            Operators::parse(text);
        } catch (const std::invalid_argument& e) {
            return std::string(e.what());
        }
        return std::string("accepted");
    };
    CHECK(refused("ana-token\n") == "line 1: expected <user>:<SHA-256 of the token, hex>");
    CHECK(refused("#\nana:1234\n").starts_with("line 2: expected the token's SHA-256"));
    CHECK(refused("a b:" + ana).starts_with("line 1: a user is"));
    CHECK(Operators::parse("ANA:" + std::string(64, 'A')).size() == 1);  // hex in any case
}

TEST_CASE("live view: readiness, lag and the breaker from the services' answers", "[console]") {
    const std::string metrics =
        "# HELP kafka_consumer_lag Records\n"
        "# TYPE kafka_consumer_lag gauge\n"
        "kafka_consumer_lag{loop=\"notification-requests\",partition=\"2\",topic=\"t.notifications."
        "requests\"} 7\n"
        "kafka_consumer_lag_other{loop=\"x\"} 1\n"
        "kafka_consumer_lag{loop=\"a\\\"b\",partition=\"0\",topic=\"t\"} NaN\n"
        "kafka_consumer_lag{broken 3\n"
        "notification_breaker_state 2\n";
    const auto lag = samples(metrics, "kafka_consumer_lag");
    REQUIRE(lag.size() == 1);
    CHECK(lag[0].labels.at("topic") == "t.notifications.requests");
    CHECK(lag[0].value == 7);
    CHECK(samples("m{a=\"x\\\"y\"} 1.5\n", "m").at(0).labels.at("a") == "x\"y");

    ServiceAnswers up;
    up.name = "notification-service";
    up.url = "http://n";
    up.readyz_status = 200;
    up.readyz_body = R"({"status":"ready","checks":{"kafka":"ok"}})";
    up.metrics = metrics;
    ServiceAnswers unready;
    unready.name = "order-service";
    unready.url = "http://o";
    unready.readyz_status = 503;
    unready.readyz_body = R"({"title":"Service Unavailable","detail":"kafka: unreachable",)"
                          R"("checks":{"kafka":"unreachable"}})";
    ServiceAnswers away;
    away.name = "inventory-service";
    away.url = "http://i";
    away.error = "Couldn't connect to server";
    const auto live = live_json({up, unready, away});
    CHECK(live["services"][0]["status"] == "ready");
    CHECK(live["services"][0]["checks"]["kafka"] == "ok");
    CHECK(live["services"][1]["status"] == "unready");
    CHECK(live["services"][1]["detail"] == "kafka: unreachable");
    CHECK(live["services"][2]["status"] == "unreachable");
    CHECK(live["services"][2]["detail"] == "Couldn't connect to server");
    CHECK(live["services"][2]["checks"].is_null());
    REQUIRE(live["lag"].size() == 1);
    CHECK(live["lag"][0] == json{{"service", "notification-service"},
                                 {"loop", "notification-requests"},
                                 {"topic", "t.notifications.requests"},
                                 {"partition", 2},
                                 {"lag", 7}});
    CHECK(live["breaker"] == "open");
    CHECK(live_json({unready})["breaker"].is_null());  // no notification-service answer
}
