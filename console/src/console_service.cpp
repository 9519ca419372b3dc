#include "console_service.hpp"

#include "http_get.hpp"
#include "live.hpp"
#include "timeline.hpp"

#include "dlq_kafka.hpp"
#include "orderpipe/common/logging.hpp"
#include "orderpipe/contract/topics.hpp"
#include "orderpipe/http/problem.hpp"
#include "orderpipe/kafka/consumer.hpp"

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>

#ifndef ORDERPIPE_CONSOLE_ASSETS_DIR
#define ORDERPIPE_CONSOLE_ASSETS_DIR ""
#endif

namespace orderpipe::console {

using nlohmann::json;

namespace {

/// A dead letter's list of one page: beyond it, `truncated` (and a filter narrows it).
constexpr std::size_t kDefaultLimit = 500;
constexpr std::size_t kMaxLimit = 5000;
constexpr std::size_t kMaxKeys = 10000;
/// The live view polls every second: a service that does not answer within this is shown so.
constexpr std::chrono::milliseconds kLiveTimeout{1500};

void check_url(EnvReader& env, const char* name, const std::string& url) {
    if (url.rfind("http://", 0) != 0 && url.rfind("https://", 0) != 0) {
        env.problem(std::string(name) + "=\"" + url + "\": expected an http:// or https:// URL");
    }
}

/// An order id as a path segment of another service's URL: the ids this pipeline makes need no
/// escaping; anything else is refused rather than passed on.
bool plain_id(const std::string& id) {
    if (id.empty() || id.size() > 128) return false;
    for (const char c : id) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                        (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
        if (!ok) return false;
    }
    return true;
}

std::string content_type_of(const std::filesystem::path& p) {
    const auto ext = p.extension().string();
    if (ext == ".html") return "text/html; charset=utf-8";
    if (ext == ".js") return "text/javascript; charset=utf-8";
    if (ext == ".css") return "text/css; charset=utf-8";
    if (ext == ".map" || ext == ".json") return "application/json";
    if (ext == ".svg") return "image/svg+xml";
    if (ext == ".png") return "image/png";
    if (ext == ".ico") return "image/x-icon";
    return "application/octet-stream";
}

/// What every page and asset carries: nothing but this origin runs or loads in it, and no other
/// site frames it.
void add_page_headers(http::Response& r) {
    r.headers.emplace_back("Content-Security-Policy",
                           "default-src 'self'; img-src 'self' data:; style-src 'self' "
                           "'unsafe-inline'; object-src 'none'; base-uri 'none'; "
                           "frame-ancestors 'none'; form-action 'self'");
    r.headers.emplace_back("X-Content-Type-Options", "nosniff");
    r.headers.emplace_back("Referrer-Policy", "no-referrer");
    r.headers.emplace_back("Cache-Control", "no-cache");
}

/// A non-negative integer query parameter; nullopt when absent. @throws std::invalid_argument
template <typename T>
std::optional<T> number_param(const http::Request& req, const std::string& name) {
    const auto it = req.query.find(name);
    if (it == req.query.end() || it->second.empty()) return std::nullopt;
    T v{};
    const auto& s = it->second;
    const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || p != s.data() + s.size() || v < 0) {
        throw std::invalid_argument(name + " \"" + s + "\": expected a non-negative integer");
    }
    return v;
}

/// The filters of a DLQ request: query parameters (GET) or a JSON object (an action's body).
/// @throws std::invalid_argument naming what is wrong
dlqctl::Filters filters_of(const std::map<std::string, std::string>& values,
                           const http::Request& numbers) {
    dlqctl::FilterText t;
    const auto get = [&](const char* k) {
        const auto it = values.find(k);
        return it == values.end() ? std::string() : it->second;
    };
    t.since = get("since");
    t.until = get("until");
    t.order_id = get("order_id");
    t.reason = get("reason");
    t.error_contains = get("error_contains");
    t.status = get("status");
    t.partition = number_param<std::int32_t>(numbers, "partition");
    t.offset = number_param<std::int64_t>(numbers, "offset");
    return dlqctl::parse_filters(t, std::chrono::system_clock::now(), "");
}

json dead_letter_json(const dlqctl::Entry& e) {
    auto j = dlqctl::entry_json(e);
    j["ledger_key"] = e.key();
    j["age_seconds"] = e.failed_at ? std::chrono::duration_cast<std::chrono::seconds>(
                                         std::chrono::system_clock::now() - *e.failed_at)
                                         .count()
                                   : 0;
    if (!e.record.value) {
        j["value"] = nullptr;
    } else {
        auto parsed = json::parse(*e.record.value, nullptr, /*allow_exceptions=*/false);
        j["value"] = parsed.is_discarded() ? json(*e.record.value) : std::move(parsed);
    }
    return j;
}

}  // namespace

ConsoleServiceConfig ConsoleServiceConfig::from_env(EnvReader& env) {
    ConsoleServiceConfig c;
    c.settings = runtime::ServiceSettings::read(env, "orderpipe-console", 8084);
    const auto url = [&](const char* name, std::string& into) {
        into = env.string(name, into);
        check_url(env, name, into);
    };
    url("CONSOLE_ORDER_URL", c.order_url);
    url("CONSOLE_INVENTORY_URL", c.inventory_url);
    url("CONSOLE_NOTIFICATION_URL", c.notification_url);
    url("CONSOLE_ANALYTICS_URL", c.analytics_url);
    c.jaeger_url = env.string("CONSOLE_JAEGER_URL", "");
    if (!c.jaeger_url.empty()) check_url(env, "CONSOLE_JAEGER_URL", c.jaeger_url);
    while (c.jaeger_url.ends_with('/')) c.jaeger_url.pop_back();
    c.upstream_timeout = env.millis("CONSOLE_UPSTREAM_TIMEOUT_MS", c.upstream_timeout,
                                    std::chrono::milliseconds(100), std::chrono::minutes(5));
    if (const auto file = env.string("CONSOLE_OPERATORS_FILE", ""); !file.empty()) {
        std::error_code ec;
        if (!std::filesystem::exists(file, ec)) {
            // Not there (an optional Secret not created, no file in the compose directory):
            // read-only, said at start. A file that is there must be right.
            c.operators_missing = file;
        } else {
            try {
                c.operators = Operators::load(file);
            } catch (const std::invalid_argument& e) {
                env.problem(std::string("CONSOLE_OPERATORS_FILE: ") + e.what());
            }
        }
    }
    c.assets_dir = env.string("CONSOLE_ASSETS_DIR", ORDERPIPE_CONSOLE_ASSETS_DIR);
    c.max_replays = static_cast<int>(env.integer("DLQ_MAX_REPLAYS", 3, 1, 1000));
    return c;
}

ConsoleService::ConsoleService(Config config)
    : config_(std::move(config)), runtime_(std::make_unique<runtime::Runtime>(config_.settings)) {}

ConsoleService::~ConsoleService() { stop(); }

void ConsoleService::route(const char* method, const char* path, runtime::BlockingWork& work,
                           Handler h) {
    runtime_->route(method, path, [this, &work, h](http::Request&& r, const http::Responder& d) {
        work.submit(std::move(r), d, [this, h](http::Request&& rr, const http::Responder& dd) {
            (this->*h)(std::move(rr), dd);
        });
    });
}

void ConsoleService::start() {
    load_assets();
    if (!config_.operators_missing.empty()) {
        log::warn("CONSOLE_OPERATORS_FILE does not exist: the console is read-only",
                  {{"file", config_.operators_missing}});
    }
    auto& rt = *runtime_;
    for (const char* page : {"/", "/orders/{order_id}", "/dlq/{topic}", "/search"}) {
        rt.route("GET", page, [this](http::Request&& r, const http::Responder& d) {
            handle_page(std::move(r), d);
        });
    }
    rt.route("GET", "/assets/{file}", [this](http::Request&& r, const http::Responder& d) {
        handle_asset(std::move(r), d);
    });
    rt.route("GET", "/api/config", [this](http::Request&& r, const http::Responder& d) {
        handle_config(std::move(r), d);
    });
    rt.route("GET", "/api/whoami", [this](http::Request&& r, const http::Responder& d) {
        handle_whoami(std::move(r), d);
    });
    route("GET", "/api/live", live_, &ConsoleService::handle_live);
    route("GET", "/api/orders/{order_id}/timeline", reads_, &ConsoleService::handle_timeline);
    route("GET", "/api/search", reads_, &ConsoleService::handle_search);
    route("GET", "/api/dlq/{topic}", reads_, &ConsoleService::handle_dlq);
    for (const char* action : {"/api/dlq/{topic}/replay", "/api/dlq/{topic}/discard"}) {
        route("POST", action, actions_, &ConsoleService::handle_action);
    }
    reads_.start();
    live_.start();
    actions_.start();
    rt.start();
}

void ConsoleService::stop() {
    runtime_->stop();
    reads_.stop();
    live_.stop();
    actions_.stop();
}

void ConsoleService::load_assets() {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (config_.assets_dir.empty() || !fs::is_directory(config_.assets_dir, ec)) {
        log::warn("the console's page is not built: only its JSON API answers",
                  {{"assets_dir", config_.assets_dir}});
        return;
    }
    for (const auto& f : fs::directory_iterator(config_.assets_dir, ec)) {
        if (!f.is_regular_file()) continue;
        std::ifstream in(f.path(), std::ios::binary);
        std::stringstream body;
        body << in.rdbuf();
        assets_[f.path().filename().string()] = {content_type_of(f.path()), body.str()};
    }
    log::info("console page loaded",
              {{"assets_dir", config_.assets_dir}, {"files", assets_.size()}});
}

void ConsoleService::handle_page(http::Request&& req, const http::Responder& respond) {
    if (!assets_.contains("index.html")) {
        respond(http::problem(503, "Service Unavailable",
                              "the console's page is not built (CONSOLE_ASSETS_DIR=\"" +
                                  config_.assets_dir + "\" has no index.html); its /api/ answers"));
        return;
    }
    req.path_params["file"] = "index.html";  // every view is the one page, routed in the browser
    handle_asset(std::move(req), respond);
}

void ConsoleService::handle_asset(http::Request&& req, const http::Responder& respond) {
    const auto it = assets_.find(req.path_params["file"]);  // only names read at start
    if (it == assets_.end()) {
        respond(http::problem(404, "Not Found", "no asset " + req.path_params["file"]));
        return;
    }
    http::Response r;
    r.content_type = it->second.content_type;
    r.body = it->second.body;
    add_page_headers(r);
    respond(std::move(r));
}

void ConsoleService::handle_config(http::Request&&, const http::Responder& respond) {
    json dlqs = json::array();
    for (const auto& t : contract::dlq_topics()) dlqs.push_back(t);
    respond(http::Response::json(
        200, {{"jaeger_url", config_.jaeger_url.empty() ? json() : json(config_.jaeger_url)},
              {"dlq_topics", std::move(dlqs)},
              {"max_replays", config_.max_replays},
              {"operators", !config_.operators.empty()}}));
}

void ConsoleService::handle_whoami(http::Request&& req, const http::Responder& respond) {
    const auto user = config_.operators.who(req.header("Authorization").value_or(""));
    if (!user) {
        auto r = http::problem(401, "Unauthorized", "no operator token, or not a known one");
        r.headers.emplace_back("WWW-Authenticate", "Bearer");
        respond(std::move(r));
        return;
    }
    respond(http::Response::json(200, {{"user", *user}}));
}

void ConsoleService::handle_live(http::Request&&, const http::Responder& respond) {
    const auto timeout = std::min(config_.upstream_timeout, kLiveTimeout);
    std::vector<ServiceAnswers> services;
    for (const auto& [name, url] : std::vector<std::pair<std::string, std::string>>{
             {"order-service", config_.order_url},
             {"inventory-service", config_.inventory_url},
             {"notification-service", config_.notification_url},
             {"analytics-service", config_.analytics_url}}) {
        ServiceAnswers s;
        s.name = name;
        s.url = url;
        if (const auto ready = http_get(url + "/readyz", timeout, s.error)) {
            s.readyz_status = ready->status;
            s.readyz_body = ready->body;
            std::string ignored;
            if (const auto m = http_get(url + "/metrics", timeout, ignored);
                m && m->status == 200) {
                s.metrics = m->body;
            }
        }
        services.push_back(std::move(s));
    }
    auto out = live_json(services);
    out["time_ms"] = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    std::string error;
    const auto metrics = http_get(config_.analytics_url + "/api/metrics", timeout, error);
    out["metrics"] = nullptr;
    if (!metrics || metrics->status != 200) {
        out["metrics_error"] = "the analytics-service's /api/metrics did not answer: " +
                               (metrics ? "HTTP " + std::to_string(metrics->status) : error);
    } else {
        out["metrics"] = json::parse(metrics->body, nullptr, /*allow_exceptions=*/false);
        if (out["metrics"].is_discarded()) {
            out["metrics"] = nullptr;
            out["metrics_error"] = "the analytics-service's /api/metrics is not JSON";
        }
    }
    respond(http::Response::json(200, out));
}

void ConsoleService::handle_timeline(http::Request&& req, const http::Responder& respond) {
    const std::string order_id = req.path_params["order_id"];
    if (!plain_id(order_id)) {
        respond(http::problem(400, "Invalid order id",
                              "an order id is 1 to 128 letters, digits, '-', '_' or '.'"));
        return;
    }
    std::string error;
    const auto index = http_get(config_.analytics_url + "/api/orders/" + order_id + "/records",
                                config_.upstream_timeout, error);
    if (!index || index->status != 200) {
        respond(http::problem(502, "Bad Gateway",
                              "the analytics-service's index did not answer: " +
                                  (index ? "HTTP " + std::to_string(index->status) : error)));
        return;
    }
    const auto listed = json::parse(index->body, nullptr, /*allow_exceptions=*/false);
    if (listed.is_discarded() || !listed.contains("records") || !listed["records"].is_array()) {
        respond(http::problem(502, "Bad Gateway", "the analytics-service's index is not JSON"));
        return;
    }
    std::vector<kafka::TopicPartitionOffset> positions;
    for (const auto& r : listed["records"]) {
        positions.push_back(
            {r.value("topic", ""), r.value("partition", 0), r.value("offset", std::int64_t{-1})});
    }
    const auto records =
        kafka::read_at(runtime_->kafka_client("reader"), positions, config_.upstream_timeout);
    json state = nullptr;
    const auto order =
        http_get(config_.order_url + "/orders/" + order_id, config_.upstream_timeout, error);
    if (order && order->status == 200) {
        state = json::parse(order->body, nullptr, /*allow_exceptions=*/false);
        if (state.is_discarded()) state = nullptr;
    }
    if (listed["records"].empty() && state.is_null()) {
        respond(http::problem(404, "Not Found",
                              "no order " + order_id + " in the read model or on any topic"));
        return;
    }
    auto out = timeline_json(order_id, listed["records"], records, state);
    out["truncated"] = listed.value("truncated", false);
    if (!order) out["state_error"] = "the order-service did not answer: " + error;
    respond(http::Response::json(200, out));
}

void ConsoleService::handle_search(http::Request&& req, const http::Responder& respond) {
    const auto q = req.query["q"];
    if (q.empty() || q.size() > 254) {
        respond(http::problem(400, "Invalid search",
                              "q: an order id, a customer id or an email, 1 to 254 characters"));
        return;
    }
    std::string error;
    auto found = http_get(config_.analytics_url + "/api/orders?q=" + url_encode(q),
                          config_.upstream_timeout, error);
    if (!found || found->status != 200) {
        respond(http::problem(502, "Bad Gateway",
                              "the analytics-service's search did not answer: " +
                                  (found ? "HTTP " + std::to_string(found->status) : error)));
        return;
    }
    auto out = json::parse(found->body, nullptr, /*allow_exceptions=*/false);
    if (out.is_discarded() || !out.is_object()) {
        respond(http::problem(502, "Bad Gateway", "the analytics-service's search is not JSON"));
        return;
    }
    out["query"] = q;
    respond(http::Response::json(200, out));
}

namespace {

dlqctl::Connection connection_of(const runtime::ServiceSettings& s,
                                 std::chrono::milliseconds timeout) {
    dlqctl::Connection c;
    c.bootstrap = s.bootstrap_servers;
    c.prefix = s.topic_prefix;
    c.kafka_properties = s.kafka_properties;
    c.timeout = timeout;
    c.client_id = s.service + "-" + s.instance_id;
    return c;
}

}  // namespace

void ConsoleService::handle_dlq(http::Request&& req, const http::Responder& respond) {
    dlqctl::Filters filters;
    std::size_t limit = kDefaultLimit;
    try {
        filters = filters_of(req.query, req);
        if (const auto l = number_param<std::size_t>(req, "limit")) {
            if (*l < 1 || *l > kMaxLimit) {
                throw std::invalid_argument("limit \"" + std::to_string(*l) + "\": expected 1 to " +
                                            std::to_string(kMaxLimit));
            }
            limit = *l;
        }
    } catch (const std::invalid_argument& e) {
        respond(http::problem(400, "Invalid filter", e.what()));
        return;
    }
    dlqctl::Dlq dlq;
    try {
        dlq = dlqctl::load(connection_of(runtime_->settings(), config_.upstream_timeout),
                           req.path_params["topic"]);
    } catch (const dlqctl::NotADeadLetterTopic& e) {
        respond(http::problem(404, "Not Found", e.what()));
        return;
    } catch (const std::runtime_error& e) {
        respond(http::with_retry_after(
            http::problem(503, "Service Unavailable", std::string("Kafka: ") + e.what()), 1));
        return;
    }
    const auto chosen = dlqctl::select(dlq.entries, filters);
    json entries = json::array();
    for (std::size_t i = 0; i < chosen.size() && i < limit; ++i) {
        entries.push_back(dead_letter_json(*chosen[i]));
    }
    respond(http::Response::json(200, {{"topic", dlq.topic},
                                       {"total", chosen.size()},
                                       {"truncated", chosen.size() > limit},
                                       {"entries", std::move(entries)}}));
}

void ConsoleService::handle_action(http::Request&& req, const http::Responder& respond) {
    const bool replay = req.path.ends_with("/replay");
    // Only the page's own scripts may act: a browser sends Origin on every cross-site POST.
    if (const auto origin = req.header("Origin")) {
        const auto host = req.header("Host").value_or("");
        if (*origin != "http://" + host && *origin != "https://" + host) {
            respond(http::problem(403, "Forbidden",
                                  "cross-origin request refused (Origin " + *origin + ")"));
            return;
        }
    }
    if (config_.operators.empty()) {
        respond(http::problem(403, "Forbidden",
                              "no operator is configured (CONSOLE_OPERATORS_FILE): the console "
                              "is read-only"));
        return;
    }
    const auto user = config_.operators.who(req.header("Authorization").value_or(""));
    if (!user) {
        auto r = http::problem(401, "Unauthorized",
                               std::string(replay ? "replay" : "discard") +
                                   " needs an operator token (Authorization: Bearer <token>)");
        r.headers.emplace_back("WWW-Authenticate", "Bearer");
        respond(std::move(r));
        return;
    }
    if (!req.has_json_body()) {
        respond(http::problem(415, "Unsupported Media Type", "expected application/json"));
        return;
    }
    const auto body = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
    std::map<std::string, std::string> filter_values;
    http::Request numbers;  // the filters' numbers, read as query parameters are
    std::set<std::string> keys;
    bool dry_run = true;
    bool force = false;
    std::string note;
    try {
        if (!body.is_object()) throw std::invalid_argument("the body is not a JSON object");
        dry_run = body.value("dry_run", true);
        force = body.value("force", false);
        note = body.value("note", "");
        if (note.size() > 1000) throw std::invalid_argument("note: at most 1000 characters");
        if (body.contains("keys")) {
            if (!body["keys"].is_array() || body["keys"].size() > kMaxKeys) {
                throw std::invalid_argument("keys: expected an array of at most " +
                                            std::to_string(kMaxKeys) + " ledger keys");
            }
            for (const auto& k : body["keys"]) keys.insert(k.get<std::string>());
        }
        if (body.contains("filters")) {
            if (!body["filters"].is_object()) throw std::invalid_argument("filters: not an object");
            for (const auto& [k, v] : body["filters"].items()) {
                const auto text = v.is_string() ? v.get<std::string>() : v.dump();
                (k == "partition" || k == "offset" ? numbers.query : filter_values)[k] = text;
            }
        }
        if (!replay && note.empty()) throw std::invalid_argument("note: a discard says why");
    } catch (const json::exception& e) {
        respond(http::problem(400, "Invalid request", std::string("the body: ") + e.what()));
        return;
    } catch (const std::invalid_argument& e) {
        respond(http::problem(400, "Invalid request", e.what()));
        return;
    }
    dlqctl::Filters filters;
    try {
        filters = filters_of(filter_values, numbers);
    } catch (const std::invalid_argument& e) {
        respond(http::problem(400, "Invalid filter", e.what()));
        return;
    }
    const auto c = connection_of(runtime_->settings(), config_.upstream_timeout);
    const std::string topic = req.path_params["topic"];
    if (!contract::is_dlq_topic(topic)) {
        respond(http::problem(404, "Not Found", topic + " is not a dead-letter topic"));
        return;
    }
    try {
        // Fence every other writer of this DLQ's resolutions (dlqctl or another console) before
        // reading the ledger: see dlqctl::LedgerWriter. A dry run writes nothing.
        std::optional<dlqctl::LedgerWriter> writer;
        if (!dry_run) writer.emplace(c, c.prefix + topic);
        const auto dlq = dlqctl::load(c, topic);
        auto chosen = dlqctl::select(dlq.entries, filters);
        if (!keys.empty()) {
            std::set<std::string> unknown = keys;
            std::erase_if(chosen, [&](const dlqctl::Entry* e) {
                unknown.erase(e->key());
                return !keys.contains(e->key());
            });
            if (!unknown.empty()) {
                respond(http::problem(404, "Not Found",
                                      "no dead letter " + *unknown.begin() + " in " + dlq.topic +
                                          " (matching the filters)"));
                return;
            }
        }
        const auto plan = replay ? dlqctl::plan_replay(chosen, {config_.max_replays, force, ""})
                                 : dlqctl::plan_discard(chosen);
        const auto action =
            replay ? contract::DlqAction::kReplayed : contract::DlqAction::kDiscarded;
        const auto units = dlqctl::plan_records(c, plan, action, *user, note);
        json planned = json::array();
        for (const auto& step : plan.steps) {
            json p = {{"ledger_key", step.entry->key()},
                      {"order_id", step.entry->record.key.value_or("")},
                      {"reason", step.entry->reason}};
            if (replay) {
                p["to"] = step.to;
                p["replay"] = step.entry->replay_count + 1;
            }
            planned.push_back(std::move(p));
        }
        const std::string verb = replay ? "replayed" : "discarded";
        std::size_t done = 0;
        std::string message;
        if (units.empty()) {
            message = "nothing to " + std::string(replay ? "replay" : "discard");
        } else if (dry_run) {
            message = std::to_string(units.size()) + " record(s) would be " + verb +
                      "; nothing was written";
        } else {
            done = dlqctl::write_transactions(*writer, verb, units, 0, [&](const std::string& s) {
                log::warn("console DLQ action", {{"topic", dlq.topic}, {"detail", s}});
            });
            message = verb + " " + std::to_string(done) + " of " + std::to_string(units.size()) +
                      " record(s)";
            log::info("dead letters " + verb + " from the console", {{"user", *user},
                                                                     {"topic", dlq.topic},
                                                                     {"records", done},
                                                                     {"planned", units.size()},
                                                                     {"note", note}});
        }
        respond(http::Response::json(done == units.size() || dry_run ? 200 : 500,
                                     {{"topic", dlq.topic},
                                      {"action", replay ? "replay" : "discard"},
                                      {"dry_run", dry_run},
                                      {"user", *user},
                                      {"planned", std::move(planned)},
                                      {"skipped",
                                       {{"resolved", plan.skipped_resolved},
                                        {"replay_limit", plan.skipped_replay_limit},
                                        {"no_original_topic", plan.skipped_no_original_topic}}},
                                      {"done", done},
                                      {"message", message}}));
    } catch (const std::runtime_error& e) {
        respond(http::with_retry_after(
            http::problem(503, "Service Unavailable", std::string("Kafka: ") + e.what()), 1));
    }
}

}  // namespace orderpipe::console
