// The analytics' storage port on PostgreSQL: what N instances sharing one database must get
// right. A partition's position is held by the batch counting it (another instance's batch on
// the same partition waits, then sees where the first left it: nothing counted twice), and
// the figures are whole from every instance (rows per instance, summed on read).
#include "pg_analytics_state.hpp"
#include "pg_support.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <future>
#include <thread>

using namespace orderpipe;
using namespace orderpipe::analytics;
using namespace std::chrono_literals;

namespace {

struct Shared {
    std::string url = test::pg_fresh_database();
    Shared() {
        pg::Connection c(pg::ConnectionOptions{.url = url});
        pg::migrate(c, "analytics", analytics_migrations());
    }
    std::unique_ptr<AnalyticsState> instance(const std::string& shard) const {
        return open_pg_analytics(std::make_shared<pg::Pool>(pg::ConnectionOptions{.url = url}, 4),
                                 shard);
    }
    /// Sessions waiting for a lock right now.
    int waiting_for_locks() const {
        pg::Connection c(pg::ConnectionOptions{.url = url});
        return static_cast<int>(c.run("SELECT COUNT(*) FROM pg_stat_activity WHERE wait_event_type "
                                      "= 'Lock' AND datname = current_database()")
                                    .int64(0, 0));
    }
};

}  // namespace

TEST_CASE("a partition counted by one instance is held: the other waits and counts on from there",
          "[pg][analytics]") {
    Shared db;
    auto a = db.instance("a");
    auto b = db.instance("b");
    const kafka::TopicPartition tp{"orders.events", 0};

    {
        auto w = a->begin();
        CHECK(w->hold_positions({tp}).at(tp) == 0);  // nothing counted yet
        BatchChanges nothing;
        w->finish(nothing, {{tp, 5}});
        w->commit();
    }
    auto wa = a->begin();
    CHECK(wa->hold_positions({tp}).at(tp) == 5);
    BatchChanges ca;
    ca.count("orders.created", 10, 100);
    wa->finish(ca, {{tp, 10}});

    // b's batch on the same partition (it moved to b meanwhile) blocks on a's hold...
    auto held_by_b = std::async(std::launch::async, [&] {
        auto wb = b->begin();
        auto held = wb->hold_positions({tp});
        wb->commit();
        return held;
    });
    const auto until = std::chrono::steady_clock::now() + 30s;
    while (db.waiting_for_locks() == 0 && std::chrono::steady_clock::now() < until) {
        std::this_thread::sleep_for(10ms);  // polling an observable condition
    }
    REQUIRE(db.waiting_for_locks() == 1);
    // ...until a commits: then it sees a's position, so it skips what a counted.
    wa->commit();
    CHECK(held_by_b.get().at(tp) == 10);
    CHECK(a->positions().at(tp) == 10);
}

TEST_CASE("figures are whole from every instance; positions never move back", "[pg][analytics]") {
    Shared db;
    auto a = db.instance("a");
    auto b = db.instance("b");
    const kafka::TopicPartition p0{"orders.events", 0};
    const kafka::TopicPartition p1{"orders.events", 1};
    {
        auto w = a->begin();
        w->hold_positions({p0});
        BatchChanges c;
        c.count("orders.created", 3, 100);
        w->order_created(c, "o-1", 1'000'000);
        w->dead_letter_seen(c, "orders.events.dlq/0/0", "orders.events.dlq");
        w->finish(c, {{p0, 3}});
        w->commit();
    }
    {
        auto w = b->begin();
        w->hold_positions({p1});
        BatchChanges c;
        c.count("orders.created", 4, 100);
        c.count("orders.confirmed", 1, 101);
        w->order_decided(c, "o-1", 1'250'000);
        w->finish(c, {{p1, 4}, {p0, 1}});  // p0 behind: kept at 3
        CHECK(c.latencies_us == std::vector<std::int64_t>{250'000});
        w->commit();
    }
    for (auto* s : {a.get(), b.get()}) {
        const auto f = s->figures();
        CHECK(f.counters.at("orders.created") == 7);
        CHECK(f.counters.at("orders.confirmed") == 1);
        CHECK(f.dead_letters_pending.at("orders.events.dlq") == 1);
        CHECK(f.latency.count == 1);
        CHECK(f.latency.p50 == 250.0);
        const auto series = s->series(100, 101);
        CHECK(series.at(100).at("orders.created") == 7);
        CHECK(series.at(101).at("orders.confirmed") == 1);
        CHECK(s->positions() == Offsets{{p0, 3}, {p1, 4}});
    }
    // An instance that started after them reads the same (its metrics load the whole).
    CHECK(db.instance("c")->counters() == a->counters());
}

TEST_CASE("a batch's order events are counted together as one by one", "[pg][analytics]") {
    // The adapter keeps a batch's order events and writes them at finish() in a few statements:
    // an order created and decided in one batch, a second decision (not counted), a decision
    // read before its ORDER_CREATED, and an order completed across batches.
    Shared db;
    auto a = db.instance("a");
    const kafka::TopicPartition p0{"orders.events", 0};
    {
        auto w = a->begin();
        w->hold_positions({p0});
        BatchChanges c;
        w->order_created(c, "o-1", 1'000'000);
        w->order_decided(c, "o-1", 1'020'000);
        w->order_decided(c, "o-1", 9'000'000);  // not the first decision: not counted
        w->order_decided(c, "o-2", 2'500'000);
        w->order_created(c, "o-2", 2'000'000);  // its decision was read first
        w->order_created(c, "o-3", 3'000'000);
        w->finish(c, {{p0, 6}});
        CHECK(c.latencies_us == std::vector<std::int64_t>{20'000, 500'000});
        w->commit();
    }
    {
        auto w = a->begin();
        w->hold_positions({p0});
        BatchChanges c;
        w->order_created(c, "o-3", 3'500'000);  // a second ORDER_CREATED: the first counts
        w->order_decided(c, "o-3", 3'040'000);
        w->finish(c, {{p0, 8}});
        CHECK(c.latencies_us == std::vector<std::int64_t>{40'000});
        w->commit();
    }
    const auto f = a->figures();
    CHECK(f.latency.count == 3);
    CHECK(f.latency.p50 == 40.0);
    CHECK(f.latency.p99 == 500.0);
    // Bucket i: latencies ≤ bounds[i] and above the bound before; then the rest.
    const auto [buckets, sum] = a->latency_histogram({20'000, 40'000, 100'000});
    CHECK(buckets == std::vector<std::int64_t>{1, 1, 0, 1});
    CHECK(sum == 560'000);
    CHECK(a->positions() == Offsets{{p0, 8}});
}

TEST_CASE("the per-order index: each record once, whichever instance notes it, read by time",
          "[pg][analytics]") {
    Shared db;
    auto a = db.instance("a");
    auto b = db.instance("b");
    const OrderRecord created{"orders.events", 1, 7, "ORDER_CREATED", 1000};
    const OrderRecord request{"inventory.requests", 0, 3, "INVENTORY_RESERVE_REQUESTED", 1000};
    const OrderRecord decided{"orders.events", 1, 9, "ORDER_CONFIRMED", 2000};
    const OrderRecord replayed{"dlq.resolutions", 2, 0, "REPLAYED", 3000};
    {
        auto w = a->begin();
        w->order_record("o-1", decided);
        w->order_record("o-1", created);
        w->order_record("o-2", created);  // another order, same position: not o-1's
        BatchChanges nothing;
        w->finish(nothing, {});
        w->commit();
    }
    {
        // The partition moved to b, which notes one of them again (its batch came again).
        auto w = b->begin();
        w->order_record("o-1", created);
        w->order_record("o-1", request);
        w->order_record("o-1", replayed);
        BatchChanges nothing;
        w->finish(nothing, {});
        w->commit();
    }
    {
        auto w = a->begin();
        w->order_record("o-1", {"orders.events", 1, 99, "ORDER_CANCELLED", 500});
        // Not committed: not there.
    }
    const std::vector<OrderRecord> expected{request, created, decided, replayed};
    CHECK(a->order_records("o-1", 100) == expected);
    CHECK(b->order_records("o-1", 2) == std::vector<OrderRecord>{request, created});
    CHECK(a->order_records("o-2", 100).size() == 1);
    CHECK(a->order_records("nobody", 100).empty());
}

TEST_CASE("orders by customer: noted once whichever instance notes it, found newest first",
          "[pg][analytics]") {
    Shared db;
    auto a = db.instance("a");
    auto b = db.instance("b");
    const OrderCustomer first{"o-1", "c-1", "ana@example.com", 1000};
    const OrderCustomer second{"o-2", "c-1", "ana@example.com", 2000};
    const OrderCustomer other{"o-3", "c-2", "bo@example.com", 3000};
    {
        auto w = a->begin();
        w->order_customer(first);
        w->order_customer(other);
        BatchChanges nothing;
        w->finish(nothing, {});
        w->commit();
    }
    {
        auto w = b->begin();
        w->order_customer(first);  // its batch came again on another instance
        w->order_customer(second);
        BatchChanges nothing;
        w->finish(nothing, {});
        w->commit();
    }
    {
        auto w = a->begin();
        w->order_customer({"o-4", "c-1", "ana@example.com", 4000});  // not committed
    }
    CHECK(b->find_orders("c-1", 100) == std::vector<OrderCustomer>{second, first});
    CHECK(a->find_orders("ANA@example.com", 1) == std::vector<OrderCustomer>{second});
    CHECK(a->find_orders("o-3", 100) == std::vector<OrderCustomer>{other});
    CHECK(a->find_orders("o-4", 100).empty());
    CHECK(a->find_orders("C-1", 100).empty());
}
