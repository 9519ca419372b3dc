#pragma once
// The business figures recomputed from the topics — the ground truth the analytics-service must
// equal (I5) — written independently of the service's code: raw records, JSON and arithmetic.

#include <nlohmann/json.hpp>

#include <functional>
#include <string>

namespace orderpipe::testing {

/// Reads every topic analytics reads (`topic` maps a contract name to its full name) and
/// recomputes what GET /api/metrics must show: orders.*, cancellation_reasons,
/// revenue.by_currency, notifications.*, dlq.pending (+ dlq.pending_by_topic with full topic
/// names) and saga_latency_ms (nearest-rank percentiles of ORDER_CREATED → first decision, by
/// ce_time, plus count).
nlohmann::json recompute_figures(const std::function<std::string(const std::string&)>& topic);

/// Where `actual` differs from `expected` on expected's keys; empty when it does not.
std::string figures_diff(const nlohmann::json& expected, const nlohmann::json& actual);

}  // namespace orderpipe::testing
