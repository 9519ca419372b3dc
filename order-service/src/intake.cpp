#include "intake.hpp"

#include "sqlite_order_store.hpp"

#include "orderpipe/common/faults.hpp"
#include "orderpipe/common/logging.hpp"
#include "orderpipe/common/storage_error.hpp"
#include "orderpipe/kafka/event_record.hpp"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <algorithm>
#include <csignal>

namespace orderpipe::order {

namespace {

constexpr auto kIdleWait = std::chrono::milliseconds(100);
constexpr auto kInitRetry = std::chrono::milliseconds(500);
constexpr auto kResolveEvery = std::chrono::seconds(1);

/// The Kafka side of placement: one transactional producer.
class KafkaIntakeTransactions final : public IntakeTransactions {
  public:
    KafkaIntakeTransactions(kafka::TransactionalProducer& producer, const IntakeOptions& options)
        : producer_(producer), options_(options) {}

    Result commit(const std::vector<const AcceptedOrder*>& orders,
                  Clock::time_point deadline) override {
        std::vector<kafka::OutgoingRecord> traced;  // only when tracing is on
        try {
            producer_.begin();
            for (const auto* o : orders) {
                auto [created, reserve] = intake_events(*o);
                auto records = {kafka::to_record(options_.orders_topic, o->order_id(), created),
                                kafka::to_record(options_.inventory_topic, o->order_id(), reserve)};
                for (const auto& r : records) {
                    producer_.produce(r);
                    if (tracing::enabled()) traced.push_back(r);
                }
            }
            if (options_.before_commit || faults::enabled()) {
                // Injected faults strike after the records reached the broker, so an abort has
                // real records to discard (tests check them with read_uncommitted).
                producer_.flush(options_.commit_timeout);
                if (faults::hit("intake", "kill-before-commit")) {
                    log::warn("FAULT_INJECT kill-before-commit: killing this process",
                              {{"orders", orders.size()}});
                    std::raise(SIGKILL);
                }
                if (options_.before_commit) options_.before_commit(orders.size());
            }
        } catch (const std::exception& e) {
            // Nothing was committed, unless the abort does not complete (then nobody knows).
            if (producer_.abort()) return {Outcome::kAborted, e.what()};
            return unknown(std::string(e.what()) + "; the abort did not complete");
        }
        switch (producer_.commit_or_abort(deadline)) {
            case kafka::TxnOutcome::kCommitted:
                kafka::trace_committed(traced);
                return {Outcome::kCommitted, ""};
            case kafka::TxnOutcome::kAborted:
                return {Outcome::kAborted, "the Kafka transaction was aborted"};
            case kafka::TxnOutcome::kUnknown:
                return unknown("Kafka did not confirm the commit in time");
            case kafka::TxnOutcome::kFenced:
                if (options_.on_fatal) {
                    options_.on_fatal(
                        "intake fenced: another instance took over transactional.id " +
                        options_.transactional_id);
                }
                return unknown("this instance was fenced by a newer one");
        }
        return unknown("unexpected commit outcome");
    }

    bool settle(Clock::time_point deadline) override {
        auto backoff = std::chrono::milliseconds(100);
        while (!producer_.initialised()) {
            if (producer_.fenced()) return false;
            try {
                producer_.init_transactions();
            } catch (const kafka::KafkaException& e) {
                if (e.error().is_fenced() || Clock::now() + backoff >= deadline) return false;
                std::this_thread::sleep_for(backoff);
                backoff = std::min(backoff * 2, std::chrono::milliseconds(1000));
            }
        }
        unsettled_ = false;
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        // Past every record the unknown transaction wrote (a committed transaction had them
        // all acknowledged first), not only to the listed ends: those can be stale right after
        // a leader moved, and an order that did commit would be answered "not created".
        return left.count() > 0 && options_.caught_up(left, producer_.acknowledged());
    }

    bool settled() const override { return !unsettled_ && producer_.initialised(); }

    /// The producer was initialised again (by the intake thread): everything before is settled.
    void mark_settled() { unsettled_ = false; }

  private:
    Result unknown(std::string error) {
        unsettled_ = true;
        return {Outcome::kUnknown, std::move(error)};
    }

    kafka::TransactionalProducer& producer_;
    const IntakeOptions& options_;
    bool unsettled_ = true;  // until the first init_transactions fences the last incarnation
};

/// The read model as the intake thread sees it: its own connection.
///
/// Read-your-writes when the read model cannot be written (a full disk): the orders of the batch
/// whose write-through failed were answered 201 already, so they are kept in memory for GET
/// until they can be written; and while that lasts no further order is taken (writable() is
/// false: 503, nothing committed), so what memory holds stays one batch.
class IntakeOrders final : public OrderLookup {
  public:
    IntakeOrders(const IntakeOptions& options, const kafka::TransactionalProducer& producer)
        : store_(options.open_orders()),
          mem_(open_sqlite_orders(":memory:")),
          options_(options),
          producer_(producer) {}

    std::optional<std::string> created_body(const std::string& order_id) override {
        auto r = store_->get(order_id, false);
        if (!r) r = unwritten(order_id);
        if (!r) return std::nullopt;
        return created_response(r->order()).dump();
    }

    void write_through(const std::vector<const AcceptedOrder*>& orders) override {
        ReadModelChanges changes;
        for (const auto* o : orders) {
            changes.created.push_back({pending_record(o->created, o->created.to_json(),
                                                      o->correlation_id, o->traceparent),
                                       o->created_event_id});
        }
        try {
            if (faults::hit("intake", "write-through-fails")) {
                throw StorageError("database or disk is full (FAULT_INJECT)", false);
            }
            store_->write(changes);
            if (options_.written_through != nullptr) options_.written_through->add(changes);
        } catch (const std::exception&) {
            std::lock_guard lock(mem_mu_);
            mem_->write(changes);
            for (auto& c : changes.created) unwritten_.created.push_back(std::move(c));
            throw;
        }
    }

    bool writable() override {
        ReadModelChanges pending;
        {
            std::lock_guard lock(mem_mu_);
            if (unwritten_.empty()) return true;
            pending = unwritten_;
        }
        try {
            if (faults::hit("intake", "write-through-fails")) {
                throw StorageError("database or disk is full (FAULT_INJECT)", false);
            }
            store_->write(pending);  // the projection may have written some: no-op for those
        } catch (const std::exception& e) {
            log::warn("the read model still cannot be written; refusing orders",
                      {{"error", e.what()}, {"orders_in_memory", pending.created.size()}});
            return false;
        }
        std::lock_guard lock(mem_mu_);
        unwritten_.clear();
        mem_ = open_sqlite_orders(":memory:");
        log::info("the read model can be written again; taking orders");
        return true;
    }

    /// An order answered 201 whose write-through failed, until it is written. Thread-safe.
    std::optional<OrderRecord> unwritten(const std::string& order_id) {
        std::lock_guard lock(mem_mu_);
        if (unwritten_.empty()) return std::nullopt;
        return mem_->get(order_id, false);
    }

    bool caught_up(std::chrono::milliseconds deadline) override {
        return options_.caught_up(deadline, producer_.acknowledged());
    }

  private:
    std::unique_ptr<OrderStore> store_;
    std::mutex mem_mu_;
    std::unique_ptr<OrderStore> mem_;  // guarded by mem_mu_
    ReadModelChanges unwritten_;       // guarded by mem_mu_
    const IntakeOptions& options_;
    const kafka::TransactionalProducer& producer_;
};

}  // namespace

class Intake::Impl {
  public:
    Impl(kafka::ClientConfig client, IntakeOptions options, prometheus::Registry& registry)
        : options_(std::move(options)),
          producer_(std::move(client), producer_options(options_)),
          txns_(producer_, options_),
          keys_(options_.open_keys()),
          orders_(options_, producer_),
          placement_(*keys_, txns_, orders_, options_.commit_timeout),
          queue_(options_.queue_capacity, [](PlaceRequest&& r) {
              r.done({PlaceOutcome::kNotCommitted, r.order.order_id(), "", 0,
                      "the intake could not take the order in time; it was not created"});
          }) {
        auto& txns = prometheus::BuildCounter()
                         .Name("kafka_transactions_total")
                         .Help("Kafka transactions finished, by loop and outcome")
                         .Register(registry);
        txn_committed_ = &txns.Add({{"loop", "intake"}, {"result", "committed"}});
        txn_aborted_ = &txns.Add({{"loop", "intake"}, {"result", "aborted"}});
        txn_unknown_ = &txns.Add({{"loop", "intake"}, {"result", "unknown"}});
        batch_size_ = &prometheus::BuildHistogram()
                           .Name("order_intake_batch_size")
                           .Help("Orders per intake transaction (group commit)")
                           .Register(registry)
                           .Add({}, prometheus::Histogram::BucketBoundaries{1, 2, 5, 10, 20, 50,
                                                                            100, 200, 500, 1000});
        queue_depth_ = &prometheus::BuildGauge()
                            .Name("order_intake_queue_depth")
                            .Help("Orders waiting for an intake transaction")
                            .Register(registry)
                            .Add({});
        placement_.on_batch = [this](std::size_t n, IntakeTransactions::Outcome o) {
            batch_size_->Observe(static_cast<double>(n));
            (o == IntakeTransactions::Outcome::kCommitted ? txn_committed_
             : o == IntakeTransactions::Outcome::kAborted ? txn_aborted_
                                                          : txn_unknown_)
                ->Increment();
        };
    }

    static kafka::ProducerOptions producer_options(const IntakeOptions& o) {
        kafka::ProducerOptions po;
        po.transactional_id = o.transactional_id;
        po.operation_timeout = o.commit_timeout;
        po.fault_scope = "intake";
        return po;
    }

    void start() {
        thread_ = std::thread([this] { run(); });
    }

    void stop() {
        queue_.close();
        stopping_ = true;
        queue_.wake();
        if (thread_.joinable()) thread_.join();
        for (auto& r : queue_.drain()) {
            r.done({PlaceOutcome::kNotCommitted, r.order.order_id(), "", 0,
                    "the service is shutting down; the order was not created"});
        }
    }

    Submit submit(PlaceRequest request) {
        const auto deadline = request.deadline;
        switch (queue_.push(std::move(request), deadline)) {
            case runtime::DeadlineQueue<PlaceRequest>::Push::kQueued:
                queue_depth_->Set(static_cast<double>(queue_.size()));
                return Submit::kQueued;
            case runtime::DeadlineQueue<PlaceRequest>::Push::kFull:
                return Submit::kFull;
            case runtime::DeadlineQueue<PlaceRequest>::Push::kClosed:
                break;
        }
        return Submit::kStopping;
    }

    IntakeOrders& orders() { return orders_; }

    std::optional<std::string> not_ready_reason() const {
        std::lock_guard lock(mu_);
        if (!ready_) return why_not_;
        return std::nullopt;
    }

  private:
    void set_state(bool ready, std::string why) {
        std::lock_guard lock(mu_);
        ready_ = ready;
        why_not_ = std::move(why);
    }

    void run() {
        try {
            if (auto n = keys_->pending_to_unknown(); n > 0) {
                log::warn("Idempotency-Keys left pending by the last run are now unknown",
                          {{"keys", n}});
            }
            if (auto n = keys_->purge_expired(); n > 0) {
                log::info("purged expired Idempotency-Keys", {{"keys", n}});
            }
        } catch (const std::exception& e) {
            log::error("cannot read the Idempotency-Keys", {{"error", e.what()}});
        }
        auto last_resolve = Clock::now() - kResolveEvery;
        set_state(false, "initialising Kafka transactions");
        while (!stopping_) {
            if (!producer_.initialised() && !initialise()) continue;
            if (Clock::now() - last_resolve >= kResolveEvery) {
                last_resolve = Clock::now();
                try {
                    placement_.resolve_unknown_keys(std::chrono::milliseconds(500));
                } catch (const std::exception& e) {
                    log::warn("cannot resolve unknown Idempotency-Keys yet", {{"error", e.what()}});
                }
            }
            auto batch = queue_.take(options_.max_batch, kIdleWait, options_.linger);
            queue_depth_->Set(static_cast<double>(queue_.size()));
            if (batch.empty()) continue;
            placement_.place(batch);
        }
        // Draining: commit what is still queued (each bounded by its deadline), if we can.
        while (producer_.initialised()) {
            auto batch = queue_.take(options_.max_batch, std::chrono::milliseconds(0),
                                     std::chrono::milliseconds(0));
            if (batch.empty()) break;
            placement_.place(batch);
        }
    }

    /// One attempt to initialise the producer. @returns true when initialised.
    bool initialise() {
        try {
            producer_.init_transactions();
            txns_.mark_settled();
            set_state(true, "");
            log::info("intake transactions initialised",
                      {{"transactional_id", options_.transactional_id}});
            return true;
        } catch (const kafka::KafkaException& e) {
            if (e.error().is_fenced()) {
                set_state(false, std::string("fenced: ") + e.what());
                if (options_.on_fatal) options_.on_fatal(std::string("intake: ") + e.what());
                stopping_ = true;
                return false;
            }
            set_state(false, std::string("Kafka transactions are not initialised: ") + e.what());
            log::warn("cannot initialise intake transactions yet", {{"error", e.what()}});
        }
        // Kafka is unreachable: answer what waits (503) instead of letting it hang.
        for (auto& r : queue_.drain()) {
            r.done({PlaceOutcome::kNotCommitted, r.order.order_id(), "", 0,
                    "Kafka is not available; the order was not created"});
        }
        auto until = Clock::now() + kInitRetry;
        while (!stopping_ && Clock::now() < until) std::this_thread::sleep_for(kIdleWait);
        return false;
    }

    IntakeOptions options_;
    kafka::TransactionalProducer producer_;
    KafkaIntakeTransactions txns_;
    std::unique_ptr<IdempotencyStore> keys_;
    IntakeOrders orders_;
    Placement placement_;
    runtime::DeadlineQueue<PlaceRequest> queue_;
    mutable std::mutex mu_;
    bool ready_ = false;
    std::string why_not_ = "not started";
    std::atomic<bool> stopping_{false};
    prometheus::Counter* txn_committed_;
    prometheus::Counter* txn_aborted_;
    prometheus::Counter* txn_unknown_;
    prometheus::Histogram* batch_size_;
    prometheus::Gauge* queue_depth_;
    std::thread thread_;  // last
};

Intake::Intake(kafka::ClientConfig client, IntakeOptions options, prometheus::Registry& registry)
    : impl_(std::make_unique<Impl>(std::move(client), std::move(options), registry)) {}
Intake::~Intake() { stop(); }
void Intake::start() { impl_->start(); }
void Intake::stop() { impl_->stop(); }
Intake::Submit Intake::submit(PlaceRequest request) { return impl_->submit(std::move(request)); }
std::optional<std::string> Intake::not_ready_reason() const { return impl_->not_ready_reason(); }

std::optional<OrderRecord> Intake::unwritten(const std::string& order_id) {
    return impl_->orders().unwritten(order_id);
}

}  // namespace orderpipe::order
