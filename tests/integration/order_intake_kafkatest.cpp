// order-service intake against a real broker: atomic intake, idempotency, 4xx, faults.
#include "pipeline.hpp"

#include "orderpipe/common/faults.hpp"

#include "orderpipe/kafka/admin.hpp"
#include "orderpipe/kafka/event_record.hpp"
#include "orderpipe/kafka/producer.hpp"

#include <catch2/catch.hpp>

#include <future>
#include <set>
#include <thread>

using namespace orderpipe;
using namespace orderpipe::testing;
using nlohmann::json;

namespace {

const std::string kOrder =
    R"({"customer_id":"c-42","customer_email":"ana@example.com","currency":"USD","items":[{"sku":"LAPTOP-001","quantity":1,"unit_price":"999.99"},{"sku":"MOUSE-001","quantity":2,"unit_price":"29.99"}]})";
const std::vector<std::string> kJson = {"Content-Type: application/json"};

/// An order-service alone on its own topics, data dir and transactional.id.
struct ServiceUnderTest {
    Pipeline p;

    order::OrderServiceConfig config(std::function<void(std::size_t)> fault = {}) {
        p.extra_env["COMMIT_TIMEOUT"] = "5s";
        auto c = p.order_config();
        c.intake_before_commit = std::move(fault);
        return c;
    }
    void start(std::function<void(std::size_t)> fault = {}) {
        p.start_orders(config(std::move(fault)));
    }
    void start(order::OrderServiceConfig c) { p.start_orders(std::move(c)); }
    void stop() { p.orders.reset(); }
    std::string url(const std::string& path) const { return p.order_url(path); }
    HttpResponse post(const std::string& body, std::vector<std::string> headers = kJson) const {
        return http_request("POST", url("/orders"), body, headers);
    }
    std::vector<kafka::ConsumedRecord> orders(std::size_t at_least = 1) const {
        return read_committed(p.topic("orders.events"), at_least);
    }
    std::vector<kafka::ConsumedRecord> requests(std::size_t at_least = 1) const {
        return read_committed(p.topic("inventory.requests"), at_least);
    }
};

std::size_t count_key(const std::vector<kafka::ConsumedRecord>& records, const std::string& key) {
    std::size_t n = 0;
    for (const auto& r : records) n += (r.key == key) ? 1 : 0;
    return n;
}

}  // namespace

TEST_CASE("an accepted order is on both topics exactly once, keyed and with ce_ headers",
          "[intake][kafka]") {
    ServiceUnderTest s;
    s.start();
    auto r =
        s.post(kOrder, {"Content-Type: application/json",
                        "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"});
    REQUIRE(r.status == 201);
    auto body = r.json();
    const std::string id = body["order_id"];
    CHECK(r.headers["location"] == "/orders/" + id);
    CHECK(body["status"] == "PENDING");
    CHECK(body["total"] == "1059.97");
    CHECK(body["currency"] == "USD");
    CHECK(body.contains("created_at"));

    // Read-your-writes right after the 201.
    auto got = http_request("GET", s.url("/orders/" + id));
    REQUIRE(got.status == 200);
    CHECK(got.json()["status"] == "PENDING");
    CHECK(got.json()["history"][0]["status"] == "PENDING");
    CHECK(http_request("GET", s.url("/orders/nope")).status == 404);

    auto orders = s.orders();
    auto requests = s.requests();
    REQUIRE(orders.size() == 1);
    REQUIRE(requests.size() == 1);
    CHECK(orders[0].key == id);
    CHECK(requests[0].key == id);
    auto created = std::get<CloudEvent>(kafka::from_record(orders[0]));
    auto reserve = std::get<CloudEvent>(kafka::from_record(requests[0]));
    CHECK(created.type == "ORDER_CREATED");
    CHECK(created.source == "/order-service");
    CHECK(created.subject == id);
    CHECK(created.data["total"] == "1059.97");
    CHECK(created.data["customer_email"] == "ana@example.com");
    CHECK(reserve.type == "INVENTORY_RESERVE_REQUESTED");
    CHECK(reserve.causation_id == created.id);
    CHECK(reserve.correlation_id == created.correlation_id);
    CHECK(reserve.data["order"]["order_id"] == id);
    CHECK(created.traceparent.substr(3, 32) == "4bf92f3577b34da6a3ce929d0e0e4736");
    CHECK(orders[0].header("content-type") == "application/json");
}

TEST_CASE("many concurrent orders share transactions and all land exactly once",
          "[intake][kafka]") {
    ServiceUnderTest s;
    s.start();
    constexpr int kOrders = 300;
    std::vector<std::future<HttpResponse>> futures;
    for (int i = 0; i < kOrders; ++i) {
        futures.push_back(std::async(std::launch::async, [&] { return s.post(kOrder); }));
    }
    std::set<std::string> ids;
    for (auto& f : futures) {
        auto r = f.get();
        REQUIRE(r.status == 201);
        ids.insert(r.json()["order_id"].get<std::string>());
    }
    REQUIRE(ids.size() == kOrders);
    auto orders = s.orders(kOrders);
    auto requests = s.requests(kOrders);
    CHECK(orders.size() == kOrders);
    CHECK(requests.size() == kOrders);
    for (const auto& r : orders) CHECK(ids.count(*r.key) == 1);
    // Group commit: far fewer transactions than orders.
    const double txns = Pipeline::metric(
        s.url(""), "kafka_transactions_total{loop=\"intake\",result=\"committed\"}");
    INFO(txns);
    CHECK(txns < kOrders);
}

TEST_CASE("a retried Idempotency-Key creates nothing new, also after a restart",
          "[intake][kafka][idempotency]") {
    ServiceUnderTest s;
    s.start();
    std::vector<std::string> headers = kJson;
    headers.push_back("Idempotency-Key: key-1");
    auto first = s.post(kOrder, headers);
    REQUIRE(first.status == 201);
    auto again = s.post(kOrder, headers);
    CHECK(again.status == 201);
    CHECK(again.json() == first.json());
    CHECK(again.headers["location"] == first.headers["location"]);
    // Same key, another body: 422, nothing created.
    auto other = s.post(
        R"({"customer_id":"c-43","customer_email":"bo@example.com","currency":"USD","items":[{"sku":"MOUSE-001","quantity":1,"unit_price":"29.99"}]})",
        headers);
    CHECK(other.status == 422);
    // Same key, the prices as JSON numbers instead of strings: another JSON value, 422 (it
    // used to count as the same body).
    std::string numbers = kOrder;
    for (const std::string price : {"999.99", "29.99"}) {
        const auto at = numbers.find("\"" + price + "\"");
        REQUIRE(at != std::string::npos);
        numbers.replace(at, price.size() + 2, price);
    }
    CHECK(s.post(numbers, headers).status == 422);
    // Key order and spacing do not matter.
    auto reordered = nlohmann::json::parse(kOrder).dump(2);
    CHECK(s.post(reordered, headers).status == 201);

    s.stop();
    s.start();
    auto after_restart = s.post(kOrder, headers);
    CHECK(after_restart.status == 201);
    CHECK(after_restart.json() == first.json());

    const std::string id = first.json()["order_id"];
    auto orders = s.orders();
    CHECK(orders.size() == 1);
    CHECK(count_key(orders, id) == 1);
    CHECK(s.requests().size() == 1);
}

TEST_CASE("every 4xx case commits nothing", "[intake][kafka][validation]") {
    ServiceUnderTest s;
    s.start();
    struct Case {
        std::string name;
        std::string body;
        std::vector<std::string> headers;
        long status;
    };
    const std::vector<Case> cases = {
        {"no content type", kOrder, {"Content-Type:"}, 415},
        {"text/plain", kOrder, {"Content-Type: text/plain"}, 415},
        {"unparsable", R"({"customer_id": )", kJson, 400},
        {"not an object", "[1,2,3]", kJson, 422},
        {"missing fields", R"({"customer_id":"c-1"})", kJson, 422},
        {"quantity 0",
         R"({"customer_id":"c","customer_email":"a@b.co","currency":"USD","items":[{"sku":"A","quantity":0,"unit_price":"1.00"}]})",
         kJson, 422},
        {"quantity 1001",
         R"({"customer_id":"c","customer_email":"a@b.co","currency":"USD","items":[{"sku":"A","quantity":1001,"unit_price":"1.00"}]})",
         kJson, 422},
        {"bad email",
         R"({"customer_id":"c","customer_email":"nope","currency":"USD","items":[{"sku":"A","quantity":1,"unit_price":"1.00"}]})",
         kJson, 422},
        {"bad price",
         R"({"customer_id":"c","customer_email":"a@b.co","currency":"USD","items":[{"sku":"A","quantity":1,"unit_price":"1.999"}]})",
         kJson, 422},
        {"float price with 3 decimals",
         R"({"customer_id":"c","customer_email":"a@b.co","currency":"USD","items":[{"sku":"A","quantity":1,"unit_price":1.999}]})",
         kJson, 422},
        {"currency not in ISO 4217",
         R"({"customer_id":"c","customer_email":"a@b.co","currency":"ZZZ","items":[{"sku":"A","quantity":1,"unit_price":"1.00"}]})",
         kJson, 422},
        {"too large", std::string(70 * 1024, ' ') + kOrder, kJson, 413},
        {"deeply nested", std::string(5000, '[') + std::string(5000, ']'), kJson, 400},
    };
    std::string lines;
    for (int i = 0; i < 101; ++i) {
        lines += std::string(i ? "," : "") + R"({"sku":"S)" + std::to_string(i) +
                 R"(","quantity":1,"unit_price":"1.00"})";
    }
    std::vector<Case> all = cases;
    all.push_back({"101 lines",
                   R"({"customer_id":"c","customer_email":"a@b.co","currency":"USD","items":[)" +
                       lines + "]}",
                   kJson, 422});
    all.push_back({"two Idempotency-Key headers",
                   kOrder,
                   {"Content-Type: application/json", "Idempotency-Key: a", "Idempotency-Key: b"},
                   400});
    all.push_back({"an empty Idempotency-Key",
                   kOrder,
                   {"Content-Type: application/json", "Idempotency-Key;"},
                   422});
    all.push_back({"an Idempotency-Key with a space (as an obs-fold becomes)",
                   kOrder,
                   {"Content-Type: application/json", "Idempotency-Key: abc def"},
                   422});
    all.push_back({"a non-ASCII Idempotency-Key (its bytes would not be its characters)",
                   kOrder,
                   {"Content-Type: application/json", "Idempotency-Key: caf\xc3\xa9"},
                   422});
    all.push_back(
        {"the same key twice in the body",
         R"({"customer_id":"c","customer_email":"a@b.co","currency":"USD","currency":"EUR","items":[{"sku":"A","quantity":1,"unit_price":"1.00"}]})",
         kJson, 400});
    for (const auto& c : all) {
        INFO(c.name);
        auto r = s.post(c.body, c.headers);
        CHECK(r.status == c.status);
        CHECK(r.headers["content-type"] == "application/problem+json");
        auto problem = r.json();
        CHECK(problem["status"] == c.status);
        CHECK_FALSE(problem.value("detail", "").empty());
        if (c.status == 422 && c.name != "not an object" &&
            c.name.find("Idempotency-Key") == std::string::npos) {
            CHECK(problem["errors"].is_array());
        }
    }
    // Something valid afterwards proves the topics are readable and the 4xx left nothing.
    REQUIRE(s.post(kOrder).status == 201);
    CHECK(s.orders().size() == 1);
    CHECK(s.requests().size() == 1);
}

TEST_CASE("a transaction aborted by a fault leaves neither record and answers 503",
          "[intake][kafka][fault]") {
    ServiceUnderTest s;
    std::atomic<int> batches{0};
    s.start([&](std::size_t) {
        if (batches++ == 0) throw std::runtime_error("injected fault before commit");
    });
    auto failed = s.post(kOrder);
    CHECK(failed.status == 503);
    CHECK(failed.headers.count("retry-after") == 1);
    auto ok = s.post(kOrder);
    REQUIRE(ok.status == 201);
    const std::string id = ok.json()["order_id"];

    // read_committed: only the second order; read_uncommitted proves the first was written
    // and aborted (so the test would fail if the abort were a no-op).
    auto orders = s.orders();
    REQUIRE(orders.size() == 1);
    CHECK(orders[0].key == id);
    auto requests = s.requests();
    REQUIRE(requests.size() == 1);
    CHECK(requests[0].key == id);
    CHECK(read_uncommitted(s.p.topic("orders.events")).size() == 2);
}

TEST_CASE(
    "while the read model cannot be written, GET finds every order answered 201 and no "
    "more orders are taken",
    "[intake][kafka][fault][disk]") {
    // Found from outside: on a full disk an order was answered 201 and the GET right after was
    // 404. The write-through fails three times (as SQLITE_FULL would) and the projection is slow
    // (1.5 s a batch), so only the intake can keep the promise.
    ServiceUnderTest s;
    s.start();
    struct Plan {
        Plan() {
            faults::configure("intake:write-through-fails:1-3,orders:projection-stall:1-1000");
        }
        ~Plan() { faults::configure(""); }
    } plan;
    auto first = s.post(kOrder);
    REQUIRE(first.status == 201);
    const std::string id = first.json()["order_id"];
    auto got = http_request("GET", s.url("/orders/" + id));
    CHECK(got.status == 200);
    CHECK(got.json().value("status", "") == "PENDING");
    // Still not writable: refused before anything is committed.
    auto refused = s.post(kOrder);
    CHECK(refused.status == 503);
    CHECK(refused.headers.count("retry-after") == 1);
    CHECK(refused.body.find("read model cannot be written") != std::string::npos);
    CHECK(s.post(kOrder).status == 503);
    // Writable again: the order kept in memory is written, new orders are taken.
    auto next = s.post(kOrder);
    REQUIRE(next.status == 201);
    CHECK(http_request("GET", s.url("/orders/" + id)).status == 200);
    CHECK(http_request("GET", s.url("/orders/" + next.json()["order_id"].get<std::string>()))
              .status == 200);
    CHECK(s.orders(2).size() == 2);  // the refused ones committed nothing
}

TEST_CASE("the intake answers 429 with Retry-After when its queue is full", "[intake][kafka]") {
    ServiceUnderTest s;
    std::promise<void> release;
    auto released = release.get_future().share();
    auto entered = std::make_shared<std::promise<void>>();
    auto in_transaction = entered->get_future();
    auto first = std::make_shared<std::atomic<bool>>(true);
    auto cfg = s.config([released, entered, first](std::size_t) {
        if (first->exchange(false)) entered->set_value();
        released.wait();
    });
    cfg.intake_queue_max = 2;
    cfg.intake_batch_max = 1;
    s.start(std::move(cfg));
    // One order blocks inside its transaction; only then do two more fill the queue (sent
    // earlier, all three could be queued at once and the third would be the one throttled).
    std::vector<std::future<HttpResponse>> inflight;
    inflight.push_back(std::async(std::launch::async, [&] { return s.post(kOrder); }));
    REQUIRE(in_transaction.wait_for(std::chrono::seconds(30)) == std::future_status::ready);
    for (int i = 0; i < 2; ++i) {
        inflight.push_back(std::async(std::launch::async, [&] { return s.post(kOrder); }));
    }
    REQUIRE(eventually([&] {
        auto m = http_request("GET", s.url("/metrics")).body;
        return m.find("order_intake_queue_depth 2") != std::string::npos;
    }));
    auto throttled = s.post(kOrder);
    CHECK(throttled.status == 429);
    CHECK(throttled.headers["retry-after"] == "1");
    release.set_value();
    for (auto& f : inflight) CHECK(f.get().status == 201);
    CHECK(s.orders(3).size() == 3);
}

TEST_CASE("the read model skips a malformed event alone and follows partitions added later",
          "[intake][kafka][projection]") {
    ServiceUnderTest s;
    s.start();
    auto created = [&](const std::string& id, bool well_formed) {
        nlohmann::json data = {
            {"order_id", id},
            {"customer_id", "c-1"},
            {"customer_email", "a@b.co"},
            {"items",
             nlohmann::json::array({{{"sku", "A"}, {"quantity", 1}, {"unit_price", "1.00"}}})},
            {"total", "1.00"},
            {"currency", "USD"},
            {"status", "PENDING"},
            {"created_at", "2026-12-01T00:00:00.000Z"}};
        if (!well_formed) data.erase("total");
        return CloudEvent::make("ORDER_CREATED", "/elsewhere", id, "saga-" + id, std::nullopt,
                                TraceContext::fresh().header(), data);
    };
    auto produce = [&](const std::vector<std::pair<CloudEvent, int>>& events) {
        kafka::ProducerOptions po;
        po.transactional_id = unique_name("writer");
        kafka::TransactionalProducer producer(client_config("writer"), po);
        producer.init_transactions();
        producer.begin();
        for (const auto& [e, partition] : events) {
            auto r = kafka::to_record(s.p.topic("orders.events"), e.subject, e);
            r.partition = partition;
            producer.produce(r);
        }
        REQUIRE(producer.commit_or_abort() == kafka::TxnOutcome::kCommitted);
    };
    // Only the projection can put these in the read model (no write-through for them).
    produce({{created("bad-1", false), 0}, {created("good-1", true), 0}});
    REQUIRE(eventually([&] { return http_request("GET", s.url("/orders/good-1")).status == 200; }));
    CHECK(http_request("GET", s.url("/orders/bad-1")).status == 404);
    CHECK(Pipeline::metric(s.url(""),
                           "projection_records_total{projection=\"orders\",result=\"skipped\"}") ==
          1);

    kafka::AdminClient(client_config("admin"))
        .create_partitions(s.p.topic("orders.events"), 4, std::chrono::seconds(10));
    REQUIRE(eventually([&] {
        return kafka::AdminClient(client_config("admin"))
                   .topics(std::chrono::seconds(2))[s.p.topic("orders.events")] == 4;
    }));
    produce({{created("good-on-new-partition", true), 3}});
    CHECK(eventually(
        [&] { return http_request("GET", s.url("/orders/good-on-new-partition")).status == 200; },
        std::chrono::seconds(30)));
}
