// The notification service, the fake email provider and dlqctl on a real broker: flow 3 of the
// design notes (three failed attempts → the DLQ, the order stays CONFIRMED) and its replay,
// permanent errors and Retry-After, isolation and per-order order, the circuit breaker, a
// SIGKILL mid-run (I4), poison, two instances sharing the group, and dlqctl's errors and loop
// guard.
#include "pipeline.hpp"

#include "orderpipe/common/time.hpp"
#include "orderpipe/contract/events.hpp"
#include "orderpipe/kafka/admin.hpp"
#include "orderpipe/kafka/producer.hpp"

#include <algorithm>
#include <fstream>
#include <future>
#include <iterator>
#include <set>

using namespace orderpipe;
using namespace orderpipe::testing;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

/// notifications.events by notification id: {"SENT": n, "FAILED": n}.
std::map<std::string, std::map<std::string, int>> outcomes(const Pipeline& p) {
    std::map<std::string, std::map<std::string, int>> out;
    for (const auto& e : p.events("notifications.events")) {
        out[e.data.value("notification_id", "")]
           [e.type == "NOTIFICATION_SENT" ? "SENT" : "FAILED"]++;
    }
    return out;
}

std::size_t finished(const Pipeline& p) {
    std::size_t n = 0;
    for (const auto& [id, o] : outcomes(p)) n += o.size() > 0 ? 1 : 0;
    return n;
}

/// The provider's requests for one notification, in order.
std::vector<json> requests_for(const Pipeline& p, const std::string& notification_id) {
    std::vector<json> out;
    for (const auto& r : http_request("GET", p.provider_url("/requests")).json()) {
        if (r["notification_id"] == notification_id) out.push_back(r);
    }
    return out;
}

double seconds_between(const json& a, const json& b) {
    return std::chrono::duration<double>(*parse_rfc3339(b["at"].get<std::string>()) -
                                         *parse_rfc3339(a["at"].get<std::string>()))
        .count();
}

std::string place_for(const Pipeline& p, const std::string& email) {
    auto body = Pipeline::order_body({{"LAPTOP-001", 1}});
    body["customer_email"] = email;
    auto r = http_request("POST", p.order_url("/orders"), body.dump(),
                          {"Content-Type: application/json"});
    REQUIRE(r.status == 201);
    return r.json()["order_id"];
}

/// notification-service's environment as a child process (for SIGKILL and FAULT_INJECT), on a
/// fresh port in p.notification_port.
std::map<std::string, std::string> child_env(Pipeline& p) {
    auto env = p.env("notification-service");
    p.notification_port = free_port();
    env["HTTP_PORT"] = std::to_string(p.notification_port);
    return env;
}

/// Each notification has exactly one NOTIFICATION_SENT, and no event was committed twice.
void check_sent_once(const Pipeline& p, const std::vector<std::string>& ids) {
    auto o = outcomes(p);
    for (const auto& id : ids) {
        INFO(id);
        CHECK(o[id]["SENT"] == 1);
    }
    std::set<std::string> ce_ids;
    for (const auto& e : p.events("notifications.events")) {
        INFO(e.id);
        CHECK(ce_ids.insert(e.id).second);
    }
}

}  // namespace

TEST_CASE(
    "flow 3: timeout, 503, 500 → the DLQ after three attempts; the order stays "
    "CONFIRMED; dlqctl replays it once",
    "[notification][kafka][flow3][dlqctl]") {
    Pipeline p;
    p.extra_env = {{"NOTIFY_TIMEOUT_MS", "1000"}};
    p.start_provider();
    p.provider_rules(
        {{"match", {{"to", "flow3@example.com"}}}, {"sequence", {"timeout", "503", "500"}}});
    p.start_inventory();
    p.start_orders();
    p.start_notifications();
    const auto id = place_for(p, "flow3@example.com");
    REQUIRE(p.wait_terminal(id)["status"] == "CONFIRMED");

    std::vector<kafka::ConsumedRecord> dlq;
    REQUIRE(eventually([&] {
        dlq = read_committed(p.topic("notifications.dlq"));
        return !dlq.empty();
    }));
    REQUIRE(dlq.size() == 1);
    const auto& d = dlq[0];
    CHECK(d.key == id);
    CHECK(d.header("dlq.retry_count") == "3");
    CHECK(d.header("dlq.reason") == "MAX_RETRIES");
    CHECK(d.header("dlq.last_error").value_or("").find("500") != std::string::npos);
    CHECK(d.header("dlq.original_topic") == p.topic("notifications.requests"));
    // The original record, byte for byte.
    auto requests = read_committed(p.topic("notifications.requests"), 1);
    REQUIRE(requests.size() == 1);
    CHECK(d.value == requests[0].value);
    CHECK(d.header("ce_id") == requests[0].header("ce_id"));
    const std::string notification_id = json::parse(*d.value)["notification_id"];
    // One NOTIFICATION_FAILED, no NOTIFICATION_SENT.
    auto o = outcomes(p);
    CHECK(o[notification_id]["FAILED"] == 1);
    CHECK(o[notification_id]["SENT"] == 0);
    // Attempts at about 0 s, 2 s and 6 s (jittered ±20 %), after a 1 s timeout.
    auto attempts = requests_for(p, notification_id);
    REQUIRE(attempts.size() == 3);
    const double first_gap = seconds_between(attempts[0], attempts[1]);
    const double second_gap = seconds_between(attempts[1], attempts[2]);
    CHECK(first_gap >= 1.0 + 1.6 - 0.2);
    CHECK(first_gap <= 1.0 + 2.4 + 1.0);
    CHECK(second_gap >= 3.2 - 0.2);
    CHECK(second_gap <= 4.8 + 1.0);
    // Each retry says how many earlier attempts went unanswered: the timeout, not the 503.
    CHECK(attempts[0]["unanswered_before"] == 0);
    CHECK(attempts[1]["unanswered_before"] == 1);
    CHECK(attempts[2]["unanswered_before"] == 1);
    // The order stays CONFIRMED.
    CHECK(http_request("GET", p.order_url("/orders/" + id)).json()["status"] == "CONFIRMED");

    // dlqctl: listed as pending; a dry run writes nothing; a replay sends it once.
    auto [rc_list, listed] = p.dlqctl("list");
    CHECK(rc_list == 0);
    CHECK(listed.find(id) != std::string::npos);
    CHECK(listed.find("pending") != std::string::npos);
    auto [rc_dry, dry] = p.dlqctl("replay --dry-run --yes");
    CHECK(rc_dry == 0);
    CHECK(dry.find("would replay") != std::string::npos);
    CHECK(read_committed(p.topic("notifications.requests")).size() == 1);
    CHECK(read_committed(p.topic("dlq.resolutions")).empty());
    // Without --yes and no terminal to ask: refused.
    CHECK(p.dlqctl("replay").first == 2);
    auto [rc_replay, replayed] = p.dlqctl("replay --yes --note fixed");
    INFO(replayed);
    CHECK(rc_replay == 0);
    REQUIRE(eventually([&] { return outcomes(p)[notification_id]["SENT"] == 1; }));
    auto sent = http_request("GET", p.provider_url("/sent/" + notification_id));
    CHECK(sent.status == 200);
    auto [rc_after, after] = p.dlqctl("list --json");
    CHECK(rc_after == 0);
    auto listed_json = json::parse(after);
    REQUIRE(listed_json.size() == 1);
    CHECK(listed_json[0]["status"] == "replayed");
    CHECK(listed_json[0]["resolution"]["action"] == "REPLAYED");
    // A second replay is refused, with --force too (it overrides the replay limit only): a dead
    // letter is resolved once. Nothing more written.
    auto [rc_again, again] = p.dlqctl("replay --yes");
    CHECK(rc_again == 0);
    CHECK(again.find("already replayed") != std::string::npos);
    auto [rc_force, forced] = p.dlqctl("replay --force --yes");
    INFO(forced);
    CHECK(rc_force == 0);
    CHECK(forced.find("already replayed") != std::string::npos);
    CHECK(read_committed(p.topic("notifications.requests")).size() == 2);
    CHECK(read_committed(p.topic("dlq.resolutions")).size() == 1);
    auto o2 = outcomes(p);
    CHECK(o2[notification_id]["SENT"] == 1);
    CHECK(o2[notification_id]["FAILED"] == 1);
}

TEST_CASE(
    "two dlqctl replaying one dead letter at once: one replay, one ledger entry, one "
    "NOTIFICATION_SENT; a copy of a finished request writes nothing",
    "[notification][kafka][dlqctl]") {
    Pipeline p;
    p.start_provider();
    p.provider_rules({{"match", {{"order_id", "o-twice"}}}, {"answer", "400"}, {"times", 1}});
    p.start_notifications();
    const auto ids = p.request_notifications({"o-twice"});
    const auto& notification_id = ids[0];
    REQUIRE(eventually([&] { return read_committed(p.topic("notifications.dlq")).size() == 1; }));

    // The first dlqctl reads the ledger (pending) and holds before writing; the second one runs
    // meanwhile, from start to end. The first must then write nothing.
    TempDir tmp;
    const std::string first_log = tmp.path() + "/first.log";
    auto first = std::async(std::launch::async, [&] {
        return run_command("FAULT_INJECT=dlqctl:write-hold:1 KAFKA_BOOTSTRAP_SERVERS=" +
                           bootstrap() + " TOPIC_PREFIX=" + p.prefix + ". " + DLQCTL_BIN +
                           " replay --order-id o-twice --yes >" + first_log + " 2>&1 </dev/null");
    });
    REQUIRE(eventually([&] {
        std::ifstream in(first_log);
        const std::string text((std::istreambuf_iterator<char>(in)), {});
        return text.find("holding before writing") != std::string::npos;
    }));
    auto [rc_second, second] = p.dlqctl("replay --order-id o-twice --yes");
    INFO(second);
    CHECK(rc_second == 0);
    CHECK(second.find("replayed 1 of 1") != std::string::npos);
    const auto [rc_first, ignored] = first.get();
    std::ifstream in(first_log);
    const std::string first_out((std::istreambuf_iterator<char>(in)), {});
    INFO(first_out);
    CHECK(rc_first == 1);
    CHECK(first_out.find("another dlqctl took over") != std::string::npos);
    CHECK(read_committed(p.topic("dlq.resolutions")).size() == 1);
    auto requests = read_committed(p.topic("notifications.requests"));
    REQUIRE(requests.size() == 2);  // the request and one replay
    REQUIRE(eventually([&] { return outcomes(p)[notification_id]["SENT"] == 1; }));

    // The same replayed record written again at another offset (as a second replay would):
    // not sent, and no outcome written a second time (the same ce_id twice, before).
    const auto base = p.notification_url("");
    const std::string duplicates =
        "kafka_records_processed_total{loop=\"notification-requests\",result=\"duplicate\"}";
    const double before = Pipeline::metric(base, duplicates);
    {
        kafka::ProducerOptions po;
        po.transactional_id = unique_name("copier");
        kafka::TransactionalProducer producer(client_config("copier"), po);
        producer.init_transactions();
        producer.begin();
        kafka::OutgoingRecord copy;
        copy.topic = requests[1].topic;
        copy.key = requests[1].key;
        copy.value = requests[1].value;
        copy.headers = requests[1].headers;
        producer.produce(copy);
        REQUIRE(producer.commit_or_abort() == kafka::TxnOutcome::kCommitted);
    }
    REQUIRE(eventually([&] { return Pipeline::metric(base, duplicates) > before; }));
    std::set<std::string> ce_ids;
    for (const auto& e : p.events("notifications.events")) CHECK(ce_ids.insert(e.id).second);
    auto o = outcomes(p);
    CHECK(o[notification_id]["SENT"] == 1);
    CHECK(o[notification_id]["FAILED"] == 1);
    CHECK(requests_for(p, notification_id).size() == 2);  // the 400, then the one that went
}

TEST_CASE(
    "a send the provider takes but answers after the timeout is retried with the same key, "
    "declared as a retry of an unanswered attempt (I4)",
    "[notification][kafka][duplicates]") {
    // Found by the chaos run on a loaded machine: the provider took a send after the client
    // had given up (NOTIFY_TIMEOUT_MS), the retry sent it again, and a provider that does not
    // deduplicate mailed it twice. The retry is right (a timeout is not a failure anyone can
    // tell apart); what the provider, and the chaos checker, need is to know it is one.
    Pipeline p;
    p.extra_env = {{"NOTIFY_TIMEOUT_MS", "500"}, {"NOTIFY_BACKOFF_MS", "100"}};
    p.start_provider();
    p.provider_rules({{"match", {{"order_id", "o-late"}}},
                      {"answer", "ok"},
                      {"latency_ms", 1500},
                      {"times", 1}});
    p.start_notifications();
    const auto ids = p.request_notifications({"o-late", "o-on-time"});
    REQUIRE(eventually([&] { return finished(p) == 2; }));
    auto o = outcomes(p);
    CHECK(o[ids[0]]["SENT"] == 1);
    CHECK(o[ids[1]]["SENT"] == 1);
    const auto late = requests_for(p, ids[0]);
    REQUIRE(late.size() == 2);
    CHECK(late[0]["unanswered_before"] == 0);
    CHECK(late[1]["unanswered_before"] == 1);
    CHECK(late[0]["idempotency_key"] == late[1]["idempotency_key"]);
    const auto sent = http_request("GET", p.provider_url("/sent/" + ids[0])).json();
    INFO(sent.dump());
    CHECK(sent["sent_again_unanswered_before"] == json::array({1}));
    const auto on_time = requests_for(p, ids[1]);
    REQUIRE(on_time.size() == 1);
    CHECK(on_time[0]["unanswered_before"] == 0);
}

TEST_CASE("a provider asking to wait an hour never holds the other outcomes of its partition",
          "[notification][kafka][isolation]") {
    Pipeline p;
    p.start_provider();
    p.provider_rules(
        {{"match", {{"order_id", "o-hold"}}}, {"answer", "429"}, {"retry_after", 3600}});
    p.start_notifications();
    // Behind it, in its partition or another: outcomes are written in offset order, so before,
    // those behind it waited the hour (notification_requests_held).
    std::vector<std::string> orders{"o-hold"};
    for (int i = 0; i < 20; ++i) orders.push_back("o-next-" + std::to_string(i));
    const auto ids = p.request_notifications(orders);
    REQUIRE(eventually([&] { return finished(p) == ids.size(); }, std::chrono::seconds(30)));
    auto o = outcomes(p);
    CHECK(o[ids[0]]["FAILED"] == 1);
    for (std::size_t i = 1; i < ids.size(); ++i) CHECK(o[ids[i]]["SENT"] == 1);
    auto dlq = read_committed(p.topic("notifications.dlq"), 1);
    REQUIRE(dlq.size() == 1);
    CHECK(dlq[0].header("dlq.reason") == "MAX_RETRIES");
    CHECK(dlq[0].header("dlq.last_error").value_or("").find("Retry-After") != std::string::npos);
    CHECK(requests_for(p, ids[0]).size() == 1);  // asked once, not again within the hour
}

TEST_CASE("a 400 dead-letters at once; a 429 with Retry-After waits for it",
          "[notification][kafka]") {
    Pipeline p;
    p.start_provider();
    p.provider_rules({{{"match", {{"order_id", "o-bad"}}}, {"answer", "400"}},
                      {{"match", {{"order_id", "o-busy"}}},
                       {"answer", "429"},
                       {"retry_after", 3},
                       {"times", 1}}});
    p.start_notifications();
    auto ids = p.request_notifications({"o-bad", "o-busy"});
    REQUIRE(eventually([&] { return finished(p) == 2; }, std::chrono::seconds(30)));
    auto o = outcomes(p);
    CHECK(o[ids[0]]["FAILED"] == 1);
    auto dlq = read_committed(p.topic("notifications.dlq"), 1);
    REQUIRE(dlq.size() == 1);
    CHECK(dlq[0].header("dlq.reason") == "PERMANENT_ERROR");
    CHECK(dlq[0].header("dlq.retry_count") == "1");
    CHECK(requests_for(p, ids[0]).size() == 1);
    CHECK(o[ids[1]]["SENT"] == 1);
    auto busy = requests_for(p, ids[1]);
    REQUIRE(busy.size() == 2);
    CHECK(seconds_between(busy[0], busy[1]) >= 3.0 - 0.05);
}

TEST_CASE("a failing order never delays the others, and one order's notifications go in order",
          "[notification][kafka][isolation]") {
    Pipeline p;
    p.extra_env = {{"NOTIFY_BACKOFF_MS", "3000"}, {"NOTIFY_BREAKER_FAILURES", "1000"}};
    p.start_provider();
    p.provider_rules({{"match", {{"order_id", "o-slow"}}}, {"answer", "503"}});
    p.start_notifications();
    // Two for the failing order, two for a healthy one, then 500 others.
    auto first = p.request_notifications({"o-slow", "o-slow", "o-ordered", "o-ordered"});
    std::vector<std::string> others;
    for (int i = 0; i < 500; ++i) others.push_back("o-" + std::to_string(i));
    auto other_ids = p.request_notifications(others);
    const auto sent_at = std::chrono::system_clock::now();  // committed: visible from now on
    REQUIRE(eventually(
        [&] {
            auto o = outcomes(p);
            for (const auto& id : other_ids) {
                if (o[id]["SENT"] != 1) return false;
            }
            return true;
        },
        std::chrono::seconds(60)));
    // The others went out promptly: median from request to acceptance under a second.
    std::map<std::string, std::string> accepted_at;
    const auto sent = http_request("GET", p.provider_url("/sent")).json();
    for (const auto& s : sent["accepted"]) {
        accepted_at[s["notification_id"]] = s["accepted_at"];
    }
    std::vector<double> latencies;
    for (const auto& id : other_ids) {
        REQUIRE(accepted_at.contains(id));
        latencies.push_back(
            std::chrono::duration<double>(*parse_rfc3339(accepted_at[id]) - sent_at).count());
    }
    std::sort(latencies.begin(), latencies.end());
    INFO("median " << latencies[latencies.size() / 2] << " s, p90 "
                   << latencies[latencies.size() * 9 / 10] << " s, max " << latencies.back());
    CHECK(latencies[latencies.size() / 2] < 1.0);
    // One order's notifications in order: the second only after the first was accepted.
    auto a = requests_for(p, first[2]);
    auto b = requests_for(p, first[3]);
    REQUIRE(!a.empty());
    REQUIRE(!b.empty());
    CHECK(seconds_between(a.back(), b.front()) >= 0);
    // The failing order: its second notification waited for the first to be given up.
    REQUIRE(eventually([&] { return finished(p) == 504; }, std::chrono::seconds(60)));
    auto slow1 = requests_for(p, first[0]);
    auto slow2 = requests_for(p, first[1]);
    REQUIRE(slow1.size() == 3);
    REQUIRE(!slow2.empty());
    CHECK(seconds_between(slow1.back(), slow2.front()) >= 0);
    CHECK(read_committed(p.topic("notifications.dlq")).size() == 2);
}

TEST_CASE(
    "provider down: the breaker opens, few attempts, nothing dead-lettered, memory "
    "bounded; back up: every notification sent once",
    "[notification][kafka][breaker]") {
    Pipeline p;
    p.extra_env = {{"NOTIFY_BREAKER_FAILURES", "5"},
                   {"NOTIFY_BREAKER_OPEN_MS", "2000"},
                   {"NOTIFY_MAX_IN_FLIGHT", "50"}};
    p.start_provider();
    p.provider_rules({{"answer", "503"}});  // down
    p.start_notifications();
    std::vector<std::string> orders;
    for (int i = 0; i < 200; ++i) orders.push_back("o-" + std::to_string(i));
    auto ids = p.request_notifications(orders);
    REQUIRE(eventually([&] {
        return Pipeline::metric(p.notification_url(""), "notification_breaker_state") >= 1;
    }));
    const auto down_until = Clock::now() + std::chrono::seconds(8);
    double held_max = 0;
    while (Clock::now() < down_until) {
        held_max = std::max(held_max,
                            Pipeline::metric(p.notification_url(""), "notification_requests_held"));
        std::this_thread::sleep_for(std::chrono::milliseconds(200));  // sampling a gauge
    }
    const auto during = http_request("GET", p.provider_url("/requests")).json().size();
    INFO("attempts while down: " << during);
    CHECK(during <= 5 + 5);  // NOTIFY_BREAKER_FAILURES + about one probe per 2 s
    CHECK(held_max <= 50);
    CHECK(read_committed(p.topic("notifications.dlq")).empty());
    auto ready = http_request("GET", p.notification_url("/readyz")).json();
    CHECK(ready["checks"]["email provider"].get<std::string>().find("circuit breaker") !=
          std::string::npos);

    p.provider_heal();
    REQUIRE(eventually([&] { return finished(p) == 200; }, std::chrono::seconds(60)));
    auto o = outcomes(p);
    for (const auto& id : ids) {
        INFO(id);
        CHECK(o[id]["SENT"] == 1);
        CHECK(o[id]["FAILED"] == 0);
    }
    auto sent = http_request("GET", p.provider_url("/sent")).json();
    CHECK(sent["count"] == 200);
    CHECK(read_committed(p.topic("notifications.dlq")).empty());
}

TEST_CASE("SIGKILL mid-run with many sends in flight: every request ends once (I4)",
          "[notification][kafka][crash]") {
    Pipeline p;
    p.start_provider();
    p.provider_rules({{"answer", "ok"}, {"latency_ms", 300}});
    auto env = child_env(p);
    auto child = std::make_unique<ChildProcess>(NOTIFICATION_SERVICE_BIN, env,
                                                p.dir.path() + "/notification-service.log");
    Pipeline::wait_ready(p.notification_port);
    std::vector<std::string> orders;
    for (int i = 0; i < 300; ++i) orders.push_back("o-" + std::to_string(i));
    auto ids = p.request_notifications(orders);
    REQUIRE(eventually([&] {
        return http_request("GET", p.provider_url("/sent")).json()["count"].get<int>() >= 60;
    }));
    child->kill_hard();
    child = std::make_unique<ChildProcess>(NOTIFICATION_SERVICE_BIN, env,
                                           p.dir.path() + "/notification-service.log");
    REQUIRE(eventually([&] { return finished(p) == 300; }, std::chrono::seconds(90)));
    auto o = outcomes(p);
    for (const auto& id : ids) {
        INFO(id);
        CHECK(o[id]["SENT"] == 1);
        CHECK(o[id]["FAILED"] == 0);
    }
    // The provider accepted each once; a repeat (killed between its answer and our commit)
    // carried the same Idempotency-Key and was answered as a duplicate.
    auto sent = http_request("GET", p.provider_url("/sent")).json();
    CHECK(sent["count"] == 300);
}

TEST_CASE("aborted transactions write each outcome once, with its offsets (I4)",
          "[notification][kafka][crash]") {
    // Found by the chaos run: after an abort the loop rewinds to the committed offsets, but the
    // finished outcomes were kept to write in the next transaction — without their offsets — and
    // the redelivered requests wrote them again: the same NOTIFICATION_SENT (same ce_id) twice.
    Pipeline p;
    p.start_provider();
    p.provider_rules({{"answer", "ok"}, {"latency_ms", 20}});
    auto env = child_env(p);
    env["FAULT_INJECT"] = "notification-requests:commit-abortable:2-6";
    ChildProcess child(NOTIFICATION_SERVICE_BIN, env, p.dir.path() + "/notification-service.log");
    Pipeline::wait_ready(p.notification_port);
    std::vector<std::string> orders;
    for (int i = 0; i < 200; ++i) orders.push_back("o-" + std::to_string(i));
    auto ids = p.request_notifications(orders);
    REQUIRE(eventually([&] { return finished(p) == 200; }, std::chrono::seconds(90)));
    CHECK(Pipeline::metric(
              p.notification_url(""),
              "kafka_transactions_total{loop=\"notification-requests\",result=\"aborted\"}") >= 5);
    check_sent_once(p, ids);
}

TEST_CASE("an abort never sends an accepted request again (a provider that does not deduplicate)",
          "[notification][kafka][crash][duplicates]") {
    // Found from outside: a provider without Idempotency-Key support received hundreds of
    // emails twice around aborts and broker restarts. An abort dropped the attempts still out;
    // their answers were ignored, and the requests, delivered again, were sent again. Sends take
    // 400 ms here, so every abort catches some out.
    Pipeline p;
    p.start_provider();
    p.provider_rules({{"answer", "ok"}, {"latency_ms", 400}});
    auto env = child_env(p);
    env["FAULT_INJECT"] = "notification-requests:commit-abortable:2-6";
    ChildProcess child(NOTIFICATION_SERVICE_BIN, env, p.dir.path() + "/notification-service.log");
    Pipeline::wait_ready(p.notification_port);
    std::vector<std::string> orders;
    for (int i = 0; i < 200; ++i) orders.push_back("o-" + std::to_string(i));
    auto ids = p.request_notifications(orders);
    REQUIRE(eventually([&] { return finished(p) == 200; }, std::chrono::seconds(90)));
    CHECK(Pipeline::metric(
              p.notification_url(""),
              "kafka_transactions_total{loop=\"notification-requests\",result=\"aborted\"}") >= 5);
    check_sent_once(p, ids);
    auto sent = http_request("GET", p.provider_url("/sent")).json();
    CHECK(sent["count"] == 200);
    CHECK(sent["duplicates"] == 0);  // no request reached the provider after it was accepted
}

TEST_CASE("outcomes finished behind a request still retrying are written once, across a crash (I4)",
          "[notification][kafka][crash]") {
    // Found by the chaos run: outcomes were written as soon as they were decided, while the
    // committed offset stayed behind an earlier request of the partition still retrying; after a
    // restart those requests came again and their stored outcomes were written a second time.
    Pipeline p;
    p.start_provider();
    auto env = child_env(p);
    env["NOTIFY_BACKOFF_MS"] = "3000";
    env["NOTIFY_MAX_ATTEMPTS"] = "10";
    auto child = std::make_unique<ChildProcess>(NOTIFICATION_SERVICE_BIN, env,
                                                p.dir.path() + "/notification-service.log");
    Pipeline::wait_ready(p.notification_port);
    // The first request fails five times (it retries for most of a minute); the others, in every
    // partition (its own included), are sent at once.
    std::vector<std::string> orders;
    for (int i = 0; i < 60; ++i) orders.push_back("o-" + std::to_string(i));
    p.provider_rules(
        {{"match", {{"order_id", orders[0]}}}, {"sequence", {"503", "503", "503", "503", "503"}}});
    auto ids = p.request_notifications({orders[0]});
    REQUIRE(eventually([&] { return !requests_for(p, ids[0]).empty(); }));
    auto more = p.request_notifications(std::vector<std::string>(orders.begin() + 1, orders.end()));
    ids.insert(ids.end(), more.begin(), more.end());
    REQUIRE(eventually([&] {
        return http_request("GET", p.provider_url("/sent")).json()["count"].get<int>() >= 59;
    }));
    // Let the loop commit what it may before the crash.
    const auto url = p.notification_url("");
    const std::string committed =
        "kafka_transactions_total{loop=\"notification-requests\",result=\"committed\"}";
    const double before = Pipeline::metric(url, committed);
    REQUIRE(eventually([&] { return Pipeline::metric(url, committed) >= before + 2; }));
    // The first is still retrying (its 6th attempt, the first to succeed, is ~45 s away).
    REQUIRE(http_request("GET", p.provider_url("/sent/" + ids[0])).status == 404);
    child->kill_hard();
    child = std::make_unique<ChildProcess>(NOTIFICATION_SERVICE_BIN, env,
                                           p.dir.path() + "/notification-service.log");
    REQUIRE(eventually([&] { return finished(p) == 60; }, std::chrono::seconds(90)));
    check_sent_once(p, ids);
}

TEST_CASE("garbage on notifications.requests goes to notifications.dlq; the next one is sent",
          "[notification][kafka][poison]") {
    Pipeline p;
    p.start_provider();
    p.start_notifications();
    auto [rc, out] = run_command("printf 'not an event' | kcat -P -b " + bootstrap() + " -t " +
                                 p.topic("notifications.requests") + " -k junk 2>&1");
    REQUIRE(rc == 0);
    auto ids = p.request_notifications({"o-after"});
    REQUIRE(eventually([&] { return outcomes(p)[ids[0]]["SENT"] == 1; }));
    auto dlq = read_committed(p.topic("notifications.dlq"), 1);
    REQUIRE(dlq.size() == 1);
    CHECK(dlq[0].header("dlq.reason") == "POISON_MESSAGE");
    CHECK(dlq[0].value == "not an event");
}

TEST_CASE("two instances share the group: the partitions are shared, nothing is sent twice",
          "[notification][kafka][scale]") {
    Pipeline p;
    p.start_provider();
    std::vector<std::uint16_t> ports;
    for (const char* instance : {"a", "b"}) {
        auto env = p.env("notification-service");
        env["INSTANCE_ID"] = p.prefix + "-" + instance;
        env["DATA_DIR"] = p.dir.path() + "/notification-" + instance;
        ports.push_back(free_port());
        env["HTTP_PORT"] = std::to_string(ports.back());
        p.notification_processes.push_back(std::make_unique<ChildProcess>(
            NOTIFICATION_SERVICE_BIN, env, p.dir.path() + "/notification-" + instance + ".log"));
    }
    for (auto port : ports) Pipeline::wait_ready(port);
    std::vector<std::string> orders;
    for (int i = 0; i < 100; ++i) orders.push_back("o-" + std::to_string(i));
    auto ids = p.request_notifications(orders);
    REQUIRE(eventually([&] { return finished(p) == 100; }, std::chrono::seconds(60)));
    auto sent = http_request("GET", p.provider_url("/sent")).json();
    CHECK(sent["count"] == 100);
    CHECK(sent["duplicates"] == 0);
    for (auto port : ports) {
        INFO("instance on " << port);
        CHECK(Pipeline::metric("http://127.0.0.1:" + std::to_string(port),
                               "notification_outcomes_total{outcome=\"sent\"}") > 0);
    }

    // SIGTERM: the stopped instance leaves the group as it closes (no waiting for its 10 s
    // session timeout), and the other one takes its partitions and carries on.
    const std::string group = p.prefix + "-notification-service";
    auto members = [&] {
        kafka::AdminClient admin(client_config("group-watch"));
        return admin.describe_group(group, std::chrono::seconds(5)).members.size();
    };
    REQUIRE(members() == 2);
    CHECK(p.notification_processes.back()->terminate() == 0);
    const auto stopped = std::chrono::steady_clock::now();
    REQUIRE(eventually([&] { return members() == 1; }, std::chrono::seconds(10)));
    CHECK(std::chrono::steady_clock::now() - stopped < std::chrono::seconds(5));
    std::vector<std::string> more;
    for (int i = 100; i < 130; ++i) more.push_back("o-" + std::to_string(i));
    p.request_notifications(more);
    REQUIRE(eventually([&] { return finished(p) == 130; }, std::chrono::seconds(60)));
    sent = http_request("GET", p.provider_url("/sent")).json();
    CHECK(sent["count"] == 130);
    CHECK(sent["duplicates"] == 0);
}

TEST_CASE("with the breaker open and nothing held, the next request is taken and probes",
          "[notification][kafka][breaker]") {
    // The last attempt of a failing request opens the breaker and finishes the request (to the
    // DLQ): nothing is held any more. The breaker needs a request to probe with, so the service
    // must still take one, or it would consume nothing ever again.
    Pipeline p;
    p.start_provider();
    p.provider_rules({{"match", {{"order_id", "o-1"}}}, {"answer", "503"}});
    p.extra_env = {{"NOTIFY_MAX_ATTEMPTS", "2"},
                   {"NOTIFY_BREAKER_FAILURES", "2"},
                   {"NOTIFY_BREAKER_OPEN_MS", "500"},
                   {"NOTIFY_BACKOFF_MS", "50"}};
    p.start_notifications();
    const auto failed = p.request_notifications({"o-1"});
    REQUIRE(eventually([&] { return finished(p) == 1; }));
    CHECK(outcomes(p)[failed[0]]["FAILED"] == 1);
    CHECK(http_request("GET", p.notification_url("/readyz")).body.find("open") !=
          std::string::npos);
    const auto next = p.request_notifications({"o-2", "o-3"});
    REQUIRE(eventually([&] { return finished(p) == 3; }));
    check_sent_once(p, next);
}

TEST_CASE("dlqctl: clear errors, and the loop guard on a poison record replayed again",
          "[dlqctl][kafka]") {
    Pipeline p;
    p.start_inventory();
    // Errors: an unknown topic, a topic that is no DLQ, a bad filter, no broker.
    auto [rc_unknown, unknown] = p.dlqctl("list --topic nope.dlq");
    CHECK(rc_unknown == 1);
    CHECK(unknown.find("does not exist") != std::string::npos);
    CHECK(p.dlqctl("list --topic orders.events").first == 2);
    auto [rc_filter, filter] = p.dlqctl("list --since soon");
    CHECK(rc_filter == 2);
    CHECK(filter.find("--since") != std::string::npos);
    // --rate: a number from 0.01 to 100000 (nan was accepted; 0.001 meant a 1,000 s wait).
    for (const char* rate : {"nan", "0.001", "0", "-1", "1e9"}) {
        auto [rc_rate, said] = p.dlqctl(std::string("replay --yes --rate ") + rate);
        INFO(rate << ": " << said);
        CHECK(rc_rate == 2);
        CHECK(said.find("--rate") != std::string::npos);
    }
    const auto started = Clock::now();
    auto [rc_down, down] =
        run_command("KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:" + std::to_string(free_port()) + " " +
                    DLQCTL_BIN + " list 2>&1");
    CHECK(rc_down == 1);
    CHECK(down.find("cannot reach Kafka") != std::string::npos);
    CHECK(Clock::now() - started < std::chrono::seconds(15));

    // A poison record on inventory.requests, replayed: poison again, back in the DLQ with
    // dlq.replay_count 1; the loop guard (DLQ_MAX_REPLAYS=1) then refuses without --force.
    REQUIRE(run_command("printf 'garbage' | kcat -P -b " + bootstrap() + " -t " +
                        p.topic("inventory.requests") + " -k g 2>&1")
                .first == 0);
    REQUIRE(
        eventually([&] { return read_committed(p.topic("inventory.requests.dlq")).size() == 1; }));
    // At the slowest rate (one record per 100 s) the one record goes at once and nothing waits
    // after it: `timeout` would end a wait (exit 124).
    auto [rc1, out1] = p.dlqctl("replay --topic inventory.requests.dlq --yes --rate 0.01",
                                "DLQ_MAX_REPLAYS=1 timeout 60 env");
    INFO(out1);
    CHECK(rc1 == 0);
    std::vector<kafka::ConsumedRecord> dlq;
    REQUIRE(eventually([&] {
        dlq = read_committed(p.topic("inventory.requests.dlq"));
        return dlq.size() == 2;
    }));
    CHECK(dlq[1].header("dlq.replay_count") == "1");
    CHECK(dlq[1].header("dlq.replay_of") == p.topic("inventory.requests.dlq") + "/" +
                                                std::to_string(dlq[0].partition) + "/" +
                                                std::to_string(dlq[0].offset));
    auto [rc2, out2] = p.dlqctl("replay --topic inventory.requests.dlq --yes", "DLQ_MAX_REPLAYS=1");
    CHECK(rc2 == 0);
    CHECK(out2.find("DLQ_MAX_REPLAYS") != std::string::npos);
    CHECK(read_committed(p.topic("inventory.requests.dlq")).size() == 2);

    // A replay whose transaction is aborted writes neither the record nor its ledger entry.
    const auto requests_before = read_committed(p.topic("inventory.requests")).size();
    const auto ledger_before = read_committed(p.topic("dlq.resolutions")).size();
    auto [rc3, out3] = p.dlqctl("replay --topic inventory.requests.dlq --yes --force",
                                "FAULT_INJECT=dlqctl:commit-abortable:1");
    CHECK(rc3 == 1);
    CHECK(out3.find("did not commit") != std::string::npos);
    CHECK(read_committed(p.topic("inventory.requests")).size() == requests_before);
    CHECK(read_committed(p.topic("dlq.resolutions")).size() == ledger_before);
    // The stats add up.
    auto [rc4, stats] = p.dlqctl("stats --topic inventory.requests.dlq");
    CHECK(rc4 == 0);
    auto s = json::parse(stats);
    CHECK(s["records"] == 2);
    CHECK(s["by_reason"]["POISON_MESSAGE"] == 2);
}
