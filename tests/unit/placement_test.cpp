// Order placement's rules against a fake Kafka side and a fake read model: what every outcome
// of the intake transaction means for each request and its Idempotency-Key.
#include "placement.hpp"
#include "sqlite_idempotency_store.hpp"

#include <catch2/catch.hpp>

#include <deque>
#include <set>

using namespace orderpipe;
using namespace orderpipe::order;
using Outcome = IntakeTransactions::Outcome;

namespace {

/// The Kafka side: each commit takes the next scripted outcome, and "commits" the orders when
/// the outcome (as settled) is a commit.
struct FakeKafka final : IntakeTransactions {
    struct Script {
        Outcome outcome;
        bool really_committed;  ///< for kUnknown: what the transaction turned out to be
    };
    std::deque<Script> script;
    bool settle_succeeds = true;
    bool is_settled = true;
    std::set<std::string>* committed = nullptr;
    std::function<void()> during_commit;
    int commits = 0;

    Result commit(const std::vector<const AcceptedOrder*>& orders, Clock::time_point) override {
        ++commits;
        if (during_commit) during_commit();
        auto s = script.empty() ? Script{Outcome::kCommitted, true} : script.front();
        if (!script.empty()) script.pop_front();
        const bool lands = s.outcome == Outcome::kCommitted ||
                           (s.outcome == Outcome::kUnknown && s.really_committed);
        if (lands) {
            for (const auto* o : orders) committed->insert(o->order_id());
        }
        if (s.outcome == Outcome::kUnknown) is_settled = false;
        return {s.outcome, s.outcome == Outcome::kCommitted ? "" : "scripted"};
    }
    bool settle(Clock::time_point) override {
        if (settle_succeeds) is_settled = true;
        return settle_succeeds;
    }
    bool settled() const override { return is_settled; }
};

/// The read model: knows an order once it is committed.
struct FakeReadModel final : OrderLookup {
    std::set<std::string> committed;
    bool is_caught_up = true;
    std::optional<std::string> created_body(const std::string& id) override {
        if (!committed.contains(id)) return std::nullopt;
        return "{\"order_id\":\"" + id + "\"}";
    }
    void write_through(const std::vector<const AcceptedOrder*>&) override {}
    bool caught_up(std::chrono::milliseconds) override { return is_caught_up; }
};

struct Fixture {
    std::unique_ptr<IdempotencyStore> store = open_sqlite_keys(":memory:", std::chrono::hours(48));
    IdempotencyStore& keys = *store;
    FakeReadModel read_model;
    FakeKafka kafka;
    Placement placement{keys, kafka, read_model, std::chrono::milliseconds(100)};

    Fixture() { kafka.committed = &read_model.committed; }

    struct Answer {
        PlaceOutcome outcome;
        std::string order_id;
        std::string body;
    };

    /// Places one request per key ("" = no key) in one batch; returns the answers in order.
    std::vector<Answer> place(const std::vector<std::string>& keys_of_batch,
                              const std::string& body = "body-1") {
        std::vector<Answer> answers(keys_of_batch.size());
        std::vector<int> answered(keys_of_batch.size(), 0);
        std::vector<PlaceRequest> batch;
        for (std::size_t i = 0; i < keys_of_batch.size(); ++i) {
            PlaceRequest r;
            r.order.created.order_id = new_uuid_v7();
            r.order.created.total = *Money::parse("1.00");
            r.order.created.currency = "USD";
            r.order.created.created_at = "2026-12-01T00:00:00.000Z";
            if (!keys_of_batch[i].empty()) r.key = keys_of_batch[i];
            r.canonical_body = body;
            r.deadline = Clock::now() + std::chrono::seconds(5);
            r.done = [&, i](const PlaceResult& res) {
                ++answered[i];
                answers[i] = {res.outcome, res.order_id, res.body};
            };
            batch.push_back(std::move(r));
        }
        placement.place(batch);
        for (int n : answered) REQUIRE(n == 1);  // every request answered exactly once
        return answers;
    }
};

}  // namespace

TEST_CASE("committed: 201, the key answers every retry, another body is refused", "[placement]") {
    Fixture f;
    auto first = f.place({"k1"});
    REQUIRE(first[0].outcome == PlaceOutcome::kCreated);
    CHECK(f.read_model.committed.contains(first[0].order_id));
    auto again = f.place({"k1"});
    CHECK(again[0].outcome == PlaceOutcome::kReplayed);
    CHECK(again[0].order_id == first[0].order_id);
    CHECK(again[0].body == first[0].body);
    CHECK(f.place({"k1"}, "another body")[0].outcome == PlaceOutcome::kKeyReused);
    CHECK(f.kafka.commits == 1);
}

TEST_CASE("aborted: 503 and the key is free again", "[placement]") {
    Fixture f;
    f.kafka.script = {{Outcome::kAborted, false}};
    auto failed = f.place({"k1", ""});
    CHECK(failed[0].outcome == PlaceOutcome::kNotCommitted);
    CHECK(failed[1].outcome == PlaceOutcome::kNotCommitted);
    CHECK(f.read_model.committed.empty());
    auto retry = f.place({"k1"});
    CHECK(retry[0].outcome == PlaceOutcome::kCreated);
    CHECK(f.read_model.committed.size() == 1);
}

TEST_CASE("unknown, then settled: the read model tells 201 or 503", "[placement]") {
    SECTION("it had committed") {
        Fixture f;
        f.kafka.script = {{Outcome::kUnknown, true}};
        auto r = f.place({"k1"});
        CHECK(r[0].outcome == PlaceOutcome::kCreated);
        CHECK(f.place({"k1"})[0].outcome == PlaceOutcome::kReplayed);
        CHECK(f.read_model.committed.size() == 1);
    }
    SECTION("it had not") {
        Fixture f;
        f.kafka.script = {{Outcome::kUnknown, false}};
        auto r = f.place({"k1"});
        CHECK(r[0].outcome == PlaceOutcome::kNotCommitted);
        auto retry = f.place({"k1"});
        CHECK(retry[0].outcome == PlaceOutcome::kCreated);
        CHECK(f.read_model.committed.size() == 1);
    }
}

TEST_CASE("unknown and not settled in time: 504, the key waits, and is resolved only once known",
          "[placement]") {
    for (const bool really_committed : {true, false}) {
        DYNAMIC_SECTION("the transaction " << (really_committed ? "committed" : "aborted")) {
            Fixture f;
            f.kafka.script = {{Outcome::kUnknown, really_committed}};
            f.kafka.settle_succeeds = false;
            auto r = f.place({"k1"});
            REQUIRE(r[0].outcome == PlaceOutcome::kOutcomeUnknown);
            const auto first_id = r[0].order_id;
            // A retry while nobody knows: told to wait, never a second order.
            CHECK(f.place({"k1"})[0].outcome == PlaceOutcome::kKeyInProgress);
            // Not resolved while the producer is unsettled, nor before the read model caught
            // up (it could take a committed order for one that never was).
            CHECK(f.placement.resolve_unknown_keys(std::chrono::milliseconds(1)) == 0);
            f.kafka.is_settled = true;
            f.read_model.is_caught_up = false;
            CHECK(f.placement.resolve_unknown_keys(std::chrono::milliseconds(1)) == 0);
            CHECK(f.place({"k1"})[0].outcome == PlaceOutcome::kKeyInProgress);
            f.read_model.is_caught_up = true;
            CHECK(f.placement.resolve_unknown_keys(std::chrono::milliseconds(1)) == 1);
            auto retry = f.place({"k1"});
            if (really_committed) {
                CHECK(retry[0].outcome == PlaceOutcome::kReplayed);
                CHECK(retry[0].order_id == first_id);
            } else {
                CHECK(retry[0].outcome == PlaceOutcome::kCreated);
                CHECK(retry[0].order_id != first_id);
            }
            CHECK(f.read_model.committed.size() == 1);  // one order per key
        }
    }
}

TEST_CASE("a key whose request is still in flight is never resolved from under it", "[placement]") {
    Fixture f;
    // An old unknown key, resolvable, exists; while the new request is inside its (slow)
    // transaction, maintenance runs.
    f.kafka.script = {{Outcome::kUnknown, false}};
    f.kafka.settle_succeeds = false;
    REQUIRE(f.place({"old"})[0].outcome == PlaceOutcome::kOutcomeUnknown);
    f.kafka.settle_succeeds = true;
    f.kafka.is_settled = true;
    std::size_t resolved_during = 0;
    f.kafka.during_commit = [&] {
        resolved_during = f.placement.resolve_unknown_keys(std::chrono::milliseconds(1));
    };
    auto r = f.place({"k-in-flight"});
    CHECK(resolved_during == 1);  // only "old": the in-flight key is pending, not unknown
    CHECK(r[0].outcome == PlaceOutcome::kCreated);
    auto retry = f.place({"k-in-flight"});
    CHECK(retry[0].outcome == PlaceOutcome::kReplayed);
    CHECK(retry[0].order_id == r[0].order_id);
}

TEST_CASE("the same key twice in one batch: the second waits", "[placement]") {
    Fixture f;
    auto r = f.place({"dup", "dup", ""});
    CHECK(r[0].outcome == PlaceOutcome::kCreated);
    CHECK(r[1].outcome == PlaceOutcome::kKeyInProgress);
    CHECK(r[2].outcome == PlaceOutcome::kCreated);
    CHECK(f.read_model.committed.size() == 2);
}

TEST_CASE(
    "keys left pending by a dead process become unknown and are resolved, never released "
    "blindly",
    "[placement]") {
    Fixture f;
    {
        f.keys.together([&] {
            f.keys.claim("crashed-committed", "body-1", "o-1");
            f.keys.claim("crashed-never", "body-1", "o-2");
        });
    }
    f.read_model.committed.insert("o-1");
    CHECK(f.keys.pending_to_unknown() == 2);
    CHECK(f.placement.resolve_unknown_keys(std::chrono::milliseconds(1)) == 2);
    auto a = f.place({"crashed-committed"});
    CHECK(a[0].outcome == PlaceOutcome::kReplayed);
    CHECK(a[0].order_id == "o-1");
    CHECK(f.place({"crashed-never"})[0].outcome == PlaceOutcome::kCreated);
}
