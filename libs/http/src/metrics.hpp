#pragma once

// http_requests_total / http_request_duration_seconds, with per-(route, method) caching so that
// the hot path is a couple of atomic loads instead of prometheus-cpp's locked Family::Add().

#include <array>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

namespace prometheus {
class Counter;
class Gauge;
class Histogram;
class Registry;
template <typename T>
class Family;
}  // namespace prometheus

namespace orderpipe::http::detail {

/// Metrics of one (route, method) label pair. Thread-safe.
class EndpointMetrics {
  public:
    EndpointMetrics(prometheus::Family<prometheus::Counter>& requests,
                    prometheus::Family<prometheus::Histogram>& duration, std::string route,
                    std::string method);

    /// Counts one response with `status` and records how long it took.
    void observe(int status, double seconds);

  private:
    static constexpr int kMaxStatus = 600;
    prometheus::Family<prometheus::Counter>& requests_;
    prometheus::Histogram& duration_;
    std::string route_;
    std::string method_;
    // One slot per status code, filled on first use; Family::Add() returns the same counter for
    // the same labels, so two threads racing to fill a slot store the same pointer.
    std::array<std::atomic<prometheus::Counter*>, kMaxStatus> by_status_{};
};

/// Owner of the metric families and of every EndpointMetrics. Thread-safe.
class HttpMetrics {
  public:
    explicit HttpMetrics(prometheus::Registry& registry);

    /// The metrics for (route, method); created on first use, stable address afterwards.
    /// Takes a lock: the hot path keeps the returned reference (see Router::bind_metrics).
    EndpointMetrics& endpoint(std::string_view route, std::string_view method);

    /// A connection closed to make room (the server was full). Thread-safe.
    void connection_shed();
    /// Connections open now. Thread-safe.
    void connections(std::size_t n);

  private:
    prometheus::Family<prometheus::Counter>& requests_;
    prometheus::Family<prometheus::Histogram>& duration_;
    prometheus::Counter& shed_;
    prometheus::Gauge& open_;
    std::mutex mutex_;
    std::map<std::string, std::unique_ptr<EndpointMetrics>> endpoints_;  // key: "method route"
};

}  // namespace orderpipe::http::detail
