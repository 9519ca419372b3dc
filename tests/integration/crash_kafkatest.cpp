// I6: services killed with SIGKILL at the worst moment, and at random moments under load, and
// restarted: every order still gets exactly one decision (I1) and stock is conserved (I3).
#include "pipeline.hpp"

#include <csignal>

#include <atomic>
#include <future>
#include <set>
#include <thread>

using namespace orderpipe;
using namespace orderpipe::testing;
using nlohmann::json;

namespace {

constexpr int kStock = 120;

json crash_catalog() {
    return json::array({{{"sku", "CRASH-001"},
                         {"name", "Crash test item"},
                         {"unit_price", "5.00"},
                         {"stock", kStock}}});
}

struct Placed {
    std::vector<std::string> ids;  ///< answered 201
    std::string last_failure;
};

/// Places `count` orders of CRASH-001 x1 from 8 threads; returns the ids answered 201.
/// Requests that fail (the order-service was killed under them) are retried with the same
/// Idempotency-Key, as a real client would. No Catch2 macro: it runs on its own threads.
Placed place_many(const Pipeline& p, int count, std::atomic<int>* accepted = nullptr) {
    std::atomic<int> next{0};
    std::mutex mu;
    std::vector<std::string> ids;
    std::string last_failure;
    std::vector<std::thread> workers;
    for (int w = 0; w < 8; ++w) {
        workers.emplace_back([&] {
            for (int i = next++; i < count; i = next++) {
                const std::string key = p.prefix + "-order-" + std::to_string(i);
                const std::string body =
                    R"({"customer_id":"c-1","customer_email":"c1@example.com","currency":"USD","items":[{"sku":"CRASH-001","quantity":1,"unit_price":"5.00"}]})";
                for (int attempt = 0; attempt < 200; ++attempt) {
                    try {
                        auto r = http_request(
                            "POST", p.order_url("/orders"), body,
                            {"Content-Type: application/json", "Idempotency-Key: " + key},
                            std::chrono::seconds(20));
                        if (r.status == 201) {
                            std::lock_guard lock(mu);
                            ids.push_back(r.json()["order_id"]);
                            if (accepted != nullptr) ++*accepted;
                            break;
                        }
                        std::lock_guard lock(mu);
                        last_failure = std::to_string(r.status) + " " + r.body;
                    } catch (const std::exception& e) {
                        // connection refused/reset while the service restarts
                        std::lock_guard lock(mu);
                        last_failure = e.what();
                    }
                    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // client backoff
                }
            }
        });
    }
    for (auto& t : workers) t.join();
    return {ids, last_failure};
}

/// The answered ids, after checking (on the test's thread) that every order was answered.
std::vector<std::string> all_answered(Placed placed, int count) {
    INFO("last failure: " << placed.last_failure);
    REQUIRE(static_cast<int>(placed.ids.size()) == count);
    return placed.ids;
}

/// I1 + I3 at rest, from the topics and the inventory API.
void check_invariants(const Pipeline& p, const std::vector<std::string>& answered) {
    for (const auto& id : answered) {
        auto order = p.wait_terminal(id, 60000);
        INFO(id);
        REQUIRE((order["status"] == "CONFIRMED" || order["status"] == "CANCELLED"));
    }
    std::map<std::string, int> created;
    std::map<std::string, int> decisions;
    int confirmed = 0;
    std::vector<CloudEvent> events;
    REQUIRE(eventually(
        [&] {
            events = p.events("orders.events");
            created.clear();
            decisions.clear();
            for (const auto& e : events) {
                if (e.type == "ORDER_CREATED")
                    ++created[e.subject];
                else
                    ++decisions[e.subject];
            }
            return decisions.size() >= created.size() && created.size() >= answered.size();
        },
        std::chrono::seconds(90)));
    // Every request had its own Idempotency-Key and was retried until 201: exactly one order per
    // key, and not one more (a retried key never creates a second order).
    CHECK(created.size() == answered.size());
    CHECK(std::set<std::string>(answered.begin(), answered.end()).size() == answered.size());
    for (const auto& id : answered) CHECK(created[id] == 1);
    for (const auto& [id, n] : created) {
        INFO("order " << id);
        CHECK(n == 1);
        CHECK(decisions[id] == 1);
    }
    for (const auto& e : events) confirmed += e.type == "ORDER_CONFIRMED" ? 1 : 0;
    auto stock = p.stock("CRASH-001");
    CHECK(stock["available"].get<int>() >= 0);
    CHECK(stock["available"].get<int>() + stock["reserved"].get<int>() == kStock);
    CHECK(stock["reserved"].get<int>() == confirmed);
    // One reservation outcome per order on inventory.events (re-emits only in aborted
    // transactions, which read_committed never shows).
    std::map<std::string, int> outcomes;
    for (const auto& e : p.events("inventory.events")) ++outcomes[e.subject];
    for (const auto& [id, n] : created) CHECK(outcomes[id] == 1);
    // Recovery was fast: nothing waited for ORDER_TIMEOUT, nothing was dead-lettered.
    for (const auto& e : events) CHECK(e.data.value("reason", "") != "TIMEOUT");
    CHECK(read_committed(p.topic("inventory.requests.dlq")).empty());
    CHECK(read_committed(p.topic("inventory.responses.dlq")).empty());
}

}  // namespace

TEST_CASE(
    "inventory-service killed between its SQLite and Kafka commits re-emits, never re-reserves",
    "[crash][kafka][inventory]") {
    Pipeline p(crash_catalog());
    auto env = p.env("inventory-service");
    env["FAULT_INJECT"] = "inventory-requests:kill-before-commit:1";
    env["HTTP_PORT"] = std::to_string(free_port());
    ChildProcess doomed(INVENTORY_SERVICE_BIN, env, p.dir.path() + "/inventory-doomed.log");
    p.start_orders();
    auto placing = std::async(std::launch::async, [&] { return place_many(p, 200); });
    // The fault kills it in its first transaction with input, after the stock change was committed
    // to SQLite and the records were delivered, before the Kafka commit.
    // It died of the injected fault (SIGKILL, after saying so), not of anything else.
    const auto status = doomed.wait_exit(std::chrono::seconds(60));
    const auto doomed_log = run_command("cat " + p.dir.path() + "/inventory-doomed.log").second;
    INFO(doomed_log.substr(doomed_log.size() > 3000 ? doomed_log.size() - 3000 : 0));
    REQUIRE(status == 128 + SIGKILL);
    CHECK(doomed_log.find("FAULT_INJECT kill-before-commit") != std::string::npos);
    p.start_inventory_process();
    auto answered = all_answered(placing.get(), 200);
    check_invariants(p, answered);
    auto metrics = http_request("GET", p.inventory_url("/metrics")).body;
    INFO(metrics.substr(0, 0));
    // The redelivered requests were answered from ProcessedEvents.
    CHECK(Pipeline::metric(
              p.inventory_url(""),
              "kafka_records_processed_total{loop=\"inventory-requests\",result=\"duplicate\"}") >
          0);
}

TEST_CASE("order-service killed before its decision commit decides every order exactly once",
          "[crash][kafka][orders]") {
    Pipeline p(crash_catalog());
    p.start_inventory();
    auto env = p.env("order-service");
    env["FAULT_INJECT"] = "order-decisions:kill-before-commit:1";
    p.order_port = free_port();
    env["HTTP_PORT"] = std::to_string(p.order_port);
    {
        ChildProcess doomed(ORDER_SERVICE_BIN, env, p.dir.path() + "/order-doomed.log");
        Pipeline::wait_ready(p.order_port);
        auto placing = std::async(std::launch::async, [&] { return place_many(p, 150); });
        REQUIRE(doomed.wait_exit(std::chrono::seconds(60)) == 128 + SIGKILL);
        CHECK(run_command("cat " + p.dir.path() + "/order-doomed.log")
                  .second.find("FAULT_INJECT kill-before-commit") != std::string::npos);
        env.erase("FAULT_INJECT");
        p.order_process = std::make_unique<ChildProcess>(ORDER_SERVICE_BIN, env,
                                                         p.dir.path() + "/order-service.log");
        Pipeline::wait_ready(p.order_port);
        auto answered = all_answered(placing.get(), 150);
        check_invariants(p, answered);
    }
}

TEST_CASE("random SIGKILLs of both services under load lose and duplicate nothing",
          "[crash][kafka][chaos]") {
    Pipeline p(crash_catalog());
    p.start_inventory_process();
    p.start_order_process();
    std::atomic<int> accepted{0};
    auto placing = std::async(std::launch::async, [&] { return place_many(p, 300, &accepted); });
    for (int round = 0; round < 2; ++round) {
        // Let orders flow, then kill both services in the middle of the load and restart them.
        REQUIRE(eventually([&] { return accepted >= 80 * (round + 1); }, std::chrono::seconds(90)));
        p.inventory_process->kill_hard();
        p.start_inventory_process();
        p.order_process->kill_hard();
        const auto port = p.order_port;
        auto env = p.env("order-service");
        env["HTTP_PORT"] = std::to_string(port);
        p.order_process = std::make_unique<ChildProcess>(ORDER_SERVICE_BIN, env,
                                                         p.dir.path() + "/order-service.log");
        Pipeline::wait_ready(port);
    }
    auto answered = all_answered(placing.get(), 300);
    check_invariants(p, answered);
}
