// Every outcome of a commit — committed, aborted, unknown-then-committed, unknown-then-aborted,
// and a failing write after a commit — injected at the intake and in the decision loop, under
// a load of orders (with Idempotency-Keys, retried as a client would) and customer cancels.
// Checked from the topics: one order per key, one decision per order, at most one customer
// cancel per order, stock conserved, and every HTTP answer true (201/202 ⇒ committed, 503 ⇒
// nothing committed).
#include "pipeline.hpp"

#include "orderpipe/common/faults.hpp"

#include <atomic>
#include <mutex>
#include <set>
#include <thread>

using namespace orderpipe;
using namespace orderpipe::testing;
using nlohmann::json;

namespace {

constexpr int kOrders = 40;
constexpr int kStock = 25;  // fewer units than orders: some are cancelled for stock
constexpr int kCancels = 8;

struct FaultPlan {
    explicit FaultPlan(const std::string& spec) { faults::configure(spec); }
    ~FaultPlan() { faults::configure(""); }
};

struct Outcome {
    std::map<std::string, std::string> order_of_key;  // key -> order id answered 201
    std::map<std::string, int> cancels_accepted;      // order id -> 202 answers
    std::vector<std::string> unexpected;              // answers that are never right here
};

/// Places kOrders orders (keys retried until 201), then cancels kCancels of them (retried until
/// 202 or 409). No Catch2 macro: the work runs on several threads.
Outcome run_load(const Pipeline& p) {
    Outcome out;
    std::mutex mu;
    std::atomic<int> next{0};
    const std::string body =
        R"({"customer_id":"c-1","customer_email":"c1@example.com","currency":"USD","items":[{"sku":"LAPTOP-001","quantity":1,"unit_price":"999.99"}]})";
    auto worker = [&] {
        for (int i = next++; i < kOrders; i = next++) {
            const std::string key = p.prefix + "-k" + std::to_string(i);
            for (int attempt = 0; attempt < 100; ++attempt) {
                HttpResponse r;
                try {
                    r = http_request("POST", p.order_url("/orders"), body,
                                     {"Content-Type: application/json", "Idempotency-Key: " + key},
                                     std::chrono::seconds(40));
                } catch (const std::exception&) {
                    continue;
                }
                if (r.status == 201) {
                    std::lock_guard lock(mu);
                    out.order_of_key[key] = r.json()["order_id"];
                    break;
                }
                if (r.status != 503 && r.status != 504 && r.status != 409) {
                    std::lock_guard lock(mu);
                    out.unexpected.push_back("POST " + std::to_string(r.status) + " " + r.body);
                    break;
                }
                std::this_thread::sleep_for(std::chrono::milliseconds(200));  // client backoff
            }
        }
    };
    std::vector<std::thread> workers;
    for (int w = 0; w < 4; ++w) workers.emplace_back(worker);
    for (auto& t : workers) t.join();

    int n = 0;
    for (const auto& [key, id] : out.order_of_key) {
        if (n++ >= kCancels) break;
        for (int attempt = 0; attempt < 100; ++attempt) {
            HttpResponse r;
            try {
                r = http_request("POST", p.order_url("/orders/" + id + "/cancel"), "", {},
                                 std::chrono::seconds(40));
            } catch (const std::exception&) {
                continue;
            }
            if (r.status == 202) {
                ++out.cancels_accepted[id];
                break;
            }
            if (r.status == 409)
                break;  // cancelled by us already (a 503 that had committed
                        // would make this a lie: checked below)
            if (r.status != 503) {
                out.unexpected.push_back("cancel " + std::to_string(r.status) + " " + r.body);
                break;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(200));
        }
    }
    return out;
}

void check(const Pipeline& p, const Outcome& out) {
    for (const auto& u : out.unexpected) FAIL_CHECK(u);
    REQUIRE(out.order_of_key.size() == kOrders);
    for (const auto& [key, id] : out.order_of_key) {
        INFO(id);
        auto order = p.wait_terminal(id, 60000);
        CHECK((order["status"] == "CONFIRMED" || order["status"] == "CANCELLED"));
    }
    std::vector<CloudEvent> events;
    std::map<std::string, int> created, decisions, customer_cancels;
    int confirmed = 0;
    REQUIRE(eventually(
        [&] {
            events = p.events("orders.events");
            created.clear();
            decisions.clear();
            customer_cancels.clear();
            confirmed = 0;
            for (const auto& e : events) {
                if (e.type == "ORDER_CREATED") {
                    ++created[e.subject];
                } else if (e.data.value("reason", "") == "CUSTOMER_REQUEST") {
                    ++customer_cancels[e.subject];
                } else {
                    ++decisions[e.subject];
                    if (e.type == "ORDER_CONFIRMED") ++confirmed;
                }
            }
            for (const auto& [id, n] : created) {
                if (decisions[id] + customer_cancels[id] == 0) return false;
            }
            return true;
        },
        std::chrono::seconds(60)));
    // One order per key: every 201 is on the topic, and nothing else is (a 503 or a 504 that
    // turned out not committed never left an order behind).
    CHECK(created.size() == out.order_of_key.size());
    for (const auto& [key, id] : out.order_of_key) CHECK(created[id] == 1);
    // One decision per order (none only when the customer cancelled it first); at most one
    // customer cancel, and one for every 202.
    for (const auto& [id, n] : created) {
        INFO(id);
        CHECK(decisions[id] <= 1);
        CHECK(customer_cancels[id] <= 1);
        CHECK(decisions[id] + customer_cancels[id] >= 1);
    }
    for (const auto& [id, n] : out.cancels_accepted) CHECK(customer_cancels[id] == 1);
    // Stock conserved: what is reserved is what is confirmed and not cancelled since.
    int reserved_orders = 0;
    for (const auto& e : events) {
        if (e.type == "ORDER_CONFIRMED" && customer_cancels[e.subject] == 0) ++reserved_orders;
    }
    REQUIRE(eventually([&] {
        auto s = p.stock("LAPTOP-001");
        return s["available"].get<int>() + s["reserved"].get<int>() == kStock &&
               s["reserved"].get<int>() == reserved_orders;
    }));
    CHECK(confirmed <= kStock);
    // No timeouts: the loops recovered on their own.
    for (const auto& e : events) CHECK(e.data.value("reason", "") != "TIMEOUT");
}

}  // namespace

TEST_CASE("every commit outcome at the intake and in the decision loop keeps every guarantee",
          "[outcomes][kafka][fault]") {
    struct Case {
        const char* spec;
        const char* loop;    // the metrics label the fault shows up under
        const char* result;  // kafka_transactions_total result it must have produced
    };
    const Case cases[] = {
        {"intake:commit-abortable:2-3", "intake", "aborted"},
        {"intake:commit-unknown-committed:2-3", "intake", "unknown"},
        {"intake:commit-unknown-aborted:2-3", "intake", "unknown"},
        {"intake:commit-abortable:2,intake:abort-fails:1", "intake", "unknown"},
        {"order-decisions:commit-abortable:2-3", "order-decisions", "aborted"},
        {"order-decisions:commit-unknown-committed:2-3", "order-decisions", "unknown"},
        {"order-decisions:commit-unknown-aborted:2-3", "order-decisions", "unknown"},
        {"order-decisions:after-commit-fails:1-3", "order-decisions", "committed"},
        // Every decision transaction from the 4th on, cancels included: each is committed, then
        // reported unknown, so the saga must resync before every further decision.
        {"order-decisions:commit-unknown-committed:4-200", "order-decisions", "unknown"},
        // The same while the read model lags behind: deciding before it caught up would decide
        // from stale state (a second ORDER_CANCELLED for a retried cancel).
        {"order-decisions:commit-unknown-committed:4-200,orders:projection-stall:10-40",
         "order-decisions", "unknown"},
        // An unknown outcome settled while the partitions' ends are listed stale (a leader just
        // moved) and the read model lags: settling "up to the end" would answer orders that did
        // commit as not created, and their retries would create second orders. Settling waits
        // past the records the producer had acknowledged instead.
        {"intake:commit-unknown-committed:2-3,orders:projection-stall:1-1000,orders:stale-end:1-"
         "100000",
         "intake", "unknown"},
        {"order-decisions:commit-unknown-committed:4-200,orders:projection-stall:10-40,orders:"
         "stale-end:1-100000",
         "order-decisions", "unknown"},
    };
    for (const auto& c : cases) {
        DYNAMIC_SECTION(c.spec) {
            Pipeline p(json::array({{{"sku", "LAPTOP-001"},
                                     {"name", "Laptop"},
                                     {"unit_price", "999.99"},
                                     {"stock", kStock}}}));
            p.extra_env["COMMIT_TIMEOUT"] = "5s";
            FaultPlan plan(c.spec);
            p.start_inventory();
            p.start_orders();
            auto out = run_load(p);
            check(p, out);
            // The fault did strike.
            CHECK(Pipeline::metric(p.order_url(""),
                                   std::string("kafka_transactions_total{loop=\"") + c.loop +
                                       "\",result=\"" + c.result + "\"}") >= 1);
        }
    }
}
