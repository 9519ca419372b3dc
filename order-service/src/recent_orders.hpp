#pragma once
/// Orders this instance accepted, for read-your-writes on GET /orders/{id} right after a 201.
/// Bounded: the oldest entries are evicted past `capacity`. Thread-safe.

#include <nlohmann/json.hpp>

#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

namespace orderpipe::order {

class RecentOrders {
public:
    explicit RecentOrders(std::size_t capacity = 200000) : capacity_(capacity) {}

    void put(const std::string& order_id, nlohmann::json view) {
        std::lock_guard lock(mu_);
        if (orders_.insert_or_assign(order_id, std::move(view)).second) {
            order_.push_back(order_id);
            while (order_.size() > capacity_) {
                orders_.erase(order_.front());
                order_.pop_front();
            }
        }
    }

    std::optional<nlohmann::json> get(const std::string& order_id) const {
        std::lock_guard lock(mu_);
        auto it = orders_.find(order_id);
        if (it == orders_.end()) return std::nullopt;
        return it->second;
    }

private:
    mutable std::mutex mu_;
    std::size_t capacity_;
    std::unordered_map<std::string, nlohmann::json> orders_;
    std::deque<std::string> order_;
};

}  // namespace orderpipe::order
