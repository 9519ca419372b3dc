#include "intake.hpp"

#include "orderpipe/common/logging.hpp"
#include "orderpipe/kafka/event_record.hpp"

namespace orderpipe::order {

using Clock = std::chrono::steady_clock;

Intake::Intake(std::unique_ptr<kafka::TransactionalProducer> producer, IntakeOptions options,
               prometheus::Registry& registry)
    : producer_(std::move(producer)), options_(std::move(options)) {
    auto& txns = prometheus::BuildCounter()
                     .Name("kafka_transactions_total")
                     .Help("Kafka transactions finished, by result")
                     .Register(registry);
    txn_committed_ = &txns.Add({{"loop", "intake"}, {"result", "committed"}});
    txn_aborted_ = &txns.Add({{"loop", "intake"}, {"result", "aborted"}});
    batch_size_ = &prometheus::BuildHistogram()
                       .Name("order_intake_batch_size")
                       .Help("Orders per intake transaction (group commit)")
                       .Register(registry)
                       .Add({}, prometheus::Histogram::BucketBoundaries{1, 2, 5, 10, 20, 50, 100,
                                                                        200, 500, 1000});
    commit_seconds_ =
        &prometheus::BuildHistogram()
             .Name("order_intake_transaction_seconds")
             .Help("Time from begin to commit of an intake transaction")
             .Register(registry)
             .Add({}, prometheus::Histogram::BucketBoundaries{0.001, 0.0025, 0.005, 0.01, 0.025,
                                                              0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10});
    queue_depth_ = &prometheus::BuildGauge()
                        .Name("order_intake_queue_depth")
                        .Help("Orders waiting for an intake transaction")
                        .Register(registry)
                        .Add({});
}

Intake::~Intake() { stop(); }

void Intake::start() {
    thread_ = std::thread([this] { run(); });
}

void Intake::stop() {
    {
        std::lock_guard lock(mu_);
        if (stopping_ && !thread_.joinable()) return;
        stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    // Whatever is left could not be committed: answer it so no request hangs.
    std::deque<Pending> left;
    {
        std::lock_guard lock(mu_);
        left.swap(queue_);
    }
    for (auto& p : left) p.done({IntakeOutcome::kFailed, "the service is shutting down"});
}

bool Intake::submit(AcceptedOrder order, Completion done) {
    {
        std::lock_guard lock(mu_);
        if (stopping_ || queue_.size() >= options_.queue_capacity) return false;
        queue_.push_back({std::move(order), std::move(done)});
        queue_depth_->Set(static_cast<double>(queue_.size()));
    }
    cv_.notify_one();
    return true;
}

std::optional<std::string> Intake::not_ready_reason() const {
    std::lock_guard lock(mu_);
    if (stopping_) return "shutting down";
    if (!initialised_) {
        return init_error_.empty() ? "Kafka transactions are not initialised yet"
                                   : "Kafka transactions are not initialised: " + init_error_;
    }
    return std::nullopt;
}

bool Intake::ensure_initialised() {
    if (producer_->initialised()) return true;
    try {
        producer_->init_transactions();
        initialised_ = true;
        std::lock_guard lock(mu_);
        init_error_.clear();
        log::info("intake transactions initialised",
                  {{"transactional_id", producer_->options().transactional_id}});
        return true;
    } catch (const kafka::KafkaException& e) {
        initialised_ = false;
        std::lock_guard lock(mu_);
        init_error_ = e.what();
        log::warn("cannot initialise transactions yet", {{"error", e.what()}});
        return false;
    }
}

void Intake::run() {
    std::vector<Pending> batch;
    batch.reserve(options_.max_batch);
    for (;;) {
        if (!ensure_initialised()) {
            // Kafka is unreachable: answer what waits (503) instead of letting it hang, then
            // try again shortly.
            std::deque<Pending> failed;
            std::string why;
            {
                std::unique_lock lock(mu_);
                failed.swap(queue_);
                why = init_error_;
                queue_depth_->Set(0);
            }
            for (auto& p : failed) p.done({IntakeOutcome::kFailed, why});
            std::unique_lock lock(mu_);
            if (stopping_) return;
            cv_.wait_for(lock, std::chrono::milliseconds(500), [&] { return stopping_; });
            continue;
        }
        {
            std::unique_lock lock(mu_);
            cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
            if (queue_.empty() && stopping_) return;
            // Group commit: wait up to `linger` for more orders unless the batch is full.
            const auto deadline = Clock::now() + options_.linger;
            cv_.wait_until(lock, deadline,
                           [&] { return stopping_ || queue_.size() >= options_.max_batch; });
            while (!queue_.empty() && batch.size() < options_.max_batch) {
                batch.push_back(std::move(queue_.front()));
                queue_.pop_front();
            }
            queue_depth_->Set(static_cast<double>(queue_.size()));
        }
        process(batch);
        batch.clear();
    }
}

void Intake::process(std::vector<Pending>& batch) {
    const auto started = Clock::now();
    std::string error;
    bool committed = false;
    bool unknown = false;
    try {
        producer_->begin();
        for (const auto& p : batch) {
            auto [created, reserve] = intake_events(p.order);
            producer_->produce(kafka::to_record(options_.orders_topic, p.order.order_id, created));
            producer_->produce(
                kafka::to_record(options_.inventory_topic, p.order.order_id, reserve));
        }
        if (options_.before_commit) {
            // Fault injection strikes after the records reached the broker, so an abort has
            // real records to discard (tests check them with read_uncommitted).
            producer_->flush(producer_->options().operation_timeout);
            options_.before_commit(batch.size());
        }
        const auto outcome = producer_->commit_or_abort();
        committed = outcome == kafka::TxnOutcome::kCommitted;
        unknown = outcome == kafka::TxnOutcome::kUnknown;
        if (!committed) {
            error = unknown ? "Kafka did not confirm the commit in time"
                            : "the Kafka transaction was aborted";
        }
    } catch (const std::exception& e) {
        error = e.what();
        try {
            producer_->abort();
        } catch (const std::exception& abort_error) {
            // The handle was recreated; its init_transactions fences and aborts this one.
            error += std::string("; abort: ") + abort_error.what();
        }
    }
    if (!producer_->initialised()) initialised_ = false;
    const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
    commit_seconds_->Observe(seconds);
    batch_size_->Observe(static_cast<double>(batch.size()));
    if (committed) {
        txn_committed_->Increment();
        if (options_.after_commit) {
            std::vector<const AcceptedOrder*> orders;
            orders.reserve(batch.size());
            for (const auto& p : batch) orders.push_back(&p.order);
            try {
                options_.after_commit(orders);
            } catch (const std::exception& e) {
                // The orders are committed; the projection of orders.events fills the gap.
                log::error("write-through after commit failed", {{"error", e.what()}});
            }
        }
        for (auto& p : batch) p.done({IntakeOutcome::kCommitted, {}});
    } else {
        txn_aborted_->Increment();
        log::warn("intake transaction failed; its orders are answered 503",
                  {{"orders", batch.size()}, {"error", error}});
        for (auto& p : batch) {
            p.done({unknown ? IntakeOutcome::kUnknown : IntakeOutcome::kFailed, error});
        }
    }
}

}  // namespace orderpipe::order
