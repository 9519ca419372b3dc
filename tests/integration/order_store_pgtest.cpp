// The order read model's storage port, the same promises checked on both adapters: SQLite (a
// file of its own) and PostgreSQL (a database of its own on the `postgres_server` fixture):
// every writer's events applied once and in order, a unit of work all or none, the
// projection's positions in the same unit as its changes. Then what only a shared database must
// survive: instances applying the same events at once.
#include "pg_order_store.hpp"
#include "pg_support.hpp"
#include "saga_processor.hpp"
#include "sqlite_order_store.hpp"

#include "orderpipe/common/ids.hpp"
#include "orderpipe/common/storage_error.hpp"
#include "orderpipe/common/time.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <latch>
#include <thread>

using namespace orderpipe;
using namespace orderpipe::order;
using nlohmann::json;

namespace {

struct Backend {
    std::string name;
    /// Another instance (thread) of one read model.
    std::function<std::unique_ptr<OrderStore>()> open;
};

Backend sqlite_backend() {
    static int n = 0;
    const auto dir = std::filesystem::temp_directory_path() /
                     ("order-store-test-" + std::to_string(::getpid()) + "-" + std::to_string(++n));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    const std::string path = (dir / "orders.db").string();
    return {"sqlite", [path] { return open_sqlite_orders(path); }};
}

Backend pg_backend() {
    const auto url = test::pg_fresh_database();
    {
        pg::Connection c(pg::ConnectionOptions{.url = url});
        pg::migrate(c, "order-read-model", order_store_migrations());
    }
    return {
        "postgres", [url] {
            return open_pg_orders(std::make_shared<pg::Pool>(pg::ConnectionOptions{.url = url}, 4));
        }};
}

CloudEvent event(const std::string& type, const std::string& time, json data) {
    std::string subject = data.value("order_id", "o");
    auto e = CloudEvent::make(type, "/test", std::move(subject), "saga-1", std::nullopt,
                              TraceContext::fresh().header(), std::move(data));
    e.time = time;
    return e;
}

CloudEvent created(const std::string& id, const std::string& time = "2026-12-01T10:00:00.000Z") {
    return event("ORDER_CREATED", time,
                 {{"order_id", id},
                  {"customer_id", "c-1"},
                  {"customer_email", "a@example.com"},
                  {"items", {{{"sku", "S"}, {"quantity", 1}, {"unit_price", "10.00"}}}},
                  {"total", "10.00"},
                  {"currency", "USD"},
                  {"created_at", time}});
}

CloudEvent confirmed(const std::string& id) {
    const std::string time = "2026-12-01T10:00:01.000Z";
    return event(
        "ORDER_CONFIRMED", time,
        {{"order_id", id}, {"total", "10.00"}, {"currency", "USD"}, {"confirmed_at", time}});
}

CloudEvent cancelled(const std::string& id, const std::string& reason) {
    return event("ORDER_CANCELLED", "2026-12-01T10:00:02.000Z",
                 {{"order_id", id}, {"total", "10.00"}, {"currency", "USD"}, {"reason", reason}});
}

std::vector<std::string> statuses(const OrderRecord& r) {
    std::vector<std::string> out;
    for (const auto& h : r.history) out.push_back(h["status"]);
    return out;
}

}  // namespace

TEST_CASE("every writer's events are applied once, in order; a unit is all or none",
          "[pg][order]") {
    for (const auto& backend : {sqlite_backend(), pg_backend()}) {
        SECTION(backend.name) {
            auto store = backend.open();
            const auto c = created("o-1");
            const auto ok = confirmed("o-1");
            const auto cancel = cancelled("o-1", "CUSTOMER_REQUEST");
            store->together([&] {
                store->apply(c);
                store->apply(ok);
            });
            // The same events again (the projection after the write-through): nothing changes.
            store->together([&] {
                store->apply(c);
                store->apply(ok);
            });
            store->apply(cancel);
            auto r = store->get("o-1");
            REQUIRE(r);
            CHECK(r->status == contract::OrderStatus::kCancelled);
            CHECK(r->reason == contract::CancelReason::kCustomerRequest);
            CHECK(r->decided);
            CHECK(r->release_requested);
            CHECK(r->last_event_id == cancel.id);
            CHECK(statuses(*r) == std::vector<std::string>{"PENDING", "CONFIRMED", "CANCELLED"});
            CHECK(store->has_event(ok.id));
            CHECK(r->order().order_id == "o-1");
            CHECK_FALSE(store->get("o-none"));

            // All or none.
            CHECK_THROWS(store->together([&] {
                store->apply(created("o-2"));
                throw std::runtime_error("the batch failed");
            }));
            CHECK_FALSE(store->get("o-2"));

            // PENDING orders older than a time, oldest first.
            store->apply(created("o-3", "2026-12-01T09:00:00.000Z"));
            store->apply(created("o-4", "2026-12-01T08:00:00.000Z"));
            auto pending = store->pending_before(std::numeric_limits<std::int64_t>::max(), 10);
            CHECK(pending.size() == 2);
            store->mark_release_requested("o-3");
            CHECK(store->get("o-3", false)->release_requested);
        }
    }
}

TEST_CASE("a batch's changes written at once end as if written one by one", "[pg][order]") {
    // The saga, the intake and the projection gather a batch's events and write them in one go
    // (a database adapter: a few statements for the whole batch): an order created and decided
    // in one batch, two decisions of one order in one batch (the furthest status wins, the
    // flags of any), an event already applied, a release alone, and a malformed event refused
    // before anything is written.
    for (const auto& backend : {sqlite_backend(), pg_backend()}) {
        SECTION(backend.name) {
            auto store = backend.open();
            store->apply(created("o-old"));
            const auto old_ok = confirmed("o-old");
            store->apply(old_ok);

            ReadModelChanges changes;
            const auto cancel_b = cancelled("o-b", "CUSTOMER_REQUEST");
            for (const auto& e : {created("o-b"), created("o-a"), confirmed("o-a"),
                                  confirmed("o-b"), cancel_b, old_ok}) {
                changes.add(e);
            }
            auto bad = confirmed("o-c");
            bad.data.erase("order_id");
            CHECK_THROWS_AS(changes.add(bad), contract::ContractError);
            changes.releases.push_back("o-old");
            CHECK(changes.created.size() == 2);
            CHECK(changes.applied.size() == 4);
            store->write(changes);
            store->write(changes);  // again (another writer): nothing changes

            auto many = store->get_many({"o-a", "o-b", "o-old", "o-none"});
            REQUIRE(many.size() == 3);
            CHECK(many.at("o-a").status == contract::OrderStatus::kConfirmed);
            CHECK(many.at("o-a").decided);
            CHECK_FALSE(many.at("o-a").release_requested);
            CHECK(many.at("o-b").status == contract::OrderStatus::kCancelled);
            CHECK(many.at("o-b").reason == contract::CancelReason::kCustomerRequest);
            CHECK(many.at("o-b").last_event_id == cancel_b.id);
            CHECK(many.at("o-b").decided);
            CHECK(many.at("o-b").release_requested);
            CHECK(many.at("o-b").order().order_id == "o-b");
            CHECK(many.at("o-old").status == contract::OrderStatus::kConfirmed);
            CHECK(many.at("o-old").last_event_id == old_ok.id);
            CHECK(many.at("o-old").release_requested);
            CHECK(statuses(*store->get("o-b")) ==
                  std::vector<std::string>{"PENDING", "CONFIRMED", "CANCELLED"});
            CHECK(statuses(*store->get("o-a")) == std::vector<std::string>{"PENDING", "CONFIRMED"});
            CHECK(statuses(*store->get("o-old")) ==
                  std::vector<std::string>{"PENDING", "CONFIRMED"});
            CHECK_FALSE(store->get("o-c"));
            CHECK(store->get_many({}).empty());
        }
    }
}

TEST_CASE("a decision applied after a later one never takes the status back", "[pg][order]") {
    // Two writers on one shared read model: the owner writes its customer cancel through at once
    // while another instance's projection, behind, applies the ORDER_CONFIRMED before it. The
    // order stays CANCELLED (its cancel was decided from it: a CONFIRMED status again would let
    // a second cancel through, as the scaled-out order test once saw: two ORDER_CANCELLED).
    for (const auto& backend : {sqlite_backend(), pg_backend()}) {
        SECTION(backend.name) {
            auto store = backend.open();
            const auto c = created("o-late");
            const auto ok = confirmed("o-late");
            const auto cancel = cancelled("o-late", "CUSTOMER_REQUEST");
            store->apply(c);
            store->apply(cancel);
            store->apply(ok);  // late
            auto r = store->get("o-late");
            REQUIRE(r);
            CHECK(r->status == contract::OrderStatus::kCancelled);
            CHECK(r->reason == contract::CancelReason::kCustomerRequest);
            CHECK(r->last_event_id == cancel.id);
            CHECK(r->decided);  // a decision was made, whenever it is applied
            CHECK(statuses(*r) == std::vector<std::string>{"PENDING", "CONFIRMED", "CANCELLED"});
        }
    }
}

TEST_CASE("the projection's positions go with its changes", "[pg][order]") {
    for (const auto& backend : {sqlite_backend(), pg_backend()}) {
        SECTION(backend.name) {
            auto store = backend.open();
            auto& positions = store->projection_positions();
            const kafka::TopicPartition tp{"orders.events", 0};
            positions.begin();
            store->apply(created("o-1"));
            store->apply(created("o-2"));
            positions.advance("orders", {{tp, 2}});
            positions.commit();
            CHECK(store->get("o-1"));
            CHECK(store->get("o-2"));
            CHECK(positions.positions("orders") == runtime::ProjectionStore::Positions{{tp, 2}});
            // A batch rolled back leaves nothing, positions included; never moving back.
            positions.begin();
            store->apply(created("o-3"));
            positions.advance("orders", {{tp, 3}});
            positions.rollback();
            CHECK_FALSE(store->get("o-3"));
            positions.begin();
            positions.advance("orders", {{tp, 1}});
            positions.commit();
            CHECK(positions.positions("orders").at(tp) == 2);
            CHECK(positions.positions("other").empty());
        }
    }
}

TEST_CASE("instances applying the same events at once write each once", "[pg][order]") {
    const auto backend = pg_backend();
    constexpr int kInstances = 4;
    constexpr int kOrders = 40;
    std::vector<CloudEvent> events;
    for (int i = 0; i < kOrders; ++i) {
        const std::string id = "o-" + std::to_string(i);
        events.push_back(created(id));
        events.push_back(i % 2 == 0 ? confirmed(id) : cancelled(id, "INSUFFICIENT_STOCK"));
    }
    std::vector<std::unique_ptr<OrderStore>> instances;
    for (int i = 0; i < kInstances; ++i) instances.push_back(backend.open());
    std::latch start(kInstances);
    std::atomic<int> failed{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < kInstances; ++i) {
        threads.emplace_back([&, i] {
            start.arrive_and_wait();
            for (const auto& e : events) {
                // A unit that loses a race is taken again, as the projection and the saga do.
                for (int attempt = 0;; ++attempt) {
                    try {
                        instances[i]->together([&] { instances[i]->apply(e); });
                        break;
                    } catch (const StorageError& err) {
                        if (!err.transient() || attempt > 20) {
                            ++failed;
                            break;
                        }
                    }
                }
            }
        });
    }
    for (auto& t : threads) t.join();
    CHECK(failed == 0);
    for (int i = 0; i < kOrders; ++i) {
        const auto r = instances[0]->get("o-" + std::to_string(i));
        REQUIRE(r);
        INFO(r->order_id);
        CHECK(r->history.size() == 2);
        CHECK(r->decided);
    }
}

TEST_CASE("the saga decides a batch holding a result and a customer cancel of one order",
          "[pg][order]") {
    // Scaled out, a reservation result and a routed customer cancel of one order can arrive in
    // one batch: the order is read once for both. (Reading it twice handed the second a
    // moved-from record, and the batch failed as poison, retried a record per transaction —
    // seconds of no decisions under load.)
    for (const auto& backend : {sqlite_backend(), pg_backend()}) {
        SECTION(backend.name) {
            auto store = backend.open();
            const auto order_created = created("o-1");
            store->apply(order_created);
            SagaTopics topics{"orders.events", "inventory.requests", "inventory.responses",
                              "notifications.requests", "orders.commands"};
            SagaProcessor saga(
                *store, topics, std::chrono::minutes(5),
                [](const std::string&, contract::OrderStatus) {},
                [](std::chrono::milliseconds, const kafka::PartitionOffsets&) { return true; });

            contract::InventoryReserveResult result{
                "o-1", contract::ReserveStatus::kReserved, "", {{"S", 1, 10}}, order_created.data};
            const auto result_event =
                event("INVENTORY_RESERVE_RESULT", "2026-12-01T10:00:01.000Z", result.to_json());
            auto record = store->get("o-1", false);
            REQUIRE(record);
            const CancelCommand command{"o-1", new_uuid_v7(), unix_now_ms() + 60'000};
            const auto command_event = command.to_event(*record);
            kafka::ConsumedRecord on_responses;
            on_responses.topic = "inventory.responses";
            kafka::ConsumedRecord on_commands;
            on_commands.topic = "orders.commands";
            std::vector<kafka::Incoming> batch{{&on_responses, result_event},
                                               {&on_commands, command_event}};
            kafka::BatchOutput out;
            REQUIRE_NOTHROW(saga.process(batch, out));
            saga.committed();

            // Confirmed by the result, then cancelled by the customer (its stock released).
            const auto decided = std::count_if(
                out.records().begin(), out.records().end(),
                [](const kafka::OutgoingRecord& r) { return r.topic == "orders.events"; });
            CHECK(decided == 2);
            const auto after = store->get("o-1", true);
            REQUIRE(after);
            CHECK(after->status == contract::OrderStatus::kCancelled);
            CHECK(after->release_requested);
        }
    }
}
