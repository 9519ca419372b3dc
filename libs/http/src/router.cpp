#include "router.hpp"

#include <algorithm>
#include <set>
#include <stdexcept>

namespace orderpipe::http::detail {
namespace {

constexpr std::string_view kUnmatched = "unmatched";

bool is_token_char(char c) {
    // RFC 9110 tchar
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           std::string_view{"!#$%&'*+-.^_`|~"}.find(c) != std::string_view::npos;
}

bool path_matches(const Route& route, const std::vector<std::string>& segments) {
    if (route.segments.size() != segments.size()) {
        return false;
    }
    for (std::size_t i = 0; i < segments.size(); ++i) {
        const auto& s = route.segments[i];
        if (s.is_param ? segments[i].empty() : s.text != segments[i]) {
            return false;
        }
    }
    return true;
}

// True when `a` is more specific than `b` (both match the same path): the first segment where
// they differ is a literal in `a` and a parameter in `b`.
bool more_specific(const Route& a, const Route& b) {
    for (std::size_t i = 0; i < a.segments.size(); ++i) {
        if (a.segments[i].is_param != b.segments[i].is_param) {
            return !a.segments[i].is_param;
        }
    }
    return false;
}

}  // namespace

void Router::add(std::string method, std::string pattern, Handler handler) {
    if (method.empty() || !std::all_of(method.begin(), method.end(), is_token_char)) {
        throw std::invalid_argument("http route: invalid method '" + method + "'");
    }
    std::transform(method.begin(), method.end(), method.begin(),
                   [](char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 32) : c; });
    if (pattern.empty() || pattern.front() != '/') {
        throw std::invalid_argument("http route: pattern '" + pattern + "' must start with '/'");
    }
    if (pattern.find_first_of("?#%") != std::string::npos) {
        throw std::invalid_argument("http route: pattern '" + pattern +
                                    "' must be a plain decoded path (no '?', '#' or '%')");
    }
    if (!handler) {
        throw std::invalid_argument("http route: empty handler for " + method + " " + pattern);
    }

    Route route;
    std::set<std::string, std::less<>> names;
    std::string_view rest = std::string_view{pattern}.substr(1);
    for (;;) {
        const auto slash = rest.find('/');
        const std::string_view text = rest.substr(0, slash);
        Route::Segment segment;
        if (!text.empty() && text.front() == '{') {
            if (text.size() < 3 || text.back() != '}' ||
                text.substr(1, text.size() - 2).find_first_of("{}") != std::string_view::npos) {
                throw std::invalid_argument("http route: bad parameter segment '" +
                                            std::string(text) + "' in '" + pattern + "'");
            }
            segment.text = std::string(text.substr(1, text.size() - 2));
            segment.is_param = true;
            if (!names.insert(segment.text).second) {
                throw std::invalid_argument("http route: parameter '" + segment.text +
                                            "' repeats in '" + pattern + "'");
            }
        } else if (text.find_first_of("{}") != std::string_view::npos) {
            throw std::invalid_argument("http route: '{name}' must be a whole segment in '" +
                                        pattern + "'");
        } else {
            segment.text = std::string(text);
        }
        route.segments.push_back(std::move(segment));
        if (slash == std::string_view::npos) {
            break;
        }
        rest = rest.substr(slash + 1);
    }

    // Two patterns that differ only in parameter names are the same route.
    for (const auto& existing : routes_) {
        if (existing.method != method || existing.segments.size() != route.segments.size()) {
            continue;
        }
        bool same = true;
        for (std::size_t i = 0; i < route.segments.size() && same; ++i) {
            const auto& a = existing.segments[i];
            const auto& b = route.segments[i];
            same = a.is_param == b.is_param && (a.is_param || a.text == b.text);
        }
        if (same) {
            std::string message = "http route: ";
            message.append(method).append(" ").append(pattern).append(" clashes with ");
            message.append(existing.pattern);
            throw std::invalid_argument(message);
        }
    }

    route.method = std::move(method);
    route.pattern = std::move(pattern);
    route.handler = std::move(handler);
    routes_.push_back(std::move(route));
}

void Router::bind_metrics(HttpMetrics& metrics) {
    for (auto& route : routes_) {
        route.metrics = &metrics.endpoint(route.pattern, route.method);
    }
}

Router::Match Router::match(std::string_view method, const std::vector<std::string>& segments,
                            std::map<std::string, std::string>& params) const {
    Match result;
    result.label = kUnmatched;
    const Route* best = nullptr;
    const Route* best_get = nullptr;  // HEAD falls back to GET
    const Route* any = nullptr;
    for (const auto& route : routes_) {
        if (!path_matches(route, segments)) {
            continue;
        }
        if (any == nullptr || more_specific(route, *any)) {
            any = &route;
        }
        if (route.method == method) {
            if (best == nullptr || more_specific(route, *best)) {
                best = &route;
            }
        } else if (method == "HEAD" && route.method == "GET") {
            if (best_get == nullptr || more_specific(route, *best_get)) {
                best_get = &route;
            }
        }
    }
    if (best == nullptr) {
        best = best_get;
    }
    if (best != nullptr) {
        result.route = best;
        result.label = best->pattern;
        for (std::size_t i = 0; i < segments.size(); ++i) {
            if (best->segments[i].is_param) {
                params.emplace(best->segments[i].text, segments[i]);
            }
        }
        return result;
    }
    if (any != nullptr) {
        // 405: list the methods of every route that matches this path.
        std::set<std::string> methods;
        for (const auto& route : routes_) {
            if (path_matches(route, segments)) {
                methods.insert(route.method);
                if (route.method == "GET") {
                    methods.insert("HEAD");
                }
            }
        }
        for (const auto& m : methods) {
            if (!result.allow.empty()) {
                result.allow += ", ";
            }
            result.allow += m;
        }
        result.label = any->pattern;
    }
    return result;
}

}  // namespace orderpipe::http::detail
