#pragma once
/// HTTP handlers that block — a database query, a call to another service, reading Kafka — run
/// here, on threads of their own, never on the HTTP server's: then a slow dependency never holds
/// /livez, /readyz or /metrics. The queue is bounded; beyond it a request is answered 503 with
/// Retry-After at once.

#include "orderpipe/http/server.hpp"

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace orderpipe::runtime {

class BlockingWork {
  public:
    using Handler = std::function<void(http::Request&&, const http::Responder&)>;

    /// `what` is named in the 503 and in a failure's answer. When `on_idle` is set, a thread
    /// that waited `idle_period` for work calls it (e.g. a refresh).
    BlockingWork(std::string what, std::size_t threads, std::size_t max_queued,
                 std::function<void()> on_idle = {},
                 std::chrono::milliseconds idle_period = std::chrono::seconds(1));
    ~BlockingWork();
    BlockingWork(const BlockingWork&) = delete;
    BlockingWork& operator=(const BlockingWork&) = delete;

    void start();
    /// Runs `handler` on a worker thread; a handler that throws is answered 500. 503 with
    /// Retry-After when `max_queued` wait already, or once stopping.
    void submit(http::Request&& req, const http::Responder& respond, Handler handler);
    /// Runs what is queued, then joins the threads.
    void stop();

  private:
    void run();

    const std::string what_;
    const std::size_t threads_wanted_;
    const std::size_t max_queued_;
    const std::function<void()> on_idle_;
    const std::chrono::milliseconds idle_period_;
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<std::function<void()>> queue_;  // guarded by mu_
    bool stopping_ = false;                    // guarded by mu_
    std::vector<std::thread> threads_;
};

}  // namespace orderpipe::runtime
