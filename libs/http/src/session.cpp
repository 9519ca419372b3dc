#include "session.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <exception>

#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>
#include <boost/asio/socket_base.hpp>
#include <boost/beast/core/bind_handler.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>

#include "metrics.hpp"
#include "orderpipe/http/problem.hpp"
#include "server_core.hpp"
#include "url.hpp"

namespace orderpipe::http::detail {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

constexpr std::uint32_t kHeaderLimit = 16 * 1024;
// After answering an unreadable request we read and discard what the client still sends before
// closing: closing with unread input makes the kernel send RST, which can destroy our 413/400
// before the client reads it.
constexpr std::size_t kLingerMaxBytes = std::size_t{1024} * 1024;
constexpr std::chrono::milliseconds kLingerTimeout{2000};
constexpr std::size_t kLingerChunk = std::size_t{16} * 1024;
constexpr std::string_view kUnmatched = "unmatched";

std::string format_remote(const tcp::socket& socket) {
    beast::error_code ec;
    const auto endpoint = socket.remote_endpoint(ec);
    if (ec) {
        return "unknown";
    }
    const auto address = endpoint.address();
    std::string text = address.is_v6() ? "[" + address.to_string() + "]" : address.to_string();
    return text + ":" + std::to_string(endpoint.port());
}

// Bounded label values: a method Beast knows, else "OTHER".
std::string_view method_label(const bhttp::request_header<>& header) {
    if (header.method() == bhttp::verb::unknown) {
        return "OTHER";
    }
    return bhttp::to_string(header.method());
}

bool is_token(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
               std::string_view{"!#$%&'*+-.^_`|~"}.find(c) != std::string_view::npos;
    });
}

bool is_safe_value(std::string_view s) {
    return s.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

// Validates a handler's response so a bad one becomes a 500 instead of a broken or injected
// message. Returns an empty string when the response is fine.
std::string invalid_reason(const Response& response) {
    if (response.status < 200 || response.status > 599) {
        return "status " + std::to_string(response.status) + " is not a final status (200..599)";
    }
    if (!is_safe_value(response.content_type)) {
        return "content type contains CR, LF or NUL";
    }
    for (const auto& [name, value] : response.headers) {
        if (!is_token(name) || !is_safe_value(value)) {
            return "header '" + name + "' has an invalid name or value";
        }
    }
    return {};
}

}  // namespace

// ---- ResponderState ---------------------------------------------------------------------------

ResponderState::~ResponderState() {
    if (done_.load(std::memory_order_acquire)) {
        return;
    }
    try {
        complete(problem(500, "Internal Server Error",
                         "the request handler finished without producing a response"),
                 true);
    } catch (...) {  // NOLINT(bugprone-empty-catch)
        // A destructor must not throw. Only std::bad_alloc gets here; the connection then stays
        // open until the client gives up or stop() closes it.
    }
}

void ResponderState::complete(Response response, bool dropped) {
    if (done_.exchange(true, std::memory_order_acq_rel)) {
        return;
    }
    // Hold the liveness lock across lock() + post(): it keeps the io_context (and so the
    // session's socket) alive until the handler is queued. See Liveness.
    const std::lock_guard lock(liveness_->mutex);
    if (!liveness_->open) {
        return;
    }
    if (auto session = session_.lock()) {
        session->post_response(std::move(response), dropped);
    }
}

void ResponderState::set_on_cancel(std::function<void()> on_cancel) {
    const std::lock_guard lock(cancel_mutex_);
    on_cancel_ = std::move(on_cancel);
}

void ResponderState::cancel() {
    if (done_.exchange(true, std::memory_order_acq_rel)) {
        return;  // answered meanwhile
    }
    std::function<void()> callback;
    {
        const std::lock_guard lock(cancel_mutex_);
        callback.swap(on_cancel_);
    }
    if (callback) {
        try {
            callback();
        } catch (const std::exception& e) {
            spdlog::error("http: on_cancel callback threw: {}", e.what());
        }
    }
}

// ---- Session ----------------------------------------------------------------------------------

Session::Session(ServerCore& core, tcp::socket&& socket)
    : core_(core), stream_(std::move(socket)), remote_(format_remote(stream_.socket())) {}

void Session::start() {
    net::post(stream_.get_executor(), [self = shared_from_this()] { self->do_read_header(); });
}

void Session::shutdown() {
    net::post(stream_.get_executor(), [self = shared_from_this()] {
        self->stopping_ = true;
        // In-flight requests finish (their response closes the connection); idle or half-read
        // connections close now.
        if (self->state_ == State::reading || self->state_ == State::lingering) {
            self->close_now();
        }
    });
}

void Session::shed() {
    if (shedding_.exchange(true, std::memory_order_acq_rel)) return;
    net::post(stream_.get_executor(), [self = shared_from_this()] {
        if (self->state_ == State::reading && self->waiting_since_.load() != 0) {
            self->core_.metrics().connection_shed();
            self->close_now();
        } else {
            self->shedding_.store(false, std::memory_order_release);  // busy now: keep it
        }
    });
}

void Session::post_response(Response response, bool dropped) {
    net::post(stream_.get_executor(),
              [self = shared_from_this(), response = std::move(response), dropped]() mutable {
                  self->on_response(std::move(response), dropped);
              });
}

void Session::do_read_header() {
    state_ = State::reading;
    parser_.emplace();
    parser_->header_limit(kHeaderLimit);
    parser_->body_limit(core_.options().max_body_bytes);
    // The request line and headers must come within header_timeout (also the keep-alive idle
    // timeout): the defence against slow-loris clients and idle connections piling up; the
    // body then has read_timeout.
    stream_.expires_after(std::min(core_.options().header_timeout, core_.options().read_timeout));
    waiting_since_.store(std::chrono::steady_clock::now().time_since_epoch().count(),
                         std::memory_order_release);
    bhttp::async_read_header(
        stream_, buffer_, *parser_,
        beast::bind_front_handler(&Session::on_read_header, shared_from_this()));
}

void Session::on_read_header(beast::error_code ec, std::size_t /*bytes*/) {
    waiting_since_.store(0, std::memory_order_release);
    if (state_ == State::closed) {
        return;
    }
    if (ec) {
        on_read_error(ec);
        return;
    }
    const auto& header = parser_->get();
    if (!parser_->is_done() && beast::iequals(header[bhttp::field::expect], "100-continue")) {
        // The body fits (a too large Content-Length already failed with body_limit): tell the
        // client to send it instead of letting it wait for its own timeout.
        continue_ = bhttp::response<bhttp::empty_body>(bhttp::status::continue_, header.version());
        bhttp::async_write(
            stream_, continue_,
            beast::bind_front_handler(&Session::on_continue_written, shared_from_this()));
        return;
    }
    do_read_body();
}

void Session::on_continue_written(beast::error_code ec, std::size_t /*bytes*/) {
    if (state_ == State::closed) {
        return;
    }
    if (ec) {
        close_now();
        return;
    }
    do_read_body();
}

void Session::do_read_body() {
    if (parser_->is_done()) {
        on_request();
        return;
    }
    stream_.expires_after(core_.options().read_timeout);
    bhttp::async_read(stream_, buffer_, *parser_,
                      beast::bind_front_handler(&Session::on_read_body, shared_from_this()));
}

void Session::on_read_body(beast::error_code ec, std::size_t /*bytes*/) {
    if (state_ == State::closed) {
        return;
    }
    if (ec) {
        on_read_error(ec);
        return;
    }
    on_request();
}

void Session::on_read_error(beast::error_code ec) {
    if (ec == bhttp::error::body_limit) {
        reply_and_close(problem(413, "Content Too Large",
                                "the request body exceeds " +
                                    std::to_string(core_.options().max_body_bytes) + " bytes"),
                        endpoint_for_unread_request());
        return;
    }
    if (ec == bhttp::error::buffer_overflow) {
        // A trailer (or a header) larger than the parser may hold: it is never read to the end,
        // so answer and close rather than wait for more.
        reply_and_close(problem(431, "Request Header Fields Too Large",
                                "the request's header or trailer fields exceed " +
                                    std::to_string(kMaxBufferedBytes) + " bytes"),
                        core_.metrics().endpoint(kUnmatched, method_label(parser_->get())));
        return;
    }
    if (ec == bhttp::error::header_limit) {
        reply_and_close(
            problem(431, "Request Header Fields Too Large",
                    "the request header exceeds " + std::to_string(kHeaderLimit) + " bytes"),
            core_.metrics().endpoint(kUnmatched, method_label(parser_->get())));
        return;
    }
    // end_of_stream: the client closed between requests. partial_message: it closed mid-request.
    // timeout: tcp_stream has already closed the socket, nothing can be sent.
    if (ec.category() == bhttp::make_error_code(bhttp::error::bad_target).category() &&
        ec != bhttp::error::end_of_stream && ec != bhttp::error::partial_message) {
        reply_and_close(problem(400, "Bad Request", "malformed HTTP request: " + ec.message()),
                        core_.metrics().endpoint(kUnmatched, method_label(parser_->get())));
        return;
    }
    close_now();
}

EndpointMetrics& Session::endpoint_for_unread_request() {
    // The request line is parsed before any body_limit error, so the 413 can be counted on its
    // route (e.g. POST /orders) rather than as "unmatched".
    const auto& header = parser_->get();
    const auto method = method_label(header);
    const ParsedTarget target = parse_target(header.target());
    if (target.error.empty()) {
        std::map<std::string, std::string> ignored;
        const auto match = core_.router().match(header.method_string(), target.segments, ignored);
        return core_.metrics().endpoint(match.label, method);
    }
    return core_.metrics().endpoint(kUnmatched, method);
}

void Session::on_request() {
    auto& message = parser_->get();
    started_ = std::chrono::steady_clock::now();
    version_ = message.version();
    keep_alive_ = message.keep_alive();
    head_ = message.method() == bhttp::verb::head;
    method_.assign(message.method_string());
    // A handler may take as long as it needs (e.g. a Kafka commit); no deadline while waiting.
    stream_.expires_never();
    state_ = State::handling;

    Request request;
    request.method = method_;
    ParsedTarget target = parse_target(message.target());
    if (!target.error.empty()) {
        route_label_ = kUnmatched;
        endpoint_ = &core_.metrics().endpoint(kUnmatched, method_label(message));
        send(problem(400, "Bad Request", target.error));
        return;
    }
    // RFC 9112 3.2: an HTTP/1.1 request carries exactly one Host; without it, or with two, 400.
    if (const auto hosts = message.count(bhttp::field::host);
        hosts > 1 || (hosts == 0 && version_ >= 11)) {
        route_label_ = kUnmatched;
        endpoint_ = &core_.metrics().endpoint(kUnmatched, method_label(message));
        send(problem(400, "Bad Request",
                     hosts > 1 ? "more than one Host header"
                               : "an HTTP/1.1 request needs a Host header (RFC 9112, 3.2)"));
        return;
    }
    const Router::Match match =
        core_.router().match(request.method, target.segments, request.path_params);
    route_label_ = match.label;
    if (match.route == nullptr) {
        endpoint_ = &core_.metrics().endpoint(match.label, method_label(message));
        if (match.allow.empty()) {
            send(problem(404, "Not Found", "no route for " + target.path));
        } else {
            Response response =
                problem(405, "Method Not Allowed", method_ + " is not allowed on " + target.path);
            response.headers.emplace_back("Allow", match.allow);
            send(std::move(response));
        }
        return;
    }
    // A HEAD served by a GET route is counted as HEAD.
    endpoint_ = match.route->method == method_
                    ? match.route->metrics
                    : &core_.metrics().endpoint(match.label, method_label(message));

    request.target.assign(message.target());
    request.path = std::move(target.path);
    request.query = std::move(target.query);
    request.headers.reserve(
        static_cast<std::size_t>(std::distance(message.begin(), message.end())));
    for (const auto& field : message) {
        request.headers.emplace_back(field.name_string(), field.value());
    }
    request.body = std::move(message.body());
    request.remote = remote_;
    parser_.reset();

    // Our copy keeps the state alive through the call, so a handler that throws can still be
    // answered; when the last copy goes without a call, ResponderState answers 500.
    auto state = std::make_shared<ResponderState>(core_.liveness(), weak_from_this());
    const Responder responder(state);
    try {
        match.route->handler(std::move(request), responder);
    } catch (...) {
        responder(failure_response(
            fmt::format("{}handler for {} {}", core_.log_prefix(), method_, route_label_)));
    }
    if (!responder.responded()) {
        watch_for_hangup(state);
    }
}

void Session::watch_for_hangup(std::weak_ptr<ResponderState> state) {
    stream_.socket().async_wait(tcp::socket::wait_read,
                                [self = shared_from_this(), state = std::move(state)](
                                    beast::error_code ec) { self->on_hangup_check(ec, state); });
}

void Session::on_hangup_check(beast::error_code ec, const std::weak_ptr<ResponderState>& state) {
    if (state_ != State::handling || ec == net::error::operation_aborted) {
        return;  // answered (or closed) meanwhile
    }
    if (!ec) {
        // Asio's reactor may report a socket readable that is not (an edge seen earlier), so
        // look without waiting: data means a pipelined request (the client is there); nothing
        // yet means wait again; only 0 bytes (end of stream) or an error is a hang-up.
        char byte = 0;
        const auto n = ::recv(stream_.socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n > 0) {
            return;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            watch_for_hangup(state);
            return;
        }
    }
    // End of stream, or a reset: the client went away. Nobody will read the answer.
    if (auto s = state.lock()) {
        s->cancel();
    }
    if (endpoint_ != nullptr) {
        const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - started_;
        endpoint_->observe(499, elapsed.count());  // nginx's "client closed request"
        endpoint_ = nullptr;
    }
    close_now();
}

void Session::on_response(Response response, bool dropped) {
    if (state_ != State::handling) {
        return;  // connection closed meanwhile (stop() past its drain timeout, or write error)
    }
    if (dropped) {
        spdlog::error("{}handler for {} {} dropped its Responder without answering; sent 500",
                      core_.log_prefix(), method_, route_label_);
    }
    send(std::move(response));
}

void Session::reply_and_close(Response response, EndpointMetrics& endpoint) {
    endpoint_ = &endpoint;
    started_ = std::chrono::steady_clock::now();
    const auto& header = parser_->get();
    version_ = header.version() == 10 ? 10 : 11;
    head_ = false;
    keep_alive_ = false;
    linger_after_write_ = true;
    send(std::move(response));
}

void Session::send(Response response) {
    if (response.reset_connection) {
        beast::error_code ignored;
        stream_.socket().set_option(net::socket_base::linger(true, 0), ignored);  // RST on close
        endpoint_ = nullptr;  // no status was sent: nothing to count
        close_now();
        return;
    }
    if (auto reason = invalid_reason(response); !reason.empty()) {
        spdlog::error("{}handler for {} {} produced an invalid response ({}); sent 500",
                      core_.log_prefix(), method_, route_label_, reason);
        response =
            problem(500, "Internal Server Error", "the handler produced an invalid response");
    }
    bool close = !keep_alive_ || stopping_ || core_.stopping();

    response_.clear();  // drops the previous response's fields
    response_.version(version_);
    response_.result(static_cast<unsigned>(response.status));
    response_.set(bhttp::field::server, "orderpipe");
    if (!response.content_type.empty()) {
        response_.set(bhttp::field::content_type, response.content_type);
    }
    for (const auto& [name, value] : response.headers) {
        if (beast::iequals(name, "Content-Length") || beast::iequals(name, "Transfer-Encoding") ||
            beast::iequals(name, "Server")) {
            continue;  // framing and identity are ours
        }
        if (beast::iequals(name, "Connection")) {
            close = close || beast::iequals(value, "close");
            continue;
        }
        response_.insert(name, value);
    }
    response_.keep_alive(!close);
    if (response.status == 204 || response.status == 304) {
        response_.body().clear();  // no body and no Content-Length allowed (RFC 9110 §8.6)
    } else {
        response_.body() = std::move(response.body);
        response_.content_length(response_.body().size());
        if (head_) {
            response_.body().clear();  // HEAD: the GET's Content-Length, no body
        }
    }
    close_after_write_ = close;
    state_ = State::writing;
    stream_.expires_after(core_.options().read_timeout);
    bhttp::async_write(stream_, response_,
                       beast::bind_front_handler(&Session::on_write, shared_from_this()));
}

void Session::on_write(beast::error_code ec, std::size_t /*bytes*/) {
    if (endpoint_ != nullptr) {
        const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - started_;
        endpoint_->observe(static_cast<int>(response_.result_int()), elapsed.count());
        endpoint_ = nullptr;
    }
    if (state_ == State::closed) {
        return;
    }
    if (ec) {
        close_now();
        return;
    }
    if (linger_after_write_) {
        linger();
        return;
    }
    if (close_after_write_ || stopping_ || core_.stopping()) {
        // The whole request was read, so nothing unread remains: a plain close sends FIN.
        beast::error_code ignored;
        stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
        close_now();
        return;
    }
    do_read_header();
}

void Session::linger() {
    state_ = State::lingering;
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.expires_after(
        std::min<std::chrono::milliseconds>(kLingerTimeout, core_.options().read_timeout));
    buffer_.clear();
    stream_.async_read_some(
        buffer_.prepare(kLingerChunk),
        beast::bind_front_handler(&Session::on_linger_read, shared_from_this()));
}

void Session::on_linger_read(beast::error_code ec, std::size_t bytes) {
    if (state_ == State::closed) {
        return;
    }
    lingered_bytes_ += bytes;
    if (ec || lingered_bytes_ > kLingerMaxBytes) {
        close_now();
        return;
    }
    stream_.async_read_some(
        buffer_.prepare(kLingerChunk),
        beast::bind_front_handler(&Session::on_linger_read, shared_from_this()));
}

void Session::close_now() {
    if (state_ == State::closed) {
        return;
    }
    state_ = State::closed;
    stream_.close();  // also cancels pending operations; their handlers see state_ == closed
    // May drop the registry's reference; every caller runs inside a handler that holds another.
    core_.unregister_session(this);
}

}  // namespace orderpipe::http::detail
