#include "orderpipe/kafka/processing_loop.hpp"

#include "orderpipe/common/logging.hpp"
#include "orderpipe/common/time.hpp"
#include "orderpipe/kafka/consumer.hpp"
#include "orderpipe/kafka/event_record.hpp"
#include "orderpipe/kafka/producer.hpp"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <atomic>
#include <csignal>
#include <map>
#include <mutex>
#include <thread>

namespace orderpipe::kafka {

using Clock = std::chrono::steady_clock;

void BatchOutput::dead_letter(const ConsumedRecord& r, const std::string& reason,
                              const std::string& error, int retry_count) {
    OutgoingRecord out;
    out.topic = dlq_topic_ ? dlq_topic_(r.topic) : r.topic + ".dlq";
    out.key = r.key;
    out.value = r.value;
    out.headers = r.headers;  // byte for byte, then the dlq.* headers
    out.headers.emplace_back("dlq.original_topic", r.topic);
    out.headers.emplace_back("dlq.original_partition", std::to_string(r.partition));
    out.headers.emplace_back("dlq.original_offset", std::to_string(r.offset));
    out.headers.emplace_back("dlq.consumer_group", consumer_group_);
    out.headers.emplace_back("dlq.failure_timestamp", now_rfc3339());
    out.headers.emplace_back("dlq.retry_count", std::to_string(retry_count));
    out.headers.emplace_back("dlq.reason", reason);
    out.headers.emplace_back("dlq.last_error", error);
    records_.push_back(std::move(out));
    ++dead_letters_;
}

class ProcessingLoop::Impl final : public RebalanceListener {
  public:
    Impl(ClientConfig config, LoopOptions options, BatchProcessor& processor,
         prometheus::Registry& registry)
        : config_(std::move(config)), options_(std::move(options)), processor_(processor) {
        auto& txns = prometheus::BuildCounter()
                         .Name("kafka_transactions_total")
                         .Help("Kafka transactions finished, by result")
                         .Register(registry);
        committed_ = &txns.Add({{"loop", options_.name}, {"result", "committed"}});
        aborted_ = &txns.Add({{"loop", options_.name}, {"result", "aborted"}});
        auto& records = prometheus::BuildCounter()
                            .Name("kafka_records_processed_total")
                            .Help("Consumed records whose transaction committed, by result")
                            .Register(registry);
        records_ok_ = &records.Add({{"loop", options_.name}, {"result", "processed"}});
        records_dlq_ = &records.Add({{"loop", options_.name}, {"result", "dead_lettered"}});
        batch_seconds_ =
            &prometheus::BuildHistogram()
                 .Name("kafka_batch_processing_seconds")
                 .Help("Time to process and commit one batch")
                 .Register(registry)
                 .Add({{"loop", options_.name}},
                      prometheus::Histogram::BucketBoundaries{0.001, 0.0025, 0.005, 0.01, 0.025,
                                                              0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10});
        lag_family_ = &prometheus::BuildGauge()
                           .Name("kafka_consumer_lag")
                           .Help("Records between the consumer's position and the high watermark")
                           .Register(registry);
    }

    void start() {
        ProducerOptions po;
        po.transactional_id = options_.transactional_id;
        po.operation_timeout = options_.operation_timeout;
        producer_ = std::make_unique<TransactionalProducer>(config_, po);
        ConsumerOptions co;
        co.group_id = options_.group_id;
        // The transactional.id is stable per instance, so it also names the static member.
        co.group_instance_id = options_.transactional_id;
        consumer_ = std::make_unique<Consumer>(config_, co, this);
        thread_ = std::thread([this] { run(); });
    }

    void stop() {
        if (stopping_.exchange(true)) {
            if (thread_.joinable()) thread_.join();
            return;
        }
        if (consumer_) consumer_->wake();
        if (thread_.joinable()) thread_.join();
    }

    void wake() {
        wake_requested_ = true;
        if (consumer_) consumer_->wake();
    }

    std::optional<std::string> not_ready_reason() const {
        if (stopping_) return "stopping";
        std::lock_guard lock(status_mu_);
        if (!status_.empty()) return options_.name + ": " + status_;
        return std::nullopt;
    }

    // RebalanceListener: called inside poll_batch() on the loop thread, never mid-transaction.
    void on_assigned(const std::vector<TopicPartition>& partitions) override {
        joined_ = true;
        log::info("partitions assigned", {{"loop", options_.name}, {"count", partitions.size()}});
        set_status_if_joined();
    }
    void on_revoked(const std::vector<TopicPartition>& partitions) override {
        drop_pending(partitions);
        log::info("partitions revoked", {{"loop", options_.name}, {"count", partitions.size()}});
    }
    void on_lost(const std::vector<TopicPartition>& partitions) override {
        drop_pending(partitions);
        log::warn("partitions lost", {{"loop", options_.name}, {"count", partitions.size()}});
    }

  private:
    void set_status(std::string s) {
        std::lock_guard lock(status_mu_);
        status_ = std::move(s);
    }
    void set_status_if_joined() {
        if (producer_->initialised() && joined_) set_status("");
    }

    void drop_pending(const std::vector<TopicPartition>& partitions) {
        // Polled but unprocessed records of these partitions will be fetched again by their next
        // owner from the committed offsets.
        std::erase_if(pending_, [&](const ConsumedRecord& r) {
            for (const auto& p : partitions) {
                if (p.topic == r.topic && p.partition == r.partition) return true;
            }
            return false;
        });
    }

    bool init_producer() {
        while (!stopping_) {
            try {
                producer_->init_transactions();
                set_status(joined_ ? "" : "waiting for partition assignment");
                return true;
            } catch (const KafkaException& e) {
                set_status(std::string("transactions not initialised: ") + e.what());
                log::warn("cannot initialise transactions yet",
                          {{"loop", options_.name}, {"error", e.what()}});
                std::this_thread::sleep_for(std::chrono::milliseconds(500));  // retry backoff
            }
        }
        return false;
    }

    void run() {
        set_status("starting");
        if (!init_producer()) return;
        if (!wait_for_topics()) return;
        try {
            consumer_->subscribe(options_.topics);
        } catch (const std::exception& e) {
            set_status(std::string("cannot subscribe: ") + e.what());
            log::error("cannot subscribe", {{"loop", options_.name}, {"error", e.what()}});
            return;
        }
        auto backoff = std::chrono::milliseconds(100);
        while (!stopping_) {
            if (needs_rewind_ && !rewind()) {
                std::this_thread::sleep_for(backoff);  // the group coordinator is unreachable
                backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
                continue;
            }
            collect();
            if (stopping_ && pending_.empty()) break;
            const bool idle_work = wake_requested_.exchange(false) || processor_.has_idle_work();
            if (pending_.empty() && !idle_work) {
                update_lag();
                continue;
            }
            if (transact()) {
                backoff = std::chrono::milliseconds(100);
            } else {
                // Aborted: the same records come again after a rewind. Back off so a persistent
                // failure (e.g. a full disk) does not spin.
                std::this_thread::sleep_for(backoff);
                backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
            }
            if (!producer_->initialised() && !init_producer()) break;
        }
        consumer_->close();
        log::info("processing loop stopped", {{"loop", options_.name}});
    }

    /// Polls until batch_max records, or batch_linger after the first, or idle_poll with none.
    void collect() {
        const auto started = Clock::now();
        Clock::time_point first_at{};
        // After a processor failure, records go one per transaction until the culprit is found.
        const std::size_t limit = isolate_remaining_ > 0 ? 1 : options_.batch_max;
        while (!stopping_ && pending_.size() < limit) {
            std::chrono::milliseconds wait = options_.idle_poll;
            if (!pending_.empty()) {
                wait = std::chrono::duration_cast<std::chrono::milliseconds>(
                    first_at + options_.batch_linger - Clock::now());
                if (wait.count() <= 0) break;
            } else if (Clock::now() - started >= options_.idle_poll || wake_requested_ ||
                       processor_.has_idle_work()) {
                break;
            }
            PollResult r;
            try {
                r = consumer_->poll_batch(limit - pending_.size(), wait);
            } catch (const KafkaException& e) {
                log::error("consumer failed", {{"loop", options_.name}, {"error", e.what()}});
                set_status(std::string("consumer failed: ") + e.what());
                std::this_thread::sleep_for(std::chrono::milliseconds(500));
                break;
            }
            if (r.records.empty()) {
                if (!pending_.empty() || wake_requested_) break;
                continue;
            }
            if (pending_.empty()) first_at = Clock::now();
            for (auto& rec : r.records) pending_.push_back(std::move(rec));
        }
    }

    /// One transaction over pending_ (maybe empty) plus idle work. @returns false if aborted.
    bool transact() {
        const auto started = Clock::now();
        BatchOutput out;
        out.consumer_group_ = options_.group_id;
        out.dlq_topic_ = options_.dlq_topic;
        std::map<std::pair<std::string, std::int32_t>, std::int64_t> next_offsets;
        bool ok = false;
        try {
            std::vector<Incoming> batch;
            batch.reserve(pending_.size());
            for (const auto& rec : pending_) {
                auto& next = next_offsets[{rec.topic, rec.partition}];
                next = std::max(next, rec.offset + 1);
                auto decoded = from_record(rec);
                if (auto* err = std::get_if<EnvelopeError>(&decoded)) {
                    log::warn("poison record sent to the DLQ", {{"loop", options_.name},
                                                                {"topic", rec.topic},
                                                                {"partition", rec.partition},
                                                                {"offset", rec.offset},
                                                                {"error", err->message}});
                    out.dead_letter(rec, kPoisonMessage, err->message);
                    continue;
                }
                if (suspect_ && suspect_->failures >= kPoisonAfterFailures &&
                    suspect_->matches(rec)) {
                    // This record alone made the processor throw, again and again: it is
                    // poison the envelope check could not see (e.g. a field of the wrong type).
                    log::error("record keeps failing its processor; sent to the DLQ",
                               {{"loop", options_.name},
                                {"topic", rec.topic},
                                {"partition", rec.partition},
                                {"offset", rec.offset},
                                {"error", suspect_->error}});
                    out.dead_letter(rec, kPoisonMessage,
                                    "processing failed " + std::to_string(suspect_->failures) +
                                        " times: " + suspect_->error);
                    suspect_.reset();
                    continue;
                }
                batch.push_back({&rec, std::move(std::get<CloudEvent>(decoded))});
            }
            producer_->begin();
            if (!batch.empty()) {
                try {
                    processor_.process(batch, out);
                } catch (const std::exception& e) {
                    note_processor_failure(e.what());
                    throw;
                }
            }
            processor_.idle(out);
            for (const auto& r : out.records()) producer_->produce(r);
            if (!next_offsets.empty()) {
                std::vector<TopicPartitionOffset> offsets;
                for (const auto& [tp, next] : next_offsets)
                    offsets.push_back({tp.first, tp.second, next});
                producer_->send_offsets(offsets, *consumer_);
            }
            if (options_.kill_before_commit_at > 0 && !pending_.empty() &&
                ++transactions_with_input_ == options_.kill_before_commit_at) {
                producer_->flush(options_.operation_timeout);
                log::warn("FAULT_KILL_BEFORE_COMMIT: killing this process before the commit",
                          {{"loop", options_.name}, {"records", pending_.size()}});
                std::raise(SIGKILL);
            }
            ok = producer_->commit_or_abort() == TxnOutcome::kCommitted;
        } catch (const std::exception& e) {
            log::warn("transaction failed; the batch will be processed again",
                      {{"loop", options_.name}, {"records", pending_.size()}, {"error", e.what()}});
            try {
                producer_->abort();
            } catch (const std::exception& abort_error) {
                log::warn("abort failed; the producer was recreated",
                          {{"loop", options_.name}, {"error", abort_error.what()}});
            }
        }
        batch_seconds_->Observe(std::chrono::duration<double>(Clock::now() - started).count());
        if (ok) {
            committed_->Increment();
            isolate_remaining_ -= std::min(isolate_remaining_, pending_.size());
            records_dlq_->Increment(static_cast<double>(out.dead_letters()));
            records_ok_->Increment(static_cast<double>(pending_.size() - out.dead_letters()));
            pending_.clear();
            try {
                processor_.committed();
            } catch (const std::exception& e) {
                // The transaction is committed; what failed is local bookkeeping after it
                // (e.g. a read model write-through), which each processor can rebuild.
                log::error("after-commit step failed",
                           {{"loop", options_.name}, {"error", e.what()}});
            }
            update_lag();
            return true;
        }
        aborted_->Increment();
        pending_.clear();
        processor_.aborted();
        // The consumer's position is past the batch: it must go back to the committed offsets
        // before anything else is read, or the batch would be skipped. Done by run(), after the
        // producer is initialised again (so an unknown outcome has been settled by then).
        needs_rewind_ = true;
        return false;
    }

    /// Rewinds to the committed offsets. @returns false if that could not be done yet.
    bool rewind() {
        if (!producer_->initialised() && !init_producer()) return false;
        try {
            consumer_->seek_to_committed();
            needs_rewind_ = false;
            return true;
        } catch (const std::exception& e) {
            log::error("cannot rewind to the committed offsets yet; retrying",
                       {{"loop", options_.name}, {"error", e.what()}});
            return false;
        }
    }

    /// Waits until every consumed topic exists (SPEC §3: a service whose topics are missing is
    /// not ready and says which). @returns false if stopped meanwhile.
    bool wait_for_topics() {
        while (!stopping_) {
            std::string missing;
            try {
                for (const auto& t : options_.topics) {
                    if (consumer_->partition_count(t, std::chrono::seconds(5)) == 0) {
                        missing = t;
                        break;
                    }
                }
            } catch (const std::exception& e) {
                missing = std::string("(metadata unavailable: ") + e.what() + ")";
            }
            if (missing.empty()) return true;
            set_status("topic " + missing + " is missing (run scripts/create-topics.sh)");
            std::this_thread::sleep_for(std::chrono::seconds(2));  // retry interval
        }
        return false;
    }

    /// The processor threw on pending_. A batch of several is retried one record per
    /// transaction; a single record that throws kPoisonAfterFailures times is dead-lettered, so
    /// no record can wedge its partition.
    void note_processor_failure(const std::string& error) {
        if (pending_.size() > 1) {
            isolate_remaining_ = std::max(isolate_remaining_, pending_.size());
            return;
        }
        const auto& rec = pending_.front();
        if (suspect_ && suspect_->matches(rec)) {
            ++suspect_->failures;
            suspect_->error = error;
        } else {
            suspect_ = Suspect{rec.topic, rec.partition, rec.offset, 1, error};
        }
        isolate_remaining_ = std::max<std::size_t>(isolate_remaining_, 1);
    }

    void update_lag() {
        const auto now = Clock::now();
        if (now - lag_updated_ < std::chrono::seconds(1)) return;
        lag_updated_ = now;
        for (const auto& [tp, lag] : consumer_->lag()) {
            auto key = std::make_pair(tp.topic, tp.partition);
            auto it = lag_gauges_.find(key);
            if (it == lag_gauges_.end()) {
                it = lag_gauges_
                         .emplace(key,
                                  &lag_family_->Add({{"loop", options_.name},
                                                     {"topic", tp.topic},
                                                     {"partition", std::to_string(tp.partition)}}))
                         .first;
            }
            it->second->Set(static_cast<double>(lag));
        }
    }

    ClientConfig config_;
    LoopOptions options_;
    BatchProcessor& processor_;
    std::unique_ptr<TransactionalProducer> producer_;
    std::unique_ptr<Consumer> consumer_;
    std::vector<ConsumedRecord> pending_;
    std::size_t transactions_with_input_ = 0;
    static constexpr int kPoisonAfterFailures = 3;
    struct Suspect {
        std::string topic;
        std::int32_t partition;
        std::int64_t offset;
        int failures;
        std::string error;
        bool matches(const ConsumedRecord& r) const {
            return r.topic == topic && r.partition == partition && r.offset == offset;
        }
    };
    std::optional<Suspect> suspect_;
    bool needs_rewind_ = false;
    std::size_t isolate_remaining_ = 0;
    std::atomic<bool> stopping_{false};
    std::atomic<bool> wake_requested_{false};
    std::atomic<bool> joined_{false};
    mutable std::mutex status_mu_;
    std::string status_ = "not started";
    prometheus::Counter* committed_;
    prometheus::Counter* aborted_;
    prometheus::Counter* records_ok_;
    prometheus::Counter* records_dlq_;
    prometheus::Histogram* batch_seconds_;
    prometheus::Family<prometheus::Gauge>* lag_family_;
    std::map<std::pair<std::string, std::int32_t>, prometheus::Gauge*> lag_gauges_;
    Clock::time_point lag_updated_{};
    std::thread thread_;  // last: joined before the members it uses go away
};

ProcessingLoop::ProcessingLoop(ClientConfig config, LoopOptions options, BatchProcessor& processor,
                               prometheus::Registry& registry)
    : impl_(std::make_unique<Impl>(std::move(config), std::move(options), processor, registry)) {}

ProcessingLoop::~ProcessingLoop() { stop(); }

void ProcessingLoop::start() { impl_->start(); }
void ProcessingLoop::stop() { impl_->stop(); }
void ProcessingLoop::wake() { impl_->wake(); }
std::optional<std::string> ProcessingLoop::not_ready_reason() const {
    return impl_->not_ready_reason();
}

}  // namespace orderpipe::kafka
