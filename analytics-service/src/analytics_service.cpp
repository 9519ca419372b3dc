#include "analytics_service.hpp"

#include "figures.hpp"

#include "orderpipe/common/logging.hpp"
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
    const std::string path = rt.open_state("analytics.db");
    try {
        loop_store_ = std::make_unique<AnalyticsStore>(path);
        http_store_ = std::make_unique<AnalyticsStore>(path);
    } catch (const sqlite::SqliteError& e) {
        throw runtime::StartupError("cannot open " + path + ": " + e.what());
    }
    topics_.orders_events = s.topic(topic::kOrdersEvents);
    topics_.inventory_events = s.topic(topic::kInventoryEvents);
    topics_.notifications_events = s.topic(topic::kNotificationsEvents);
    topics_.dlq_resolutions = s.topic(topic::kDlqResolutions);
    for (const auto& t : contract::dlq_topics()) topics_.dead_letters.push_back(s.topic(t));
    group_ = s.group(s.service);

    metrics_ = std::make_unique<AnalyticsMetrics>(rt.registry(), topics_.dead_letters);
    metrics_->load(*loop_store_);
    processor_ = std::make_unique<AnalyticsProcessor>(*loop_store_, topics_, *metrics_);
    rt.add_startup_step("preparing to rebuild the figures from the beginning of the topics",
                        [this](const std::atomic<bool>& /*stop*/) { return prepare_rebuild(); });
    rt.add_loop({.name = "analytics",
                 .topics = topics_.all(),
                 .processor = processor_.get(),
                 .group = group_});
    rt.single_instance();

    rt.route("GET", "/api/metrics", [this](http::Request&& r, const http::Responder& d) {
        handle_metrics(std::move(r), d);
    });
    rt.route("GET", "/api/metrics/series", [this](http::Request&& r, const http::Responder& d) {
        handle_series(std::move(r), d);
    });
    rt.start();
}

void AnalyticsService::stop() { runtime_->stop(); }

bool AnalyticsService::prepare_rebuild() {
    // Runs before the loop starts: the loop's store is ours here.
    auto& store = *loop_store_;
    using State = AnalyticsStore::RebuildState;
    if (store.rebuild_state() == State::kDone) return true;

    kafka::ConsumerOptions co;
    co.group_id = group_;
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
            {{"group", group_}, {"partitions", marks.size()}});
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
        throw std::runtime_error("cannot move consumer group " + group_ +
                                 " back to the beginning (is a previous instance still a member? "
                                 "it leaves after its session timeout): " +
                                 e.what());
    }
    probe.close();
    store.set_rebuild_done();
    processor_->reload();
    log::info("consumer group moved back to the beginning of the topics", {{"group", group_}});
    return true;
}

void AnalyticsService::handle_metrics(http::Request&& /*req*/, const http::Responder& respond) {
    Figures f;
    {
        std::lock_guard lock(http_mu_);
        sqlite::ReadTransaction tx(http_store_->db());
        f.counters = http_store_->counters();
        f.dead_letters_pending = http_store_->dead_letters_pending();
        f.latency = http_store_->latency_percentiles();
    }
    // Every DLQ read shows, at 0 when empty.
    for (const auto& t : topics_.dead_letters) f.dead_letters_pending.try_emplace(t, 0);
    respond(http::Response::json(200, figures_json(f)));
}

void AnalyticsService::handle_series(http::Request&& req, const http::Responder& respond) {
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
        rows = http_store_->series(from, to);
    }
    respond(http::Response::json(200, series_json(rows, from, to)));
}

}  // namespace orderpipe::analytics
