#include "metrics.hpp"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace orderpipe::http::detail {
namespace {

// 0.5 ms ... 5 s: from a cached GET to a POST waiting on a slow transaction commit.
const prometheus::Histogram::BucketBoundaries& duration_buckets() {
    static const prometheus::Histogram::BucketBoundaries buckets{
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0};
    return buckets;
}

}  // namespace

EndpointMetrics::EndpointMetrics(prometheus::Family<prometheus::Counter>& requests,
                                 prometheus::Family<prometheus::Histogram>& duration,
                                 std::string route, std::string method)
    : requests_(requests),
      duration_(duration.Add({{"route", route}, {"method", method}}, duration_buckets())),
      route_(std::move(route)),
      method_(std::move(method)) {}

void EndpointMetrics::observe(int status, double seconds) {
    duration_.Observe(seconds);
    if (status < 0 || status >= kMaxStatus) {
        status = 0;  // never produced by the server; keeps the index in range regardless
    }
    auto& slot = by_status_[static_cast<std::size_t>(status)];
    prometheus::Counter* counter = slot.load(std::memory_order_acquire);
    if (counter == nullptr) {
        counter = &requests_.Add(
            {{"route", route_}, {"method", method_}, {"code", std::to_string(status)}});
        slot.store(counter, std::memory_order_release);
    }
    counter->Increment();
}

HttpMetrics::HttpMetrics(prometheus::Registry& registry)
    : requests_(prometheus::BuildCounter()
                    .Name("http_requests_total")
                    .Help("HTTP requests answered, by route pattern, method and status code")
                    .Register(registry)),
      duration_(prometheus::BuildHistogram()
                    .Name("http_request_duration_seconds")
                    .Help("Time from a complete HTTP request to its response being written, by "
                          "route pattern and method")
                    .Register(registry)),
      shed_(prometheus::BuildCounter()
                .Name("http_connections_shed_total")
                .Help("Connections closed while waiting for a request's headers because the "
                      "server was at its connection limit")
                .Register(registry)
                .Add({})),
      open_(prometheus::BuildGauge()
                .Name("http_connections_open")
                .Help("HTTP connections open")
                .Register(registry)
                .Add({})) {}

void HttpMetrics::connection_shed() { shed_.Increment(); }

void HttpMetrics::connections(std::size_t n) { open_.Set(static_cast<double>(n)); }

EndpointMetrics& HttpMetrics::endpoint(std::string_view route, std::string_view method) {
    std::string key;
    key.reserve(method.size() + 1 + route.size());
    key.append(method).append(" ").append(route);
    const std::lock_guard lock(mutex_);
    auto& slot = endpoints_[key];
    if (!slot) {
        slot = std::make_unique<EndpointMetrics>(requests_, duration_, std::string(route),
                                                 std::string(method));
    }
    return *slot;
}

}  // namespace orderpipe::http::detail
