#pragma once
/// The one read-process-write loop every consuming service uses (exactly-once):
///
///   poll a batch (up to `batch_max` records or `batch_linger` after the first)
///   begin_transaction
///     poison records (not a CloudEvent, or refused by the processor) → `<topic>.dlq`
///     processor.process(batch) → output records
///     processor.idle()         → output records with no input (commands, timers)
///     send_offsets_to_transaction(next offset per partition)
///   commit_transaction → processor.committed()
///
/// On an abortable error the transaction is aborted, processor.aborted() is told and the consumer
/// rewinds to its committed offsets, so the batch is processed again. On a fatal error the
/// producer is recreated (fencing the old epoch) and the consumer rewinds likewise. Partitions
/// that are revoked or lost drop whatever was polled but not yet processed: no transaction is
/// ever open while the consumer polls, so there is nothing else to commit or abort.
///
/// Thread-safety: start/stop/wake/not_ready_reason from any thread; the processor's methods are
/// called on the loop's own thread only.

#include "orderpipe/common/cloudevent.hpp"
#include "orderpipe/kafka/types.hpp"

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace prometheus {
class Registry;
}

namespace orderpipe::kafka {

/// Why a record went to a DLQ (header dlq.reason, SPEC §6).
inline constexpr const char* kPoisonMessage = "POISON_MESSAGE";

/// What one transaction writes besides its offsets.
class BatchOutput {
  public:
    void produce(OutgoingRecord record) { records_.push_back(std::move(record)); }
    /// Sends `record` unchanged (key, value, headers byte for byte) to its DLQ topic with the
    /// dlq.* headers of SPEC §6 added.
    void dead_letter(const ConsumedRecord& record, const std::string& reason,
                     const std::string& error, int retry_count = 0);

    const std::vector<OutgoingRecord>& records() const { return records_; }
    std::size_t dead_letters() const { return dead_letters_; }

  private:
    friend class ProcessingLoop;
    std::vector<OutgoingRecord> records_;
    std::string consumer_group_;
    std::function<std::string(const std::string&)> dlq_topic_;
    std::size_t dead_letters_ = 0;
};

/// A decoded record of the batch.
struct Incoming {
    const ConsumedRecord* record;
    CloudEvent event;
};

class BatchProcessor {
  public:
    virtual ~BatchProcessor() = default;
    /// Decides the outputs of one batch. Call out.dead_letter() for records it cannot accept
    /// (unknown type, missing fields): they never block the partition. Throwing aborts the whole
    /// transaction, and the batch is delivered again after a backoff.
    virtual void process(std::vector<Incoming>& batch, BatchOutput& out) = 0;
    /// Work that needs no input (queued commands, expired timers); runs in every transaction,
    /// and on its own when the processor says it has some (has_idle_work()).
    virtual void idle(BatchOutput& /*out*/) {}
    virtual bool has_idle_work() { return false; }
    /// The transaction committed: make its effects visible (e.g. answer commands).
    virtual void committed() {}
    /// The transaction was aborted: forget what process()/idle() prepared.
    virtual void aborted() {}
};

struct LoopOptions {
    std::string name;  ///< for logs and metrics, e.g. "inventory-requests"
    std::string group_id;
    std::vector<std::string> topics;
    std::string transactional_id;
    std::size_t batch_max = 500;
    std::chrono::milliseconds batch_linger{5};
    std::chrono::milliseconds operation_timeout{10000};
    std::chrono::milliseconds idle_poll{100};  ///< poll timeout with nothing to do
    /// DLQ topic of a consumed topic; default `<topic>.dlq`.
    std::function<std::string(const std::string&)> dlq_topic;
    /// Chaos testing (FAULT_KILL_BEFORE_COMMIT): in the N-th transaction that consumed records,
    /// after its records were produced and delivered, the process SIGKILLs itself before
    /// committing. 0 = off.
    std::size_t kill_before_commit_at = 0;
};

class ProcessingLoop {
  public:
    ProcessingLoop(ClientConfig config, LoopOptions options, BatchProcessor& processor,
                   prometheus::Registry& registry);
    ~ProcessingLoop();  ///< stop()
    ProcessingLoop(const ProcessingLoop&) = delete;
    ProcessingLoop& operator=(const ProcessingLoop&) = delete;

    void start();
    /// Finishes the batch in hand (commit), leaves the group, joins. Idempotent.
    void stop();
    /// The processor has idle work: run a transaction soon even without input.
    void wake();
    /// nullopt once transactions are initialised and the consumer joined its group.
    std::optional<std::string> not_ready_reason() const;

  private:
    class Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace orderpipe::kafka
