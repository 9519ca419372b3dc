#include "orderpipe/kafka/processing_loop.hpp"

#include "orderpipe/common/faults.hpp"
#include "orderpipe/common/logging.hpp"
#include "orderpipe/common/time.hpp"
#include "orderpipe/common/tracing.hpp"
#include "orderpipe/contract/events.hpp"
#include "orderpipe/contract/topics.hpp"
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
#include <set>
#include <stdexcept>
#include <thread>
#include <tuple>

namespace orderpipe::kafka {

using Clock = std::chrono::steady_clock;
namespace dlqh = contract::dlq_header;

OutgoingRecord dead_letter_record(const ConsumedRecord& r, const std::string& dlq_topic,
                                  const std::string& group_id, contract::DlqReason reason,
                                  const std::string& error, int retry_count) {
    OutgoingRecord out;
    out.topic = dlq_topic;
    out.key = r.key;
    out.value = r.value;
    out.headers = r.headers;  // byte for byte, then the dlq.* headers
    out.headers.emplace_back(dlqh::kOriginalTopic, r.topic);
    out.headers.emplace_back(dlqh::kOriginalPartition, std::to_string(r.partition));
    out.headers.emplace_back(dlqh::kOriginalOffset, std::to_string(r.offset));
    out.headers.emplace_back(dlqh::kConsumerGroup, group_id);
    out.headers.emplace_back(dlqh::kFailureTimestamp, now_rfc3339());
    out.headers.emplace_back(dlqh::kRetryCount, std::to_string(retry_count));
    out.headers.emplace_back(dlqh::kReason, std::string(contract::to_string(reason)));
    out.headers.emplace_back(dlqh::kLastError, error);
    return out;
}

void BatchOutput::dead_letter(const ConsumedRecord& r, contract::DlqReason reason,
                              const std::string& error, int retry_count) {
    records_.push_back(
        dead_letter_record(r, dlq_topic_ ? dlq_topic_(r.topic) : contract::dlq_topic_for(r.topic),
                           group_id_, reason, error, retry_count));
    ++dead_letters_;
    if (reason == contract::DlqReason::kPoisonMessage) ++poison_;
}

namespace {

constexpr auto kMinBackoff = std::chrono::milliseconds(100);
constexpr auto kMaxBackoff = std::chrono::milliseconds(5000);

/// How one transaction ended, from the loop's point of view.
enum class Ending {
    kCommitted,
    kAborted,      ///< definitely aborted (or never begun)
    kUnknown,      ///< committed or not: settle, resync, rewind
    kFenced,       ///< stop for good
    kPoisonRetry,  ///< a record made the processor throw a ContractError: isolate it
};

}  // namespace

class ProcessingLoop::Impl final : public RebalanceListener {
  public:
    Impl(ClientConfig config, LoopOptions options, BatchProcessor& processor,
         prometheus::Registry& registry)
        : config_(std::move(config)), options_(std::move(options)), processor_(processor) {
        const std::string& loop = options_.name;
        auto& txns = prometheus::BuildCounter()
                         .Name("kafka_transactions_total")
                         .Help("Kafka transactions finished, by loop and outcome")
                         .Register(registry);
        txn_committed_ = &txns.Add({{"loop", loop}, {"result", "committed"}});
        txn_aborted_ = &txns.Add({{"loop", loop}, {"result", "aborted"}});
        txn_unknown_ = &txns.Add({{"loop", loop}, {"result", "unknown"}});
        auto& records = prometheus::BuildCounter()
                            .Name("kafka_records_processed_total")
                            .Help(
                                "Consumed records, by loop and result: processed, duplicate, "
                                "poison and dead_lettered (to the DLQ, as poison or for another "
                                "reason) when their transaction commits; retried when it does "
                                "not")
                            .Register(registry);
        records_ok_ = &records.Add({{"loop", loop}, {"result", "processed"}});
        records_duplicate_ = &records.Add({{"loop", loop}, {"result", "duplicate"}});
        records_poison_ = &records.Add({{"loop", loop}, {"result", "poison"}});
        records_dlq_ = &records.Add({{"loop", loop}, {"result", "dead_lettered"}});
        records_retried_ = &records.Add({{"loop", loop}, {"result", "retried"}});
        auto& failures = prometheus::BuildCounter()
                             .Name("kafka_loop_failures_total")
                             .Help("Batches that failed and were retried, and fencing, by cause")
                             .Register(registry);
        infra_failures_ = &failures.Add({{"loop", loop}, {"cause", "infrastructure"}});
        poison_failures_ = &failures.Add({{"loop", loop}, {"cause", "poison"}});
        fenced_count_ = &failures.Add({{"loop", loop}, {"cause", "fenced"}});
        consumer_fenced_ = &failures.Add({{"loop", loop}, {"cause", "consumer_rejoined"}});
        batch_seconds_ = &prometheus::BuildHistogram()
                              .Name("kafka_batch_processing_seconds")
                              .Help("Time to process and commit one batch")
                              .Register(registry)
                              .Add({{"loop", loop}}, prometheus::Histogram::BucketBoundaries{
                                                         0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                         0.1, 0.25, 0.5, 1, 2.5, 5, 10});
        lag_family_ = &prometheus::BuildGauge()
                           .Name("kafka_consumer_lag")
                           .Help("Records between the consumer's position and the high watermark")
                           .Register(registry);
        ready_gauge_ = &prometheus::BuildGauge()
                            .Name("kafka_loop_ready")
                            .Help("1 when the loop is processing (see /readyz for why not)")
                            .Register(registry)
                            .Add({{"loop", loop}});
    }

    void set_client_id(std::string client_id) { config_.client_id = std::move(client_id); }

    void start() {
        ProducerOptions po;
        po.transactional_id = options_.transactional_id;
        po.operation_timeout = options_.operation_timeout;
        po.fault_scope = options_.name;
        producer_ = std::make_unique<TransactionalProducer>(config_, po);
        consumer_ = std::make_unique<Consumer>(config_, consumer_options(), this);
        thread_ = std::thread([this] { run(); });
    }

    ConsumerOptions consumer_options() const {
        ConsumerOptions co;
        co.group_id = options_.group_id;
        if (options_.static_membership) co.group_instance_id = options_.transactional_id;
        co.fault_scope = options_.name;
        co.prefetch_kbytes = options_.prefetch_kbytes;
        return co;
    }

    void stop() {
        stopping_ = true;
        wake_consumer();
        if (thread_.joinable()) thread_.join();
    }

    void wake() {
        wake_requested_ = true;
        wake_consumer();
    }

    void wake_consumer() {
        std::lock_guard lock(consumer_mu_);  // the loop thread may be replacing it
        if (consumer_) consumer_->wake();
    }

    LoopStatus status() const {
        std::lock_guard lock(status_mu_);
        return status_;
    }

    const LoopOptions& options() const { return options_; }

    // RebalanceListener: called inside poll_batch() on the loop thread, never mid-transaction.
    void on_assigned(const std::vector<TopicPartition>& partitions) override {
        joined_ = true;
        unverified_.insert(partitions.begin(), partitions.end());
        log::info("partitions assigned", {{"loop", options_.name}, {"count", partitions.size()}});
        if (processor_.partitions_assigned(partitions)) {
            needs_resync_ = true;
            unsettled_.insert(partitions.begin(), partitions.end());
        }
        if (!failing_) set_ready();
    }
    void on_revoked(const std::vector<TopicPartition>& partitions) override {
        drop_pending(partitions);
        forget_partitions(partitions);
        joined_ = false;
        set_not_ready("rebalancing: waiting for partition assignment");
        log::info("partitions revoked", {{"loop", options_.name}, {"count", partitions.size()}});
    }
    void on_lost(const std::vector<TopicPartition>& partitions) override {
        drop_pending(partitions);
        forget_partitions(partitions);
        joined_ = false;
        set_not_ready("partitions lost (session timed out): rejoining the group");
        log::warn("partitions lost", {{"loop", options_.name}, {"count", partitions.size()}});
    }

  private:
    void set_status(bool ready, std::string detail, bool final = false) {
        if ((dead_ || halted_) && !final) return;  // a loop that stopped keeps saying why
        ready_gauge_->Set(ready ? 1 : 0);
        std::lock_guard lock(status_mu_);
        status_ = {ready, std::move(detail)};
    }
    void set_not_ready(std::string why) { set_status(false, std::move(why)); }
    /// The broker refused this principal the group or a topic: not ready until an ACL is added
    /// (the consumer keeps trying; the next assignment makes the loop ready again).
    void not_authorized(const std::string& error) {
        const std::string why = "not authorized: " + error + " (group " + options_.group_id +
                                "; this service's principal needs an ACL: docs/SECURITY.md)";
        if (status().detail != why) {
            log::error("the broker refused this service's principal",
                       {{"loop", options_.name}, {"group", options_.group_id}, {"error", error}});
        }
        set_not_ready(why);
    }
    void set_ready() {
        if (producer_->initialised() && joined_) {
            set_status(true, "");
        } else if (!joined_) {
            set_not_ready("waiting for partition assignment in group " + options_.group_id);
        }
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

    void forget_partitions(const std::vector<TopicPartition>& partitions) {
        for (const auto& p : partitions) {
            consumed_next_.erase(p);
            committed_next_.erase(p);
            unverified_.erase(p);
            unsettled_.erase(p);
        }
        fence_at_.clear();
        processor_.partitions_revoked(partitions);
    }

    /// Pauses the partitions while the processor takes no more records (backpressure).
    void apply_backpressure() {
        const bool accepting = processor_.room() > 0;
        try {
            if (!accepting) {
                consumer_->pause_all();  // also partitions assigned since the last time
                paused_ = true;
            } else if (paused_) {
                consumer_->resume_all();
                paused_ = false;
            }
        } catch (const std::exception& e) {
            log::warn("cannot pause or resume", {{"loop", options_.name}, {"error", e.what()}});
        }
    }

    /// Sleeps for the current backoff (interruptible by stop) and grows it.
    void back_off() {
        const auto until = Clock::now() + backoff_;
        while (!stopping_ && Clock::now() < until) {
            std::this_thread::sleep_for(
                std::min<Clock::duration>(std::chrono::milliseconds(50), until - Clock::now()));
        }
        backoff_ = std::min(backoff_ * 2, kMaxBackoff);
    }

    /// (Re)initialises the producer, retrying. @returns false when stopping or fenced.
    bool init_producer() {
        try {
            const bool ok =
                init_transactions_retrying(*producer_, stopping_, [this](const std::string& why) {
                    set_not_ready(why);
                    log::warn("cannot initialise transactions yet",
                              {{"loop", options_.name}, {"error", why}});
                });
            if (ok) set_ready();
            return ok;
        } catch (const KafkaException& e) {
            if (e.error().is_fenced()) {
                fence(e.what());
            } else {
                // Not retriable and not fencing: nothing this loop can do about it.
                fatal(std::string("cannot initialise transactions: ") + e.what());
            }
            return false;
        }
    }

    /// FENCED_INSTANCE_ID on the consumer. A coordinator that restarted while a JoinGroup was
    /// in flight reports it too (seen on every broker restart with static membership), so it
    /// is not taken as proof of a second instance: the consumer is recreated and rejoins. A
    /// live duplicate is caught for sure by the transactional producer, whose fencing stops
    /// this loop for good; a duplicate that keeps fencing our consumer (more than 3 times in 5
    /// minutes) does too. @returns false when it happened too often to be a restart.
    bool rejoin(const std::string& why) {
        const auto now = Clock::now();
        std::erase_if(rejoins_,
                      [&](Clock::time_point t) { return now - t > std::chrono::minutes(5); });
        rejoins_.push_back(now);
        if (rejoins_.size() > 3) return false;  // a live duplicate keeps fencing us: stop
        consumer_fenced_->Increment();
        log::warn("consumer fenced (group.instance.id); recreating it and rejoining the group",
                  {{"loop", options_.name}, {"error", why}});
        pending_.clear();
        joined_ = false;
        set_not_ready("rejoining the consumer group after: " + why);
        std::unique_ptr<Consumer> old;
        try {
            auto fresh = std::make_unique<Consumer>(config_, consumer_options(), this);
            std::lock_guard lock(consumer_mu_);
            old = std::exchange(consumer_, std::move(fresh));
        } catch (const std::exception& e) {
            log::error("cannot recreate the consumer",
                       {{"loop", options_.name}, {"error", e.what()}});
            return false;
        }
        old.reset();  // closes it; a fenced consumer has nothing left to commit
        while (!stopping_) {
            try {
                consumer_->subscribe(options_.topics);
                break;
            } catch (const std::exception& e) {
                set_not_ready(std::string("cannot subscribe: ") + e.what());
                back_off();
            }
        }
        needs_rewind_ = false;  // a fresh member starts from the committed offsets
        consumed_next_.clear();
        committed_next_.clear();
        return true;
    }

    void fence(const std::string& why) {
        fenced_count_->Increment();
        fatal("fenced: another instance took over transactional.id " + options_.transactional_id +
              " (or group.instance.id); this one stops: " + why);
    }

    void fatal(const std::string& why) {
        dead_ = true;
        set_status(false, why, /*final=*/true);
        log::error("processing loop stops for good", {{"loop", options_.name}, {"error", why}});
        if (options_.on_fatal) options_.on_fatal(options_.name + ": " + why);
    }

    void run() {
        set_not_ready("starting: initialising Kafka transactions");
        if (!init_producer()) return finish();
        while (!stopping_ && !dead_) {
            try {
                consumer_->subscribe(options_.topics);
                break;
            } catch (const std::exception& e) {
                set_not_ready(std::string("cannot subscribe: ") + e.what());
                back_off();
            }
        }
        set_ready();
        while (!stopping_ && !dead_) {
            if (halted_) {
                hold();
                continue;
            }
            if (!recover()) continue;
            processor_.tick();
            apply_backpressure();
            collect();
            if (dead_) break;
            if (needs_resync_) continue;  // partitions assigned that want a resync first
            // Every record is checked once, before any transaction: also those kept from a
            // poll while paused.
            if (went_backwards()) continue;
            if (stopping_ && pending_.empty()) break;
            const bool idle_work = wake_requested_.exchange(false) || processor_.has_idle_work();
            if (pending_.empty() && !idle_work) {
                if (failing_) {
                    // Nothing left to retry (the failed batch was revoked, or done by now).
                    failing_ = false;
                    set_ready();
                }
                update_lag();
                continue;
            }
            switch (transact()) {
                case Ending::kCommitted:
                    backoff_ = kMinBackoff;
                    if (failing_) {
                        failing_ = false;
                        set_ready();
                    }
                    break;
                case Ending::kPoisonRetry:
                    needs_rewind_ = true;  // isolate at once, no backoff: it is not transient
                    break;
                case Ending::kAborted:
                    needs_rewind_ = true;
                    back_off();
                    break;
                case Ending::kUnknown:
                    needs_resync_ = true;
                    needs_rewind_ = true;
                    back_off();
                    break;
                case Ending::kFenced:
                    fence("the producer was fenced");
                    break;
            }
        }
        finish();
    }

    void finish() {
        consumer_->close();
        if (!dead_) set_not_ready("stopped");
        log::info("processing loop stopped", {{"loop", options_.name}});
    }

    /// After a failure: initialise again (settling an unknown outcome), let the processor
    /// resync, rewind. @returns false if that could not be completed yet (call again).
    bool recover() {
        if (!needs_resync_ && !needs_rewind_ && producer_->initialised()) return true;
        if (!producer_->initialised()) {
            // Recreated after an unknown outcome or a fatal error: its state is settled only
            // once init_transactions completes.
            needs_resync_ = true;
            if (!init_producer()) return false;
        }
        if (needs_resync_ && !unsettled_.empty()) {
            // The partitions' previous owner may have been dropped from the group while it was
            // committing a transaction it began as their owner (a broker restart in the middle
            // of its commit, then its session timed out): that transaction can still commit,
            // and a resync now would not see it (its records are past the last stable offset).
            // Its offsets for these partitions are pending until it ends, and a read_committed
            // consumer's offset fetch waits for that (KIP-447 "require stable"): decide nothing
            // on them before. Found by the long scaled-out chaos run: a customer cancel
            // committed 24 s late by the old owner, after the new owner timed the order out.
            try {
                consumer_->committed({unsettled_.begin(), unsettled_.end()},
                                     options_.operation_timeout);
                unsettled_.clear();
            } catch (const std::exception& e) {
                log::warn(
                    "newly assigned partitions: the previous owner's transactions are not "
                    "settled yet",
                    {{"loop", options_.name}, {"error", e.what()}});
                set_not_ready(
                    "waiting for the previous owner's transactions on newly assigned "
                    "partitions to settle");
                back_off();
                return false;
            }
        }
        if (needs_resync_) {
            bool ok = false;
            try {
                ok = processor_.resync(options_.operation_timeout, producer_->acknowledged());
            } catch (const std::exception& e) {
                log::warn("resync failed", {{"loop", options_.name}, {"error", e.what()}});
            }
            if (!ok) {
                set_not_ready("resynchronising local state with Kafka after an unknown outcome");
                back_off();
                return false;
            }
            needs_resync_ = false;
        }
        if (needs_rewind_) {
            try {
                consumer_->seek_to_committed(options_.operation_timeout);
                needs_rewind_ = false;
            } catch (const std::exception& e) {
                log::error("cannot rewind to the committed offsets yet; retrying",
                           {{"loop", options_.name}, {"error", e.what()}});
                set_not_ready(std::string("cannot rewind to the committed offsets: ") + e.what());
                failing_ = true;
                back_off();
                return false;
            }
        }
        if (!failing_) set_ready();
        return true;
    }

    /// Polls until batch_max records, or batch_linger after the first, or idle_poll with none.
    void collect() {
        const auto started = Clock::now();
        Clock::time_point first_at{};
        // After a poison failure, records go one per transaction until the culprit is found;
        // never more than the processor has room for.
        const std::size_t limit =
            std::min(isolate_remaining_ > 0 ? 1 : options_.batch_max, processor_.room());
        if (limit == 0) {
            // Full, and paused: keep polling (the group must see us poll) but briefly, and keep
            // at most one record fetched before the pause took effect.
            if (!pending_.empty()) {
                std::this_thread::sleep_for(std::chrono::milliseconds(10));
                return;
            }
            try {
                auto r = consumer_->poll_batch(1, std::chrono::milliseconds(10));
                for (auto& rec : r.records) pending_.push_back(std::move(rec));
            } catch (const KafkaException&) {  // NOLINT(bugprone-empty-catch): next turn sees it
            }
            return;
        }
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
                // poll_batch throws only for a fatal consumer error: the consumer is unusable.
                if (e.error().is_fenced()) {
                    fence(e.what());
                    return;
                }
                if (e.error().is_member_fenced() && rejoin(e.what())) return;
                fatal(std::string("the consumer failed: ") + e.what());
                return;
            }
            if (r.not_authorized) not_authorized(*r.not_authorized);
            if (r.records.empty()) {
                if (!pending_.empty() || wake_requested_) break;
                continue;
            }
            if (pending_.empty()) first_at = Clock::now();
            for (auto& rec : r.records) pending_.push_back(std::move(rec));
        }
    }

    /// A record of a partition at an offset below one this loop consumed there since it last
    /// positioned itself (assignment, rewind): the log went backwards under the consumer, which
    /// moved to the beginning on its own (auto.offset.reset). The topic was deleted and created
    /// again (a broker's data wiped, a dev reset) or truncated. Nothing of it may be skipped as
    /// "seen" nor acted on as new until an operator has looked: the loop holds, not ready,
    /// naming the partition. @returns true when it holds now.
    bool went_backwards() {
        std::map<TopicPartition, std::int64_t> seen = consumed_next_;
        for (const auto& rec : pending_) {
            const TopicPartition tp{rec.topic, rec.partition};
            auto it = seen.find(tp);
            if (it != seen.end() && rec.offset < it->second) {
                return halt(rec, it->second,
                            "this loop had consumed up to offset " + std::to_string(it->second));
            }
            seen[tp] = std::max(it == seen.end() ? 0 : it->second, rec.offset + 1);
            if (unverified_.erase(tp) == 0) continue;
            const auto stored = processor_.stored_position(tp);
            if (!stored || rec.offset >= *stored) continue;
            // Below what the state has processed: a redelivery after a crash — or a topic
            // that is not the one the state was built from. Its end tells.
            try {
                const auto high =
                    consumer_->watermarks(rec.topic, rec.partition, std::chrono::seconds(5)).second;
                if (high < *stored) {
                    return halt(rec, *stored,
                                "the local state has processed it up to offset " +
                                    std::to_string(*stored) + " but it ends at " +
                                    std::to_string(high));
                }
            } catch (const std::exception& e) {
                log::warn("cannot check a partition's end against the local state",
                          {{"loop", options_.name},
                           {"topic", rec.topic},
                           {"partition", rec.partition},
                           {"error", e.what()}});
            }
        }
        return false;
    }

    bool halt(const ConsumedRecord& rec, std::int64_t from, const std::string& what) {
        const std::string why =
            rec.topic + "[" + std::to_string(rec.partition) + "] went back to offset " +
            std::to_string(rec.offset) + " (" + what +
            "): the topic was deleted and created again, or truncated, under this service (a "
            "broker's data wiped?). Its records are neither skipped nor processed until the "
            "service is restarted after deciding what its local state should be "
            "(docs/CONFIGURATION.md, \"Topics recreated\")";
        log::error("a partition's offsets went backwards; holding", {{"loop", options_.name},
                                                                     {"topic", rec.topic},
                                                                     {"partition", rec.partition},
                                                                     {"from", from},
                                                                     {"to", rec.offset}});
        halted_ = true;
        set_status(false, why, /*final=*/true);
        pending_.clear();
        return true;
    }

    /// Halted: keep serving the group (it must see us poll) with everything paused.
    void hold() {
        try {
            consumer_->pause_all();
            consumer_->poll_batch(1, std::chrono::milliseconds(200));
        } catch (const std::exception&) {
            // Held either way; a consumer that fails at once must not spin.
            std::this_thread::sleep_for(std::chrono::milliseconds(200));
        }
        pending_.clear();
    }

    /// One transaction over pending_ (maybe empty) plus idle work: decode, process, produce
    /// and send the offsets, commit.
    Ending transact() {
        const auto started = Clock::now();
        committing_.clear();
        BatchOutput out;
        out.group_id_ = options_.group_id;
        out.dlq_topic_ = options_.dlq_topic;
        Ending ending = Ending::kAborted;
        std::string failure;
        try {
            Decoded decoded = decode(out);
            producer_->begin();
            out.consumed_ = decoded.next_offsets;
            process(decoded.batch, out);
            for (const auto& r : out.records()) producer_->produce(r);
            committing_ = offsets_to_commit(decoded.next_offsets);
            if (!committing_.empty()) {
                producer_->send_offsets(committing_, *consumer_);
            } else if (options_.fence_idle_work && !out.records().empty()) {
                if (auto again = fencing_offsets(); !again.empty()) {
                    producer_->send_offsets(again, *consumer_);
                }
            }
            maybe_kill_before_commit();
            std::tie(ending, failure) = commit();
        } catch (const KafkaException& e) {
            failure = e.what();
            ending = e.error().is_fenced() ? Ending::kFenced : Ending::kAborted;
        } catch (const PoisonBatch& e) {
            failure = e.what();
            ending = Ending::kPoisonRetry;
        } catch (const std::exception& e) {
            failure = e.what();
            ending = Ending::kAborted;
        }
        if (ending != Ending::kCommitted && ending != Ending::kFenced && !producer_->abort()) {
            // The abort did not complete: the producer was recreated, and only its next
            // init_transactions settles what this transaction became.
            ending = Ending::kUnknown;
        }
        batch_seconds_->Observe(std::chrono::duration<double>(Clock::now() - started).count());
        return finish_transaction(ending, out, failure);
    }

    struct Decoded {
        std::vector<Incoming> batch;  ///< what the processor gets (points into pending_)
        std::map<std::pair<std::string, std::int32_t>, std::int64_t> next_offsets;
    };

    /// pending_ as the processor's batch. A record whose envelope is not a CloudEvent, or the
    /// one record isolated as the cause of a processor's contract error, goes to the DLQ
    /// instead (in this transaction, with its offset).
    Decoded decode(BatchOutput& out) {
        Decoded d;
        d.batch.reserve(pending_.size());
        for (const auto& rec : pending_) {
            auto& next = d.next_offsets[{rec.topic, rec.partition}];
            next = std::max(next, rec.offset + 1);
            if (!processor_.decodes(rec.topic)) {
                d.batch.push_back({&rec, CloudEvent{}, false});
                continue;
            }
            auto decoded = from_record(rec);
            if (auto* err = std::get_if<EnvelopeError>(&decoded)) {
                log::Scope about(contract::log_fields(rec.key, rec.headers));
                log::warn("poison record sent to the DLQ", {{"loop", options_.name},
                                                            {"topic", rec.topic},
                                                            {"partition", rec.partition},
                                                            {"offset", rec.offset},
                                                            {"error", err->message}});
                out.dead_letter(rec, contract::DlqReason::kPoisonMessage, err->message);
                continue;
            }
            if (suspect_ && suspect_->matches(rec)) {
                // This record alone made the processor throw a contract error: it is poison
                // the envelope check could not see (e.g. a field of the wrong type).
                log::Scope about(contract::log_fields(rec.key, rec.headers));
                log::error("record refused by its processor; sent to the DLQ",
                           {{"loop", options_.name},
                            {"topic", rec.topic},
                            {"partition", rec.partition},
                            {"offset", rec.offset},
                            {"error", suspect_->error}});
                out.dead_letter(rec, contract::DlqReason::kPoisonMessage, suspect_->error);
                suspect_.reset();
                continue;
            }
            d.batch.push_back({&rec, std::move(std::get<CloudEvent>(decoded)), true});
        }
        return d;
    }

    /// The processor refused the batch with a contract error: a poison record to isolate.
    struct PoisonBatch : std::runtime_error {
        using std::runtime_error::runtime_error;
    };

    /// The processor's turn: its batch, then its idle work. @throws PoisonBatch
    void process(std::vector<Incoming>& batch, BatchOutput& out) {
        if (!pending_.empty()) {
            if (!batch.empty() && faults::hit(options_.name, "process-fails")) {
                throw faults::InjectedFault("injected infrastructure failure (process-fails)");
            }
            try {
                processor_.process(batch, out);
            } catch (const contract::ContractError& e) {
                note_poison(e.what());
                throw PoisonBatch(e.what());
            }
        }
        processor_.idle(out);
    }

    void maybe_kill_before_commit() {
        if (!pending_.empty() && faults::hit(options_.name, "kill-before-commit")) {
            producer_->flush(options_.operation_timeout);
            log::warn("FAULT_INJECT kill-before-commit: killing this process before the commit",
                      {{"loop", options_.name}, {"records", pending_.size()}});
            std::raise(SIGKILL);
        }
    }

    std::pair<Ending, std::string> commit() {
        switch (producer_->commit_or_abort()) {
            case TxnOutcome::kCommitted:
                return {Ending::kCommitted, ""};
            case TxnOutcome::kAborted:
                return {Ending::kAborted, "the Kafka transaction was aborted"};
            case TxnOutcome::kUnknown:
                return {Ending::kUnknown, "the outcome of the Kafka commit is unknown"};
            case TxnOutcome::kFenced:
                break;
        }
        return {Ending::kFenced, ""};
    }

    /// The offsets this transaction commits: past every consumed record, but never past a
    /// record the processor has not finished (asynchronous processors), and only where that
    /// moves the committed offset.
    std::vector<TopicPartitionOffset> offsets_to_commit(
        const std::map<std::pair<std::string, std::int32_t>, std::int64_t>& batch_next) {
        for (const auto& [tp, next] : batch_next) {
            auto& n = consumed_next_[{tp.first, tp.second}];
            n = std::max(n, next);
        }
        const auto holdback = processor_.unfinished();
        std::vector<TopicPartitionOffset> out;
        for (const auto& [tp, consumed] : consumed_next_) {
            std::int64_t target = consumed;
            if (auto it = holdback.find(tp); it != holdback.end())
                target = std::min(target, it->second);
            auto done = committed_next_.find(tp);
            if (done == committed_next_.end() || target > done->second) {
                out.push_back({tp.topic, tp.partition, target});
            }
        }
        return out;
    }

    /// Offsets this member has the right to commit again (LoopOptions::fence_idle_work), one per
    /// assigned partition that has one: what it committed, else what the group had committed
    /// (asked once per assignment). Every partition, not one: until this transaction ends, the
    /// offsets it sends are pending, so a member that takes over any of them waits for it
    /// (see recover()) instead of deciding while it may still commit.
    std::vector<TopicPartitionOffset> fencing_offsets() {
        const auto assigned = consumer_->assignment();
        if (assigned.empty()) return {};
        if (fence_at_.empty()) {
            for (const auto& o : consumer_->committed(assigned, options_.operation_timeout)) {
                fence_at_[{o.topic, o.partition}] = o.offset;
            }
        }
        std::vector<TopicPartitionOffset> out;
        for (const auto& tp : assigned) {
            std::int64_t at = -1;
            if (auto c = committed_next_.find(tp); c != committed_next_.end()) {
                at = c->second;
            } else if (auto f = fence_at_.find(tp); f != fence_at_.end()) {
                at = f->second;
            }
            if (at >= 0) out.push_back({tp.topic, tp.partition, at});
        }
        return out;
    }

    Ending finish_transaction(Ending ending, const BatchOutput& out, const std::string& failure) {
        const auto n = static_cast<double>(pending_.size());
        if (ending == Ending::kCommitted) {
            for (const auto& o : committing_) committed_next_[{o.topic, o.partition}] = o.offset;
            txn_committed_->Increment();
            if (tracing::enabled()) trace_committed(out.records());  // event_record.hpp
            isolate_remaining_ -= std::min(isolate_remaining_, pending_.size());
            records_poison_->Increment(static_cast<double>(out.poison()));
            records_dlq_->Increment(static_cast<double>(out.dead_letters() - out.poison()));
            records_duplicate_->Increment(static_cast<double>(out.duplicates()));
            records_ok_->Increment(n - static_cast<double>(out.dead_letters() + out.duplicates()));
            pending_.clear();
            try {
                processor_.committed();
            } catch (const std::exception& e) {
                // The transaction is committed; what failed is local bookkeeping after it. The
                // processor must not decide from that stale state: resync first.
                log::error("after-commit step failed; resynchronising before going on",
                           {{"loop", options_.name}, {"error", e.what()}});
                needs_resync_ = true;
            }
            update_lag();
            return ending;
        }
        records_retried_->Increment(n);
        pending_.clear();
        // The rewind goes back to what is really committed; count again from there.
        consumed_next_.clear();
        committed_next_.clear();
        if (ending == Ending::kUnknown || ending == Ending::kFenced) {
            txn_unknown_->Increment();
            processor_.outcome_unknown();
        } else {
            txn_aborted_->Increment();
            processor_.aborted();
        }
        if (ending == Ending::kPoisonRetry) {
            poison_failures_->Increment();
            log::warn(n > 1
                          ? "a record of the batch broke the contract; retrying the batch a "
                            "record per transaction to find it"
                          : "a record broke the contract; it goes to the DLQ on its next delivery",
                      {{"loop", options_.name},
                       {"records", static_cast<std::size_t>(n)},
                       {"error", failure}});
        } else if (ending != Ending::kFenced) {
            infra_failures_->Increment();
            failing_ = true;
            set_not_ready("retrying after a failure: " + failure);
            log::warn("transaction failed; the batch will be processed again",
                      {{"loop", options_.name},
                       {"records", static_cast<std::size_t>(n)},
                       {"outcome", ending == Ending::kUnknown ? "unknown" : "aborted"},
                       {"error", failure}});
        }
        return ending;
    }

    /// The processor threw a ContractError on pending_. A batch of several is retried one record
    /// per transaction; a single record is dead-lettered on its next delivery.
    void note_poison(const std::string& error) {
        if (pending_.size() > 1) {
            isolate_remaining_ = std::max(isolate_remaining_, pending_.size());
            return;
        }
        const auto& rec = pending_.front();
        suspect_ = Suspect{rec.topic, rec.partition, rec.offset, error};
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
    struct Suspect {
        std::string topic;
        std::int32_t partition;
        std::int64_t offset;
        std::string error;
        bool matches(const ConsumedRecord& r) const {
            return r.topic == topic && r.partition == partition && r.offset == offset;
        }
    };
    std::optional<Suspect> suspect_;
    std::map<TopicPartition, std::int64_t> consumed_next_;   ///< past the last record consumed
    std::map<TopicPartition, std::int64_t> committed_next_;  ///< what our last commit committed
    std::vector<TopicPartitionOffset> committing_;           ///< in the open transaction
    bool paused_ = false;
    bool needs_rewind_ = false;
    bool needs_resync_ = false;
    bool failing_ = false;  ///< the last batch failed: not ready until one commits
    /// A partition's offsets went backwards under us (see went_backwards()): the loop holds
    /// everything, not ready, until an operator restarts it.
    bool halted_ = false;
    /// Assigned since their first record: checked against the processor's stored position.
    std::set<TopicPartition> unverified_;
    std::map<TopicPartition, std::int64_t> fence_at_;  ///< fencing_offsets()' cache
    /// Assigned, and the processor wants a resync: not before the previous owner's
    /// transactions on them are settled (recover()).
    std::set<TopicPartition> unsettled_;
    std::size_t isolate_remaining_ = 0;
    std::chrono::milliseconds backoff_ = kMinBackoff;
    std::atomic<bool> stopping_{false};
    std::atomic<bool> dead_{false};
    std::atomic<bool> wake_requested_{false};
    std::atomic<bool> joined_{false};
    mutable std::mutex status_mu_;
    LoopStatus status_{false, "not started"};
    prometheus::Counter* txn_committed_;
    prometheus::Counter* txn_aborted_;
    prometheus::Counter* txn_unknown_;
    prometheus::Counter* records_ok_;
    prometheus::Counter* records_duplicate_;
    prometheus::Counter* records_poison_;  ///< dead-lettered as poison
    prometheus::Counter* records_dlq_;     ///< dead-lettered for another reason (failed sends)
    prometheus::Counter* records_retried_;
    prometheus::Counter* infra_failures_;
    prometheus::Counter* poison_failures_;
    prometheus::Counter* fenced_count_;
    prometheus::Counter* consumer_fenced_;
    std::vector<Clock::time_point> rejoins_;
    std::mutex consumer_mu_;  // guards replacing consumer_ against wake() from other threads
    prometheus::Histogram* batch_seconds_;
    prometheus::Gauge* ready_gauge_;
    prometheus::Family<prometheus::Gauge>* lag_family_;
    std::map<std::pair<std::string, std::int32_t>, prometheus::Gauge*> lag_gauges_;
    Clock::time_point lag_updated_{};
    std::thread thread_;  // last: joined before the members it uses go away
};

ProcessingLoop::ProcessingLoop(ClientConfig config, LoopOptions options, BatchProcessor& processor,
                               prometheus::Registry& registry)
    : impl_(std::make_unique<Impl>(std::move(config), std::move(options), processor, registry)) {}

ProcessingLoop::~ProcessingLoop() { stop(); }

void ProcessingLoop::set_client_id(std::string client_id) {
    impl_->set_client_id(std::move(client_id));
}
void ProcessingLoop::start() { impl_->start(); }
void ProcessingLoop::stop() { impl_->stop(); }
void ProcessingLoop::wake() { impl_->wake(); }
LoopStatus ProcessingLoop::status() const { return impl_->status(); }
const LoopOptions& ProcessingLoop::options() const { return impl_->options(); }

}  // namespace orderpipe::kafka
