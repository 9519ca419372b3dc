#pragma once

// Request-target parsing (Boost.URL): split path and query, percent-decode both. Internal to
// orderpipe_http.

#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace orderpipe::http::detail {

struct ParsedTarget {
    std::string path;                   ///< decoded path
    std::vector<std::string> segments;  ///< decoded path segments ("/" -> {""})
    /// Decoded query ("+" is a space); the first occurrence of a key wins.
    std::map<std::string, std::string> query;
    std::string error;  ///< non-empty: the target is unusable, answer 400 with this detail
};

/// Parses an origin-form ("/a/b?x=1") or absolute-form ("http://host/a/b?x=1") request target.
/// Segments are decoded one by one, so "%2F" stays inside its segment.
[[nodiscard]] ParsedTarget parse_target(std::string_view target);

}  // namespace orderpipe::http::detail
