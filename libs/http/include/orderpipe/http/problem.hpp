#pragma once

/// @file
/// RFC 9457 "problem details" error responses (`application/problem+json`).

#include <string>

#include <nlohmann/json.hpp>

#include "orderpipe/http/server.hpp"

namespace orderpipe::http {

/// Media type of every error response the server produces.
inline constexpr const char* kProblemContentType = "application/problem+json";

/// Builds an RFC 9457 problem response.
///
/// The body is `{"type", "title", "status", "detail", ...extra}`. `type` is `"about:blank"` unless
/// `extra` carries a `"type"` URI. An empty `title` becomes the standard reason phrase of `status`;
/// an empty `detail` is left out. Members of `extra` (which should be a JSON object; any other
/// value is ignored) are added to the body, except `title`, `status` and `detail`, which always
/// come from the arguments so the body cannot contradict the status line.
///
/// Pure function; thread-safe. Never throws except `std::bad_alloc`.
[[nodiscard]] Response problem(int status, std::string title, std::string detail,
                               nlohmann::json extra = {});

}  // namespace orderpipe::http
