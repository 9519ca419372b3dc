#pragma once

// One HTTP connection: read a request, dispatch it, write the answer, repeat (keep-alive).
// Everything a Session does runs on its own strand. Internal to orderpipe_http.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include "orderpipe/http/server.hpp"

namespace orderpipe::http::detail {

class EndpointMetrics;
class ServerCore;
struct Liveness;
class Session;

/// Shared by every copy of one Responder; see Responder in server.hpp.
struct ResponderState {
    ResponderState(std::shared_ptr<Liveness> liveness, std::weak_ptr<Session> session) noexcept
        : liveness_(std::move(liveness)), session_(std::move(session)) {}
    /// Answers 500 if no copy of the Responder was ever called.
    ~ResponderState();

    ResponderState(const ResponderState&) = delete;
    ResponderState& operator=(const ResponderState&) = delete;
    ResponderState(ResponderState&&) = delete;
    ResponderState& operator=(ResponderState&&) = delete;

    /// First call wins; hands the response to the session's strand.
    void complete(Response response, bool dropped);
    void set_on_cancel(std::function<void()> on_cancel);
    /// The client hung up: marks the request done and calls on_cancel (once).
    void cancel();

    std::shared_ptr<Liveness> liveness_;
    std::weak_ptr<Session> session_;  // weak: see ServerCore::sessions_ for who owns sessions
    std::atomic<bool> done_{false};
    std::mutex cancel_mutex_;
    std::function<void()> on_cancel_;  // guarded by cancel_mutex_
};

class Session : public std::enable_shared_from_this<Session> {
  public:
    Session(ServerCore& core, boost::asio::ip::tcp::socket&& socket);

    /// Starts reading the first request. Call once, after registering the session.
    void start();
    /// Asks the connection to close: now if idle, after its response if a request is in flight.
    /// Thread-safe.
    void shutdown();
    /// Queues `response` on the strand. Thread-safe; called by ResponderState.
    void post_response(Response response, bool dropped);

    /// Since when it has waited for a request's headers without a request in flight
    /// (steady_clock ticks), or 0 while a request is handled or answered. Thread-safe: read by
    /// the acceptor to pick the connection to shed when the server is full.
    std::int64_t waiting_since() const {
        return shedding_.load(std::memory_order_acquire)
                   ? 0
                   : waiting_since_.load(std::memory_order_acquire);
    }
    /// Closes the connection if it is still only waiting for headers (at most once: a session
    /// chosen is not chosen again by the accepts that follow). Thread-safe.
    void shed();

  private:
    enum class State { reading, handling, writing, lingering, closed };

    void do_read_header();
    void on_read_header(boost::beast::error_code ec, std::size_t bytes);
    void on_continue_written(boost::beast::error_code ec, std::size_t bytes);
    void do_read_body();
    void on_read_body(boost::beast::error_code ec, std::size_t bytes);
    void on_read_error(boost::beast::error_code ec);
    void on_request();
    /// While a handler works on the request, notices a client that hangs up.
    void watch_for_hangup(std::weak_ptr<ResponderState> state);
    void on_hangup_check(boost::beast::error_code ec, const std::weak_ptr<ResponderState>& state);
    void on_response(Response response, bool dropped);
    /// Answers an unreadable request, then closes (the rest of the input cannot be trusted).
    void reply_and_close(Response response, EndpointMetrics& endpoint);
    void send(Response response);
    void on_write(boost::beast::error_code ec, std::size_t bytes);
    void linger();
    void on_linger_read(boost::beast::error_code ec, std::size_t bytes);
    void close_now();
    [[nodiscard]] EndpointMetrics& endpoint_for_unread_request();

    ServerCore& core_;
    boost::beast::tcp_stream stream_;
    /// Bounded: Beast's parser needs a whole header (or a chunked body's trailer) in the buffer,
    /// and trailers are not covered by its header limit, so without a bound a client could grow
    /// this without end. Past it a read fails with buffer_overflow (answered 431).
    static constexpr std::size_t kMaxBufferedBytes = std::size_t{32} * 1024;
    boost::beast::flat_buffer buffer_{kMaxBufferedBytes};
    std::optional<boost::beast::http::request_parser<boost::beast::http::string_body>> parser_;
    boost::beast::http::response<boost::beast::http::string_body> response_;
    boost::beast::http::response<boost::beast::http::empty_body> continue_;
    std::string remote_;
    State state_ = State::reading;
    bool stopping_ = false;
    std::atomic<std::int64_t> waiting_since_{0};
    std::atomic<bool> shedding_{false};

    // The request in flight (one at a time: no pipelining).
    EndpointMetrics* endpoint_ = nullptr;
    std::string_view route_label_;  // points into the immutable route table, or a literal
    std::string method_;
    std::chrono::steady_clock::time_point started_;
    unsigned version_ = 11;
    bool keep_alive_ = true;
    bool head_ = false;
    bool close_after_write_ = false;
    bool linger_after_write_ = false;
    std::size_t lingered_bytes_ = 0;
};

}  // namespace orderpipe::http::detail
