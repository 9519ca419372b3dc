#pragma once
/// The JSON of GET /api/metrics and GET /api/metrics/series (docs/CONTRACT.md "HTTP APIs"):
/// flat dotted keys, counts as integers, money as decimal strings.

#include "counting.hpp"

#include "orderpipe/common/time.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <string>

namespace orderpipe::analytics {

nlohmann::json figures_json(const Figures& f);

/// One entry per minute from `from_minute` to `to_minute` (Unix minutes), zeros included.
nlohmann::json series_json(const std::map<std::int64_t, std::map<std::string, std::int64_t>>& rows,
                           std::int64_t from_minute, std::int64_t to_minute);

}  // namespace orderpipe::analytics
