#pragma once

// Route table: method + pattern ("/orders/{id}") -> handler. Internal to orderpipe_http.
// Built before start() and read-only afterwards, so matching needs no lock.

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "metrics.hpp"
#include "orderpipe/http/server.hpp"

namespace orderpipe::http::detail {

struct Route {
    struct Segment {
        std::string text;  ///< literal text, or the parameter name
        bool is_param = false;
    };
    std::string method;
    std::string pattern;
    std::vector<Segment> segments;
    Handler handler;
    EndpointMetrics* metrics = nullptr;  ///< set by Router::bind_metrics(); owned by HttpMetrics
};

class Router {
  public:
    /// @throws std::invalid_argument on a malformed method or pattern, or a duplicate route.
    void add(std::string method, std::string pattern, Handler handler);

    /// Pre-creates the metrics of every route so the hot path never looks them up.
    void bind_metrics(HttpMetrics& metrics);

    struct Match {
        const Route* route = nullptr;  ///< null: 404 (path unknown) or 405 (see allow)
        std::string allow;             ///< for 405: methods accepted on this path, e.g. "GET, HEAD"
        std::string_view label;        ///< metrics route label: the pattern, or "unmatched"
    };

    /// Finds the most specific route for `method` and the decoded path `segments`, and fills
    /// `params` from it. A HEAD request falls back to the GET route.
    [[nodiscard]] Match match(std::string_view method, const std::vector<std::string>& segments,
                              std::map<std::string, std::string>& params) const;

  private:
    std::vector<Route> routes_;
};

}  // namespace orderpipe::http::detail
