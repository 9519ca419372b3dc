#pragma once
/// A bounded queue of requests that each must be answered by a deadline. Requests still queued
/// at their deadline — never handed to a transaction — are taken out by a sweeper thread and
/// given to `on_expired` (which answers them: nothing of them was committed), so a consumer
/// stuck on a slow commit cannot leave requests behind it unanswered.
///
/// Thread-safe. `on_expired` runs on the sweeper thread, outside the lock.

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace orderpipe::runtime {

template <typename T>
class DeadlineQueue {
  public:
    using Clock = std::chrono::steady_clock;
    enum class Push { kQueued, kFull, kClosed };

    DeadlineQueue(std::size_t capacity, std::function<void(T&&)> on_expired)
        : capacity_(capacity), on_expired_(std::move(on_expired)), sweeper_([this] { sweep(); }) {}

    ~DeadlineQueue() {
        close();
        {
            std::lock_guard lock(mu_);
            stopping_ = true;
        }
        sweep_cv_.notify_all();
        sweeper_.join();
    }
    DeadlineQueue(const DeadlineQueue&) = delete;
    DeadlineQueue& operator=(const DeadlineQueue&) = delete;

    /// Moves from `item` only when it is queued.
    Push push(T&& item, Clock::time_point deadline) {
        {
            std::lock_guard lock(mu_);
            if (closed_) return Push::kClosed;
            if (items_.size() >= capacity_) return Push::kFull;
            items_.push_back({std::move(item), deadline});
        }
        cv_.notify_one();
        return Push::kQueued;
    }

    /// Waits up to `wait` for a first item, then up to `linger` more (or until `max` are there),
    /// and takes up to `max`. Returns early, maybe empty, when woken.
    std::vector<T> take(std::size_t max, std::chrono::milliseconds wait,
                        std::chrono::milliseconds linger) {
        std::vector<T> out;
        std::unique_lock lock(mu_);
        if (!cv_.wait_for(lock, wait, [&] { return !items_.empty() || woken_; })) return out;
        if (!items_.empty() && items_.size() < max && linger.count() > 0) {
            cv_.wait_for(lock, linger, [&] { return items_.size() >= max || woken_; });
        }
        woken_ = false;
        while (!items_.empty() && out.size() < max) {
            out.push_back(std::move(items_.front().item));
            items_.pop_front();
        }
        return out;
    }

    /// Makes a waiting take() return.
    void wake() {
        {
            std::lock_guard lock(mu_);
            woken_ = true;
        }
        cv_.notify_all();
    }

    /// Refuses further pushes (kClosed). Queued items stay until taken or drained.
    void close() {
        {
            std::lock_guard lock(mu_);
            closed_ = true;
        }
        wake();
    }

    std::vector<T> drain() {
        std::lock_guard lock(mu_);
        std::vector<T> out;
        for (auto& e : items_) out.push_back(std::move(e.item));
        items_.clear();
        return out;
    }

    std::size_t size() const {
        std::lock_guard lock(mu_);
        return items_.size();
    }

  private:
    struct Entry {
        T item;
        Clock::time_point deadline;
    };

    void sweep() {
        std::unique_lock lock(mu_);
        while (!stopping_) {
            sweep_cv_.wait_for(lock, std::chrono::milliseconds(50));
            const auto now = Clock::now();
            std::vector<T> expired;
            for (auto it = items_.begin(); it != items_.end();) {
                if (it->deadline <= now) {
                    expired.push_back(std::move(it->item));
                    it = items_.erase(it);
                } else {
                    ++it;
                }
            }
            if (expired.empty()) continue;
            lock.unlock();
            for (auto& e : expired) on_expired_(std::move(e));
            lock.lock();
        }
    }

    const std::size_t capacity_;
    std::function<void(T&&)> on_expired_;
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::condition_variable sweep_cv_;
    std::deque<Entry> items_;
    bool closed_ = false;
    bool woken_ = false;
    bool stopping_ = false;
    std::thread sweeper_;  // last: started after the members it uses
};

}  // namespace orderpipe::runtime
