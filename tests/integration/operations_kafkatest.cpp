// Running it like production (docs/CONTRACT.md "Operations"): a trace followed through every
// event and every log line of one order's saga, and a SIGTERM drain under load observed from
// outside — /readyz going starting → ready → draining, no order answered 201 lost or
// duplicated, no order answered 503 committed, and the restarted service carrying on.
#include "pipeline.hpp"

#include "orderpipe/http/server.hpp"

#include <prometheus/registry.h>

#include <csignal>
#include <fstream>
#include <functional>
#include <set>
#include <thread>

using namespace orderpipe;
using namespace orderpipe::testing;

namespace {

std::vector<nlohmann::json> log_lines(const std::string& path) {
    std::vector<nlohmann::json> out;
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty()) continue;
        INFO(path << ": " << line);
        out.push_back(nlohmann::json::parse(line));  // every line is a JSON object
    }
    return out;
}

/// The trace id of a traceparent, or "" when it is not a valid one.
std::string trace_id(const std::string& traceparent) {
    const auto ctx = TraceContext::parse(traceparent);
    return ctx ? ctx->trace_id : std::string();
}

/// Runs `f` when the scope ends, however the test case ends: a failed REQUIRE unwinding through a
/// joinable std::thread would terminate the whole test binary.
struct OnExit {
    std::function<void()> f;
    ~OnExit() { f(); }
};

std::map<std::string, std::string> child_env(const Pipeline& p, const std::string& service,
                                             std::uint16_t port) {
    auto e = p.env(service);
    e["HTTP_PORT"] = std::to_string(port);
    return e;
}

}  // namespace

/// An OpenTelemetry collector's OTLP/HTTP traces endpoint: keeps every span it is sent, with
/// the service.name of its resource.
struct SpanCollector {
    std::mutex mu;
    std::vector<nlohmann::json> spans;
    http::Server server{http::ServerOptions{}, std::make_shared<prometheus::Registry>()};
    SpanCollector() {
        server.route("POST", "/v1/traces", [this](http::Request&& r, http::Responder done) {
            auto body = nlohmann::json::parse(r.body);
            std::lock_guard lock(mu);
            for (auto& rs : body["resourceSpans"]) {
                std::string service;
                for (auto& a : rs["resource"]["attributes"])
                    if (a["key"] == "service.name") service = a["value"]["stringValue"];
                for (auto& ss : rs["scopeSpans"]) {
                    for (auto span : ss["spans"]) {
                        span["service"] = service;
                        spans.push_back(std::move(span));
                    }
                }
            }
            done(http::Response::json(200, nlohmann::json::object()));
        });
        server.start();
    }
    std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(server.port()); }
    std::vector<nlohmann::json> of_trace(const std::string& trace) {
        std::lock_guard lock(mu);
        std::vector<nlohmann::json> out;
        for (const auto& s : spans)
            if (s["traceId"] == trace) out.push_back(s);
        return out;
    }
};

TEST_CASE("one order's traceparent is in every event and every log line of its saga",
          "[operations][trace][kafka]") {
    SpanCollector collector;
    Pipeline p;
    p.extra_env["OTEL_EXPORTER_OTLP_ENDPOINT"] = collector.endpoint();
    p.start_provider();
    p.start_inventory_process();
    p.start_order_process();
    p.notification_port = free_port();
    ChildProcess notification(NOTIFICATION_SERVICE_BIN,
                              child_env(p, "notification-service", p.notification_port),
                              p.dir.path() + "/notification-service.log");
    Pipeline::wait_ready(p.notification_port);

    const std::string trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    const std::string incoming = "00-" + trace + "-00f067aa0ba902b7-01";
    auto posted = http_request("POST", p.order_url("/orders"),
                               Pipeline::order_body({{"MOUSE-001", 1}}).dump(),
                               {"Content-Type: application/json", "traceparent: " + incoming});
    REQUIRE(posted.status == 201);
    const std::string order_id = posted.json()["order_id"];
    CHECK(p.wait_terminal(order_id)["status"] == "CONFIRMED");
    REQUIRE(eventually([&] {
        return http_request("GET", p.provider_url("/sent")).body.find(order_id) !=
               std::string::npos;
    }));

    // Every event of the order, on every topic, continues the caller's trace.
    std::set<std::string> types;
    std::set<std::string> correlation_ids;
    std::map<std::string, std::string> span_of_event;  // ce_id → its traceparent's span id
    std::map<std::string, std::string> cause_of_span;  // span id → the ce_id it was caused by
    const std::map<std::string, std::size_t> expected = {
        {"orders.events", 2},    {"inventory.requests", 1},     {"inventory.responses", 1},
        {"inventory.events", 1}, {"notifications.requests", 1}, {"notifications.events", 1}};
    for (const auto& [name, full] : p.topics) {
        const auto at_least = expected.contains(name) ? expected.at(name) : 0;
        std::size_t mine = 0;
        for (const auto& rec : read_committed(full, at_least)) {
            if (rec.key != order_id) continue;
            ++mine;
            INFO(name << " offset " << rec.offset);
            const auto tp = rec.header("traceparent");
            REQUIRE(tp.has_value());
            CHECK(trace_id(*tp) == trace);
            types.insert(rec.header("ce_type").value_or(""));
            correlation_ids.insert(rec.header("ce_correlationid").value_or(""));
            const auto span = TraceContext::parse(*tp).value_or(TraceContext{}).span_id;
            span_of_event[rec.header("ce_id").value_or("")] = span;
            cause_of_span[span] = rec.header("ce_causationid").value_or("");
        }
        CHECK(mine >= at_least);
    }
    CHECK(types == std::set<std::string>{"ORDER_CREATED", "INVENTORY_RESERVE_REQUESTED",
                                         "INVENTORY_RESERVE_RESULT", "INVENTORY_RESERVED",
                                         "ORDER_CONFIRMED", "NOTIFICATION_REQUESTED",
                                         "NOTIFICATION_SENT"});
    REQUIRE(correlation_ids.size() == 1);
    const std::string correlation_id = *correlation_ids.begin();
    CHECK_FALSE(correlation_id.empty());

    // The email provider was called within the trace too.
    bool provider_saw_it = false;
    for (const auto& r : http_request("GET", p.provider_url("/requests")).json()) {
        if (r["order_id"] != order_id) continue;
        provider_saw_it = true;
        CHECK(trace_id(r["traceparent"].get<std::string>()) == trace);
    }
    CHECK(provider_saw_it);

    // Each hop was exported as a span (OTLP): one per event, all of the caller's trace, each
    // the child of the span of the event that caused it, the first one of the caller's span.
    std::vector<nlohmann::json> spans;
    REQUIRE(eventually([&] {
        spans = collector.of_trace(trace);
        return spans.size() >= types.size();
    }));
    CHECK(spans.size() == types.size());  // one per event, none twice
    std::set<std::string> span_names;
    std::set<std::string> services;
    for (const auto& s : spans) {
        span_names.insert(s["name"].get<std::string>());
        services.insert(s["service"].get<std::string>());
    }
    CHECK(span_names == types);
    CHECK(services ==
          std::set<std::string>{"order-service", "inventory-service", "notification-service"});
    for (const auto& s : spans) {
        INFO(s.dump());
        REQUIRE(s.contains("parentSpanId"));
        REQUIRE(cause_of_span.contains(s["spanId"].get<std::string>()));  // an event's span
        const auto& cause = cause_of_span.at(s["spanId"].get<std::string>());
        // The span of the event that caused it; ORDER_CREATED's is the caller's.
        CHECK(s["parentSpanId"] == (cause.empty() ? "00f067aa0ba902b7" : span_of_event[cause]));
        CHECK(std::stoll(s["endTimeUnixNano"].get<std::string>()) >=
              std::stoll(s["startTimeUnixNano"].get<std::string>()));
    }

    // Every log line about the order, in every service, carries the trace and the saga id (the
    // services flush on exit).
    CHECK(notification.terminate() == 0);
    CHECK(p.order_process->terminate() == 0);
    CHECK(p.inventory_process->terminate() == 0);
    const std::map<std::string, std::vector<std::string>> must_say = {
        {"order-service", {"order accepted", "order confirmed"}},
        {"inventory-service", {"reservation decided"}},
        {"notification-service", {"notification sent"}}};
    for (const auto& [service, messages] : must_say) {
        std::set<std::string> said;
        for (const auto& line : log_lines(p.dir.path() + "/" + service + ".log")) {
            if (line.dump().find(order_id) == std::string::npos) continue;
            INFO(service << ": " << line.dump());
            CHECK(line.value("order_id", "") == order_id);
            CHECK(line.value("correlation_id", "") == correlation_id);
            CHECK(trace_id(line.value("traceparent", "")) == trace);
            CHECK(line["service"] == service);
            said.insert(line["msg"].get<std::string>());
        }
        for (const auto& m : messages) {
            INFO(service << " never logged \"" << m << "\" with the order");
            CHECK(said.contains(m));
        }
    }
}

TEST_CASE(
    "SIGTERM under load: readyz starting → ready → draining, nothing answered 201 is "
    "lost or doubled, nothing answered 503 is committed, and the restart carries on",
    "[operations][drain][kafka]") {
    Pipeline p(nlohmann::json::array(
        {{{"sku", "MOUSE-001"}, {"name", "Mouse"}, {"unit_price", "29.99"}, {"stock", 1000000}}}));
    p.start_inventory_process();
    p.order_port = free_port();
    p.extra_env["SHUTDOWN_TIMEOUT"] = "15s";
    // Both passing states are held until a caller has seen them (FAULT_INJECT startup-hold and
    // drain-hold): the start waits for a /readyz that says "starting", the drain for a /readyz
    // that says "draining" and a POST refused 503, so a busy machine cannot make them too short
    // to observe. Nothing else of the drain changes.
    const std::map<std::string, std::string> hold_states{
        {"FAULT_INJECT", "order-service:startup-hold:1,order-service:drain-hold:1"}};

    // /readyz as a load balancer sees it: every distinct state in order, from the first try.
    enum class Seen { kDown, kStarting, kReady, kDraining, kOtherNotReady };
    std::mutex seen_mu;
    std::vector<Seen> seen;
    std::atomic<bool> watching{true};
    auto note = [&](Seen s) {
        std::lock_guard lock(seen_mu);
        if (seen.empty() || seen.back() != s) seen.push_back(s);
    };
    std::thread watcher([&] {
        const std::string url = p.order_url("/readyz");
        while (watching) {
            try {
                auto r = http_request("GET", url, {}, {}, std::chrono::seconds(2));
                if (r.status == 200) {
                    note(Seen::kReady);
                } else {
                    const auto checks = r.json()["checks"];
                    const std::string lifecycle = checks.value("lifecycle", "");
                    if (lifecycle.rfind("draining", 0) == 0) {
                        note(Seen::kDraining);
                    } else if (checks.value("startup", "") != "done") {
                        note(Seen::kStarting);
                    } else {
                        note(Seen::kOtherNotReady);
                    }
                }
            } catch (const std::exception&) {
                note(Seen::kDown);
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
    });
    OnExit stop_watcher{[&] {
        watching = false;
        if (watcher.joinable()) watcher.join();
    }};
    p.start_order_process(hold_states, /*wait=*/false);
    Pipeline::wait_ready(p.order_port);

    // Load: 12 clients, each order with a customer id of its own so that every answer can be
    // matched with what Kafka holds.
    struct Answer {
        std::string customer;
        long status = 0;  // 0: no answer (connection refused or reset)
        std::string order_id;
        bool retry_after = false;
    };
    std::mutex answers_mu;
    std::vector<Answer> answers;
    std::atomic<bool> loading{true};
    std::atomic<int> accepted{0};
    std::vector<std::thread> clients;
    for (int c = 0; c < 12; ++c) {
        clients.emplace_back([&, c] {
            for (int n = 0; loading; ++n) {
                Answer a;
                a.customer = "drain-" + std::to_string(c) + "-" + std::to_string(n);
                auto body = Pipeline::order_body({{"MOUSE-001", 1}});
                body["customer_id"] = a.customer;
                try {
                    auto r =
                        http_request("POST", p.order_url("/orders"), body.dump(),
                                     {"Content-Type: application/json"}, std::chrono::seconds(40));
                    a.status = r.status;
                    if (r.status == 201) {
                        a.order_id = r.json()["order_id"];
                        ++accepted;
                    }
                    a.retry_after = r.headers.contains("retry-after");
                } catch (const std::exception&) {
                    std::this_thread::sleep_for(std::chrono::milliseconds(5));
                }
                std::lock_guard lock(answers_mu);
                answers.push_back(std::move(a));
            }
        });
    }
    OnExit stop_clients{[&] {
        loading = false;
        for (auto& t : clients)
            if (t.joinable()) t.join();
    }};
    REQUIRE(eventually([&] { return accepted >= 300; }, std::chrono::seconds(60)));

    const auto signalled = std::chrono::steady_clock::now();
    REQUIRE(::kill(p.order_process->pid(), SIGTERM) == 0);
    const auto code = p.order_process->wait_exit(std::chrono::seconds(20));
    const auto drain = std::chrono::steady_clock::now() - signalled;
    {
        INFO("order-service's last lines:\n"
             << run_command("tail -n 15 " + p.dir.path() + "/order-service.log").second);
        CHECK(code == std::optional<int>(0));
    }
    CHECK(drain < std::chrono::seconds(15));  // SHUTDOWN_TIMEOUT
    loading = false;
    for (auto& t : clients) t.join();

    // The restarted service carries on where the first one stopped.
    p.start_order_process();
    watching = false;
    watcher.join();
    const auto after = p.place({{"MOUSE-001", 1}});
    CHECK(p.wait_terminal(after)["status"] == "CONFIRMED");

    {
        std::lock_guard lock(seen_mu);
        auto at = [&](Seen s, std::size_t from) {
            for (std::size_t i = from; i < seen.size(); ++i)
                if (seen[i] == s) return i;
            return seen.size();
        };
        const auto starting = at(Seen::kStarting, 0);
        const auto ready = at(Seen::kReady, starting);
        const auto draining = at(Seen::kDraining, ready);
        const auto down = at(Seen::kDown, draining);
        INFO("readyz states seen: " << [&] {
            std::string s;
            for (auto v : seen) s += std::to_string(static_cast<int>(v)) + " ";
            return s;
        }());
        CHECK(starting < seen.size());
        CHECK(ready < seen.size());
        CHECK(draining < seen.size());
        CHECK(down < seen.size());
    }

    // What Kafka holds, matched with what each client was told.
    std::map<std::string, std::vector<std::string>> created;  // customer → order ids
    for (const auto& e : p.events("orders.events", static_cast<std::size_t>(accepted.load()))) {
        if (e.type == "ORDER_CREATED") {
            created[e.data.value("customer_id", "")].push_back(e.subject);
        }
    }
    std::map<std::string, int> reserve_requests;
    for (const auto& e : p.events("inventory.requests")) ++reserve_requests[e.subject];
    std::size_t ok = 0;
    std::size_t refused = 0;
    for (const auto& a : answers) {
        INFO(a.customer << " answered " << a.status);
        if (a.status == 201) {
            ++ok;
            REQUIRE(created[a.customer].size() == 1);
            CHECK(created[a.customer][0] == a.order_id);
            CHECK(reserve_requests[a.order_id] == 1);
            CHECK(p.wait_terminal(a.order_id)["status"] == "CONFIRMED");
        } else if (a.status == 503) {
            ++refused;
            CHECK(a.retry_after);
            CHECK_FALSE(created.contains(a.customer));
        } else if (a.status != 0) {
            FAIL("unexpected answer " << a.status);
        }
    }
    // Every order in Kafka was asked for once (a connection cut mid-drain may have lost its
    // answer, never its order).
    for (const auto& [customer, ids] : created) CHECK(ids.size() == 1);
    CHECK(refused > 0);  // the drain was really under load: some POSTs met it
    WARN("drain took " << std::chrono::duration_cast<std::chrono::milliseconds>(drain).count()
                       << " ms; " << ok << " orders answered 201, " << refused
                       << " answered 503 during the drain");
}

TEST_CASE("a drain that hangs: SHUTDOWN_TIMEOUT exits 1, and so does a second SIGTERM at once",
          "[operations][drain][kafka]") {
    Pipeline p;
    // The stop hangs once draining (FAULT_INJECT drain-stall): /readyz is seen draining, then
    // the watchdog ends it.
    p.start_order_process(
        {{"SHUTDOWN_TIMEOUT", "2s"}, {"FAULT_INJECT", "order-service:drain-stall:1"}});
    const auto log = p.dir.path() + "/order-service.log";
    const auto signalled = std::chrono::steady_clock::now();
    auto draining = [&] {
        auto r = http_request("GET", p.order_url("/readyz"));
        return r.status == 503 &&
               r.json()["checks"].value("lifecycle", "").rfind("draining", 0) == 0;
    };
    REQUIRE(::kill(p.order_process->pid(), SIGTERM) == 0);
    REQUIRE(eventually(draining));
    auto post = http_request("POST", p.order_url("/orders"),
                             Pipeline::order_body({{"MOUSE-001", 1}}).dump(),
                             {"Content-Type: application/json"});
    CHECK(post.status == 503);
    CHECK(post.headers.count("retry-after") == 1);
    CHECK(p.order_process->wait_exit(std::chrono::seconds(20)) == std::optional<int>(1));
    const auto took = std::chrono::steady_clock::now() - signalled;
    CHECK(took >= std::chrono::seconds(2));
    CHECK(took < std::chrono::seconds(10));
    CHECK(run_command("grep -c 'exceeded SHUTDOWN_TIMEOUT' " + log).second == "1\n");

    // Restarted (it loses nothing: nothing was half done), then stopped twice in a row.
    p.start_order_process(
        {{"SHUTDOWN_TIMEOUT", "60s"}, {"FAULT_INJECT", "order-service:drain-stall:1"}});
    REQUIRE(::kill(p.order_process->pid(), SIGTERM) == 0);
    REQUIRE(eventually(draining));  // the first signal was taken (two at once would merge)
    REQUIRE(::kill(p.order_process->pid(), SIGTERM) == 0);
    CHECK(p.order_process->wait_exit(std::chrono::seconds(10)) == std::optional<int>(1));
    CHECK(run_command("grep -c 'second signal while draining' " + log).second == "1\n");
}
