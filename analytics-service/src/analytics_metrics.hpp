#pragma once
/// The business figures in Prometheus (docs/CONTRACT.md "HTTP APIs"): a mirror of what the
/// analytics state holds, loaded from it at start and moved forward by each committed batch (one
/// instance) or refreshed from the shared state every second (N instances), so a restart, a
/// rebuild or any instance exports the same values.
///
///   orders_created_total, orders_confirmed_total, orders_cancelled_total{reason},
///   revenue_confirmed_total{currency}, revenue_lost_total{currency} (currency units),
///   notifications_sent_total, notifications_failed_total, dlq_pending_messages{topic},
///   order_saga_duration_seconds (histogram, ORDER_CREATED → decision, from the events' ce_time)
///
/// Thread-safety: load() and apply() on the loop thread; the registry is read by /metrics.

#include "analytics_state.hpp"

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

    /// Sets every metric to what `state` holds (once, at start).
    void load(AnalyticsState& state);
    /// Moves every metric to what `state` holds now (N instances sharing one state: each
    /// exports the whole, not the batches it counted). On the thread that owns `state`.
    void refresh(AnalyticsState& state);
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
    // What refresh() has seen of the state (apply() moves it too).
    std::map<std::string, std::int64_t> seen_counters_;
    std::vector<std::int64_t> seen_buckets_;
    std::int64_t seen_sum_us_ = 0;
};

}  // namespace orderpipe::analytics
