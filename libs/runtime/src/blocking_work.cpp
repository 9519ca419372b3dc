#include "orderpipe/runtime/blocking_work.hpp"

#include "orderpipe/http/problem.hpp"

#include <memory>

namespace orderpipe::runtime {

BlockingWork::BlockingWork(std::string what, std::size_t threads, std::size_t max_queued,
                           std::function<void()> on_idle, std::chrono::milliseconds idle_period)
    : what_(std::move(what)),
      threads_wanted_(threads),
      max_queued_(max_queued),
      on_idle_(std::move(on_idle)),
      idle_period_(idle_period) {}

BlockingWork::~BlockingWork() { stop(); }

void BlockingWork::start() {
    for (std::size_t i = 0; i < threads_wanted_; ++i) threads_.emplace_back([this] { run(); });
}

void BlockingWork::submit(http::Request&& req, const http::Responder& respond, Handler handler) {
    auto shared = std::make_shared<http::Request>(std::move(req));
    {
        std::lock_guard lock(mu_);
        if (!stopping_ && queue_.size() < max_queued_) {
            queue_.emplace_back([this, shared, respond, handler = std::move(handler)] {
                try {
                    handler(std::move(*shared), respond);
                } catch (...) {  // on a worker: answered, never carried into it
                    respond(http::failure_response(what_));
                }
            });
            cv_.notify_one();
            return;
        }
    }
    auto busy = http::problem(
        503, "Service Unavailable",
        "too many " + what_ + "s waiting (" + std::to_string(max_queued_) + "); retry shortly");
    busy.headers.emplace_back("Retry-After", "1");
    respond(std::move(busy));
}

void BlockingWork::run() {
    for (;;) {
        std::function<void()> next;
        {
            std::unique_lock lock(mu_);
            const auto ready = [this] { return stopping_ || !queue_.empty(); };
            if (on_idle_) {
                if (!cv_.wait_for(lock, idle_period_, ready)) {
                    lock.unlock();
                    on_idle_();
                    continue;
                }
            } else {
                cv_.wait(lock, ready);
            }
            if (queue_.empty()) return;  // stopping, nothing left
            next = std::move(queue_.front());
            queue_.pop_front();
        }
        next();
    }
}

void BlockingWork::stop() {
    {
        std::lock_guard lock(mu_);
        stopping_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) {
        if (t.joinable()) t.join();
    }
    threads_.clear();
}

}  // namespace orderpipe::runtime
