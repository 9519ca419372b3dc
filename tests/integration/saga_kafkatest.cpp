// The saga end to end on a real broker: flows 1 and 2 of the design notes, the race for the
// last units, poison records, customer cancel and ORDER_TIMEOUT.
#include "pipeline.hpp"

#include "orderpipe/common/faults.hpp"
#include "orderpipe/kafka/producer.hpp"

#include <future>

using namespace orderpipe;
using namespace orderpipe::testing;
using nlohmann::json;

TEST_CASE("flow 1: enough stock confirms, reserves and requests a notification", "[saga][kafka]") {
    Pipeline p;
    p.start_inventory();
    p.start_orders();
    const auto id = p.place({{"LAPTOP-001", 1}, {"MOUSE-001", 2}});
    auto order = p.wait_terminal(id);
    CHECK(order["status"] == "CONFIRMED");
    REQUIRE(order["history"].size() == 2);
    CHECK(order["history"][0]["status"] == "PENDING");
    CHECK(order["history"][1]["status"] == "CONFIRMED");
    CHECK(p.stock("LAPTOP-001")["available"] == 49);
    CHECK(p.stock("LAPTOP-001")["reserved"] == 1);
    CHECK(p.stock("MOUSE-001")["available"] == 198);

    auto orders = p.events("orders.events", 2);
    REQUIRE(orders.size() == 2);
    CHECK(orders[0].type == "ORDER_CREATED");
    CHECK(orders[1].type == "ORDER_CONFIRMED");  // causal order within the key's partition (I7)
    CHECK(orders[1].data["total"] == "1059.97");
    CHECK(orders[1].correlation_id == orders[0].correlation_id);
    auto inv = p.events("inventory.events", 1);
    REQUIRE(inv.size() == 1);
    CHECK(inv[0].type == "INVENTORY_RESERVED");
    auto results = p.events("inventory.responses", 1);
    REQUIRE(results.size() == 1);
    CHECK(orders[1].causation_id == results[0].id);
    auto notes = p.events("notifications.requests", 1);
    REQUIRE(notes.size() == 1);
    CHECK(notes[0].data["kind"] == "ORDER_CONFIRMED");
    CHECK(notes[0].data["to"] == "ana@example.com");
    CHECK(notes[0].data["channel"] == "email");
    CHECK(notes[0].causation_id == orders[1].id);
    CHECK_FALSE(notes[0].data.value("notification_id", "").empty());
}

TEST_CASE("flow 2: 100 laptops with 50 in stock cancels and leaves stock alone", "[saga][kafka]") {
    Pipeline p;
    p.start_inventory();
    p.start_orders();
    const auto id = p.place({{"LAPTOP-001", 100}});
    auto order = p.wait_terminal(id);
    CHECK(order["status"] == "CANCELLED");
    CHECK(order["reason"] == "INSUFFICIENT_STOCK");
    CHECK(p.stock("LAPTOP-001")["available"] == 50);
    CHECK(p.stock("LAPTOP-001")["reserved"] == 0);
    auto orders = p.events("orders.events", 2);
    REQUIRE(orders.size() == 2);
    CHECK(orders[1].type == "ORDER_CANCELLED");
    CHECK(orders[1].data["reason"] == "INSUFFICIENT_STOCK");
    auto notes = p.events("notifications.requests", 1);
    REQUIRE(notes.size() == 1);
    CHECK(notes[0].data["kind"] == "ORDER_CANCELLED");
    CHECK(p.events("inventory.events", 1)[0].type == "INVENTORY_REJECTED");

    // An unknown SKU cancels with UNKNOWN_SKU.
    auto unknown = p.wait_terminal(p.place({{"NOPE-1", 1}}));
    CHECK(unknown["status"] == "CANCELLED");
    CHECK(unknown["reason"] == "UNKNOWN_SKU");
}

TEST_CASE("200 concurrent orders race for 37 units: exactly 37 confirmed, never negative",
          "[saga][kafka][race]") {
    Pipeline p(json::array(
        {{{"sku", "RACE-001"}, {"name", "Last units"}, {"unit_price", "10.00"}, {"stock", 37}}}));
    p.start_inventory();
    p.start_orders();
    std::vector<std::future<std::pair<std::optional<std::string>, std::string>>> placed;
    for (int i = 0; i < 200; ++i) {
        placed.push_back(std::async(std::launch::async, [&] {
            std::string failure;
            auto id = p.try_place({{"RACE-001", 1}}, &failure);
            return std::make_pair(id, failure);
        }));
    }
    int confirmed = 0;
    int cancelled = 0;
    for (auto& f : placed) {
        auto [id, failure] = f.get();
        INFO(failure);
        REQUIRE(id);
        auto order = p.wait_terminal(*id, 60000);
        if (order["status"] == "CONFIRMED") ++confirmed;
        if (order["status"] == "CANCELLED") {
            ++cancelled;
            CHECK(order["reason"] == "INSUFFICIENT_STOCK");
        }
    }
    CHECK(confirmed == 37);
    CHECK(cancelled == 163);
    auto stock = p.stock("RACE-001");
    CHECK(stock["available"] == 0);
    CHECK(stock["reserved"] == 37);
    // Exactly one decision per order on the topic (I1).
    std::map<std::string, int> decisions;
    auto all = p.events("orders.events", 400);
    INFO("events on orders.events: " << all.size());
    for (const auto& e : all) {
        if (e.type != "ORDER_CREATED") ++decisions[e.subject];
    }
    CHECK(decisions.size() == 200);
    for (const auto& [id, n] : decisions) CHECK(n == 1);
}

TEST_CASE("a garbage record on inventory.requests goes to its DLQ and the next order is processed",
          "[saga][kafka][poison]") {
    Pipeline p;
    p.start_inventory();
    p.start_orders();
    auto [rc, out] = run_command("printf '\\000\\377not json at all' | kcat -P -b " + bootstrap() +
                                 " -t " + p.topic("inventory.requests") + " -k garbage-key 2>&1");
    REQUIRE(rc == 0);
    // Also a well-formed event of a type inventory does not take, and a known type with a
    // missing field: each refused alone, none wedges the partition.
    {
        kafka::ProducerOptions po;
        po.transactional_id = unique_name("poisoner");
        kafka::TransactionalProducer producer(client_config("poisoner"), po);
        producer.init_transactions();
        producer.begin();
        auto unknown_type =
            CloudEvent::make("ORDER_SHIPPED", "/elsewhere", "o-x", "c-x", std::nullopt,
                             TraceContext::fresh().header(), {{"order_id", "o-x"}});
        auto missing_field = CloudEvent::make("INVENTORY_RESERVE_REQUESTED", "/elsewhere", "o-y",
                                              "c-y", std::nullopt, TraceContext::fresh().header(),
                                              {{"order_id", "o-y"}});  // no items, no order
        producer.produce(kafka::to_record(p.topic("inventory.requests"), "o-x", unknown_type));
        producer.produce(kafka::to_record(p.topic("inventory.requests"), "o-y", missing_field));
        REQUIRE(producer.commit_or_abort() == kafka::TxnOutcome::kCommitted);
    }
    auto id = p.place({{"LAPTOP-001", 1}});
    CHECK(p.wait_terminal(id)["status"] == "CONFIRMED");
    std::vector<kafka::ConsumedRecord> dlq;
    REQUIRE(eventually([&] {
        dlq = read_committed(p.topic("inventory.requests.dlq"));
        return dlq.size() >= 3;
    }));
    REQUIRE(dlq.size() == 3);
    std::map<std::string, std::string> error_of_key;
    for (const auto& r : dlq) {
        CHECK(r.header("dlq.reason") == "POISON_MESSAGE");
        error_of_key[r.key.value_or("")] = r.header("dlq.last_error").value_or("");
    }
    CHECK(error_of_key["o-x"].find("ORDER_SHIPPED") != std::string::npos);
    CHECK(error_of_key["o-y"].find("items is missing") != std::string::npos);
    std::erase_if(dlq, [](const auto& r) { return r.key != "garbage-key"; });
    REQUIRE(dlq.size() == 1);
    CHECK(dlq[0].key == "garbage-key");
    CHECK(dlq[0].value == std::string("\x00\xffnot json at all", 17));
    CHECK(dlq[0].header("dlq.reason") == "POISON_MESSAGE");
    CHECK(dlq[0].header("dlq.original_topic") == p.topic("inventory.requests"));
    CHECK(dlq[0].header("dlq.consumer_group").value_or("").find("inventory-service") !=
          std::string::npos);
    CHECK(dlq[0].header("dlq.original_offset").has_value());
    CHECK(dlq[0].header("dlq.original_partition").has_value());
    CHECK(dlq[0].header("dlq.retry_count") == "0");
    CHECK(dlq[0].header("dlq.failure_timestamp").has_value());
    CHECK_FALSE(dlq[0].header("dlq.last_error").value_or("").empty());
}

TEST_CASE("customer cancel of a confirmed order releases stock exactly once",
          "[saga][kafka][cancel]") {
    Pipeline p;
    p.start_inventory();
    p.start_orders();
    const auto id = p.place({{"LAPTOP-001", 3}});
    REQUIRE(p.wait_terminal(id)["status"] == "CONFIRMED");
    CHECK(p.stock("LAPTOP-001")["available"] == 47);

    auto cancel = http_request("POST", p.order_url("/orders/" + id + "/cancel"));
    CHECK(cancel.status == 202);
    auto again = http_request("POST", p.order_url("/orders/" + id + "/cancel"));
    CHECK(again.status == 409);
    CHECK(http_request("POST", p.order_url("/orders/does-not-exist/cancel")).status == 404);

    auto order =
        http_request("GET", p.order_url("/orders/" + id + "?wait=CANCELLED&timeout_ms=10000"))
            .json();
    CHECK(order["status"] == "CANCELLED");
    CHECK(order["reason"] == "CUSTOMER_REQUEST");
    REQUIRE(eventually([&] { return p.stock("LAPTOP-001")["available"] == 50; }));
    CHECK(p.stock("LAPTOP-001")["reserved"] == 0);
    auto inv = p.events("inventory.events", 2);
    CHECK(count_events(inv, "INVENTORY_RELEASED", id) == 1);
    auto orders = p.events("orders.events", 3);
    CHECK(count_events(orders, "ORDER_CONFIRMED", id) == 1);
    CHECK(count_events(orders, "ORDER_CANCELLED", id) == 1);
    // The customer is told twice: confirmed, then cancelled (I4 counts per request).
    auto notes = p.events("notifications.requests", 2);
    REQUIRE(count_events(notes, "NOTIFICATION_REQUESTED", id) == 2);
    CHECK(notes[0].data["kind"] == "ORDER_CONFIRMED");
    CHECK(notes[1].data["kind"] == "ORDER_CANCELLED");
}

TEST_CASE("a cancel that races the reservation never confirms and releases once",
          "[saga][kafka][cancel]") {
    Pipeline p;
    p.start_orders();  // inventory not running yet: the reservation is still in flight
    const auto id = p.place({{"LAPTOP-001", 2}});
    auto cancel = http_request("POST", p.order_url("/orders/" + id + "/cancel"));
    REQUIRE(cancel.status == 202);
    CHECK(p.wait_terminal(id)["status"] == "CANCELLED");

    p.start_inventory();  // reserves (late RESERVED), then processes the release
    REQUIRE(eventually(
        [&] { return count_events(p.events("inventory.events"), "INVENTORY_RELEASED", id) == 1; }));
    CHECK(p.stock("LAPTOP-001")["available"] == 50);
    CHECK(p.stock("LAPTOP-001")["reserved"] == 0);
    // The late RESERVED result is answered, never with a confirmation. Wait until the decision
    // loop has consumed it (its offset committed), not only until it exists.
    REQUIRE(eventually([&] { return p.events("inventory.responses").size() == 1; }));
    REQUIRE(eventually([&] {
        return Pipeline::metric(p.order_url(""),
                                "kafka_records_processed_total{loop=\"order-decisions\",result="
                                "\"processed\"}") >= 1;
    }));
    auto orders = p.events("orders.events", 2);
    CHECK(count_events(orders, "ORDER_CONFIRMED", id) == 0);
    CHECK(count_events(orders, "ORDER_CANCELLED", id) == 1);
    CHECK(http_request("GET", p.order_url("/orders/" + id)).json()["reason"] == "CUSTOMER_REQUEST");
}

TEST_CASE("an order still PENDING after ORDER_TIMEOUT is cancelled and released",
          "[saga][kafka][timeout]") {
    Pipeline p;
    p.order_timeout = std::chrono::milliseconds(1500);
    p.start_orders();
    const auto id = p.place({{"MOUSE-001", 5}});
    auto order = p.wait_terminal(id, 20000);
    CHECK(order["status"] == "CANCELLED");
    CHECK(order["reason"] == "TIMEOUT");

    p.start_inventory();  // the late reservation is made, then released by the timeout's request
    REQUIRE(eventually(
        [&] { return count_events(p.events("inventory.events"), "INVENTORY_RELEASED", id) == 1; }));
    // Its late RESERVED is consumed by the decision loop, and answered with nothing more.
    REQUIRE(eventually([&] {
        return Pipeline::metric(p.order_url(""),
                                "kafka_records_processed_total{loop=\"order-decisions\",result="
                                "\"processed\"}") >= 1;
    }));
    CHECK(p.stock("MOUSE-001")["available"] == 200);
    CHECK(p.stock("MOUSE-001")["reserved"] == 0);
    auto orders = p.events("orders.events", 2);
    CHECK(count_events(orders, "ORDER_CANCELLED", id) == 1);
    CHECK(count_events(orders, "ORDER_CONFIRMED", id) == 0);
    auto notes = p.events("notifications.requests", 1);
    CHECK(notes.size() == 1);
}

TEST_CASE(
    "long-polls: answered as soon as the wait is settled either way, strict parameters, "
    "a client that hangs up is let go",
    "[saga][kafka][http]") {
    Pipeline p;
    p.start_inventory();
    p.start_orders();
    const auto id = p.place({{"LAPTOP-001", 100}});  // cancelled for stock
    REQUIRE(p.wait_terminal(id)["status"] == "CANCELLED");
    // Waiting for CONFIRMED on a CANCELLED order cannot be met: answered at once, not after
    // the whole timeout.
    const auto started = std::chrono::steady_clock::now();
    auto r = http_request("GET", p.order_url("/orders/" + id + "?wait=CONFIRMED&timeout_ms=20000"));
    CHECK(r.status == 200);
    CHECK(r.json()["status"] == "CANCELLED");
    CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(5));
    for (const char* bad : {"1e3", "2000abc", "-1", "", "120001", "0x10"}) {
        INFO(bad);
        auto b =
            http_request("GET", p.order_url("/orders/" + id + "?wait=terminal&timeout_ms=" + bad));
        CHECK(b.status == 400);
    }
    CHECK(http_request("GET", p.order_url("/orders/" + id + "?wait=SHIPPED")).status == 400);

    // A long-poll whose client goes away is let go (499), not held until its timeout.
    const auto confirmed_id = p.place({{"LAPTOP-001", 1}});
    REQUIRE(p.wait_terminal(confirmed_id)["status"] == "CONFIRMED");
    try {
        // Waits for CANCELLED on a CONFIRMED order (could still come); the client gives up.
        http_request("GET",
                     p.order_url("/orders/" + confirmed_id + "?wait=CANCELLED&timeout_ms=60000"),
                     {}, {}, std::chrono::milliseconds(500));
        FAIL("the long-poll should not have been answered");
    } catch (const std::exception&) {  // NOLINT(bugprone-empty-catch): the timeout is expected
    }
    CHECK(eventually(
        [&] {
            auto text = http_request("GET", p.order_url("/metrics")).body;
            return text.find("code=\"499\"") != std::string::npos;
        },
        std::chrono::seconds(5)));
}

TEST_CASE("restock: JSON only, applied by the inventory loop, STOCK_ADJUSTED emitted",
          "[saga][kafka][http]") {
    Pipeline p;
    p.start_inventory();
    auto plain = http_request("PUT", p.inventory_url("/inventory/MOUSE-001"), R"({"available":5})",
                              {"Content-Type: text/plain"});
    CHECK(plain.status == 415);
    auto bad = http_request("PUT", p.inventory_url("/inventory/MOUSE-001"), R"({"available":-1})",
                            {"Content-Type: application/json"});
    CHECK(bad.status == 422);
    auto unknown = http_request("PUT", p.inventory_url("/inventory/NOPE"), R"({"available":5})",
                                {"Content-Type: application/json"});
    CHECK(unknown.status == 404);
    // The write fails (as on a full disk): 503 + Retry-After, nothing changed — never a 500
    // "handler finished without producing a response".
    orderpipe::faults::configure("inventory-requests:restock-fails:1");
    auto failed = http_request("PUT", p.inventory_url("/inventory/MOUSE-001"),
                               R"({"available":500})", {"Content-Type: application/json"});
    orderpipe::faults::configure("");
    CHECK(failed.status == 503);
    CHECK(failed.headers.count("retry-after") == 1);
    CHECK(p.stock("MOUSE-001")["available"] == 200);
    auto ok = http_request("PUT", p.inventory_url("/inventory/MOUSE-001"), R"({"available":500})",
                           {"Content-Type: application/json"});
    REQUIRE(ok.status == 200);
    CHECK(ok.json()["available"] == 500);
    CHECK(p.stock("MOUSE-001")["available"] == 500);
    auto events = p.events("inventory.events", 1);
    REQUIRE(events.size() == 1);
    CHECK(events[0].type == "STOCK_ADJUSTED");
    CHECK(events[0].data["sku"] == "MOUSE-001");
    CHECK(events[0].data["available"] == 500);
}
