#pragma once
/// Long-poll waiters for GET /orders/{id}?wait=...: each waits for its order to reach a state,
/// or for its deadline. Completed from the thread that changed the order, or from the timer.
/// Thread-safe.

#include <chrono>
#include <condition_variable>
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

    Waiters() : timer_([this] { run(); }) {}
    ~Waiters() {
        {
            std::lock_guard lock(mu_);
            stopping_ = true;
        }
        cv_.notify_all();
        timer_.join();
        for (auto& [id, list] : waiting_) {
            for (auto& w : list) w.done();
        }
    }
    Waiters(const Waiters&) = delete;
    Waiters& operator=(const Waiters&) = delete;

    /// Waits until notify() reports a status that `wanted` accepts, or until `deadline`.
    void add(const std::string& order_id, std::function<bool(const std::string&)> wanted,
             std::chrono::steady_clock::time_point deadline, Done done) {
        {
            std::lock_guard lock(mu_);
            waiting_[order_id].push_back({std::move(wanted), deadline, std::move(done)});
        }
        cv_.notify_all();
    }

    /// The order now has `status`: completes the waiters it satisfies.
    void notify(const std::string& order_id, const std::string& status) {
        std::vector<Done> ready;
        {
            std::lock_guard lock(mu_);
            auto it = waiting_.find(order_id);
            if (it == waiting_.end()) return;
            std::erase_if(it->second, [&](Waiter& w) {
                if (!w.wanted(status)) return false;
                ready.push_back(std::move(w.done));
                return true;
            });
            if (it->second.empty()) waiting_.erase(it);
        }
        for (auto& d : ready) d();
    }

  private:
    struct Waiter {
        std::function<bool(const std::string&)> wanted;
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
                lock.unlock();
                for (auto& d : expired) d();
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

    std::mutex mu_;
    std::condition_variable cv_;
    bool stopping_ = false;
    std::map<std::string, std::vector<Waiter>> waiting_;
    std::thread timer_;  // last
};

}  // namespace orderpipe::order
