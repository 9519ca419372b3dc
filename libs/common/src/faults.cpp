#include "orderpipe/common/faults.hpp"

#include <algorithm>

#include <atomic>
#include <charconv>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace orderpipe::faults {
namespace {

struct Entry {
    std::string scope;
    std::string point;
    long first = 0;
    long last = 0;
};

struct State {
    std::mutex mu;
    std::vector<Entry> plan;
    std::map<std::pair<std::string, std::string>, long> counts;  // (scope, point) -> seen
};

State& state() {
    static State s;
    return s;
}
std::atomic<bool> g_enabled{false};

bool parse_long(std::string_view s, long& out) {
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc{} && p == s.data() + s.size() && out >= 1;
}

std::string parse(std::string_view spec, std::vector<Entry>& out) {
    while (!spec.empty()) {
        const auto comma = spec.find(',');
        std::string_view item = spec.substr(0, comma);
        spec = comma == std::string_view::npos ? std::string_view{} : spec.substr(comma + 1);
        if (item.empty()) continue;
        const auto a = item.find(':');
        const auto b = a == std::string_view::npos ? a : item.find(':', a + 1);
        if (b == std::string_view::npos) {
            return "\"" + std::string(item) + "\": expected scope:point:N or scope:point:N-M";
        }
        Entry e{std::string(item.substr(0, a)), std::string(item.substr(a + 1, b - a - 1))};
        std::string_view range = item.substr(b + 1);
        const auto dash = range.find('-');
        if (!parse_long(range.substr(0, dash), e.first)) {
            return "\"" + std::string(item) + "\": N must be a positive integer";
        }
        e.last = e.first;
        if (dash != std::string_view::npos &&
            (!parse_long(range.substr(dash + 1), e.last) || e.last < e.first)) {
            return "\"" + std::string(item) + "\": M must be an integer not below N";
        }
        if (e.scope.empty() || e.point.empty()) {
            return "\"" + std::string(item) + "\": scope and point must not be empty";
        }
        out.push_back(std::move(e));
    }
    return {};
}

}  // namespace

std::string validate(std::string_view spec) {
    std::vector<Entry> plan;
    return parse(spec, plan);
}

void configure(std::string_view spec) {
    std::vector<Entry> plan;
    if (auto error = parse(spec, plan); !error.empty()) throw std::invalid_argument(error);
    auto& s = state();
    std::lock_guard lock(s.mu);
    s.plan = std::move(plan);
    s.counts.clear();
    g_enabled = !s.plan.empty();
}

bool enabled() { return g_enabled.load(std::memory_order_relaxed); }

bool hit(std::string_view scope, std::string_view point) {
    if (!enabled()) return false;
    auto& s = state();
    std::lock_guard lock(s.mu);
    bool strike = false;
    for (const auto& e : s.plan) {
        if (e.point != point || (e.scope != "*" && e.scope != scope)) continue;
        // Each entry counts the occurrences it matches (so "*" counts across scopes).
        const long n = ++s.counts[{e.scope + "\x1f" + std::string(scope), e.point}];
        if (n >= e.first && n <= e.last) strike = true;
    }
    return strike;
}

long hits(std::string_view scope, std::string_view point) {
    auto& s = state();
    std::lock_guard lock(s.mu);
    long most = 0;
    for (const auto& e : s.plan) {
        if (e.point != point || (e.scope != "*" && e.scope != scope)) continue;
        auto it = s.counts.find({e.scope + "\x1f" + std::string(scope), e.point});
        if (it != s.counts.end()) most = std::max(most, it->second);
    }
    return most;
}

}  // namespace orderpipe::faults
