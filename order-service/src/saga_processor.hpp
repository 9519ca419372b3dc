#pragma once
/// order-service's read-process-write step (docs/ARCHITECTURE.md "Decisions"): consumes
/// inventory.responses and decides (ORDER_CONFIRMED / ORDER_CANCELLED + NOTIFICATION_REQUESTED),
/// and runs the compensations that have no input record — customer cancels and ORDER_TIMEOUT —
/// in the same loop, so one thread decides everything about an order and two decisions can
/// never race.
///
/// State: decisions read the read model through an overlay of the changes made in the open
/// transaction (a batch's orders read at once); the overlay is written to the read model, in
/// one write, only after the Kafka transaction commits.
/// After an unknown outcome (or a failed write after a commit) the loop calls resync(), which
/// waits until the projection of orders.events has caught up: only then does the read model
/// hold every decision that did commit, and only then may the saga decide again. A cancel whose
/// transaction's outcome was unknown is answered from the read model then (202 if its
/// ORDER_CANCELLED committed, otherwise it is decided again).
///
/// Scaled out (N instances, one shared read model: scale_out()), an order's decisions belong to
/// the instance whose loop owns the order's partition of inventory.responses (and of
/// orders.commands, co-partitioned): its results come there, its ORDER_TIMEOUT is scanned only
/// there, and a customer cancel taken by another instance reaches it as an
/// ORDER_CANCEL_REQUESTED command on orders.commands. Partitions newly assigned are decided on
/// only after the read model caught up with what their previous owner committed (resync).

#include "orderpipe/runtime/deadline_queue.hpp"
#include "read_model.hpp"
#include "saga.hpp"

#include "orderpipe/kafka/processing_loop.hpp"

#include <chrono>
#include <functional>
#include <map>
#include <set>

namespace orderpipe::order {

class SagaProcessor final : public kafka::BatchProcessor {
  public:
    enum class CancelOutcome {
        kAccepted,          ///< 202: ORDER_CANCELLED is committed
        kNotFound,          ///< 404
        kAlreadyCancelled,  ///< 409
        kNotCommitted,      ///< 503: nothing was committed; retry
    };
    using CancelDone = std::function<void(CancelOutcome, const std::string& detail)>;
    /// Called after a change is in the read model: (order_id, new status).
    using OnChange = std::function<void(const std::string&, contract::OrderStatus)>;
    /// Waits until the read model has applied everything committed to orders.events.
    using CaughtUp = std::function<bool(std::chrono::milliseconds, const kafka::PartitionOffsets&)>;

    SagaProcessor(OrderStore& store, SagaTopics topics, std::chrono::milliseconds order_timeout,
                  OnChange on_change, CaughtUp caught_up);

    /// Remembers the decisions it writes through, for the projection to skip (WrittenThrough).
    /// Before the loop starts.
    void remember_written(WrittenThrough* written) { written_ = written; }

    /// N instances share the read model: decide only the orders of the partitions this loop is
    /// assigned. `responses_partitions`: inventory.responses's partition count (nullopt while
    /// unknown: no timeout is scanned then). Before the loop starts.
    void scale_out(std::function<std::optional<int>()> responses_partitions);

    /// Queues a customer cancel, answered by `deadline` at the latest. Thread-safe.
    /// @returns false when too many cancels wait (answer 429).
    bool request_cancel(const std::string& order_id, CancelDone done,
                        std::chrono::steady_clock::time_point deadline);

    void process(std::vector<kafka::Incoming>& batch, kafka::BatchOutput& out) override;
    void idle(kafka::BatchOutput& out) override;
    bool has_idle_work() override;
    void committed() override;
    void aborted() override;
    void outcome_unknown() override;
    bool resync(std::chrono::milliseconds budget,
                const kafka::PartitionOffsets& acknowledged) override;
    bool partitions_assigned(const std::vector<kafka::TopicPartition>& partitions) override;
    void partitions_revoked(const std::vector<kafka::TopicPartition>& partitions) override;

  private:
    struct Cancel {
        std::string order_id;
        CancelDone done;
        std::chrono::steady_clock::time_point deadline;
        std::string event_id;  ///< its ORDER_CANCELLED, once decided
    };

    /// The order as the open transaction left it: its overlay, else the batch's reads
    /// (prefetch), else the read model.
    std::optional<OrderRecord> current(const std::string& order_id);
    /// Reads the orders a batch is about at once (one round trip to a shared database).
    void prefetch(std::vector<std::string> order_ids);
    /// A customer cancel another instance took (orders.commands).
    void routed_cancel(const kafka::Incoming& in, kafka::BatchOutput& out);
    /// Whether this instance decides `order_id` now (always, unless scaled out).
    bool owns(const std::string& order_id, std::optional<int> partitions) const;
    void apply(const SagaStep& step, const OrderRecord& base, bool base_is_new,
               kafka::BatchOutput& out);
    void forget();
    /// Queues again, or answers 503 past its deadline.
    void retry_or_fail(Cancel&& c);

    OrderStore& store_;
    WrittenThrough* written_ = nullptr;
    SagaTopics topics_;
    std::chrono::milliseconds order_timeout_;
    OnChange on_change_;
    CaughtUp caught_up_;
    runtime::DeadlineQueue<Cancel> cancels_;

    // The open transaction's effects, written to the read model once it commits.
    std::map<std::string, OrderRecord> overlay_;
    ReadModelChanges changes_;           ///< orders first seen in a result, transitions, releases
    std::vector<CloudEvent> decisions_;  ///< its orders.events events (logged once committed)
    /// What prefetch() read (nullopt: not there); only while a batch is being decided.
    std::map<std::string, std::optional<OrderRecord>> read_;
    std::vector<Cancel> accepted_;  ///< cancels decided in it
    std::vector<Cancel> in_doubt_;  ///< cancels of a transaction with unknown outcome
    std::chrono::steady_clock::time_point next_timeout_scan_{};
    std::function<std::optional<int>()> responses_partitions_;  ///< set when scaled out
    std::set<int> owned_;  ///< partitions of inventory.responses assigned (scaled out)
};

/// The command that routes a customer cancel to the instance owning the order (orders.commands,
/// docs/CONTRACT.md "orders.commands"). `cancelled_id` becomes the ORDER_CANCELLED's id, so the
/// instance that took the request knows its cancel when the read model shows it; a command
/// still undecided at `expires_at_ms` (Unix ms) is dropped: by then that instance has answered
/// 503.
struct CancelCommand {
    static constexpr std::string_view kType = "ORDER_CANCEL_REQUESTED";
    std::string order_id;
    std::string cancelled_id;
    std::int64_t expires_at_ms = 0;

    /// Of `order` (its correlation id, caused by its last event, its trace continued).
    CloudEvent to_event(const OrderRecord& order) const;
    /// @throws contract::ContractError
    static CancelCommand read(const CloudEvent& event);
};

}  // namespace orderpipe::order
