// 503 and nothing committed when the broker goes away. Runs its own broker (it stops it), so it
// never disturbs the shared test broker.
#include "order_service.hpp"
#include "support.hpp"

#include "orderpipe/kafka/admin.hpp"

#include <catch2/catch.hpp>

using namespace orderpipe;
using namespace orderpipe::testing;

namespace {

const std::string kOrder =
    R"({"customer_id":"c-42","customer_email":"ana@example.com","currency":"USD","items":[{"sku":"LAPTOP-001","quantity":1,"unit_price":"999.99"}]})";

struct PrivateBroker {
    TempDir dir;
    std::string bootstrap_servers;
    std::string script = source_dir() + "/scripts/kafka.sh";
    std::string data = dir.path() + "/kafka";

    PrivateBroker() {
        auto [rc, out] = run_command(script + " start --port auto --data-dir " + data + " 2>&1");
        REQUIRE(rc == 0);
        bootstrap_servers = out.substr(out.find_last_of('\n', out.size() - 2) + 1);
        while (!bootstrap_servers.empty() &&
               std::isspace(static_cast<unsigned char>(bootstrap_servers.back()))) {
            bootstrap_servers.pop_back();
        }
    }
    void stop() { REQUIRE(run_command(script + " stop --data-dir " + data + " 2>&1").first == 0); }
    void start() {
        REQUIRE(run_command(script + " start --port auto --data-dir " + data + " 2>&1").first == 0);
    }
    ~PrivateBroker() { run_command(script + " stop --data-dir " + data + " >/dev/null 2>&1"); }
};

}  // namespace

TEST_CASE("with the broker down a POST gets 503 and nothing of it is ever committed",
          "[intake][kafka][broker-down]") {
    PrivateBroker broker;
    kafka::create_topics({broker.bootstrap_servers, "test", {}},
                         {{"orders.events", 3, 1, {}},
                          {"inventory.requests", 3, 1, {}},
                          {"inventory.responses", 3, 1, {}},
                          {"notifications.requests", 3, 1, {}}});
    TempDir data;
    EnvReader env(std::map<std::string, std::string>{});
    auto cfg = order::OrderServiceConfig::from_env(env);
    cfg.common.bootstrap_servers = broker.bootstrap_servers;
    cfg.common.http_port = 0;
    cfg.common.data_dir = data.path();
    cfg.kafka_timeout = std::chrono::seconds(3);
    // Let librdkafka give up on the dead broker quickly.
    cfg.common.kafka_overrides["reconnect.backoff.max.ms"] = "500";
    order::OrderService service(cfg);
    service.start();
    const std::string base = "http://127.0.0.1:" + std::to_string(service.http_port());
    REQUIRE(eventually([&] { return http_request("GET", base + "/readyz").status == 200; }));

    auto ok = http_request("POST", base + "/orders", kOrder, {"Content-Type: application/json"});
    REQUIRE(ok.status == 201);
    const std::string committed_id = ok.json()["order_id"];

    broker.stop();
    auto down = http_request("POST", base + "/orders", kOrder,
                             {"Content-Type: application/json", "Idempotency-Key: while-down"});
    CHECK(down.status == 503);
    CHECK(down.headers["content-type"] == "application/problem+json");

    broker.start();
    // Nothing of the failed order, now or after the broker recovered: only the first order.
    auto orders = read_committed("orders.events", broker.bootstrap_servers, 1);
    REQUIRE(orders.size() == 1);
    CHECK(orders[0].key == committed_id);
    CHECK(read_committed("inventory.requests", broker.bootstrap_servers, 1).size() == 1);

    // The key of the failed request was released: a retry now creates the order once.
    REQUIRE(eventually([&] { return http_request("GET", base + "/readyz").status == 200; },
                       std::chrono::seconds(60)));
    auto retry = http_request("POST", base + "/orders", kOrder,
                              {"Content-Type: application/json", "Idempotency-Key: while-down"});
    CHECK(retry.status == 201);
}
