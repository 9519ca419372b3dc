#include "console_service.hpp"

#include "http_get.hpp"
#include "timeline.hpp"

#include "dlq_kafka.hpp"
#include "orderpipe/common/logging.hpp"
#include "orderpipe/contract/topics.hpp"
#include "orderpipe/http/problem.hpp"
#include "orderpipe/kafka/consumer.hpp"

namespace orderpipe::console {

using nlohmann::json;

namespace {

constexpr std::size_t kMaxQueued = 64;

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

}  // namespace

ConsoleServiceConfig ConsoleServiceConfig::from_env(EnvReader& env) {
    ConsoleServiceConfig c;
    c.settings = runtime::ServiceSettings::read(env, "orderpipe-console", 8084);
    c.order_url = env.string("CONSOLE_ORDER_URL", c.order_url);
    check_url(env, "CONSOLE_ORDER_URL", c.order_url);
    c.analytics_url = env.string("CONSOLE_ANALYTICS_URL", c.analytics_url);
    check_url(env, "CONSOLE_ANALYTICS_URL", c.analytics_url);
    c.upstream_timeout = env.millis("CONSOLE_UPSTREAM_TIMEOUT_MS", c.upstream_timeout,
                                    std::chrono::milliseconds(100), std::chrono::minutes(5));
    return c;
}

ConsoleService::ConsoleService(Config config)
    : config_(std::move(config)), runtime_(std::make_unique<runtime::Runtime>(config_.settings)) {}

ConsoleService::~ConsoleService() { stop(); }

void ConsoleService::start() {
    auto& rt = *runtime_;
    rt.route("GET", "/api/orders/{order_id}/timeline",
             [this](http::Request&& r, const http::Responder& d) {
                 work(std::move(r), d, &ConsoleService::handle_timeline);
             });
    rt.route("GET", "/api/dlq/{topic}", [this](http::Request&& r, const http::Responder& d) {
        work(std::move(r), d, &ConsoleService::handle_dlq);
    });
    worker_ = std::thread([this] { run_work(); });
    rt.start();
}

void ConsoleService::stop() {
    runtime_->stop();
    stop_work();
}

void ConsoleService::work(http::Request&& req, const http::Responder& respond, Handler handler) {
    auto shared = std::make_shared<http::Request>(std::move(req));
    {
        std::lock_guard lock(work_mu_);
        if (!work_stopping_ && work_.size() < kMaxQueued) {
            work_.emplace_back([this, shared, respond, handler] {
                try {
                    (this->*handler)(std::move(*shared), respond);
                } catch (...) {  // on the worker: answered, never carried into it
                    respond(http::failure_response("console request"));
                }
            });
            work_cv_.notify_one();
            return;
        }
    }
    auto busy = http::problem(
        503, "Service Unavailable",
        "too many requests waiting (" + std::to_string(kMaxQueued) + "); retry shortly");
    busy.headers.emplace_back("Retry-After", "1");
    respond(std::move(busy));
}

void ConsoleService::run_work() {
    for (;;) {
        std::function<void()> next;
        {
            std::unique_lock lock(work_mu_);
            work_cv_.wait(lock, [this] { return work_stopping_ || !work_.empty(); });
            if (work_.empty()) return;  // stopping, nothing left
            next = std::move(work_.front());
            work_.pop_front();
        }
        next();
    }
}

void ConsoleService::stop_work() {
    {
        std::lock_guard lock(work_mu_);
        work_stopping_ = true;
    }
    work_cv_.notify_all();
    if (worker_.joinable()) worker_.join();
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

void ConsoleService::handle_dlq(http::Request&& req, const http::Responder& respond) {
    const auto& s = runtime_->settings();
    dlqctl::Connection c;
    c.bootstrap = s.bootstrap_servers;
    c.prefix = s.topic_prefix;
    c.kafka_properties = s.kafka_properties;
    c.timeout = config_.upstream_timeout;
    c.client_id = s.service + "-" + s.instance_id;
    dlqctl::Dlq dlq;
    try {
        dlq = dlqctl::load(c, req.path_params["topic"]);
    } catch (const dlqctl::NotADeadLetterTopic& e) {
        respond(http::problem(404, "Not Found", e.what()));
        return;
    }
    json entries = json::array();
    for (const auto& e : dlq.entries) entries.push_back(dlqctl::entry_json(e));
    respond(http::Response::json(200, {{"topic", dlq.topic}, {"entries", std::move(entries)}}));
}

}  // namespace orderpipe::console
