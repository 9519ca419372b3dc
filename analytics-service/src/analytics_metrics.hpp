#pragma once
/// The business figures in Prometheus (docs/CONTRACT.md "HTTP APIs"): a mirror of what the
/// analytics SQLite file holds, loaded from it at start and moved forward by each committed
/// batch, so a restart or a rebuild exports the same values.
///
///   orders_created_total, orders_confirmed_total, orders_cancelled_total{reason},
///   revenue_confirmed_total{currency}, revenue_lost_total{currency} (currency units),
///   notifications_sent_total, notifications_failed_total, dlq_pending_messages{topic},
///   order_saga_duration_seconds (histogram, ORDER_CREATED → decision, from the events' ce_time)
///
/// Thread-safety: load() and apply() on the loop thread; the registry is read by /metrics.

#include "analytics_store.hpp"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace prometheus {
class Registry;
}

namespace orderpipe::analytics {

class AnalyticsMetrics {
  public:
    /// `dead_letter_topics`: the DLQs read, shown at 0 from the start.
    AnalyticsMetrics(prometheus::Registry& registry,
                     const std::vector<std::string>& dead_letter_topics);

    /// Sets every metric to what `store` holds (once, at start).
    void load(AnalyticsStore& store);
    /// Adds a committed batch. `pending`: the DLQ figures after it, when it changed them.
    void apply(const BatchChanges& changes,
               const std::optional<std::map<std::string, std::int64_t>>& pending) noexcept;

    /// Upper bounds of order_saga_duration_seconds, in microseconds.
    static const std::vector<std::int64_t>& latency_bounds_us();

  private:
    void add_counter(const std::string& name, std::int64_t delta);
    void set_pending(const std::map<std::string, std::int64_t>& pending);

    prometheus::Counter& created_;
    prometheus::Counter& confirmed_;
    prometheus::Family<prometheus::Counter>& cancelled_;
    prometheus::Family<prometheus::Counter>& revenue_confirmed_;
    prometheus::Family<prometheus::Counter>& revenue_lost_;
    prometheus::Counter& sent_;
    prometheus::Counter& failed_;
    prometheus::Family<prometheus::Gauge>& pending_;
    prometheus::Histogram& saga_;
    std::vector<std::string> dead_letter_topics_;
    std::map<std::string, std::int64_t> revenue_cents_;  ///< counter name → exact total
};

}  // namespace orderpipe::analytics
