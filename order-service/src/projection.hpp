#pragma once
/// Keeps the order read model up to date from orders.events (read_committed), on every
/// instance and across restarts. Offsets live in SQLite with the changes they produced, so the
/// projection is exactly-once into SQLite without any Kafka commit. Every apply is idempotent
/// by event id, so it agrees with the intake's and the saga's write-through.

#include "order_store.hpp"

#include "orderpipe/kafka/types.hpp"

#include <atomic>
#include <functional>
#include <memory>
#include <thread>

namespace orderpipe::order {

class OrderProjection {
  public:
    using OnChange = std::function<void(const std::string&, const std::string&)>;

    OrderProjection(kafka::ClientConfig config, std::string topic, std::string db_path,
                    OnChange on_change);
    ~OrderProjection();

    /// Applies everything committed so far (to the last stable offset of every partition).
    /// @throws std::runtime_error if the topic cannot be read within `deadline`.
    void catch_up(std::chrono::milliseconds deadline);
    /// Keeps applying new events in the background.
    void start();
    void stop();

  private:
    /// One poll + apply. @returns partitions that reached their end.
    std::vector<int> step(std::chrono::milliseconds wait);
    void assign();

    kafka::ClientConfig config_;
    std::string topic_;
    OrderStore store_;
    OnChange on_change_;
    struct ConsumerHolder;
    std::unique_ptr<ConsumerHolder> consumer_;
    int partitions_ = 0;
    std::atomic<bool> stopping_{false};
    std::thread thread_;
};

}  // namespace orderpipe::order
