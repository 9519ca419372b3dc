#pragma once
// The business figures recomputed from the topics — the ground truth the analytics-service must
// equal (I5) — written independently of the service's code: raw records, JSON and arithmetic.

#include "records.hpp"

#include <nlohmann/json.hpp>

#include <string>

namespace orderpipe::check {

/// Reads every topic analytics reads and
/// recomputes what GET /api/metrics must show: orders.*, cancellation_reasons,
/// revenue.by_currency, notifications.*, dlq.pending (+ dlq.pending_by_topic with full topic
/// names) and saga_latency_ms (nearest-rank percentiles of ORDER_CREATED → first decision, by
/// ce_time, plus count).
nlohmann::json recompute_figures(TopicSet& topics);

/// Where `actual` differs from `expected` on expected's keys; empty when it does not.
std::string figures_diff(const nlohmann::json& expected, const nlohmann::json& actual);

}  // namespace orderpipe::check
