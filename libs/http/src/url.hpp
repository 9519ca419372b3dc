#pragma once

// Request-target parsing: split path and query, percent-decode both. Internal to orderpipe_http.

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace orderpipe::http::detail {

/// Percent-decodes `in`; with `plus_as_space` (query components) "+" becomes " ".
/// nullopt when an escape is truncated or not hexadecimal ("%4", "%zz").
[[nodiscard]] std::optional<std::string> percent_decode(std::string_view in, bool plus_as_space);

/// Parses "key=value&flag&k2=v2" into `out`; first occurrence of a key wins. Empty pairs are
/// skipped. Returns false on a malformed escape.
[[nodiscard]] bool parse_query(std::string_view query, std::map<std::string, std::string>& out);

struct ParsedTarget {
    std::string path;                   ///< decoded path
    std::vector<std::string> segments;  ///< decoded path segments ("/" -> {""})
    std::map<std::string, std::string> query;
    std::string error;  ///< non-empty: the target is unusable, answer 400 with this detail
};

/// Parses an origin-form ("/a/b?x=1") or absolute-form ("http://host/a/b?x=1") request target.
/// Segments are decoded one by one, so "%2F" stays inside its segment.
[[nodiscard]] ParsedTarget parse_target(std::string_view target);

}  // namespace orderpipe::http::detail
