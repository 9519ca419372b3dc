#pragma once
/// A blocking HTTP GET for the console's calls to the services' APIs (on its worker thread,
/// never on an HTTP server thread).

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace orderpipe::console {

struct HttpAnswer {
    long status = 0;
    std::string body;
};

/// GET `url` within `timeout`. @returns nullopt when there was no answer (refused, timed out),
/// with `error` saying why.
std::optional<HttpAnswer> http_get(const std::string& url, std::chrono::milliseconds timeout,
                                   std::string& error);

/// `text` percent-encoded for a query parameter (RFC 3986: all but unreserved characters).
std::string url_encode(std::string_view text);

}  // namespace orderpipe::console
