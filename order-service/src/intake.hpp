#pragma once
/// Group-committed order intake (docs/ARCHITECTURE.md "Intake"): many concurrent requests share
/// one Kafka transaction. A batch closes after `max_batch` orders or `linger` after its first,
/// whichever comes first; each request is answered only once its transaction's outcome is
/// known (Placement says how), and within its deadline: a request still queued at its deadline
/// is answered 503 (it never entered a transaction).
///
/// The intake thread owns the transactional producer and its own SQLite connections (the
/// Idempotency-Keys and the read model's write-through): nothing of it runs on HTTP threads.
///
/// Thread-safety: submit() and not_ready_reason() from any thread.

#include "orderpipe/runtime/deadline_queue.hpp"
#include "placement.hpp"
#include "read_model.hpp"

#include "orderpipe/kafka/producer.hpp"

#include <atomic>
#include <memory>
#include <mutex>
#include <thread>

namespace prometheus {
class Registry;
}

namespace orderpipe::order {

struct IntakeOptions {
    std::size_t max_batch = 500;
    std::chrono::milliseconds linger{2};
    std::size_t queue_capacity = 20000;
    std::string orders_topic;
    std::string inventory_topic;
    std::string transactional_id;
    /// Bounds one commit; an unknown outcome gets as long again to settle.
    std::chrono::milliseconds commit_timeout{10000};
    /// The intake's own Idempotency-Keys and read model (write-through, lookups): SQLite in
    /// DATA_DIR or the shared PostgreSQL database. Called once each, from the constructor.
    std::function<std::unique_ptr<IdempotencyStore>()> open_keys;
    std::function<std::unique_ptr<OrderStore>()> open_orders;
    /// Remembers the orders written through, for the projection to skip (optional).
    WrittenThrough* written_through = nullptr;
    /// Waits until the read model has applied everything committed (the projection), and
    /// passed these offsets (the intake producer's acknowledged records).
    std::function<bool(std::chrono::milliseconds, const kafka::PartitionOffsets&)> caught_up;
    /// The intake cannot go on (fenced by a newer instance): the process must exit.
    std::function<void(const std::string&)> on_fatal;
    /// Test hook: called inside each transaction after its records reached the broker;
    /// throwing aborts that transaction (fault injection).
    std::function<void(std::size_t batch_size)> before_commit;
};

class Intake {
  public:
    Intake(kafka::ClientConfig client, IntakeOptions options, prometheus::Registry& registry);
    ~Intake();  ///< stop()
    Intake(const Intake&) = delete;
    Intake& operator=(const Intake&) = delete;

    /// Starts the intake thread: it initialises transactions (fencing a previous incarnation),
    /// turns keys a dead process left pending into unknown ones, then takes orders.
    void start();
    /// Stops taking orders, commits what is queued (bounded by its deadlines), joins.
    void stop();

    enum class Submit { kQueued, kFull, kStopping };
    Submit submit(PlaceRequest request);

    /// nullopt when orders can be taken; otherwise why not.
    std::optional<std::string> not_ready_reason() const;

    /// An order answered 201 that the read model could not store yet (a full disk): GET must
    /// find it all the same (read-your-writes). Thread-safe.
    std::optional<OrderRecord> unwritten(const std::string& order_id);

  private:
    class Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace orderpipe::order
