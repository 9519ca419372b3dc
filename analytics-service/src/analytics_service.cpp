#include "analytics_service.hpp"

#include "figures.hpp"
#include "pg_analytics_state.hpp"
#include "sqlite_analytics_state.hpp"

#include "orderpipe/common/faults.hpp"
#include "orderpipe/common/logging.hpp"
#include "orderpipe/common/storage_error.hpp"
#include "orderpipe/contract/topics.hpp"
#include "orderpipe/http/problem.hpp"
#include "orderpipe/kafka/consumer.hpp"
#include "orderpipe/kafka/error.hpp"

namespace orderpipe::analytics {

using nlohmann::json;
namespace topic = contract::topic;

namespace {

constexpr std::chrono::milliseconds kKafkaTimeout{10000};

std::int64_t unix_minute(SystemTime t) {
    return std::chrono::floor<std::chrono::minutes>(t.time_since_epoch()).count();
}

}  // namespace

AnalyticsServiceConfig AnalyticsServiceConfig::from_env(EnvReader& env) {
    AnalyticsServiceConfig c;
    c.settings = runtime::ServiceSettings::read(env, "analytics-service", 8083);
    return c;
}

AnalyticsService::AnalyticsService(Config config)
    : config_(std::move(config)), runtime_(std::make_unique<runtime::Runtime>(config_.settings)) {}

AnalyticsService::~AnalyticsService() { stop(); }

void AnalyticsService::start() {
    auto& rt = *runtime_;
    const auto& s = rt.settings();
    shared_ = s.shared_database();
    if (shared_) {
        auto pool = rt.database("analytics", analytics_migrations());
        loop_state_ = open_pg_analytics(pool, s.transactional_id());
        http_state_ = open_pg_analytics(pool, s.transactional_id());
    } else {
        const std::string path = rt.open_state("analytics.db");
        try {
            loop_state_ = open_sqlite_analytics(path);
            http_state_ = open_sqlite_analytics(path);
        } catch (const std::exception& e) {
            throw runtime::StartupError("cannot open " + path + ": " + e.what());
        }
    }
    topics_.orders_events = s.topic(topic::kOrdersEvents);
    topics_.inventory_events = s.topic(topic::kInventoryEvents);
    topics_.notifications_events = s.topic(topic::kNotificationsEvents);
    topics_.dlq_resolutions = s.topic(topic::kDlqResolutions);
    for (const auto& t : contract::dlq_topics()) topics_.dead_letters.push_back(s.topic(t));
    for (const auto t : {topic::kInventoryRequests, topic::kInventoryResponses,
                         topic::kNotificationsRequests, topic::kOrdersCommands}) {
        topics_.indexed.push_back(s.topic(t));
    }
    group_id_ = s.group_id(s.service);

    metrics_ = std::make_unique<AnalyticsMetrics>(rt.registry(), topics_.dead_letters);
    processor_ = std::make_unique<AnalyticsProcessor>(*loop_state_, topics_, *metrics_, shared_);
    // Before the loop starts (the loop's state is ours here); with a shared database, once it
    // is there and migrated.
    rt.add_startup_step("loading the figures", [this](const std::atomic<bool>& /*stop*/) {
        metrics_->load(*loop_state_);
        processor_->reload();
        metrics_loaded_ = true;
        return true;
    });
    rt.add_startup_step("preparing to rebuild the figures from the beginning of the topics",
                        [this](const std::atomic<bool>& /*stop*/) { return prepare_rebuild(); });
    // Scaled out, a dead instance's partitions must move at once, not after its session expires.
    rt.add_loop({.name = "analytics",
                 .topics = topics_.all(),
                 .processor = processor_.get(),
                 .group_id = group_id_,
                 .static_membership = !shared_,
                 // It reads the saga's requests too (the per-order index): with the others'
                 // 16 MiB its prefetch alone took it past 64 MiB at saturation
                 // (docs/BENCHMARKS.md "The per-order index").
                 .prefetch_kbytes = 4096});
    if (!shared_) rt.single_instance();
    // Figures are counted once per offset: a state that went further than a topic's end (the
    // topic recreated) would skip its new records as seen. Read before the loop starts.
    rt.state_positions([this] {
        runtime::Runtime::Positions out;
        for (const auto& [tp, next] : loop_state_->positions())
            out[{tp.topic, tp.partition}] = next;
        return out;
    });

    rt.route("GET", "/api/metrics", [this](http::Request&& r, const http::Responder& d) {
        query(std::move(r), d, &AnalyticsService::handle_metrics);
    });
    rt.route("GET", "/api/metrics/series", [this](http::Request&& r, const http::Responder& d) {
        query(std::move(r), d, &AnalyticsService::handle_series);
    });
    rt.route("GET", "/api/orders", [this](http::Request&& r, const http::Responder& d) {
        query(std::move(r), d, &AnalyticsService::handle_find_orders);
    });
    rt.route("GET", "/api/orders/{order_id}/records",
             [this](http::Request&& r, const http::Responder& d) {
                 query(std::move(r), d, &AnalyticsService::handle_order_records);
             });
    queries_.start();
    rt.start();
}

void AnalyticsService::stop() {
    runtime_->stop();
    queries_.stop();
}

void AnalyticsService::query(http::Request&& req, const http::Responder& respond,
                             void (AnalyticsService::*handler)(http::Request&&,
                                                               const http::Responder&)) {
    queries_.submit(std::move(req), respond,
                    [this, handler](http::Request&& r, const http::Responder& d) {
                        (this->*handler)(std::move(r), d);
                    });
}

void AnalyticsService::refresh_metrics() {
    // Shared: other instances count too; /metrics follows the whole state.
    if (!shared_ || !metrics_loaded_) return;
    try {
        std::lock_guard lock(http_mu_);
        metrics_->refresh(*http_state_);
    } catch (const std::exception& e) {
        log::warn("cannot refresh the business metrics from the database", {{"error", e.what()}});
    }
}

bool AnalyticsService::prepare_rebuild() {
    // Runs before the loop starts: the loop's store is ours here.
    auto& store = *loop_state_;
    using State = AnalyticsState::RebuildState;
    if (store.rebuild_state() == State::kDone) return true;

    kafka::ConsumerOptions co;
    co.group_id = group_id_;
    kafka::Consumer probe(runtime_->kafka_client("rebuild"), co);
    std::vector<kafka::TopicPartition> partitions;
    for (const auto& t : topics_.all()) {
        const int n = probe.partition_count(t, kKafkaTimeout);
        for (int p = 0; p < n; ++p) partitions.push_back({t, p});
    }
    if (store.rebuild_state() == State::kUnknown) {
        std::vector<kafka::TopicPartitionOffset> marks;
        for (const auto& o : probe.committed(partitions, kKafkaTimeout)) {
            if (o.offset != kafka::Consumer::kNoOffset) marks.push_back(o);
        }
        if (marks.empty()) {  // a new deployment: the loop reads from the beginning anyway
            store.set_rebuild_done();
            probe.close();
            return true;
        }
        log::warn(
            "no local state, but the consumer group has committed offsets: rebuilding the "
            "figures from the beginning of the topics",
            {{"group", group_id_}, {"partitions", marks.size()}});
        store.begin_rebuild(marks);
    }
    // Move the group back to the start of every partition it had offsets for. The broker
    // refuses while the group has a member (a previous instance killed less than
    // session.timeout.ms ago): the step is retried until it expires.
    std::vector<kafka::TopicPartitionOffset> starts;
    for (const auto& [tp, mark] : store.rebuild_marks()) {
        starts.push_back({tp.topic, tp.partition,
                          probe.watermarks(tp.topic, tp.partition, kKafkaTimeout).first});
    }
    try {
        probe.commit(starts);
    } catch (const kafka::KafkaException& e) {
        probe.close();
        throw std::runtime_error("cannot move consumer group " + group_id_ +
                                 " back to the beginning (is a previous instance still a member? "
                                 "it leaves after its session timeout): " +
                                 e.what());
    }
    probe.close();
    store.set_rebuild_done();
    processor_->reload();
    log::info("consumer group moved back to the beginning of the topics", {{"group", group_id_}});
    return true;
}

namespace {
/// A query as slow as a big one on a busy disk (fault injection).
void maybe_stall() {
    if (faults::hit("analytics", "query-stall"))
        std::this_thread::sleep_for(std::chrono::seconds(6));
}
}  // namespace

void AnalyticsService::handle_metrics(http::Request&& /*req*/, const http::Responder& respond) {
    maybe_stall();
    Figures f;
    {
        std::lock_guard lock(http_mu_);
        f = http_state_->figures();
    }
    // Every DLQ read shows, at 0 when empty.
    for (const auto& t : topics_.dead_letters) f.dead_letters_pending.try_emplace(t, 0);
    respond(http::Response::json(200, figures_json(f)));
}

void AnalyticsService::handle_series(http::Request&& req, const http::Responder& respond) {
    maybe_stall();
    const auto now = std::chrono::system_clock::now();
    const auto since_text = req.query.contains("since") ? req.query["since"] : std::string("1h");
    const auto since = parse_when(since_text, now);
    if (!since || *since > now || now - *since > std::chrono::hours(24)) {
        respond(http::problem(400, "Invalid since",
                              "since=" + since_text +
                                  ": expected a span back from now (30m, 1h, 24h) or an RFC 3339 "
                                  "time, at most 24 hours ago"));
        return;
    }
    const std::int64_t from = unix_minute(*since);
    const std::int64_t to = unix_minute(now);
    std::map<std::int64_t, std::map<std::string, std::int64_t>> rows;
    {
        std::lock_guard lock(http_mu_);
        rows = http_state_->series(from, to);
    }
    respond(http::Response::json(200, series_json(rows, from, to)));
}

void AnalyticsService::handle_order_records(http::Request&& req, const http::Responder& respond) {
    maybe_stall();
    // A timeline is a few dozen records; an order with more is not one a person reads whole.
    constexpr std::size_t kMaxRecords = 1000;
    const std::string& order_id = req.path_params["order_id"];
    if (order_id.size() > 128) {
        respond(http::problem(400, "Invalid order id", "an order id has at most 128 bytes"));
        return;
    }
    std::vector<OrderRecord> records;
    {
        std::lock_guard lock(http_mu_);
        records = http_state_->order_records(order_id, kMaxRecords + 1);
    }
    const bool truncated = records.size() > kMaxRecords;
    if (truncated) records.resize(kMaxRecords);
    nlohmann::json list = nlohmann::json::array();
    for (const auto& r : records) {
        list.push_back({{"topic", r.topic},
                        {"partition", r.partition},
                        {"offset", r.offset},
                        {"type", r.type},
                        {"timestamp_ms", r.time_ms}});
    }
    respond(http::Response::json(
        200, {{"order_id", order_id}, {"records", std::move(list)}, {"truncated", truncated}}));
}

void AnalyticsService::handle_find_orders(http::Request&& req, const http::Responder& respond) {
    maybe_stall();
    constexpr std::size_t kMaxOrders = 100;
    const std::string& q = req.query["q"];
    if (q.empty() || q.size() > 254) {
        respond(http::problem(400, "Invalid search",
                              "q: an order id, a customer id or an email, 1 to 254 bytes"));
        return;
    }
    std::vector<OrderCustomer> found;
    {
        std::lock_guard lock(http_mu_);
        found = http_state_->find_orders(q, kMaxOrders + 1);
    }
    const bool truncated = found.size() > kMaxOrders;
    if (truncated) found.resize(kMaxOrders);
    nlohmann::json list = nlohmann::json::array();
    for (const auto& o : found) {
        list.push_back({{"order_id", o.order_id},
                        {"customer_id", o.customer_id},
                        {"email", o.email},
                        {"created_ms", o.time_ms}});
    }
    respond(http::Response::json(200, {{"orders", std::move(list)}, {"truncated", truncated}}));
}

}  // namespace orderpipe::analytics
