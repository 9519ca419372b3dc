#pragma once

// The server proper (Server is a thin facade over it). Internal to orderpipe_http.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include "metrics.hpp"
#include "orderpipe/http/server.hpp"
#include "router.hpp"

namespace orderpipe::http::detail {

class Session;

/// Shared by the server and every ResponderState. A Responder may outlive the Server, so before
/// posting to a connection it checks `open` under `mutex`; the server clears it (under the same
/// mutex) before the io_context can go away. Without this, a late Responder would post to a
/// destroyed io_context.
struct Liveness {
    std::mutex mutex;
    bool open = true;
};

class ServerCore {
  public:
    ServerCore(ServerOptions options, std::shared_ptr<prometheus::Registry> registry);
    ~ServerCore();

    ServerCore(const ServerCore&) = delete;
    ServerCore& operator=(const ServerCore&) = delete;
    ServerCore(ServerCore&&) = delete;
    ServerCore& operator=(ServerCore&&) = delete;

    void route(std::string method, std::string pattern, Handler handler);
    void set_readiness(std::function<Readiness()> check);
    void start();
    void stop();
    [[nodiscard]] std::uint16_t port() const { return port_.load(std::memory_order_acquire); }

    // ---- used by sessions (any io thread) ----
    [[nodiscard]] const ServerOptions& options() const { return options_; }
    [[nodiscard]] const Router& router() const { return router_; }
    [[nodiscard]] HttpMetrics& metrics() { return metrics_; }
    [[nodiscard]] const std::shared_ptr<Liveness>& liveness() const { return liveness_; }
    [[nodiscard]] const std::string& log_prefix() const { return log_prefix_; }
    /// True once stop() has begun: responses then close their connection.
    [[nodiscard]] bool stopping() const { return stopping_.load(std::memory_order_acquire); }
    void unregister_session(Session* session);

  private:
    void do_accept();
    void on_accept(boost::system::error_code ec, boost::asio::ip::tcp::socket socket);
    void run_io();
    [[nodiscard]] Response readiness_response();
    [[nodiscard]] Response metrics_response() const;
    [[nodiscard]] bool on_io_thread() const;

    // Declared first so it is destroyed last: sockets, timers and queued handlers (which may own
    // sessions) must all go before it.
    boost::asio::io_context ioc_;
    ServerOptions options_;
    std::string log_prefix_;
    std::shared_ptr<prometheus::Registry> registry_;
    HttpMetrics metrics_;
    Router router_;
    std::shared_ptr<Liveness> liveness_ = std::make_shared<Liveness>();

    // The acceptor and its retry timer live on one strand; stop() posts its close there.
    boost::asio::strand<boost::asio::io_context::executor_type> accept_strand_;
    boost::asio::ip::tcp::acceptor acceptor_;
    boost::asio::steady_timer accept_retry_timer_;

    std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
    std::vector<std::thread> threads_;
    std::vector<std::thread::id> thread_ids_;
    std::atomic<bool> stopping_{false};
    std::atomic<std::uint16_t> port_{0};

    enum class Phase { configuring, running, stopped };
    std::mutex control_mutex_;  // start()/stop()
    Phase phase_ = Phase::configuring;

    std::mutex readiness_mutex_;
    std::function<Readiness()> readiness_;

    // Owns every open connection. A session waiting for its Responder has no pending operation,
    // so this map is what keeps it alive; it also lets stop() reach every connection.
    std::mutex sessions_mutex_;
    std::condition_variable sessions_drained_;
    std::unordered_map<Session*, std::shared_ptr<Session>> sessions_;
    std::size_t max_connections_ = 0;  ///< set by start()
};

}  // namespace orderpipe::http::detail
