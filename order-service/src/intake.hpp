#pragma once
/// Group-committed order intake (SPEC §5.1): many concurrent requests share one Kafka
/// transaction. A batch closes after `max_batch` orders or `linger` after its first order,
/// whichever comes first; it is answered only after its transaction commits (or aborts).
///
/// Thread-safety: submit() is called from any thread; one internal thread owns the producer.

#include "order.hpp"
#include "orderpipe/kafka/producer.hpp"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

namespace orderpipe::order {

struct IntakeOptions {
    std::size_t max_batch = 500;
    std::chrono::milliseconds linger{2};
    std::size_t queue_capacity = 20000;
    std::string orders_topic = "orders.events";
    std::string inventory_topic = "inventory.requests";
    /// Test hook: called inside each open transaction after its records were produced; throwing
    /// aborts that transaction (fault injection).
    std::function<void(std::size_t batch_size)> before_commit;
    /// Called on the intake thread after a transaction committed, before its orders are
    /// answered (the read model's write-through, for read-your-writes).
    std::function<void(const std::vector<const AcceptedOrder*>&)> after_commit;
};

enum class IntakeOutcome {
    kCommitted,  ///< both events of the order are committed
    kFailed,     ///< nothing of the order is committed
    kUnknown,    ///< Kafka never confirmed the commit: the order may or may not exist
};

struct IntakeResult {
    IntakeOutcome outcome;
    std::string error;  ///< why, when failed
};

class Intake {
  public:
    using Completion = std::function<void(const IntakeResult&)>;

    Intake(std::unique_ptr<kafka::TransactionalProducer> producer, IntakeOptions options,
           prometheus::Registry& registry);
    ~Intake();  ///< stops (see stop())
    Intake(const Intake&) = delete;
    Intake& operator=(const Intake&) = delete;

    void start();
    /// Stops taking orders, commits what is queued (bounded by the producer's timeouts), then
    /// joins. Orders still queued after that are answered as failed.
    void stop();

    /// Queues an order. @returns false when the queue is full (answer 429) or stopping.
    /// `done` is called exactly once, from the intake thread.
    bool submit(AcceptedOrder order, Completion done);

    /// nullopt when transactions are initialised and the queue has room; otherwise why not.
    std::optional<std::string> not_ready_reason() const;

  private:
    struct Pending {
        AcceptedOrder order;
        Completion done;
    };
    void run();
    void process(std::vector<Pending>& batch);
    bool ensure_initialised();

    std::unique_ptr<kafka::TransactionalProducer> producer_;
    IntakeOptions options_;

    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::deque<Pending> queue_;
    bool stopping_ = false;
    std::atomic<bool> initialised_{false};
    std::string init_error_;  // guarded by mu_

    prometheus::Counter* txn_committed_;
    prometheus::Counter* txn_aborted_;
    prometheus::Histogram* batch_size_;
    prometheus::Histogram* commit_seconds_;
    prometheus::Gauge* queue_depth_;

    std::thread thread_;  // last: joins before the members it uses are destroyed
};

}  // namespace orderpipe::order
