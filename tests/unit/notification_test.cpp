// The notification service's delivery rules and dlqctl's model, without Kafka or a provider.
#include "delivery.hpp"
#include "dlq.hpp"
#include "notification_processor.hpp"
#include "outcome_store.hpp"

#include "orderpipe/common/storage_error.hpp"
#include "orderpipe/kafka/event_record.hpp"

#include <prometheus/registry.h>

#include "orderpipe/common/time.hpp"

#include <catch2/catch.hpp>

#include <set>
#include <thread>

using namespace orderpipe;
using namespace orderpipe::notification;
using std::chrono::milliseconds;

TEST_CASE("provider answers are classified as the contract says", "[notification]") {
    auto verdict = [](long status) { return classify(SendResult{status, "", std::nullopt, ""}); };
    CHECK(verdict(200) == Verdict::kSent);
    CHECK(verdict(202) == Verdict::kSent);
    CHECK(verdict(0) == Verdict::kTransient);  // timeout, connection refused or reset
    CHECK(verdict(500) == Verdict::kTransient);
    CHECK(verdict(503) == Verdict::kTransient);
    CHECK(verdict(408) == Verdict::kTransient);
    CHECK(verdict(429) == Verdict::kTransient);
    CHECK(verdict(400) == Verdict::kPermanent);
    CHECK(verdict(404) == Verdict::kPermanent);
    CHECK(verdict(422) == Verdict::kPermanent);
    CHECK(describe({0, "timeout after 5000 ms", std::nullopt, ""}) == "timeout after 5000 ms");
    CHECK(describe({503, "", std::nullopt, "busy"}) == "HTTP 503: busy");
}

TEST_CASE("retries back off exponentially with jitter and honour Retry-After", "[notification]") {
    const milliseconds base(2000);
    CHECK(retry_delay(1, base, std::nullopt, 0.5) == milliseconds(2000));  // middle of ±20 %
    CHECK(retry_delay(2, base, std::nullopt, 0.5) == milliseconds(4000));
    CHECK(retry_delay(1, base, std::nullopt, 0.0) == milliseconds(1600));
    CHECK(retry_delay(1, base, std::nullopt, 0.999) >= milliseconds(2390));
    CHECK(retry_delay(1, base, milliseconds(3000), 0.5) == milliseconds(3000));
    CHECK(retry_delay(2, base, milliseconds(1000), 0.5) == milliseconds(4000));
}

TEST_CASE("the circuit breaker opens, lets one probe through, and closes on success",
          "[notification]") {
    CircuitBreaker b(3, milliseconds(1000));
    const auto t0 = Clock::now();
    CHECK(b.allow(t0));
    CHECK_FALSE(b.on_transient_failure(t0));
    b.on_answer();  // an answer in between: the count starts again
    CHECK_FALSE(b.on_transient_failure(t0));
    CHECK_FALSE(b.on_transient_failure(t0));
    CHECK(b.on_transient_failure(t0));  // third in a row: open
    CHECK(b.state(t0) == CircuitBreaker::State::kOpen);
    CHECK_FALSE(b.allow(t0 + milliseconds(500)));  // no attempt while open
    const auto later = t0 + milliseconds(1000);
    CHECK(b.allow(later));  // the probe
    CHECK(b.probing());
    CHECK_FALSE(b.allow(later));  // only one
    CHECK(b.state(later) == CircuitBreaker::State::kHalfOpen);
    b.on_transient_failure(later);  // the probe failed: open again, for another second
    CHECK_FALSE(b.allow(later + milliseconds(999)));
    CHECK(b.allow(later + milliseconds(1000)));
    b.on_answer();
    CHECK(b.state(later + milliseconds(1000)) == CircuitBreaker::State::kClosed);
    CHECK(b.allow(later + milliseconds(1000)));
}

TEST_CASE("a probe that will never be answered does not keep the breaker half-open",
          "[notification]") {
    // Found by the chaos run: the probe's request was dropped by a rebalance, and the breaker
    // waited for its answer for good; nothing was sent again.
    CircuitBreaker b(1, milliseconds(1000));
    const auto t0 = Clock::now();
    CHECK(b.on_transient_failure(t0));
    const auto later = t0 + milliseconds(1000);
    CHECK(b.allow(later));                              // the probe goes out...
    CHECK_FALSE(b.allow(later + milliseconds(59000)));  // ...and is never answered
    b.abandon_probe();
    CHECK(b.allow(later + milliseconds(60000)));  // the next probe
    b.on_answer();
    CHECK(b.state(later + milliseconds(60000)) == CircuitBreaker::State::kClosed);

    // A probe lost where nobody could say so is given up after probe_lost_after.
    CircuitBreaker c(1, milliseconds(1000), milliseconds(5000));
    CHECK(c.on_transient_failure(t0));
    CHECK(c.allow(later));
    CHECK_FALSE(c.allow(later + milliseconds(4999)));
    CHECK(c.allow(later + milliseconds(5000)));
}

TEST_CASE("dlqctl: entries, resolutions, filters and the replayed record", "[dlqctl]") {
    using namespace orderpipe::dlqctl;
    kafka::ConsumedRecord r;
    r.topic = "notifications.dlq";
    r.partition = 1;
    r.offset = 42;
    r.key = "o-1";
    r.value = R"({"notification_id":"n-1"})";
    r.headers = {{"ce_id", "e-1"},
                 {"ce_type", "NOTIFICATION_REQUESTED"},
                 {"dlq.original_topic", "notifications.requests"},
                 {"dlq.original_partition", "1"},
                 {"dlq.original_offset", "7"},
                 {"dlq.reason", "MAX_RETRIES"},
                 {"dlq.retry_count", "3"},
                 {"dlq.last_error", "HTTP 500: boom"},
                 {"dlq.failure_timestamp", "2026-12-01T10:00:00.000Z"}};
    auto pending = make_entry(r, {});
    CHECK(pending.key() == "notifications.dlq/1/42");
    CHECK(pending.status == Status::kPending);
    CHECK(pending.original_topic == "notifications.requests");
    CHECK(pending.original_offset == 7);
    CHECK(pending.retry_count == 3);
    CHECK(pending.replay_count == 0);
    auto replayed = make_entry(
        r, {{"notifications.dlq/1/42",
             R"({"action":"REPLAYED","at":"2026-12-01T11:00:00.000Z","note":"","user":"ana"})"}});
    CHECK(replayed.status == Status::kReplayed);

    Filters f;
    CHECK(f.accepts(pending));
    f.reason = "POISON_MESSAGE";
    CHECK_FALSE(f.accepts(pending));
    f = {};
    f.error_contains = "500";
    f.order_id = "o-1";
    f.status = Status::kPending;
    CHECK(f.accepts(pending));
    CHECK_FALSE(f.accepts(replayed));
    const auto noon = *parse_rfc3339("2026-12-01T12:00:00Z");
    f = {};
    f.since = parse_when("1h", noon);  // 11:00: the failure at 10:00 is older
    CHECK_FALSE(f.accepts(pending));
    f.since = parse_when("3h", noon);
    CHECK(f.accepts(pending));
    CHECK_FALSE(parse_when("soon", noon));
    CHECK_FALSE(parse_when("5x", noon));
    // No span or year wraps a 64-bit nanosecond clock around.
    CHECK(parse_when("36500d", noon));
    CHECK_FALSE(parse_when("2562048h", noon));
    CHECK_FALSE(parse_when("5124096h", noon));
    CHECK_FALSE(parse_when("9223372036854775807s", noon));
    CHECK_FALSE(parse_when("0001-01-01T00:00:00Z", noon));
    CHECK_FALSE(parse_when("9999-12-31T23:59:59Z", noon));
    CHECK(parse_when("1999-12-31T23:59:59Z", noon));

    auto out = replay_record(pending, "notifications.requests");
    CHECK(out.topic == "notifications.requests");
    CHECK(out.key == r.key);
    CHECK(out.value == r.value);  // byte for byte
    bool any_dlq = false;
    std::map<std::string, std::string> h;
    for (const auto& [k, v] : out.headers) {
        h[k] = v.value_or("");
        if (k.rfind("dlq.", 0) == 0 && k != "dlq.replay_count" && k != "dlq.replay_of")
            any_dlq = true;
    }
    CHECK_FALSE(any_dlq);
    CHECK(h["ce_id"] == "e-1");  // the original event, ce_id kept
    CHECK(h["dlq.replay_count"] == "1");
    CHECK(h["dlq.replay_of"] == "notifications.dlq/1/42");
}

TEST_CASE("dlqctl and the console parse filters alike and plan a replay or a discard alike",
          "[dlqctl]") {
    using namespace orderpipe::dlqctl;
    const auto noon = *parse_rfc3339("2026-12-01T12:00:00Z");
    FilterText t;
    t.since = "2h";
    t.reason = "MAX_RETRIES";
    t.status = "pending";
    t.partition = 1;
    const auto f = parse_filters(t, noon, "--");
    CHECK(f.since == parse_when("2h", noon));
    CHECK(f.status == Status::kPending);
    CHECK(f.partition == 1);
    const auto message = [&](FilterText bad, const std::string& prefix) {
        try {
            parse_filters(bad, noon, prefix);
        } catch (const std::invalid_argument& e) {
            return std::string(e.what());
        }
        return std::string("accepted");
    };
    FilterText bad;
    bad.since = "soon";
    CHECK(message(bad, "--") == "--since \"soon\": expected RFC 3339 or 30m/1h/2d");
    CHECK(message(bad, "") == "since \"soon\": expected RFC 3339 or 30m/1h/2d");
    bad = {};
    bad.status = "gone";
    CHECK(message(bad, "") == "status \"gone\": expected pending, replayed or discarded");
    bad = {};
    bad.reason = "BORED";
    CHECK(message(bad, "") ==
          "reason \"BORED\": expected MAX_RETRIES, PERMANENT_ERROR or POISON_MESSAGE");

    const auto entry = [](std::int64_t offset, Status status, int replays, std::string original) {
        Entry e;
        e.record.topic = "notifications.dlq";
        e.record.offset = offset;
        e.status = status;
        e.replay_count = replays;
        e.original_topic = std::move(original);
        return e;
    };
    const std::vector<Entry> entries{entry(0, Status::kPending, 0, "notifications.requests"),
                                     entry(1, Status::kReplayed, 0, "notifications.requests"),
                                     entry(2, Status::kPending, 3, "notifications.requests"),
                                     entry(3, Status::kPending, 1, ""),
                                     entry(4, Status::kDiscarded, 3, "notifications.requests")};
    const auto all = select(entries, Filters{});
    REQUIRE(all.size() == 5);
    auto plan = plan_replay(all, {.max_replays = 3, .force = false, .to = ""});
    REQUIRE(plan.steps.size() == 1);
    CHECK(plan.steps[0].entry == &entries[0]);
    CHECK(plan.steps[0].to == "notifications.requests");
    CHECK(plan.skipped_resolved == 2);
    CHECK(plan.skipped_replay_limit == 1);
    CHECK(plan.skipped_no_original_topic == 1);
    // Forced past the loop guard and told where: never a resolved one.
    plan = plan_replay(all, {.max_replays = 3, .force = true, .to = "elsewhere"});
    REQUIRE(plan.steps.size() == 3);
    CHECK(plan.steps[2].to == "elsewhere");
    CHECK(plan.skipped_resolved == 2);
    plan = plan_discard(all);
    CHECK(plan.steps.size() == 3);
    CHECK(plan.skipped_resolved == 2);
}

namespace {

/// An outcome store in memory that fails while told to (the database away).
class FlakyStore final : public OutcomeStore {
  public:
    int failures_left = 0;
    std::map<std::string, std::string> outcomes;
    std::set<std::string> sent_ids;

    std::optional<std::string> outcome(const std::string& key) override {
        fail_if_told();
        if (auto it = outcomes.find(key); it != outcomes.end()) return it->second;
        return std::nullopt;
    }
    bool sent(const std::string& id) override {
        fail_if_told();
        return sent_ids.contains(id);
    }
    std::map<std::string, std::string> store(const std::vector<FinishedRequest>& f) override {
        fail_if_told();
        std::map<std::string, std::string> theirs;
        for (const auto& r : f) {
            if (r.sent) sent_ids.insert(*r.sent);
            if (auto it = outcomes.find(r.key); it != outcomes.end()) {
                theirs.emplace(r.key, it->second);
                continue;
            }
            outcomes.emplace(r.key, r.outcome);
        }
        return theirs;
    }
    std::int64_t purge_expired() override { return 0; }

  private:
    void fail_if_told() {
        if (failures_left > 0) {
            --failures_left;
            throw StorageError("the database is away", /*transient=*/true);
        }
    }
};

kafka::ConsumedRecord request_record(std::int64_t offset, CloudEvent& event) {
    contract::NotificationRequested r;
    r.notification_id = "n-1";
    r.order_id = "o-1";
    r.to = "a@example.com";
    r.subject = "s";
    r.text = "t";
    event = CloudEvent::make("NOTIFICATION_REQUESTED", "/test", "o-1", "o-1", std::nullopt, "",
                             r.to_json());
    kafka::ConsumedRecord rec;
    rec.topic = "notifications.requests";
    rec.offset = offset;
    rec.key = "o-1";
    rec.value = "{}";
    return rec;
}

}  // namespace

TEST_CASE("an outcome the store cannot take yet is kept, and the request is not sent again",
          "[notification]") {
    FlakyStore store;
    prometheus::Registry registry;
    std::vector<EmailClient::Request> sends;
    NotificationProcessor p(
        store,
        NotificationOptions{.events_topic = "notifications.events",
                            .dlq_topic = "notifications.dlq",
                            .group_id = "g"},
        [&](EmailClient::Request r) { sends.push_back(std::move(r)); }, [] {}, registry);
    CloudEvent event;
    const auto record = request_record(5, event);
    std::vector<kafka::Incoming> batch{{&record, event}};
    kafka::BatchOutput out;
    p.process(batch, out);
    REQUIRE(sends.size() == 1);
    p.answered(sends[0].id, SendResult{202, "", std::nullopt, ""});

    store.failures_left = 1;  // the store after the send fails once
    kafka::BatchOutput first;
    p.idle(first);
    CHECK(first.records().empty());  // nothing written before it is stored
    CHECK(store.outcomes.empty());
    // The loop aborts for some other reason and the request comes again: it is found, not sent.
    p.aborted();
    batch = {{&record, event}};
    kafka::BatchOutput again;
    p.process(batch, again);
    CHECK(sends.size() == 1);
    CHECK(again.duplicates() == 1);
    // Once the back-off has passed the outcome is stored and written, once.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!p.has_idle_work() && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::yield();
    }
    REQUIRE(p.has_idle_work());
    kafka::BatchOutput second;
    p.idle(second);
    CHECK(store.outcomes.size() == 1);
    CHECK(store.sent_ids.contains("n-1"));
    REQUIRE(second.records().size() == 1);
    CHECK(second.records()[0].topic == "notifications.events");
    CHECK(sends.size() == 1);
}

TEST_CASE("an outcome another instance stored first is the one written", "[notification]") {
    FlakyStore store;
    prometheus::Registry registry;
    std::vector<EmailClient::Request> sends;
    NotificationProcessor p(
        store,
        NotificationOptions{.events_topic = "notifications.events",
                            .dlq_topic = "notifications.dlq",
                            .group_id = "g"},
        [&](EmailClient::Request r) { sends.push_back(std::move(r)); }, [] {}, registry);
    CloudEvent event;
    const auto record = request_record(7, event);
    std::vector<kafka::Incoming> batch{{&record, event}};
    kafka::BatchOutput out;
    p.process(batch, out);
    REQUIRE(sends.size() == 1);
    // Meanwhile the other instance, which held the partition before, stored its own outcome:
    // a dead letter (its provider refused).
    store.outcomes[event.id] =
        nlohmann::json{
            {"at", contract::dlq_record_key(record.topic, record.partition, record.offset)},
            {"records", nlohmann::json::array({kafka::record_to_json(
                            kafka::OutgoingRecord{"notifications.dlq", "o-1", "theirs", {}})})}}
            .dump();
    p.answered(sends[0].id, SendResult{202, "", std::nullopt, ""});
    kafka::BatchOutput written;
    p.idle(written);
    REQUIRE(written.records().size() == 1);
    CHECK(written.records()[0].topic == "notifications.dlq");
    CHECK(written.records()[0].value == "theirs");
    CHECK(store.sent_ids.contains("n-1"));  // ours was accepted all the same: a replay finds it
}
