#pragma once
/// analytics-service: the business figures (orders, revenue, cancellations, notifications,
/// dead letters, saga latency), counted exactly once from the pipeline's topics into its state
/// (AnalyticsState: SQLite in DATA_DIR, one instance; or, with DATABASE_URL, PostgreSQL shared
/// by N instances of one consumer group), on the shared runtime. GET /api/metrics and
/// /api/metrics/series serve them as JSON, /metrics in Prometheus — on every instance the whole,
/// not its share.
///
/// Its state can always be rebuilt from the topics: with an empty state it reads them again
/// from the beginning (docs/ARCHITECTURE.md "Analytics").

#include "analytics_metrics.hpp"
#include "analytics_processor.hpp"
#include "analytics_state.hpp"

#include "orderpipe/runtime/blocking_work.hpp"
#include "orderpipe/runtime/runtime.hpp"

#include <atomic>
#include <memory>
#include <mutex>

namespace orderpipe::analytics {

struct AnalyticsServiceConfig {
    runtime::ServiceSettings settings;

    /// The common settings (docs/CONFIGURATION.md).
    static AnalyticsServiceConfig from_env(EnvReader& env);
};

class AnalyticsService {
  public:
    using Config = AnalyticsServiceConfig;
    static constexpr const char* kName = "analytics-service";

    explicit AnalyticsService(Config config);
    ~AnalyticsService();
    AnalyticsService(const AnalyticsService&) = delete;
    AnalyticsService& operator=(const AnalyticsService&) = delete;

    void start();
    void stop();
    runtime::Runtime& runtime() { return *runtime_; }
    std::uint16_t http_port() const { return runtime_->http_port(); }

  private:
    /// Startup step: with a new SQLite file while the group has committed offsets, remember
    /// them (poison below them is already dead-lettered) and move the group back to the
    /// beginning of every partition.
    bool prepare_rebuild();
    void handle_metrics(http::Request&& req, const http::Responder& respond);
    void handle_series(http::Request&& req, const http::Responder& respond);
    /// GET /api/orders/{order_id}/records: the per-order index (docs/CONTRACT.md).
    void handle_order_records(http::Request&& req, const http::Responder& respond);
    /// GET /api/orders?q=: orders by id, customer id or email (docs/CONTRACT.md).
    void handle_find_orders(http::Request&& req, const http::Responder& respond);
    /// Queues `handler` for the query thread (runtime::BlockingWork).
    void query(http::Request&& req, const http::Responder& respond,
               void (AnalyticsService::*handler)(http::Request&&, const http::Responder&));
    /// Shared: the metrics follow the whole state (on the query thread, every second).
    void refresh_metrics();

    Config config_;
    std::unique_ptr<runtime::Runtime> runtime_;
    AnalyticsTopics topics_;
    std::string group_id_;
    bool shared_ = false;                         // DATABASE_URL
    std::unique_ptr<AnalyticsState> loop_state_;  // the loop thread's
    std::mutex http_mu_;
    std::unique_ptr<AnalyticsState> http_state_;  // the query thread's, under http_mu_
    /// Shared: the query thread refreshes the metrics from the whole state every second, once
    /// they were loaded (a start-up step, after the database's migration).
    std::atomic<bool> metrics_loaded_{false};
    std::unique_ptr<AnalyticsMetrics> metrics_;
    std::unique_ptr<AnalyticsProcessor> processor_;

    // Queries run on a thread of their own, never on the HTTP io threads, so /livez, /readyz and
    // /metrics answer at once however many queries wait (under query load /readyz took 1.36 s).
    runtime::BlockingWork queries_{"query", 1, 64, [this] { refresh_metrics(); }};
};

}  // namespace orderpipe::analytics
