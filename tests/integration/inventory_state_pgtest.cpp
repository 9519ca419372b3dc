// The inventory's storage port, the same promises checked on both adapters: SQLite (a file of
// its own) and PostgreSQL (a database of its own on the `postgres_server` fixture). Then what
// only a shared database must survive: instances reserving the same units at once, seeding at
// once, processing the same event at once, and draining one outbox.
#include "pg_inventory_state.hpp"
#include "pg_support.hpp"
#include "sqlite_inventory_state.hpp"

#include "orderpipe/contract/events.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <filesystem>
#include <mutex>
#include <thread>

using namespace orderpipe;
using namespace orderpipe::inventory;
using namespace std::chrono_literals;

namespace {

constexpr auto kRetention = std::chrono::hours(24);

std::vector<CatalogItem> catalog() {
    return {{"A-1", "a", *Money::parse("1.50"), 10, 0, "USD"},
            {"B-1", "b", *Money::parse("2.00"), 5, 0, "EUR"}};
}

/// Opens instances of one state: every call another instance (its own connection, or pool).
struct Backend {
    std::string name;
    std::function<std::unique_ptr<InventoryState>()> open;
};

Backend sqlite_backend() {
    static int n = 0;
    const auto dir =
        std::filesystem::temp_directory_path() /
        ("inventory-state-test-" + std::to_string(::getpid()) + "-" + std::to_string(++n));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    const std::string path = (dir / "inventory.db").string();
    return {"sqlite", [path] { return open_sqlite_inventory(path, kRetention); }};
}

Backend pg_backend() {
    const auto url = test::pg_fresh_database();
    {
        pg::Connection c(pg::ConnectionOptions{.url = url});
        pg::migrate(c, "inventory", inventory_migrations());
    }
    auto instances = std::make_shared<std::atomic<int>>(0);
    return {"postgres", [url, instances] {
                auto pool = std::make_shared<pg::Pool>(pg::ConnectionOptions{.url = url}, 4);
                return open_pg_inventory(pool, kRetention,
                                         "instance-" + std::to_string(++*instances));
            }};
}

std::int64_t available(InventoryState& s, const std::string& sku) { return s.item(sku)->available; }

}  // namespace

TEST_CASE("the inventory port keeps its promises on every adapter", "[inventory][pg]") {
    auto backend = GENERATE(as<std::string>{}, "sqlite", "postgres");
    const Backend b = backend == "sqlite" ? sqlite_backend() : pg_backend();
    INFO("adapter: " << b.name);
    auto s = b.open();
    REQUIRE(s->seed_once(catalog()));
    CHECK_FALSE(s->seed_once({{"C-1", "c", *Money::parse("9.00"), 99, 0, "USD"}}));
    REQUIRE(s->items().size() == 2);
    CHECK(s->item("B-1")->currency == "EUR");
    CHECK(s->item("B-1")->unit_price == *Money::parse("2.00"));
    CHECK_FALSE(s->item("C-1"));

    SECTION("a unit of work commits whole, or leaves nothing") {
        {
            auto w = s->begin();
            auto held = w->hold_stock({"B-1", "A-1", "NOPE", "A-1"});
            CHECK(held.size() == 2);
            CHECK(held.at("A-1").available == 10);
            w->move_stock("A-1", -3, 3);
            w->put_reservation("o-1", {ReservationState::kReserved, {{"A-1", 3}}});
            w->record_processed("ev-1", R"([{"r":1}])");
            w->advance("inventory.requests", 0, 42);
            // Not committed.
        }
        CHECK(available(*s, "A-1") == 10);
        CHECK(s->positions().empty());
        {
            auto w = s->begin();
            CHECK_FALSE(w->produced_by("ev-1"));
            CHECK_FALSE(w->reservation("o-1"));
            w->hold_stock({"A-1"});
            w->move_stock("A-1", -3, 3);
            w->put_reservation("o-1", {ReservationState::kReserved, {{"A-1", 3}}});
            w->record_processed("ev-1", R"([{"r":1}])");
            w->advance("inventory.requests", 0, 42);
            w->commit();
        }
        CHECK(available(*s, "A-1") == 7);
        CHECK(s->item("A-1")->reserved == 3);
        auto other = b.open();  // another connection sees it committed
        CHECK(available(*other, "A-1") == 7);
        auto w = other->begin();
        CHECK(w->produced_by("ev-1") == R"([{"r":1}])");
        REQUIRE(w->reservation("o-1"));
        CHECK(w->reservation("o-1")->state == ReservationState::kReserved);
        CHECK(w->reservation("o-1")->lines.at(0).quantity == 3);
    }

    SECTION("a step that throws is undone alone") {
        auto w = s->begin();
        w->hold_stock({"A-1", "B-1"});
        w->step([&] { w->move_stock("A-1", -1, 1); });
        CHECK_THROWS_AS(w->step([&] {
            w->move_stock("B-1", -5, 5);
            w->record_processed("poison", "[]");
            throw contract::ContractError("poison");
        }),
                        contract::ContractError);
        w->commit();
        CHECK(available(*s, "A-1") == 9);
        CHECK(available(*s, "B-1") == 5);
        CHECK_FALSE(s->begin()->produced_by("poison"));
    }

    SECTION("stock never goes below zero") {
        auto w = s->begin();
        CHECK_THROWS(w->move_stock("B-1", -6, 6));
    }

    SECTION("positions never move back; seeding does not overwrite them") {
        for (const std::int64_t next : {10, 30, 20}) {
            auto w = s->begin();
            w->advance("t", 1, next);
            w->commit();
        }
        s->seed_positions({{{"t", 1}, 5}, {{"t", 2}, 7}});
        const auto p = s->positions();
        CHECK(p.at({"t", 1}) == 30);
        CHECK(p.at({"t", 2}) == 7);
    }

    SECTION("restock and outbox: entries removed by id, the others kept") {
        {
            auto w = s->begin();
            CHECK_FALSE(w->set_available("NOPE", 3));
            auto item = w->set_available("A-1", 100);
            REQUIRE(item);
            CHECK(item->available == 100);
            for (int i = 0; i < 3; ++i) w->add_outbox("record-" + std::to_string(i));
            w->commit();
        }
        auto entries = s->outbox(10);
        REQUIRE(entries.size() == 3);
        CHECK(entries[0].record == "record-0");
        CHECK(entries[0].id < entries[1].id);
        s->remove_outbox({entries[0].id, entries[2].id});
        entries = s->outbox(10);
        REQUIRE(entries.size() == 1);
        CHECK(entries[0].record == "record-1");
        CHECK(available(*s, "A-1") == 100);
    }

    SECTION("processed events older than the retention are purged") {
        auto w = s->begin();
        w->record_processed("fresh", "[]");
        w->commit();
        CHECK(s->purge_processed() == 0);
        CHECK(s->begin()->produced_by("fresh"));
    }
}

TEST_CASE("instances on one database never sell a unit twice", "[inventory][pg]") {
    const auto b = pg_backend();
    REQUIRE(b.open()->seed_once(catalog()));  // A-1: 10 units
    constexpr int kInstances = 4;
    constexpr int kTries = 10;  // 40 attempts at one unit each, for 10 units
    std::atomic<int> sold{0};
    std::atomic<int> retried{0};
    std::mutex mu;
    std::vector<std::string> errors;  // e.g. the CHECK (available >= 0) an oversell meets
    std::vector<std::thread> ts;
    for (int i = 0; i < kInstances; ++i) {
        ts.emplace_back([&, i] {
            auto s = b.open();
            for (int k = 0; k < kTries; ++k) {
                for (;;) {
                    try {
                        auto w = s->begin();
                        // Each instance takes the SKUs in another order: held in SKU order anyway.
                        auto held =
                            w->hold_stock(i % 2 == 0 ? std::vector<std::string>{"A-1", "B-1"}
                                                     : std::vector<std::string>{"B-1", "A-1"});
                        if (held.at("A-1").available >= 1) {
                            w->move_stock("A-1", -1, 1);
                            w->put_reservation("o-" + std::to_string(i) + "-" + std::to_string(k),
                                               {ReservationState::kReserved, {{"A-1", 1}}});
                            std::this_thread::sleep_for(1ms);  // widen the window
                            w->commit();
                            ++sold;
                        }
                        break;
                    } catch (const pg::Error& e) {
                        if (!e.retriable()) {
                            std::lock_guard lock(mu);
                            errors.emplace_back(e.what());
                            break;
                        }
                        ++retried;
                    }
                }
            }
        });
    }
    for (auto& t : ts) t.join();
    CHECK(errors.empty());
    for (const auto& e : errors) UNSCOPED_INFO(e);
    CHECK(sold.load() == 10);
    auto s = b.open();
    CHECK(s->item("A-1")->available == 0);
    CHECK(s->item("A-1")->reserved == 10);
    // Every instance sees the same stock.
    for (int i = 0; i < 3; ++i) CHECK(b.open()->item("A-1")->available == 0);
    INFO("retried " << retried.load());
}

TEST_CASE("instances starting at once seed the catalog once", "[inventory][pg]") {
    const auto b = pg_backend();
    std::atomic<int> seeded{0};
    std::vector<std::thread> ts;
    for (int i = 0; i < 6; ++i) {
        ts.emplace_back([&] {
            if (b.open()->seed_once(catalog())) ++seeded;
        });
    }
    for (auto& t : ts) t.join();
    CHECK(seeded.load() == 1);
    // A restock after the seed is not undone by a later instance's start.
    {
        auto s = b.open();
        auto w = s->begin();
        w->set_available("A-1", 77);
        w->commit();
    }
    CHECK_FALSE(b.open()->seed_once(catalog()));
    CHECK(b.open()->item("A-1")->available == 77);
}

TEST_CASE(
    "one event processed by two instances at once: the second runs again and finds the "
    "first's records",
    "[inventory][pg]") {
    const auto b = pg_backend();
    auto one = b.open();
    auto two = b.open();
    REQUIRE(one->seed_once(catalog()));
    auto w1 = one->begin();
    auto w2 = two->begin();
    CHECK_FALSE(w1->produced_by("ev"));
    CHECK_FALSE(w2->produced_by("ev"));
    // Each keeps its writes until its commit: the first to commit stores them, the second's
    // commit fails on the key (a transient error: its batch runs again, and finds the first's).
    w1->record_processed("ev", "first");
    w1->hold_stock({"A-1"});
    w1->move_stock("A-1", -1, 1);
    w2->record_processed("ev", "second");
    w1->commit();
    std::optional<pg::Error> failed;
    try {
        w2->commit();
    } catch (const pg::Error& e) {
        failed = e;
    }
    REQUIRE(failed);
    CHECK(failed->kind() == pg::ErrorKind::kUniqueViolation);
    CHECK(failed->retriable());
    w2.reset();  // rolled back
    CHECK(two->begin()->produced_by("ev") == "first");
    CHECK(available(*two, "A-1") == 9);  // w1's change, once
}

TEST_CASE("one outbox, several instances: each entry is claimed by one", "[inventory][pg]") {
    const auto b = pg_backend();
    auto one = b.open();
    auto two = b.open();
    {
        auto w = one->begin();
        for (int i = 0; i < 4; ++i) w->add_outbox("r" + std::to_string(i));
        w->commit();
    }
    const auto mine = one->outbox(2);
    REQUIRE(mine.size() == 2);
    const auto theirs = two->outbox(10);
    REQUIRE(theirs.size() == 2);
    for (const auto& e : theirs) {
        CHECK(e.id != mine[0].id);
        CHECK(e.id != mine[1].id);
    }
    // A claimant takes its own claims again (after an aborted transaction).
    CHECK(one->outbox(10).size() == 2);
    one->remove_outbox({mine[0].id, mine[1].id});
    two->remove_outbox({theirs[0].id, theirs[1].id});
    CHECK(one->outbox(10).empty());
    CHECK(two->outbox(10).empty());
}
