#pragma once
// The HTTP side of orderpipe-bench: POST /orders over keep-alive connections (Boost.Beast, one
// io thread), in an open loop (a target rate; each request's latency counts from the time it was
// *meant* to be sent, so a server that falls behind cannot hide its queueing — no coordinated
// omission) or a closed loop (each connection sends its next order when the last is answered).

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace orderpipe::bench {

using Clock = std::chrono::steady_clock;

struct LoadOptions {
    std::string host = "127.0.0.1";
    std::uint16_t port = 8080;
    double rate = 0;               ///< open loop: orders/s; 0 = closed loop
    std::size_t connections = 64;  ///< connections (closed loop: the concurrency)
    std::uint64_t seed = 42;
};

/// One answered (or failed) POST.
struct Sample {
    Clock::time_point intended;  ///< when it was meant to go (open loop) or went (closed)
    Clock::time_point answered;
    int status = 0;        ///< 0: transport error
    std::string order_id;  ///< on a 201
};

/// Runs the load on its own thread until stop(). Thread-safe: start/stop/take from one thread.
class Load {
  public:
    explicit Load(LoadOptions options);
    ~Load();
    Load(const Load&) = delete;
    Load& operator=(const Load&) = delete;

    /// Called on the io thread for every answer (e.g. to remember the order id).
    void on_sample(std::function<void(const Sample&)> f);
    void start();
    /// Stops sending; waits up to `drain` for the answers in flight. @returns how many were
    /// still unanswered.
    std::size_t stop(std::chrono::milliseconds drain);
    /// Requests queued (open loop) but not yet sent, now: a growing backlog means the target rate
    /// is above what the service takes.
    std::size_t backlog() const;

  private:
    class Impl;
    std::unique_ptr<Impl> impl_;
};

/// A random order body: 95 % of them 1-3 lines of well-stocked SKUs, 4 % more MONITOR-001 than
/// there is (cancelled for stock), 1 % an unknown SKU (cancelled). The SKUs and prices are the
/// built-in catalog's (docs/CONFIGURATION.md).
std::string order_body(std::uint64_t n);

/// Stock levels the bench sets before it runs (PUT /inventory/{sku}), so well-stocked SKUs never
/// run out and MONITOR-001 always does.
const std::map<std::string, long long>& bench_stock();

}  // namespace orderpipe::bench
