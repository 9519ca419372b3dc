// fake-email-provider: the email provider's HTTP JSON API (docs/CONTRACT.md "The saga", step 4)
// played by a test double that can be told to fail. Used by scripts/run.sh, the tests and the
// compose file.
//
//   POST /send                    {"to","subject","text","order_id","notification_id"} with
//                                 Idempotency-Key: 202 accepted; a key seen before: 200
//                                 {"status":"duplicate"} (counted, not sent again) — or, with
//                                 --no-dedupe (like many real email APIs), 202 and sent again
//                                 (counted in "duplicates" and the key's "sent_again_at",
//                                 with the Orderpipe-Unanswered-Attempts the sender declared in
//                                 "sent_again_unanswered_before")
//   GET  /sent                    what was accepted, with the arrival time of every attempt
//   GET  /sent/{notification_id}  one notification
//   GET  /requests                every request in order, with the answer it got
//   POST /admin/rules             add failure rules (an object or an array), see below
//   GET  /admin/rules             the rules and how often each applied
//   DELETE /admin/rules           back to always accepting
//   POST /admin/reset             forget rules, requests and sent mail
//
// A rule: {"match": {"order_id"|"to"|"notification_id": "..."} (optional: every request),
//          "answer": "ok"|"400"|"408"|"429"|"500"|"503"|"timeout"|"reset" (default "500"),
//          "sequence": ["timeout","503","500"] (answers in turn; then the rule is used up),
//          "times": N (apply to N requests, then used up), "rate": 0..1 (share of requests
//          it strikes), "retry_after": seconds (with 429/503), "latency_ms": N (delay)}
// The first rule that matches and is not used up decides. "timeout" never answers (the client
// gives up); "reset" closes the connection without an answer.
//
// Environment: HTTP_PORT (8025), LOG_LEVEL, PROVIDER_DEDUPE (on). Options: --port N,
// --no-dedupe.

#include "orderpipe/common/json.hpp"
#include "orderpipe/common/logging.hpp"
#include "orderpipe/common/time.hpp"
#include "orderpipe/http/problem.hpp"
#include "orderpipe/http/server.hpp"

#include <prometheus/registry.h>
#include <CLI/CLI.hpp>
#include <iostream>

#include <pthread.h>

#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <map>
#include <mutex>
#include <queue>
#include <random>
#include <set>
#include <thread>

namespace {

using nlohmann::json;
using orderpipe::http::Request;
using orderpipe::http::Responder;
using orderpipe::http::Response;
using Clock = std::chrono::steady_clock;

struct Rule {
    json match = json::object();
    std::vector<std::string> sequence;
    std::string answer = "500";
    long times = -1;  // -1: unlimited
    double rate = 1.0;
    int retry_after = -1;
    int latency_ms = 0;
    long applied = 0;

    bool used_up() const {
        if (!sequence.empty()) return applied >= static_cast<long>(sequence.size());
        return times >= 0 && applied >= times;
    }
    bool matches(const json& body) const {
        for (const auto& [k, v] : match.items()) {
            if (!body.contains(k) || body[k] != v) return false;
        }
        return true;
    }
    json to_json() const {
        json j = {{"match", match},    {"answer", answer},           {"times", times},
                  {"rate", rate},      {"retry_after", retry_after}, {"latency_ms", latency_ms},
                  {"applied", applied}};
        if (!sequence.empty()) j["sequence"] = sequence;
        return j;
    }
};

/// Runs callbacks at a time (latency). One thread.
class Delayer {
  public:
    Delayer() : thread_([this] { run(); }) {}
    ~Delayer() {
        {
            std::lock_guard lock(mu_);
            stopping_ = true;
        }
        cv_.notify_all();
        thread_.join();
    }
    void at(Clock::time_point when, std::function<void()> fn) {
        {
            std::lock_guard lock(mu_);
            queue_.push({when, next_++, std::move(fn)});
        }
        cv_.notify_all();
    }

  private:
    struct Item {
        Clock::time_point when;
        std::uint64_t seq;
        std::function<void()> fn;
        bool operator>(const Item& o) const { return when != o.when ? when > o.when : seq > o.seq; }
    };
    void run() {
        std::unique_lock lock(mu_);
        while (!stopping_) {
            if (queue_.empty()) {
                cv_.wait(lock);
                continue;
            }
            if (queue_.top().when > Clock::now()) {
                cv_.wait_until(lock, queue_.top().when);
                continue;
            }
            auto fn = queue_.top().fn;
            queue_.pop();
            lock.unlock();
            fn();
            lock.lock();
        }
    }
    std::mutex mu_;
    std::condition_variable cv_;
    std::priority_queue<Item, std::vector<Item>, std::greater<>> queue_;
    std::uint64_t next_ = 0;
    bool stopping_ = false;
    std::thread thread_;  // last
};

class FakeProvider {
  public:
    explicit FakeProvider(bool dedupe) : dedupe_(dedupe) {}
    void route(orderpipe::http::Server& server) {
        server.route("POST", "/send", [this](Request&& r, Responder d) { send(std::move(r), d); });
        server.route("GET", "/sent", [this](Request&&, const Responder& d) {
            std::lock_guard lock(mu_);
            json list = json::array();
            for (const auto& [id, s] : sent_) list.push_back(s);
            d(Response::json(200, {{"accepted", list},
                                   {"count", sent_.size()},
                                   {"duplicates", duplicates_},
                                   {"deduplicates", dedupe_},
                                   {"requests", requests_.size()}}));
        });
        server.route("GET", "/sent/{id}", [this](Request&& r, const Responder& d) {
            std::lock_guard lock(mu_);
            auto it = sent_.find(r.path_params["id"]);
            if (it == sent_.end()) {
                d(orderpipe::http::problem(404, "Not sent", "nothing accepted for this id"));
                return;
            }
            d(Response::json(200, it->second));
        });
        server.route("GET", "/requests", [this](Request&&, const Responder& d) {
            std::lock_guard lock(mu_);
            d(Response::json(200, requests_));
        });
        server.route("POST", "/admin/rules",
                     [this](Request&& r, const Responder& d) { add_rules(r, d); });
        server.route("GET", "/admin/rules", [this](Request&&, const Responder& d) {
            std::lock_guard lock(mu_);
            json list = json::array();
            for (const auto& rule : rules_) list.push_back(rule.to_json());
            d(Response::json(200, list));
        });
        server.route("DELETE", "/admin/rules", [this](Request&&, const Responder& d) {
            std::lock_guard lock(mu_);
            rules_.clear();
            d(Response::json(200, {{"rules", 0}}));
        });
        server.route("POST", "/admin/reset", [this](Request&&, const Responder& d) {
            std::lock_guard lock(mu_);
            rules_.clear();
            sent_.clear();
            requests_ = json::array();
            attempts_.clear();
            duplicates_ = 0;
            d(Response::json(200, {{"reset", true}}));
        });
    }

  private:
    void add_rules(const Request& r, const Responder& d) {
        auto parsed = orderpipe::parse_untrusted_json(r.body);
        if (std::holds_alternative<orderpipe::JsonParseError>(parsed)) {
            d(orderpipe::http::problem(400, "Malformed JSON",
                                       std::get<orderpipe::JsonParseError>(parsed).message));
            return;
        }
        json body = std::get<json>(parsed);
        if (!body.is_array()) body = json::array({body});
        std::vector<Rule> added;
        for (const auto& j : body) {
            if (!j.is_object()) {
                d(orderpipe::http::problem(422, "Invalid rule", "a rule is a JSON object"));
                return;
            }
            Rule rule;
            rule.match = j.value("match", json::object());
            rule.answer = j.value("answer", rule.answer);
            if (j.contains("sequence"))
                rule.sequence = j["sequence"].get<std::vector<std::string>>();
            rule.times = j.value("times", rule.times);
            // parse_untrusted_json keeps a fraction as its source text: 0.3 arrives as "0.3".
            const json rate = j.value("rate", json(1));
            const auto share =
                rate.is_number() ? std::optional<double>(rate.get<double>()) : number_text(rate);
            if (!share || !(*share >= 0 && *share <= 1)) {  // NaN too
                d(orderpipe::http::problem(422, "Invalid rule",
                                           "rate must be a number from 0 to 1"));
                return;
            }
            rule.rate = *share;
            rule.retry_after = j.value("retry_after", rule.retry_after);
            rule.latency_ms = j.value("latency_ms", rule.latency_ms);
            for (const auto& a :
                 rule.sequence.empty() ? std::vector<std::string>{rule.answer} : rule.sequence) {
                if (!valid_answer(a)) {
                    d(orderpipe::http::problem(422, "Invalid rule",
                                               "unknown answer \"" + a + "\""));
                    return;
                }
            }
            added.push_back(std::move(rule));
        }
        std::lock_guard lock(mu_);
        for (auto& rule : added) rules_.push_back(std::move(rule));
        d(Response::json(201, {{"rules", rules_.size()}}));
    }

    static std::optional<double> number_text(const json& v) {
        if (!v.is_string()) return std::nullopt;
        const std::string text = v.get<std::string>();
        char* end = nullptr;
        const double d = std::strtod(text.c_str(), &end);
        if (text.empty() || end != text.c_str() + text.size()) return std::nullopt;
        return d;
    }

    static bool valid_answer(const std::string& a) {
        static const std::set<std::string> kAnswers = {"ok",  "400", "408",     "429",
                                                       "500", "503", "timeout", "reset"};
        return kAnswers.contains(a);
    }

    void send(Request&& r, const Responder& respond) {
        auto parsed = orderpipe::parse_untrusted_json(r.body);
        json body = std::holds_alternative<json>(parsed) ? std::get<json>(parsed) : json();
        const auto key = r.header("idempotency-key").value_or("");
        const long unanswered = std::strtol(
            r.header("orderpipe-unanswered-attempts").value_or("0").c_str(), nullptr, 10);
        std::string answer = "ok";
        int retry_after = -1;
        int latency = 0;
        std::lock_guard lock(mu_);
        const std::string id = body.is_object() ? body.value("notification_id", key) : key;
        const auto attempt = ++attempts_[id];
        for (auto& rule : rules_) {
            if (rule.used_up() || !rule.matches(body)) continue;
            if (rule.rate < 1.0 &&
                std::uniform_real_distribution<double>(0, 1)(rng_) >= rule.rate) {
                break;
            }
            answer = rule.sequence.empty() ? rule.answer
                                           : rule.sequence[static_cast<std::size_t>(rule.applied)];
            retry_after = rule.retry_after;
            latency = rule.latency_ms;
            ++rule.applied;
            break;
        }
        if (answer == "ok") {
            const bool complete = body.is_object() && body.contains("to") &&
                                  body.contains("subject") && body.contains("notification_id") &&
                                  !key.empty();
            if (!complete) answer = "400";
        }
        requests_.push_back({{"at", orderpipe::now_rfc3339()},
                             {"notification_id", id},
                             {"idempotency_key", key},
                             {"traceparent", r.header("traceparent").value_or("")},
                             {"order_id", body.is_object() ? body.value("order_id", "") : ""},
                             {"attempt", attempt},
                             {"unanswered_before", unanswered},
                             {"answer", answer}});
        Response response;
        if (answer == "ok") {
            if (sent_.contains(key)) {
                // The same key again after it was accepted: with deduplication it is answered
                // and not sent; without, a second email goes out. Either way it is counted, with
                // its time, for the checker's duplicate bound.
                ++duplicates_;
                auto& s = sent_[key];
                s["duplicates"] = s["duplicates"].get<long>() + 1;
                s["sent_again_at"].push_back(orderpipe::now_rfc3339());
                // The sender's own account: how many earlier attempts it never heard back from
                // (each may be one this provider took, answering too late).
                s["sent_again_unanswered_before"].push_back(unanswered);
                response = dedupe_ ? Response::json(200, {{"status", "duplicate"}, {"id", key}})
                                   : Response::json(202, {{"status", "accepted"}, {"id", key}});
            } else {
                sent_[key] = {{"notification_id", id},
                              {"order_id", body.value("order_id", "")},
                              {"to", body["to"]},
                              {"subject", body["subject"]},
                              {"text", body.value("text", "")},
                              {"accepted_at", orderpipe::now_rfc3339()},
                              {"attempts", attempt},
                              {"duplicates", 0},
                              {"sent_again_at", json::array()},
                              {"sent_again_unanswered_before", json::array()}};
                response = Response::json(202, {{"status", "accepted"}, {"id", key}});
            }
        } else if (answer == "timeout") {
            // Never answered: the client times out. Held (a dropped Responder would answer 500)
            // until the client goes away.
            const auto ticket = ++next_hold_;
            held_.emplace(ticket, respond);
            respond.on_cancel([this, ticket] {
                std::lock_guard hold_lock(mu_);
                held_.erase(ticket);
            });
            return;
        } else if (answer == "reset") {
            response.reset_connection = true;
        } else {
            const int status = std::stoi(answer);
            response =
                orderpipe::http::problem(status, "", "fake provider failure (" + answer + ")");
            if (retry_after >= 0 && (status == 429 || status == 503)) {
                response.headers.emplace_back("Retry-After", std::to_string(retry_after));
            }
        }
        if (latency > 0) {
            delayer_.at(Clock::now() + std::chrono::milliseconds(latency),
                        [respond, response] { respond(response); });
        } else {
            respond(std::move(response));
        }
    }

    const bool dedupe_;
    std::mutex mu_;
    std::vector<Rule> rules_;
    std::map<std::string, json> sent_;
    std::map<std::string, long> attempts_;
    json requests_ = json::array();
    long duplicates_ = 0;
    std::map<std::uint64_t, Responder> held_;  // "timeout" answers, until their client leaves
    std::uint64_t next_hold_ = 0;
    std::mt19937_64 rng_{std::random_device{}()};
    Delayer delayer_;
};

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"A fake email provider for orderpipe (docs/CONTRACT.md, \"The saga\")"};
    int port = 8025;
    if (const char* p = std::getenv("HTTP_PORT"); p != nullptr && *p != 0) port = std::atoi(p);
    app.add_option("--port", port, "port to listen on [HTTP_PORT, default 8025]")
        ->check(CLI::Range(0, 65535));
    bool dedupe = true;
    if (const char* d = std::getenv("PROVIDER_DEDUPE"); d != nullptr && *d != 0) {
        const std::string v = d;
        if (v != "on" && v != "off") {
            std::cerr << "fake-email-provider: PROVIDER_DEDUPE must be on or off, not \"" << v
                      << "\"\n";
            return 2;
        }
        dedupe = v == "on";
    }
    bool no_dedupe = false;
    app.add_flag("--no-dedupe", no_dedupe,
                 "send a key accepted before again, as providers without Idempotency-Key support "
                 "do [PROVIDER_DEDUPE=off]");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? 0 : 2;
    }
    const char* level = std::getenv("LOG_LEVEL");
    orderpipe::log::init("fake-email-provider", level != nullptr ? level : "info");
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);

    FakeProvider provider(dedupe && !no_dedupe);
    orderpipe::http::ServerOptions so;
    so.port = static_cast<std::uint16_t>(port);
    so.threads = 2;
    so.service_name = "fake-email-provider";
    orderpipe::http::Server server(so, std::make_shared<prometheus::Registry>());
    provider.route(server);
    try {
        server.start();
    } catch (const std::exception& e) {
        std::cerr << "fake-email-provider: " << e.what() << '\n';
        return 2;
    }
    orderpipe::log::info("fake email provider listening", {{"port", server.port()}});
    int sig = 0;
    sigwait(&signals, &sig);
    server.stop();
    return 0;
}
