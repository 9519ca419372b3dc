#pragma once
/// The console's live view: what it reads from each service (its /readyz, the lag and the
/// breaker from its /metrics, the analytics-service's /api/metrics) put together. Pure: the
/// HTTP calls are the service's.

#include <nlohmann/json.hpp>

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace orderpipe::console {

/// One sample of the Prometheus text format.
struct Sample {
    std::map<std::string, std::string> labels;
    double value = 0;
};

/// The samples of the metric `name` in `text` (format 0.0.4); lines it cannot read are skipped.
std::vector<Sample> samples(std::string_view text, std::string_view name);

/// What one service answered.
struct ServiceAnswers {
    std::string name;  ///< e.g. "order-service"
    std::string url;
    /// /readyz: its status and body, or nullopt when it did not answer (`error` says why).
    std::optional<long> readyz_status;
    std::string readyz_body;
    std::string error;
    std::optional<std::string> metrics;  ///< /metrics, when it answered 200
};

/// `{"services":[...], "lag":[...], "breaker"}` (docs/CONTRACT.md "orderpipe-console").
nlohmann::json live_json(const std::vector<ServiceAnswers>& services);

}  // namespace orderpipe::console
