#pragma once
/// What the analytics-service counts: the figures' names, what one batch changes, and the saga
/// latency percentiles (docs/ARCHITECTURE.md "Analytics"). No storage here.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace orderpipe::analytics {

/// Counter names (also the keys of GET /api/metrics where they appear there).
namespace figure {
inline constexpr const char* kOrdersCreated = "orders.created";
inline constexpr const char* kOrdersConfirmed = "orders.confirmed";
inline constexpr const char* kOrdersCancelled = "orders.cancelled";
inline constexpr const char* kNotificationsSent = "notifications.sent";
inline constexpr const char* kNotificationsFailed = "notifications.failed";
/// + reason, e.g. "cancellation_reasons.TIMEOUT"
inline constexpr const char* kCancellationReasonPrefix = "cancellation_reasons.";
/// + currency, in cents, e.g. "revenue.confirmed.USD"
inline constexpr const char* kRevenueConfirmedPrefix = "revenue.confirmed.";
inline constexpr const char* kRevenueLostPrefix = "revenue.lost.";
/// + event type in lower case, e.g. "inventory.reserved"
inline constexpr const char* kInventoryPrefix = "inventory.";
}  // namespace figure

/// What one batch changed: written by AnalyticsStore::finish_batch, then mirrored into the
/// Prometheus metrics once committed.
struct BatchChanges {
    std::map<std::string, std::int64_t> counters;  ///< name → increment
    /// (Unix minute, name) → increment
    std::map<std::pair<std::int64_t, std::string>, std::int64_t> series;
    std::vector<std::int64_t> latencies_us;  ///< saga latencies completed by the batch
    bool dead_letters_changed = false;

    /// Adds `delta` to counter `name` and to its per-minute series at `minute`.
    void count(const std::string& name, std::int64_t delta, std::int64_t minute) {
        counters[name] += delta;
        series[{minute, name}] += delta;
    }
};

/// Saga latency percentiles in milliseconds (nearest rank); nullopt without any decided order.
struct LatencyPercentiles {
    std::int64_t count = 0;
    std::optional<double> p50, p90, p99;
};

/// Everything GET /api/metrics shows, read at one moment.
struct Figures {
    std::map<std::string, std::int64_t> counters;
    std::map<std::string, std::int64_t> dead_letters_pending;  ///< by DLQ topic
    LatencyPercentiles latency;
};

}  // namespace orderpipe::analytics
