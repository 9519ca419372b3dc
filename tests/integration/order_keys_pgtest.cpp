// The order-service's Idempotency-Key port, the same promises checked on both adapters: SQLite
// (a file of its own) and PostgreSQL (a database of its own on the `postgres_server` fixture).
// Then what only a shared database must survive: instances claiming one key at once, an
// instance restarting among live peers, and the keys of an instance that never comes back.
#include "pg_idempotency_store.hpp"
#include "pg_support.hpp"
#include "sqlite_idempotency_store.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <filesystem>
#include <latch>
#include <thread>

using namespace orderpipe;
using namespace orderpipe::order;
using namespace std::chrono_literals;
using ClaimResult = IdempotencyStore::ClaimResult;

namespace {

constexpr auto kRetention = std::chrono::hours(48);

struct Backend {
    std::string name;
    /// Another instance of one store, claiming as `owner` (the PostgreSQL adapter's owner).
    std::function<std::unique_ptr<IdempotencyStore>(const std::string& owner)> open;
};

Backend sqlite_backend() {
    static int n = 0;
    const auto dir = std::filesystem::temp_directory_path() /
                     ("order-keys-test-" + std::to_string(::getpid()) + "-" + std::to_string(++n));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    const std::string path = (dir / "idempotency.db").string();
    return {"sqlite", [path](const std::string&) { return open_sqlite_keys(path, kRetention); }};
}

Backend pg_backend() {
    const auto url = test::pg_fresh_database();
    {
        pg::Connection c(pg::ConnectionOptions{.url = url});
        pg::migrate(c, "order-keys", idempotency_migrations());
    }
    return {"postgres", [url](const std::string& owner) {
                auto pool = std::make_shared<pg::Pool>(pg::ConnectionOptions{.url = url}, 4);
                return open_pg_keys(pool, kRetention, owner);
            }};
}

}  // namespace

TEST_CASE("a key is claimed once, replayed with its answer, refused with another body",
          "[pg][order]") {
    for (const auto& backend : {sqlite_backend(), pg_backend()}) {
        SECTION(backend.name) {
            auto keys = backend.open("order-service-a");
            CHECK(keys->claim("k1", "body", "o-1").result == ClaimResult::kClaimed);
            const auto again = keys->claim("k1", "body", "o-2");
            CHECK(again.result == ClaimResult::kInProgress);
            CHECK(keys->claim("k1", "other body", "o-2").result == ClaimResult::kMismatch);
            keys->complete("k1", {201, "o-1", "{\"order_id\":\"o-1\"}"});
            const auto replay = keys->claim("k1", "body", "o-3");
            REQUIRE(replay.result == ClaimResult::kReplay);
            CHECK(replay.stored->order_id == "o-1");
            CHECK(replay.stored->status == 201);
            CHECK(replay.stored->response == "{\"order_id\":\"o-1\"}");
            // A committed key is never released.
            keys->release("k1", "o-1");
            CHECK(keys->claim("k1", "body", "o-4").result == ClaimResult::kReplay);
            // A released key can be claimed again.
            CHECK(keys->claim("k2", "body", "o-5").result == ClaimResult::kClaimed);
            keys->release("k2", "o-5");
            CHECK(keys->claim("k2", "body", "o-6").result == ClaimResult::kClaimed);
            // together(): all or none.
            CHECK_THROWS(keys->together([&] {
                keys->claim("k3", "body", "o-7");
                throw std::runtime_error("the batch failed");
            }));
            CHECK(keys->claim("k3", "body", "o-8").result == ClaimResult::kClaimed);
            // Unknown keys are listed until resolved.
            keys->mark_unknown("k3", "o-8");
            const auto unknown = keys->unknown(10);
            REQUIRE(unknown.size() == 1);
            CHECK(unknown[0].key == "k3");
            CHECK(unknown[0].order_id == "o-8");
        }
    }
}

TEST_CASE("instances claiming one key at once: exactly one order", "[pg][order]") {
    const auto backend = pg_backend();
    constexpr int kInstances = 4;
    constexpr int kKeys = 50;
    std::vector<std::unique_ptr<IdempotencyStore>> instances;
    for (int i = 0; i < kInstances; ++i) {
        instances.push_back(backend.open("order-service-" + std::to_string(i)));
    }
    std::atomic<int> claimed{0};
    std::atomic<int> failed{0};
    std::latch start(kInstances);
    std::vector<std::thread> threads;
    for (int i = 0; i < kInstances; ++i) {
        threads.emplace_back([&, i] {
            start.arrive_and_wait();
            for (int k = 0; k < kKeys; ++k) {
                try {
                    instances[i]->together([&] {
                        const auto c =
                            instances[i]->claim("key-" + std::to_string(k), "body",
                                                "o-" + std::to_string(i) + "-" + std::to_string(k));
                        if (c.result == ClaimResult::kClaimed) ++claimed;
                    });
                } catch (const std::exception&) {
                    ++failed;
                }
            }
        });
    }
    for (auto& t : threads) t.join();
    CHECK(failed == 0);
    CHECK(claimed == kKeys);
}

TEST_CASE(
    "a restart turns only its own pending keys unknown; a dead instance's are taken over once "
    "its transactions have surely ended",
    "[pg][order]") {
    const auto backend = pg_backend();
    auto a = backend.open("order-service-a");
    auto b = backend.open("order-service-b");
    CHECK(a->claim("a-key", "body", "o-a").result == ClaimResult::kClaimed);
    CHECK(b->claim("b-key", "body", "o-b").result == ClaimResult::kClaimed);
    // Instance a restarts: its previous run's pending key is unknown; b's, a live peer's, not.
    auto a2 = backend.open("order-service-a");
    CHECK(a2->pending_to_unknown() == 1);
    auto unknown = a2->unknown(10);
    REQUIRE(unknown.size() == 1);
    CHECK(unknown[0].key == "a-key");
    // b's key is not old enough to be taken for abandoned...
    CHECK(a2->abandoned_to_unknown(60s) == 0);
    // ...until it is (b died and never came back); never a's own.
    CHECK(a2->claim("a-new", "body", "o-a-new").result == ClaimResult::kClaimed);
    std::this_thread::sleep_for(5ms);  // created_ms must be in the past for the 1 ms bound
    CHECK(a2->abandoned_to_unknown(1ms) == 1);
    unknown = a2->unknown(10);
    CHECK(unknown.size() == 2);
    // A key released and claimed again by a retry is never completed with the old answer.
    a2->release("b-key", "o-b");
    CHECK(a2->claim("b-key", "body", "o-retry").result == ClaimResult::kClaimed);
    // b was slow, not dead: its answers about its own claim never touch the retry's.
    b->complete("b-key", {201, "o-b", "{\"order_id\":\"o-b\"}"});
    b->release("b-key", "o-b");
    b->mark_unknown("b-key", "o-b");
    const auto retry = a2->claim("b-key", "body", "o-x");
    REQUIRE(retry.result == ClaimResult::kInProgress);
    CHECK(retry.stored->order_id == "o-retry");
    // Only a-key is unknown: the retry's claim of b-key is pending, not b's.
    CHECK(a2->unknown(10).size() == 1);
}
