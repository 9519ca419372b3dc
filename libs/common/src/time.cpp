#include "orderpipe/common/time.hpp"

#include <charconv>
#include <cstdio>
#include <ctime>

namespace orderpipe {

namespace {
constexpr int kMinYear = 1700;
constexpr int kMaxYear = 2200;
}  // namespace

std::string format_rfc3339(SystemTime t) {
    using namespace std::chrono;
    const auto ms_total = duration_cast<milliseconds>(t.time_since_epoch()).count();
    auto secs = static_cast<std::time_t>(ms_total / 1000);
    auto ms = static_cast<int>(ms_total % 1000);
    if (ms < 0) {
        ms += 1000;
        --secs;
    }
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
    return buf;
}

std::optional<SystemTime> parse_rfc3339(std::string_view s) {
    // YYYY-MM-DDTHH:MM:SS[.fff...](Z|+HH:MM|-HH:MM)
    auto digits = [&](std::size_t pos, std::size_t n) -> std::optional<int> {
        if (pos + n > s.size()) return std::nullopt;
        int v = 0;
        for (std::size_t i = pos; i < pos + n; ++i) {
            if (s[i] < '0' || s[i] > '9') return std::nullopt;
            v = v * 10 + (s[i] - '0');
        }
        return v;
    };
    if (s.size() < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') ||
        s[13] != ':' || s[16] != ':') {
        return std::nullopt;
    }
    auto y = digits(0, 4), mo = digits(5, 2), d = digits(8, 2), h = digits(11, 2),
         mi = digits(14, 2), se = digits(17, 2);
    if (!y || !mo || !d || !h || !mi || !se || *mo < 1 || *mo > 12 || *d < 1 || *d > 31 ||
        *h > 23 || *mi > 59 || *se > 60) {
        return std::nullopt;
    }
    std::size_t pos = 19;
    std::int64_t frac_ms = 0;
    if (pos < s.size() && s[pos] == '.') {
        ++pos;
        std::size_t start = pos;
        int scale = 100;
        while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
            frac_ms += (s[pos] - '0') * scale;
            scale /= 10;
            ++pos;
        }
        if (pos == start) return std::nullopt;
    }
    int offset_min = 0;
    if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
        ++pos;
    } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
        auto oh = digits(pos + 1, 2), om = digits(pos + 4, 2);
        if (!oh || !om || pos + 3 >= s.size() || s[pos + 3] != ':') return std::nullopt;
        offset_min = (*oh * 60 + *om) * (s[pos] == '-' ? -1 : 1);
        pos += 6;
    } else {
        return std::nullopt;
    }
    if (pos != s.size()) return std::nullopt;
    // SystemTime counts nanoseconds in 64 bits (years 1678 to 2262): a year outside that would
    // wrap around. Nothing here needs more than these.
    if (*y < kMinYear || *y > kMaxYear) return std::nullopt;
    using namespace std::chrono;
    const auto days =
        sys_days(year{*y} / month{static_cast<unsigned>(*mo)} / day{static_cast<unsigned>(*d)});
    if (!(year{*y} / month{static_cast<unsigned>(*mo)} / day{static_cast<unsigned>(*d)}).ok()) {
        return std::nullopt;
    }
    auto tp = time_point_cast<system_clock::duration>(days) + hours(*h) + minutes(*mi) +
              seconds(*se) + milliseconds(frac_ms) - minutes(offset_min);
    return tp;
}

std::optional<SystemTime> parse_when(std::string_view text, SystemTime now) {
    if (auto t = parse_rfc3339(text)) return t;
    if (text.size() < 2) return std::nullopt;
    std::int64_t n = 0;
    auto [p, ec] = std::from_chars(text.data(), text.data() + text.size() - 1, n);
    if (ec != std::errc{} || p != text.data() + text.size() - 1 || n < 0) return std::nullopt;
    std::int64_t unit = 0;  // seconds
    switch (text.back()) {
        case 's': unit = 1; break;
        case 'm': unit = 60; break;
        case 'h': unit = 3600; break;
        case 'd': unit = 86400; break;
        default: return std::nullopt;
    }
    // Checked before any multiplication: "2562048h" in nanoseconds does not fit in 64 bits.
    if (n > kMaxSpan.count() / unit) return std::nullopt;
    return now - std::chrono::seconds(n * unit);
}

}  // namespace orderpipe
