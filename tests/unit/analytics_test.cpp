// The analytics-service's counting rules, without Kafka: what counts, what is poison, what a
// redelivery or a rebuild does, and the JSON of GET /api/metrics.
#include "analytics_processor.hpp"
#include "figures.hpp"
#include "sqlite_analytics_state.hpp"
#include "temp_file.hpp"

#include "orderpipe/common/cloudevent.hpp"
#include "orderpipe/common/ids.hpp"
#include "orderpipe/kafka/event_record.hpp"

#include <prometheus/registry.h>
#include <catch2/catch.hpp>

#include <filesystem>
#include <random>

using namespace orderpipe;
using namespace orderpipe::analytics;
using nlohmann::json;

namespace {

struct TempFile : testing::TempFile {
    TempFile() : testing::TempFile("analytics-test") {}
};

const AnalyticsTopics kTopics{"orders.events",
                              "inventory.events",
                              "notifications.events",
                              "dlq.resolutions",
                              {"notifications.dlq", "orders.events.dlq"},
                              {"inventory.requests", "notifications.requests"}};

/// A consumed record of `event` at `offset` of partition 0.
kafka::ConsumedRecord consumed(const std::string& topic, std::int64_t offset,
                               const CloudEvent& event) {
    auto out = kafka::to_record(topic, event.subject, event);
    kafka::ConsumedRecord r;
    r.topic = topic;
    r.offset = offset;
    r.key = out.key;
    r.value = out.value;
    r.headers = out.headers;
    return r;
}

CloudEvent event(const std::string& type, const std::string& time, json data) {
    std::string subject = data.value("order_id", "o");
    auto e = CloudEvent::make(type, "/test", std::move(subject), "c", std::nullopt,
                              TraceContext::fresh().header(), std::move(data));
    e.time = time;
    return e;
}

CloudEvent created(const std::string& id, const std::string& time, const std::string& total) {
    return event("ORDER_CREATED", time,
                 {{"order_id", id},
                  {"customer_id", "c-1"},
                  {"customer_email", "a@example.com"},
                  {"items", {{{"sku", "S"}, {"quantity", 1}, {"unit_price", total}}}},
                  {"total", total},
                  {"currency", "USD"},
                  {"created_at", time}});
}

CloudEvent confirmed(const std::string& id, const std::string& time, const std::string& total,
                     const std::string& currency = "USD") {
    return event(
        "ORDER_CONFIRMED", time,
        {{"order_id", id}, {"total", total}, {"currency", currency}, {"confirmed_at", time}});
}

CloudEvent cancelled(const std::string& id, const std::string& time, const std::string& reason) {
    return event("ORDER_CANCELLED", time,
                 {{"order_id", id}, {"total", "10.00"}, {"currency", "USD"}, {"reason", reason}});
}

struct Harness {
    TempFile file;
    std::unique_ptr<AnalyticsState> state = open_sqlite_analytics(file.path);
    AnalyticsState& store = *state;
    prometheus::Registry registry;
    AnalyticsMetrics metrics{registry, kTopics.dead_letters};
    AnalyticsProcessor processor{store, kTopics, metrics};

    Harness() { processor.reload(); }

    /// Processes `records` as one batch; returns the output (dead letters).
    kafka::BatchOutput run(const std::vector<kafka::ConsumedRecord>& records) {
        std::vector<kafka::Incoming> batch;
        for (const auto& r : records) batch.push_back({&r, CloudEvent{}, false});
        kafka::BatchOutput out;
        processor.process(batch, out);
        return out;
    }
    std::map<std::string, std::int64_t> counters() { return store.counters(); }
};

}  // namespace

TEST_CASE("orders, revenue and latency count once, whatever the order of arrival", "[analytics]") {
    Harness h;
    const std::vector<kafka::ConsumedRecord> batch{
        consumed("orders.events", 0, created("o-1", "2026-12-01T10:00:00.000Z", "100.00")),
        consumed("orders.events", 1, confirmed("o-1", "2026-12-01T10:00:00.250Z", "100.00")),
        // o-2's decision is read before its ORDER_CREATED
        consumed("orders.events", 2, cancelled("o-2", "2026-12-01T10:00:01.000Z", "TIMEOUT")),
        consumed("orders.events", 3, created("o-2", "2026-12-01T10:00:00.500Z", "10.00")),
        // a customer cancel after the confirmation: counted, but not a decision
        consumed("orders.events", 4,
                 cancelled("o-1", "2026-12-01T10:05:00.000Z", "CUSTOMER_REQUEST"))};
    auto out = h.run(batch);
    CHECK(out.records().empty());
    auto c = h.counters();
    CHECK(c["orders.created"] == 2);
    CHECK(c["orders.confirmed"] == 1);
    CHECK(c["orders.cancelled"] == 2);
    CHECK(c["cancellation_reasons.TIMEOUT"] == 1);
    CHECK(c["cancellation_reasons.CUSTOMER_REQUEST"] == 1);
    CHECK(c["revenue.confirmed.USD"] == 10000);
    CHECK(c["revenue.lost.USD"] == 2000);
    const auto lat = h.store.latency_percentiles();
    CHECK(lat.count == 2);
    CHECK(lat.p50 == 250.0);
    CHECK(lat.p99 == 500.0);

    // Delivered again (the Kafka transaction after the SQLite commit was aborted): skipped.
    out = h.run(batch);
    CHECK(out.duplicates() == batch.size());
    CHECK(h.counters() == c);
    CHECK(h.store.latency_percentiles().count == 2);
}

TEST_CASE(
    "poison is dead-lettered on every delivery until committed, never counted, and not "
    "again below a rebuild mark",
    "[analytics]") {
    Harness h;
    kafka::ConsumedRecord garbage;
    garbage.topic = "orders.events";
    garbage.offset = 0;
    garbage.value = "{not json";
    auto no_total = confirmed("o-9", "2026-12-01T10:00:00.000Z", "1.00");
    no_total.data.erase("total");
    auto bad_time = created("o-8", "2026-12-01T10:00:00.000Z", "1.00");
    bad_time.time = "yesterday";
    const std::vector<kafka::ConsumedRecord> batch{
        garbage, consumed("orders.events", 1, no_total), consumed("orders.events", 2, bad_time),
        consumed("notifications.events", 0,
                 event("ORDER_CREATED", "2026-12-01T10:00:00.000Z", {{"order_id", "x"}})),
        consumed("orders.events", 3, created("o-1", "2026-12-01T10:00:00.000Z", "5.00"))};
    auto out = h.run(batch);
    REQUIRE(out.dead_letters() == 4);
    CHECK(out.records()[0].topic == "orders.events.dlq");
    CHECK(out.records()[3].topic == "notifications.events.dlq");
    CHECK(h.counters()["orders.created"] == 1);
    CHECK_FALSE(h.counters().contains("orders.confirmed"));
    // Again (its transaction aborted): dead-lettered again, still counted once.
    out = h.run(batch);
    CHECK(out.dead_letters() == 4);
    CHECK(h.counters()["orders.created"] == 1);

    // A rebuilt file: the group had committed up to offset 2 of orders.events, so the poison at
    // 0 and 1 is in the DLQ already; the one at 2 is not.
    Harness rebuilt;
    rebuilt.store.begin_rebuild({{"orders.events", 0, 2}});
    rebuilt.store.set_rebuild_done();
    rebuilt.processor.reload();
    out = rebuilt.run(batch);
    CHECK(out.dead_letters() == 2);
    CHECK(rebuilt.counters()["orders.created"] == 1);
}

TEST_CASE("dead letters are pending until dlq.resolutions resolves them", "[analytics]") {
    Harness h;
    kafka::ConsumedRecord dl;
    dl.topic = "notifications.dlq";
    dl.value = "anything at all";
    auto dl2 = dl;
    dl2.offset = 1;
    auto resolution = [](std::int64_t offset, std::int64_t at, std::optional<std::string> value) {
        kafka::ConsumedRecord r;
        r.topic = "dlq.resolutions";
        r.offset = at;
        r.key = "notifications.dlq/0/" + std::to_string(offset);
        r.value = std::move(value);
        return r;
    };
    const std::string discarded =
        R"({"action":"DISCARDED","at":"2026-12-01T10:00:00Z","note":"x"})";
    // The resolution of offset 1 arrives before the dead letter itself.
    auto out = h.run({resolution(1, 0, discarded), dl, dl2});
    CHECK(out.dead_letters() == 0);
    CHECK(h.store.dead_letters_pending() ==
          std::map<std::string, std::int64_t>{{"notifications.dlq", 1}});
    h.run({resolution(0, 1, discarded)});
    CHECK(h.store.dead_letters_pending().empty());
    h.run({resolution(0, 2, std::nullopt)});  // a tombstone withdraws it
    CHECK(h.store.dead_letters_pending() ==
          std::map<std::string, std::int64_t>{{"notifications.dlq", 1}});
    // Not a resolution: poison, to dlq.resolutions.dlq.
    out = h.run({resolution(0, 3, R"({"action":"EATEN"})")});
    REQUIRE(out.dead_letters() == 1);
    CHECK(out.records()[0].topic == "dlq.resolutions.dlq");
}

TEST_CASE(
    "the per-order index holds every record of an order once, on every topic read, and nothing "
    "of another order or of a SKU",
    "[analytics]") {
    Harness h;
    auto created_1 = consumed("orders.events", 0, created("o-1", "2026-12-01T10:00:00Z", "10.00"));
    created_1.timestamp_ms = 1000;
    auto created_2 = consumed("orders.events", 1, created("o-2", "2026-12-01T10:00:00Z", "10.00"));
    created_2.timestamp_ms = 1001;
    // Read raw, for the index only: not even JSON is asked of it.
    kafka::ConsumedRecord request;
    request.topic = "inventory.requests";
    request.partition = 2;
    request.offset = 7;
    request.key = "o-1";
    request.value = "not JSON";
    request.headers = {{"ce_type", "INVENTORY_RESERVE_REQUESTED"}};
    request.timestamp_ms = 1002;
    auto stock = consumed("inventory.events", 0,
                          event("STOCK_ADJUSTED", "2026-12-01T10:00:01Z",
                                {{"sku", "S"}, {"available", 5}, {"reserved", 0}}));
    stock.key = "S";
    stock.timestamp_ms = 1003;
    kafka::ConsumedRecord dead;
    dead.topic = "notifications.dlq";
    dead.offset = 3;
    dead.key = "o-1";
    dead.value = "{}";
    dead.headers = {{"ce_type", "NOTIFICATION_REQUESTED"}, {"dlq.reason", "MAX_RETRIES"}};
    dead.timestamp_ms = 1004;
    kafka::ConsumedRecord replayed;
    replayed.topic = "dlq.resolutions";
    replayed.offset = 0;
    replayed.key = "notifications.dlq/0/3";
    replayed.value = R"({"action":"REPLAYED","at":"2026-12-01T10:00:02Z","note":"","user":"ana",)"
                     R"("replayed_to":"notifications.requests","order_id":"o-1"})";
    replayed.timestamp_ms = 1005;
    // Written before resolutions named their order: resolves, but is in no order's index.
    kafka::ConsumedRecord older = replayed;
    older.offset = 1;
    older.key = "notifications.dlq/0/4";
    older.value = R"({"action":"DISCARDED","at":"2026-12-01T10:00:02Z","note":"x"})";

    const std::vector<kafka::ConsumedRecord> batch{created_1, created_2, request, stock,
                                                   dead,      replayed,  older};
    auto out = h.run(batch);
    CHECK(out.records().empty());
    const std::vector<OrderRecord> expected{
        {"orders.events", 0, 0, "ORDER_CREATED", 1000},
        {"inventory.requests", 2, 7, "INVENTORY_RESERVE_REQUESTED", 1002},
        {"notifications.dlq", 0, 3, "NOTIFICATION_REQUESTED", 1004},
        {"dlq.resolutions", 0, 0, "REPLAYED", 1005}};
    CHECK(h.store.order_records("o-1", 100) == expected);
    CHECK(h.store.order_records("o-2", 100).size() == 1);
    CHECK(h.store.order_records("S", 100).empty());
    CHECK(h.store.order_records("o-1", 2).size() == 2);

    // Delivered again: nothing noted twice.
    out = h.run(batch);
    CHECK(out.duplicates() == batch.size());
    CHECK(h.store.order_records("o-1", 100) == expected);
    // A poison record of the order is one of its records too.
    kafka::ConsumedRecord garbage;
    garbage.topic = "orders.events";
    garbage.offset = 2;
    garbage.key = "o-1";
    garbage.value = "{";
    garbage.timestamp_ms = 1006;
    out = h.run({garbage});
    CHECK(out.dead_letters() == 1);
    CHECK(h.store.order_records("o-1", 100).back() == OrderRecord{"orders.events", 0, 2, "", 1006});
}

TEST_CASE("orders are found by id, customer id or email (any case), newest first, once",
          "[analytics]") {
    Harness h;
    auto a = consumed("orders.events", 0, created("o-1", "2026-12-01T10:00:00Z", "10.00"));
    a.timestamp_ms = 1000;
    auto b_event = created("o-2", "2026-12-01T10:00:01Z", "10.00");
    b_event.data["customer_id"] = "c-2";
    b_event.data["customer_email"] = "Bea@Example.COM";
    auto b = consumed("orders.events", 1, b_event);
    b.timestamp_ms = 1001;
    auto c = consumed("orders.events", 0, created("o-3", "2026-12-01T10:00:02Z", "10.00"));
    c.offset = 5;
    c.timestamp_ms = 1002;
    h.run({a, b, c});
    h.run({a, b, c});  // delivered again: found once
    const auto ids = [&](const std::string& q, std::size_t limit = 100) {
        std::vector<std::string> out;
        for (const auto& o : h.store.find_orders(q, limit)) out.push_back(o.order_id);
        return out;
    };
    CHECK(ids("o-2") == std::vector<std::string>{"o-2"});
    CHECK(ids("c-1") == std::vector<std::string>{"o-3", "o-1"});
    CHECK(ids("c-1", 1) == std::vector<std::string>{"o-3"});
    CHECK(ids("bea@example.com") == std::vector<std::string>{"o-2"});
    CHECK(ids("BEA@example.com") == std::vector<std::string>{"o-2"});
    CHECK(ids("A@EXAMPLE.COM") == std::vector<std::string>{"o-3", "o-1"});
    CHECK(ids("C-1").empty());  // ids are exact
    CHECK(ids("nobody").empty());
    const auto found = h.store.find_orders("o-2", 1);
    REQUIRE(found.size() == 1);
    CHECK(found[0] == OrderCustomer{"o-2", "c-2", "bea@example.com", 1001});
}

TEST_CASE("GET /api/metrics: flat keys, money as strings, per currency when several",
          "[analytics]") {
    Figures f;
    f.counters = {{"orders.created", 3},
                  {"orders.confirmed", 2},
                  {"orders.cancelled", 1},
                  {"cancellation_reasons.TIMEOUT", 1},
                  {"revenue.confirmed.USD", 105997},
                  {"revenue.lost.USD", 5}};
    f.dead_letters_pending = {{"notifications.dlq", 2}, {"orders.events.dlq", 1}};
    f.latency = {4, 12.5, 30.0, 80.0};
    auto j = figures_json(f);
    CHECK(j["orders.created"] == 3);
    CHECK(j["revenue.confirmed"] == "1059.97");
    CHECK(j["revenue.lost"] == "0.05");
    CHECK(j["revenue.by_currency"]["USD"]["confirmed"] == "1059.97");
    CHECK(j["cancellation_reasons"]["TIMEOUT"] == 1);
    CHECK(j["cancellation_reasons"]["UNKNOWN_SKU"] == 0);
    CHECK(j["dlq.pending"] == 3);
    CHECK(j["saga_latency_ms"]["p50"] == 12.5);
    CHECK(j["notifications.sent"] == 0);

    f.counters["revenue.confirmed.EUR"] = 100;
    j = figures_json(f);
    CHECK_FALSE(j.contains("revenue.confirmed"));
    CHECK(j["revenue.by_currency"]["EUR"] == json({{"confirmed", "1.00"}, {"lost", "0.00"}}));

    j = figures_json(Figures{});
    CHECK(j["revenue.confirmed"] == "0.00");
    CHECK(j["saga_latency_ms"]["p50"].is_null());
}

TEST_CASE("the saga latency percentiles are nearest-rank", "[analytics]") {
    Harness h;
    std::vector<kafka::ConsumedRecord> batch;
    for (int i = 1; i <= 100; ++i) {
        const std::string id = "o-" + std::to_string(i);
        char decided[64];
        std::snprintf(decided, sizeof decided, "2026-12-01T10:00:%02d.%03dZ", i / 1000, i % 1000);
        batch.push_back(
            consumed("orders.events", 2 * i, created(id, "2026-12-01T10:00:00.000Z", "1.00")));
        batch.push_back(consumed("orders.events", 2 * i + 1, confirmed(id, decided, "1.00")));
    }
    h.run(batch);
    const auto lat = h.store.latency_percentiles();
    CHECK(lat.count == 100);
    CHECK(lat.p50 == 50.0);
    CHECK(lat.p90 == 90.0);
    CHECK(lat.p99 == 99.0);
    const auto [buckets, sum] = h.store.latency_histogram({10'000, 50'000});
    CHECK(buckets == std::vector<std::int64_t>{10, 40, 50});
    CHECK(sum == 5050 * 1000);
}
