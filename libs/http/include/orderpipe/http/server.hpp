#pragma once

/// @file
/// Asynchronous HTTP/1.1 server (Boost.Beast) shared by every orderpipe service.
///
/// A handler receives the parsed request and a Responder. It may answer at once, or keep the
/// Responder and answer later from any thread (for example once a Kafka transaction has
/// committed); no thread is held while a request waits for its answer.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace prometheus {
class Registry;
}

namespace orderpipe::http {

/// One parsed HTTP request, handed to a Handler by value (the handler owns it).
struct Request {
    std::string method;  ///< Request method as received, e.g. "GET", "POST".
    std::string target;  ///< Raw request target, e.g. "/orders/o%2D1?wait=terminal".
    std::string path;    ///< Target without the query, percent-decoded ("+" is kept as is).
    /// Query parameters, percent-decoded, "+" decoded as a space. A key without "=" maps to "".
    /// When a key repeats, the first occurrence wins.
    std::map<std::string, std::string> query;
    /// Values captured by the route pattern, percent-decoded per segment: {"id": "..."} for
    /// "/orders/{id}". A captured segment may contain "/" if the client sent it as "%2F".
    std::map<std::string, std::string> path_params;
    /// Header fields in the order received; names as the client spelled them.
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;    ///< Request body (at most ServerOptions::max_body_bytes).
    std::string remote;  ///< Peer address, "ip:port" ("[v6]:port" for IPv6).

    /// First header named `name`, compared case-insensitively; nullopt when absent.
    [[nodiscard]] std::optional<std::string> header(std::string_view name) const;
    /// Every header named `name` (case-insensitive), in the order received.
    [[nodiscard]] std::vector<std::string> header_values(std::string_view name) const;
    /// The body is JSON: Content-Type application/json or application/<something>+json
    /// (RFC 6839), parameters (charset) ignored.
    [[nodiscard]] bool has_json_body() const;
};

/// A response to write. Content-Length, Server and Connection are set by the server.
struct Response {
    int status = 200;  ///< 200..599; anything else is replaced by a 500.
    std::string content_type = "application/json";  ///< Empty: no Content-Type header.
    /// Extra header fields (e.g. Location, Retry-After, Allow). Content-Length and
    /// Transfer-Encoding are ignored; "Connection: close" closes the connection after the write.
    /// A field with CR, LF or NUL in it turns the response into a 500 (header injection).
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
    /// Instead of answering, reset the connection (TCP RST, nothing written): for test doubles
    /// that play a failing server.
    bool reset_connection = false;

    /// Response with `body.dump()` as body (invalid UTF-8 is replaced, never throws).
    [[nodiscard]] static Response json(int status, const nlohmann::json& body);
};

namespace detail {
struct ResponderState;
}

/// Completes one request. Copyable and cheap (all copies share one state).
///
/// Thread-safety: may be called from ANY thread; the first call wins and later calls (from any
/// copy) are ignored. The write itself happens on the connection's io strand, so calling it never
/// blocks on the network. If every copy is destroyed without a call, the server answers
/// 500 problem+json, so a connection can never hang on a forgotten Responder. Calling it after the
/// Server is stopped or destroyed is safe and does nothing.
class Responder {
  public:
    /// Sends `response`, unless a response was already sent for this request.
    void operator()(Response response) const;

    /// Sends what `make` returns. An exception from `make` is answered and logged the way one
    /// escaping a handler is (`failure_response`) and never escapes: for answers completed
    /// later on another thread (a long-poll's timer, a delivery callback), where an exception
    /// would end the process. `what` names the answer in the log line.
    void answer(const std::function<Response()>& make, std::string_view what) const noexcept;

    /// True once a response was handed over (by any copy). Thread-safe.
    [[nodiscard]] bool responded() const noexcept;

    /// Registers `on_cancel`, called at most once if the client hangs up before a response was
    /// handed over (a long-poll whose client went away: stop waiting for it). Called on an io
    /// thread; it must be quick. Later calls replace earlier ones. Thread-safe.
    void on_cancel(std::function<void()> on_cancel) const;

    /// Used by the server; handlers receive ready-made Responders.
    explicit Responder(std::shared_ptr<detail::ResponderState> state) noexcept;

  private:
    std::shared_ptr<detail::ResponderState> state_;
};

/// The state behind /readyz.
struct Readiness {
    bool ready = true;
    std::string detail;  ///< why not ready: the 503 problem's `detail`
    /// Each check's state (e.g. {"kafka": "ok", "topics": "missing: orders.events"}), in the
    /// body either way.
    nlohmann::json checks = nlohmann::json::object();
};

/// `r` with `Retry-After: seconds` added (for 429 and 503 answers).
[[nodiscard]] inline Response with_retry_after(Response r, int seconds) {
    r.headers.emplace_back("Retry-After", std::to_string(seconds));
    return r;
}

/// The answer to a request whose handling threw the exception in flight (call it inside a
/// `catch`), logged with `context`: a transient `StorageError` (the database unreachable, a
/// deadlock) → 503 with `Retry-After: 1`; anything else → 500. Never names the error itself to
/// the client (it may carry a database URL or a statement).
[[nodiscard]] Response failure_response(std::string_view context);

/// Request handler. Called on an io thread: it must not block (hand slow work elsewhere and keep
/// the Responder). An exception escaping it becomes a logged 500, unless it already responded.
using Handler = std::function<void(Request&&, Responder)>;

/// Server configuration.
struct ServerOptions {
    std::string address = "0.0.0.0";  ///< Address to bind (IPv4 or IPv6 literal).
    std::uint16_t port = 0;           ///< Port to bind; 0 picks an ephemeral port (see port()).
    unsigned threads = 1;             ///< io threads; 0 is treated as 1.
    std::size_t max_body_bytes =
        std::size_t{64} * 1024;  ///< Larger request bodies are answered with 413.
    /// Deadline to receive a request's line and headers; also the keep-alive idle timeout.
    std::chrono::milliseconds header_timeout{10000};
    /// Deadline to receive a request's body once its headers are in, and to write a response.
    std::chrono::milliseconds read_timeout{30000};
    /// Open connections at most; 0: the process's descriptor limit (raised to its hard limit
    /// at start) less a reserve for Kafka, files and the rest. When full, the connection that
    /// has waited longest for a request's headers is closed to make room: idle or half-sent
    /// connections cannot lock out health checks and clients.
    std::size_t max_connections = 0;
    std::string service_name;  ///< Used in log lines only.
    /// Fields added to the `/livez` answer (e.g. which instance this is), besides "status".
    nlohmann::json liveness = nlohmann::json::object();
    /// How long stop() waits for in-flight requests (handler still running, or response being
    /// written) before it closes their connections anyway.
    std::chrono::milliseconds drain_timeout{5000};
};

/// The HTTP server: routing, built-in /livez, /readyz, /metrics, problem+json errors, metrics.
///
/// Built-in routes: `GET /livez` (200 `{"status":"alive"}`), `GET /readyz` (200
/// `{"status":"ready","checks":{...}}` or 503 problem+json with the readiness detail and the
/// same `checks`; also 503 once stop() has begun), `GET /metrics` (Prometheus text format 0.0.4 of
/// the registry). `HEAD` is answered for every GET route. It records
/// `http_requests_total{route,method,code}` and `http_request_duration_seconds{route,method}` in
/// the registry, with the route *pattern* as label ("unmatched" for unknown paths and malformed
/// requests).
///
/// Thread-safety: configure (route(), set_readiness()) and control (start(), stop(), the
/// destructor) from one thread; port() and set_readiness() may be called from any thread.
/// stop() and the destructor must not be called from a handler (they join the io threads).
class Server {
  public:
    /// @param registry where the server's metrics live and what /metrics serves; when null, a
    ///        private registry is used. Servers sharing a registry share their series.
    Server(ServerOptions options, std::shared_ptr<prometheus::Registry> registry);
    /// Calls stop().
    ~Server();

    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;
    Server(Server&&) = delete;
    Server& operator=(Server&&) = delete;

    /// Registers `handler` for `method` (e.g. "GET") and `pattern` (e.g. "/orders/{id}/cancel").
    /// A segment "{name}" captures one non-empty path segment into Request::path_params; all
    /// other segments match literally. When several patterns match, the one with a literal
    /// segment earliest wins ("/orders/search" beats "/orders/{id}").
    /// @throws std::invalid_argument on a malformed pattern/method or a duplicate route.
    /// @throws std::logic_error if called after start().
    void route(std::string method, std::string pattern, Handler handler);

    /// Sets the readiness check behind /readyz. It runs on an io thread, so it must be quick
    /// (read cached state, never call a broker) and thread-safe. Thread-safe.
    void set_readiness(std::function<Readiness()> check);

    /// Binds, listens and starts the io threads.
    /// @throws std::system_error naming the address and port if binding fails.
    /// @throws std::logic_error if called twice or after stop().
    void start();

    /// Stops accepting, closes idle connections, lets in-flight requests finish for up to
    /// ServerOptions::drain_timeout, then closes everything and joins the io threads.
    /// Idempotent. Must not be called from a handler.
    void stop();

    /// The bound port (useful with port 0); 0 before start(). Thread-safe.
    [[nodiscard]] std::uint16_t port() const;

  private:
    class Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace orderpipe::http
