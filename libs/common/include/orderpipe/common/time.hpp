#pragma once
/// RFC 3339 UTC timestamps with milliseconds ("2026-11-23T19:40:00.123Z").

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace orderpipe {

using SystemTime = std::chrono::system_clock::time_point;

std::string format_rfc3339(SystemTime t);
inline std::string now_rfc3339() { return format_rfc3339(std::chrono::system_clock::now()); }
/// Now, in milliseconds since the Unix epoch (what stores keep as `*_ms`).
inline std::int64_t unix_now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

/// Parses RFC 3339 with 'Z' or a numeric offset, optional fraction. nullopt when malformed or
/// outside the years 1700 to 2200 (a SystemTime cannot hold much more).
std::optional<SystemTime> parse_rfc3339(std::string_view text);

/// A point in time given as RFC 3339 ("2026-11-23T19:40:00Z") or as a span back from `now`
/// ("45s", "30m", "1h", "2d"). nullopt when it is neither, or when the span is longer than
/// kMaxSpan (checked before it is computed: no overflow whatever the digits).
std::optional<SystemTime> parse_when(std::string_view text, SystemTime now);
/// The longest span parse_when accepts: 100 years.
inline constexpr std::chrono::seconds kMaxSpan{100LL * 366 * 86400};

}  // namespace orderpipe
