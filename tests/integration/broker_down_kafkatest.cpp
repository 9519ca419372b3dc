// A broker outage, on a broker of its own (the test stops it, so it never disturbs the shared
// one): readiness turns 503 naming Kafka on both services, every POST is answered within its
// bound (503 when surely not committed, 504 only when nobody can tell), nothing answered 503 is
// ever committed (I2), and a retry with the same Idempotency-Key gets the true answer.
#include "pipeline.hpp"

#include <future>
#include <optional>
#include <set>

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
        start();
        std::ifstream in(dir.path() + "/bootstrap");
        in >> bootstrap_servers;
        REQUIRE_FALSE(bootstrap_servers.empty());
    }
    void stop() { REQUIRE(run_command(script + " stop --data-dir " + data + " 2>&1").first == 0); }
    void start() {
        // On the port it had before, if any (clients keep the bootstrap address).
        const std::string port = bootstrap_servers.empty()
                                     ? "auto"
                                     : bootstrap_servers.substr(bootstrap_servers.rfind(':') + 1);
        auto [rc, out] = run_command(script + " start --port " + port + " --data-dir " + data +
                                     " --bootstrap-file " + dir.path() + "/bootstrap 2>&1");
        INFO(out);
        REQUIRE(rc == 0);
    }
    ~PrivateBroker() { run_command(script + " stop --data-dir " + data + " >/dev/null 2>&1"); }
};

/// The readiness body of a service.
nlohmann::json readyz(std::uint16_t port) {
    return http_request("GET", "http://127.0.0.1:" + std::to_string(port) + "/readyz", {}, {},
                        std::chrono::seconds(5))
        .json();
}

}  // namespace

TEST_CASE("a broker outage: readiness says so, POSTs are answered in time and truthfully",
          "[kafka][broker-down]") {
    PrivateBroker broker;
    create_contract_topics("", broker.bootstrap_servers);
    Pipeline p;
    p.extra_env = {{"KAFKA_BOOTSTRAP_SERVERS", broker.bootstrap_servers},
                   {"TOPIC_PREFIX", ""},
                   {"COMMIT_TIMEOUT", "3s"},
                   // Let librdkafka notice the dead broker quickly.
                   {"KAFKA_RECONNECT_BACKOFF_MAX_MS", "500"}};
    p.start_inventory();
    p.start_orders();
    const auto json_only = std::vector<std::string>{"Content-Type: application/json"};
    auto ok = http_request("POST", p.order_url("/orders"), kOrder, json_only);
    REQUIRE(ok.status == 201);
    const std::string committed_id = ok.json()["order_id"];

    broker.stop();
    // /readyz turns 503 on both services, naming Kafka (it used to stay 200).
    for (auto port : {p.order_port, p.inventory_port}) {
        REQUIRE(eventually([&] { return !Pipeline::ready(port); }, std::chrono::seconds(15)));
        auto body = readyz(port);
        CHECK(body["status"] == 503);
        CHECK(body["checks"]["kafka"].get<std::string>().find("unreachable") != std::string::npos);
    }

    // Every POST gets its answer within two COMMIT_TIMEOUTs (commit, then settling an unknown
    // outcome); none is left hanging.
    struct Answer {
        long status;
        std::string key;
        std::string order_id;
        double seconds;
    };
    std::vector<std::future<Answer>> posts;
    for (int i = 0; i < 6; ++i) {
        posts.push_back(std::async(std::launch::async, [&, i] {
            const std::string key = "down-" + std::to_string(i);
            const auto started = std::chrono::steady_clock::now();
            auto r = http_request("POST", p.order_url("/orders"), kOrder,
                                  {"Content-Type: application/json", "Idempotency-Key: " + key},
                                  std::chrono::seconds(30));
            const double s =
                std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
            std::string id;
            if (r.status == 504) id = r.json()["order_id"];
            return Answer{r.status, key, id, s};
        }));
    }
    std::vector<Answer> answers;
    for (auto& f : posts) answers.push_back(f.get());
    for (const auto& a : answers) {
        INFO(a.key << ": " << a.status << " after " << a.seconds << " s");
        CHECK((a.status == 503 || a.status == 504));
        CHECK(a.seconds < 2 * 3 + 2);
    }

    broker.start();
    for (auto port : {p.order_port, p.inventory_port}) {
        REQUIRE(eventually([&] { return Pipeline::ready(port); }, std::chrono::seconds(90)));
    }
    // Retries with the same keys: each gets the true answer. An order answered 503 was never
    // committed, so its retry creates it now, once.
    std::set<std::string> retried_ids;
    for (const auto& a : answers) {
        HttpResponse r;
        REQUIRE(eventually(
            [&] {
                r = http_request("POST", p.order_url("/orders"), kOrder,
                                 {"Content-Type: application/json", "Idempotency-Key: " + a.key});
                return r.status == 201;
            },
            std::chrono::seconds(60)));
        retried_ids.insert(r.json()["order_id"].get<std::string>());
    }
    CHECK(retried_ids.size() == answers.size());
    // On the topic: the first order and exactly one order per key, nothing else (I2). Every one
    // of them was answered 201, so its transaction had committed before this read began, and the
    // read waits until each such transaction has its markers (a restarted broker completes the
    // commits it had prepared only after loading its transaction log: until then a partition's
    // last stable offset stays below them). Should an order still be missing, the log itself
    // says which defect it is: written and never committed, or lost.
    auto orders = read_committed("orders.events", broker.bootstrap_servers);
    std::map<std::string, int> created;
    for (const auto& r : orders) {
        if (r.header("ce_type") == "ORDER_CREATED") ++created[*r.key];
    }
    std::set<std::string> expected = retried_ids;
    expected.insert(committed_id);
    std::optional<std::set<std::string>> in_log;  // ORDER_CREATED keys, read_uncommitted
    for (const auto& id : expected) {
        if (created[id] == 1) continue;
        if (!in_log) {
            in_log.emplace();
            for (const auto& r : read_uncommitted("orders.events", broker.bootstrap_servers)) {
                if (r.header("ce_type") == "ORDER_CREATED") in_log->insert(*r.key);
            }
        }
        FAIL_CHECK("order " << id << (id == committed_id ? " (answered 201 before the outage)" : "")
                            << " has " << created[id] << " committed ORDER_CREATED: "
                            << (created[id] > 1 ? "created twice"
                                : in_log->contains(id)
                                    ? "its record is in the log but its transaction never "
                                      "committed (aborted, or its markers never written)"
                                    : "its record is not in the log: a committed record was lost"));
    }
    CHECK(created.size() == expected.size());
}
