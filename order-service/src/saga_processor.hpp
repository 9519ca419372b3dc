#pragma once
/// order-service's read-process-write step: consumes inventory.responses and decides
/// (ORDER_CONFIRMED / ORDER_CANCELLED + NOTIFICATION_REQUESTED), and runs the compensations that
/// have no input record — customer cancels and ORDER_TIMEOUT — in the same loop, so one thread
/// decides everything about an order and two decisions can never race.
///
/// State: decisions read the read model (OrderStore) through an overlay of the changes made in
/// the open transaction; the overlay is written to SQLite only after the Kafka transaction
/// commits. If the process dies in between, the projection of orders.events catches the read
/// model up at the next start, before this loop consumes anything.

#include "order_store.hpp"
#include "saga.hpp"

#include "orderpipe/kafka/processing_loop.hpp"

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <mutex>

namespace orderpipe::order {

class SagaProcessor final : public kafka::BatchProcessor {
  public:
    struct CancelResult {
        int status;  ///< 202 accepted, 404 unknown, 409 already cancelled, 503 not committed
        std::string detail;
    };
    using CancelDone = std::function<void(const CancelResult&)>;
    /// Called after a change is in SQLite: (order_id, new status).
    using OnChange = std::function<void(const std::string&, const std::string&)>;

    SagaProcessor(OrderStore& store, SagaTopics topics, std::chrono::milliseconds order_timeout,
                  OnChange on_change);

    /// Queues a customer cancel; `done` is called once, from the loop thread. Thread-safe.
    void request_cancel(const std::string& order_id, CancelDone done);

    void process(std::vector<kafka::Incoming>& batch, kafka::BatchOutput& out) override;
    void idle(kafka::BatchOutput& out) override;
    bool has_idle_work() override;
    void committed() override;
    void aborted() override;

  private:
    std::optional<OrderRecord> current(const std::string& order_id);
    void apply(const SagaStep& step, const OrderRecord& base, kafka::BatchOutput& out);

    OrderStore& store_;
    SagaTopics topics_;
    std::chrono::milliseconds order_timeout_;
    OnChange on_change_;

    std::mutex queue_mu_;
    std::deque<std::pair<std::string, CancelDone>> cancels_;

    // The open transaction's effects.
    std::map<std::string, OrderRecord> overlay_;
    std::vector<OrderChange> changes_;
    std::vector<CancelDone> accepted_cancels_;
    std::chrono::steady_clock::time_point next_timeout_scan_{};
};

}  // namespace orderpipe::order
