#pragma once
/// Long-poll waiters for GET /orders/{id}?wait=...: each waits until its order's status settles
/// the wait (reached the wanted state, or can no longer reach it), or until its deadline, or
/// until its client hangs up (cancel). Completed from the thread that changed the order, the
/// timer, or an io thread. Thread-safe.

#include "orderpipe/common/logging.hpp"
#include "orderpipe/contract/names.hpp"

#include <prometheus/gauge.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace orderpipe::order {

class Waiters {
  public:
    using Done = std::function<void()>;  ///< answers with the order's current state
    /// true when `status` settles the wait.
    using Settles = std::function<bool(contract::OrderStatus)>;

    Waiters() : timer_([this] { run(); }) {}
    ~Waiters() {
        {
            std::lock_guard lock(mu_);
            stopping_ = true;
        }
        cv_.notify_all();
        timer_.join();
        for (auto& [id, list] : waiting_) {
            for (auto& w : list) call(w.done);
        }
    }
    Waiters(const Waiters&) = delete;
    Waiters& operator=(const Waiters&) = delete;

    /// Keeps `gauge` at the number of open waits (order_long_polls). Before any add().
    void set_gauge(prometheus::Gauge* gauge) { gauge_ = gauge; }

    /// Waits until notify() reports a status that `settles`, or until `deadline`.
    /// @returns a ticket for cancel().
    /// After close(), `done` is called at once instead (and 0 returned).
    std::uint64_t add(const std::string& order_id, Settles settles,
                      std::chrono::steady_clock::time_point deadline, Done done) {
        std::uint64_t ticket = 0;
        {
            std::unique_lock lock(mu_);
            if (closed_) {
                lock.unlock();
                call(done);
                return 0;
            }
            ticket = ++next_ticket_;
            waiting_[order_id].push_back({ticket, std::move(settles), deadline, std::move(done)});
            counted_locked();
        }
        cv_.notify_all();
        return ticket;
    }

    /// Forgets a waiter without answering it (its client is gone).
    void cancel(const std::string& order_id, std::uint64_t ticket) {
        std::lock_guard lock(mu_);
        auto it = waiting_.find(order_id);
        if (it == waiting_.end()) return;
        std::erase_if(it->second, [&](const Waiter& w) { return w.ticket == ticket; });
        if (it->second.empty()) waiting_.erase(it);
        counted_locked();
    }

    /// The order now has `status`: completes the waiters it settles.
    void notify(const std::string& order_id, contract::OrderStatus status) {
        std::vector<Done> ready;
        {
            std::lock_guard lock(mu_);
            auto it = waiting_.find(order_id);
            if (it == waiting_.end()) return;
            std::erase_if(it->second, [&](Waiter& w) {
                if (!w.settles(status)) return false;
                ready.push_back(std::move(w.done));
                return true;
            });
            if (it->second.empty()) waiting_.erase(it);
            counted_locked();
        }
        for (auto& d : ready) call(d);
    }

    /// The service is stopping: every waiter is answered now, with the order's current state,
    /// and so is every later one. A long-poll gets an answer, never a closed connection.
    void close() {
        std::vector<Done> all;
        {
            std::lock_guard lock(mu_);
            closed_ = true;
            for (auto& [id, list] : waiting_) {
                for (auto& w : list) all.push_back(std::move(w.done));
            }
            waiting_.clear();
            counted_locked();
        }
        cv_.notify_all();
        for (auto& d : all) call(d);
    }

    std::size_t size() const {
        std::lock_guard lock(mu_);
        std::size_t n = 0;
        for (const auto& [id, list] : waiting_) n += list.size();
        return n;
    }

  private:
    /// Answers a waiter. Its callback must not throw (it answers through Responder::answer);
    /// if one does anyway, it is logged, never carried into the thread that completed the wait
    /// (the timer's would end the process, a projection's would fail its batch).
    static void call(Done& done) noexcept {
        try {
            done();
        } catch (const std::exception& e) {
            log::error("a long-poll's answer failed", {{"error", e.what()}});
        } catch (...) {
            log::error("a long-poll's answer failed with a non-standard exception");
        }
    }

    void counted_locked() {
        if (gauge_ == nullptr) return;
        std::size_t n = 0;
        for (const auto& [id, list] : waiting_) n += list.size();
        gauge_->Set(static_cast<double>(n));
    }

    struct Waiter {
        std::uint64_t ticket;
        Settles settles;
        std::chrono::steady_clock::time_point deadline;
        Done done;
    };

    void run() {
        std::unique_lock lock(mu_);
        while (!stopping_) {
            auto next = std::chrono::steady_clock::time_point::max();
            const auto now = std::chrono::steady_clock::now();
            std::vector<Done> expired;
            for (auto it = waiting_.begin(); it != waiting_.end();) {
                std::erase_if(it->second, [&](Waiter& w) {
                    if (w.deadline <= now) {
                        expired.push_back(std::move(w.done));
                        return true;
                    }
                    next = std::min(next, w.deadline);
                    return false;
                });
                it = it->second.empty() ? waiting_.erase(it) : std::next(it);
            }
            if (!expired.empty()) {
                counted_locked();
                lock.unlock();
                for (auto& d : expired) call(d);
                lock.lock();
                continue;
            }
            if (next == std::chrono::steady_clock::time_point::max()) {
                cv_.wait(lock);
            } else {
                cv_.wait_until(lock, next);
            }
        }
    }

    mutable std::mutex mu_;
    std::condition_variable cv_;
    bool stopping_ = false;
    bool closed_ = false;
    prometheus::Gauge* gauge_ = nullptr;
    std::uint64_t next_ticket_ = 0;
    std::map<std::string, std::vector<Waiter>> waiting_;
    std::thread timer_;  // last
};

}  // namespace orderpipe::order
