#pragma once
/// The email provider's HTTP JSON API (docs/CONTRACT.md "The saga", step 4), over libcurl's multi
/// interface: many sends in flight on one thread, connections kept and reused, each bounded by
/// its timeout. Answers come back through `on_done`, on the client's thread.
///
/// Thread-safety: send() and in_flight() from any thread.

#include "delivery.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <thread>

namespace orderpipe::notification {

class EmailClient {
  public:
    struct Request {
        std::uint64_t id = 0;         ///< echoed in the answer
        std::string body;             ///< the JSON document
        std::string idempotency_key;  ///< the notification_id
        std::string traceparent{};    ///< the request event's: the provider joins the trace
        /// Earlier attempts of this request that got no answer (a timeout, a dropped
        /// connection): sent as `Orderpipe-Unanswered-Attempts` when not 0, so a provider (or a
        /// test's) can tell a retry of a send it may have taken from a send again
        /// (docs/CONTRACT.md "The saga", step 4).
        int unanswered = 0;
        /// Set by send(): the attempt's NOTIFY_TIMEOUT_MS counts from there, including the
        /// time it waits for a connection.
        std::chrono::steady_clock::time_point deadline{};
    };
    using Done = std::function<void(std::uint64_t id, SendResult result)>;

    /// @param url NOTIFY_EMAIL_URL; @param timeout NOTIFY_TIMEOUT_MS per attempt;
    /// @param max_connections connections to the provider at most. Only that many sends are
    /// handed to libcurl at once; the others wait here as their request (a libcurl transfer
    /// holds ~20 KiB of buffers from the moment it is added — its 16 KiB receive buffer and the
    /// handle — so a thousand sends waiting inside libcurl cost ~20 MiB).
    EmailClient(std::string url, std::chrono::milliseconds timeout, long max_connections,
                Done on_done);
    ~EmailClient();  ///< stop()
    EmailClient(const EmailClient&) = delete;
    EmailClient& operator=(const EmailClient&) = delete;

    void send(Request request);
    /// Sends started and not answered yet.
    std::size_t in_flight() const { return in_flight_.load(); }
    /// Abandons what is in flight (no answer is delivered for it) and joins.
    void stop();

  private:
    void run();
    /// Hands `r` to libcurl with what is left of its timeout (or answers it: none left).
    void start(Request r);
    /// Delivers an answer through on_done_.
    void finish(std::uint64_t id, SendResult result);

    std::string url_;
    std::chrono::milliseconds timeout_;
    long max_connections_;
    Done on_done_;
    void* multi_ = nullptr;  // CURLM*
    std::mutex mu_;
    std::deque<Request> queued_;
    std::atomic<bool> stopping_{false};
    std::atomic<std::size_t> in_flight_{0};
    std::set<void*> active_;  // CURL* handles in the multi; the client thread's only
    std::thread thread_;      // last
};

}  // namespace orderpipe::notification
