#pragma once
/// The one read-process-write loop every consuming service uses (exactly-once):
///
///   poll a batch (up to `batch_max` records or `batch_linger` after the first)
///   begin_transaction
///     undecodable records (not a CloudEvent) → their DLQ topic, reason POISON_MESSAGE
///     processor.process(batch) → output records (and dead letters for records it refuses)
///     processor.idle()         → output records with no input (commands, timers)
///     send_offsets_to_transaction(next offset per partition)
///   commit_transaction → processor.committed()
///
/// What can go wrong, and what the loop does (docs/ARCHITECTURE.md "The loop"):
/// - aborted: processor.aborted(), rewind the consumer to its committed offsets, process again
///   after a backoff.
/// - outcome unknown (and after any producer recreation, or a committed() that threw): the
///   producer is initialised again, which settles the transaction; then processor.resync()
///   must bring the processor's local state up to what Kafka holds before anything is decided
///   again; then the consumer rewinds to the (now settled) committed offsets.
/// - poison: a record the processor refuses (it throws contract::ContractError, or calls
///   out.dead_letter) goes to its DLQ in the same transaction as its offset. Every other
///   exception is an infrastructure failure (disk full, SQLITE_BUSY, a broker away): the batch
///   is retried with a growing backoff (100 ms to 5 s), never dead-lettered, and readiness says
///   so.
/// - fenced (another instance took the transactional.id or the group.instance.id): the loop
///   stops for good, readiness says why, and `on_fatal` is called so the process exits non-zero
///   and a supervisor restarts it; it never re-initialises (which would fence the newer
///   instance).
///
/// Thread-safety: start/stop/wake/status from any thread; the processor's methods are called on
/// the loop's own thread only.

#include "orderpipe/common/cloudevent.hpp"
#include "orderpipe/contract/names.hpp"
#include "orderpipe/kafka/types.hpp"

#include <chrono>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace prometheus {
class Registry;
}

namespace orderpipe::kafka {

/// What one transaction writes besides its offsets.
class BatchOutput {
  public:
    void produce(OutgoingRecord record) { records_.push_back(std::move(record)); }
    /// Sends `record` unchanged (key, value, headers byte for byte) to its DLQ topic with the
    /// dlq.* headers added (docs/CONTRACT.md "Dead letters").
    void dead_letter(const ConsumedRecord& record, contract::DlqReason reason,
                     const std::string& error, int retry_count = 0);
    /// The record was a redelivery answered from ProcessedEvents (for the records metric).
    void note_duplicate() { ++duplicates_; }

    const std::vector<OutgoingRecord>& records() const { return records_; }
    /// (topic, partition) → the next offset after this transaction's records, those the loop
    /// dead-lettered itself included: how far a processor that keeps state has consumed, to
    /// store with that state (ProcessedEvents::advance).
    const std::map<std::pair<std::string, std::int32_t>, std::int64_t>& consumed() const {
        return consumed_;
    }
    std::size_t dead_letters() const { return dead_letters_; }  ///< poison included
    std::size_t poison() const { return poison_; }              ///< dead letters for POISON_MESSAGE
    std::size_t duplicates() const { return duplicates_; }

  private:
    friend class ProcessingLoop;
    std::vector<OutgoingRecord> records_;
    std::map<std::pair<std::string, std::int32_t>, std::int64_t> consumed_;
    std::string group_id_;
    std::function<std::string(const std::string&)> dlq_topic_;
    std::size_t dead_letters_ = 0;
    std::size_t poison_ = 0;
    std::size_t duplicates_ = 0;
};

/// A record of the batch, decoded unless its processor takes that topic's records raw.
struct Incoming {
    const ConsumedRecord* record;
    CloudEvent event;     ///< empty when !decoded
    bool decoded = true;  ///< false: a topic the processor reads raw (see decodes())
};

class BatchProcessor {
  public:
    virtual ~BatchProcessor() = default;
    /// Decides the outputs of one batch. A record it cannot accept (unknown type, a field
    /// missing): out.dead_letter(), or throw contract::ContractError for it. Any other
    /// exception aborts the transaction and the batch comes again after a backoff. Called for
    /// every transaction that consumed records, with an empty batch when the loop dead-lettered
    /// all of them (out.consumed() still says how far they went).
    virtual void process(std::vector<Incoming>& batch, BatchOutput& out) = 0;
    /// Work that needs no input (queued commands, expired timers); runs in every transaction,
    /// and on its own when has_idle_work() says there is some.
    virtual void idle(BatchOutput& /*out*/) {}
    virtual bool has_idle_work() { return false; }
    /// The transaction committed: make its effects visible (e.g. answer commands). If it
    /// throws, resync() runs before the next transaction.
    virtual void committed() {}
    /// The transaction was aborted: nothing of it is visible. Forget what it prepared.
    virtual void aborted() {}
    /// Nobody can say yet whether the transaction committed (or the loop was fenced). Forget
    /// what it prepared; resync() follows once the outcome is settled.
    virtual void outcome_unknown() { aborted(); }
    /// Called after an unknown outcome, a producer recreation or a failed committed(), once the
    /// outcome is settled and before anything else is processed: bring local state up to what
    /// Kafka holds (e.g. wait until a projection has read to the end, and past `acknowledged`:
    /// the loop's producer's TransactionalProducer::acknowledged()). @returns false if that is
    /// not possible yet (it is called again after a backoff).
    virtual bool resync(std::chrono::milliseconds /*budget*/,
                        const PartitionOffsets& /*acknowledged*/) {
        return true;
    }

    // --- For processors that finish records after process() returns (asynchronous work, such as
    // --- sends to an external API with retries). The defaults suit synchronous processors.

    /// Per partition, the offset of the oldest record handed to process() that is not finished
    /// (its outputs not produced in this or an earlier transaction). The loop commits offsets
    /// only below it, so a crash redelivers what was unfinished and nothing else. Records the
    /// processor holds are delivered again after an abort (rewind): it must recognise them by
    /// their offset. Partitions without unfinished records are absent.
    virtual std::map<TopicPartition, std::int64_t> unfinished() { return {}; }
    /// How many more records it takes now. The loop polls no more than that, and at 0 pauses
    /// its partitions (and keeps polling, running idle work and ticking): backpressure.
    virtual std::size_t room() { return std::numeric_limits<std::size_t>::max(); }
    /// Called on every turn of the loop, outside any transaction (e.g. to start work that is
    /// due). Must not block.
    virtual void tick() {}
    /// Whether the records of `topic` are CloudEvents to decode (the loop dead-letters those
    /// that are not). A processor that reads a topic of other records (dead letters, the
    /// dlq.resolutions ledger) returns false for it and gets them raw.
    virtual bool decodes(const std::string& /*topic*/) { return true; }
    /// These partitions were assigned to this loop (called between transactions, inside the
    /// consumer's poll: must not block). @returns true to have resync() run before the next
    /// transaction: e.g. state shared with other instances must first catch up with what the
    /// partitions' previous owner committed. The loop calls that resync only once the previous
    /// owner's transactions on these partitions are settled (their committed offsets are
    /// stable: a member dropped from the group may still be committing one it began before).
    virtual bool partitions_assigned(const std::vector<TopicPartition>& /*partitions*/) {
        return false;
    }
    /// These partitions were revoked or lost: drop their work (the next owner reads them again
    /// from the committed offsets).
    virtual void partitions_revoked(const std::vector<TopicPartition>& /*partitions*/) {}
    /// For a processor that skips records by offset (it stores the next offset of each
    /// partition with its state): that offset for `tp`, if it has one. When a partition is
    /// assigned and its first record is below it, the loop checks the partition's end: a state
    /// further than the end belongs to a topic deleted and created again (or truncated), whose
    /// new records must not be skipped as seen; the loop then holds, not ready, naming it.
    virtual std::optional<std::int64_t> stored_position(const TopicPartition& /*tp*/) {
        return std::nullopt;
    }
};

/// The DLQ record for `record` (what BatchOutput::dead_letter produces): the original key,
/// value and headers byte for byte, plus the dlq.* headers.
OutgoingRecord dead_letter_record(const ConsumedRecord& record, const std::string& dlq_topic,
                                  const std::string& group_id, contract::DlqReason reason,
                                  const std::string& error, int retry_count);

struct LoopOptions {
    std::string name;  ///< for logs, metrics and FAULT_INJECT scopes, e.g. "inventory-requests"
    std::string group_id;
    std::vector<std::string> topics;
    std::string transactional_id;
    /// Static group membership (group.instance.id = transactional.id): a restarted instance
    /// gets its partitions back at once. Off for services that scale out, so a stopped member
    /// leaves the group and a peer takes over its partitions without waiting.
    bool static_membership = true;
    /// Every transaction that writes sends consumed offsets, also one with idle work only (the
    /// last committed offset of a partition again), so that a member the group has dropped (a
    /// frozen process whose partitions moved) cannot commit: the group coordinator refuses its
    /// generation. For processors whose idle work belongs to their partitions (the order
    /// timeouts of a scaled-out order-service).
    bool fence_idle_work = false;
    int prefetch_kbytes = 16384;  ///< ConsumerOptions::prefetch_kbytes
    std::size_t batch_max = 500;
    std::chrono::milliseconds batch_linger{1};
    std::chrono::milliseconds operation_timeout{10000};
    std::chrono::milliseconds idle_poll{100};  ///< poll timeout with nothing to do
    /// DLQ topic of a consumed topic (contract::dlq_topic_for with the topic prefix).
    std::function<std::string(const std::string&)> dlq_topic;
    /// Called once, from the loop thread, when the loop stops for good on its own (fenced):
    /// the process must exit so a supervisor can restart it cleanly.
    std::function<void(const std::string& why)> on_fatal;
};

/// Readiness of a loop: nullopt detail when ready.
struct LoopStatus {
    bool ready = false;
    std::string detail;
};

class ProcessingLoop {
  public:
    ProcessingLoop(ClientConfig config, LoopOptions options, BatchProcessor& processor,
                   prometheus::Registry& registry);
    ~ProcessingLoop();  ///< stop()
    ProcessingLoop(const ProcessingLoop&) = delete;
    ProcessingLoop& operator=(const ProcessingLoop&) = delete;

    /// The client.id of the loop's clients from start() on (before start() only).
    void set_client_id(std::string client_id);
    /// Starts the loop thread (which initialises transactions, then subscribes).
    void start();
    /// Finishes the batch in hand (commit), closes the consumer, joins. Idempotent.
    void stop();
    /// The processor has idle work: run a transaction soon even without input. Thread-safe.
    void wake();
    /// Ready once transactions are initialised and the consumer is in its group (assigned,
    /// possibly to no partition); otherwise why not. Thread-safe, never blocks.
    LoopStatus status() const;
    const LoopOptions& options() const;

  private:
    class Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace orderpipe::kafka
