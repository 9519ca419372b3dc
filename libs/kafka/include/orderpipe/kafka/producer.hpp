#pragma once
/// Transactional producer (exactly-once). Thread-safety: one thread drives a transaction at a
/// time (begin/produce/commit); the transaction API calls must not race each other.

#include "orderpipe/kafka/error.hpp"
#include "orderpipe/kafka/types.hpp"

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace orderpipe::kafka {

class Consumer;

struct ProducerOptions {
    std::string transactional_id;  ///< stable per service instance: fences a restarted zombie
    /// Bound for a delivery, a commit or an abort (message.timeout.ms is set to it as well).
    std::chrono::milliseconds operation_timeout{10000};
    std::chrono::milliseconds transaction_timeout{60000};  ///< broker aborts a txn left open
    std::chrono::milliseconds linger{5};
    /// Fault injection scope (orderpipe/common/faults.hpp): the commit consults the points
    /// commit-unknown-committed, commit-unknown-aborted, commit-abortable and abort-fails.
    std::string fault_scope;
};

/// Outcome of finishing a transaction.
enum class TxnOutcome {
    kCommitted,
    kAborted,  ///< definitely not visible to read_committed readers
    /// No answer settled it: the transaction may become visible or not. The handle was
    /// recreated; the next init_transactions() makes the coordinator finish it one way or the
    /// other, and only then may the caller find out which (by reading what was written).
    kUnknown,
    /// Another instance took over the transactional.id. This producer is dead for good and the
    /// outcome is decided by the new owner; the caller must stop (docs/ARCHITECTURE.md).
    kFenced,
};

const char* to_string(TxnOutcome outcome);

class TransactionalProducer {
  public:
    /// Creates the librdkafka handle. Does not contact the broker.
    /// @throws ConfigurationError when a property is refused.
    TransactionalProducer(ClientConfig config, ProducerOptions options);
    ~TransactionalProducer();  ///< aborts an open transaction, flushes (bounded)
    TransactionalProducer(const TransactionalProducer&) = delete;
    TransactionalProducer& operator=(const TransactionalProducer&) = delete;

    /// init_transactions: registers the transactional.id, fencing an older instance and
    /// settling what it (or this producer before a recreation) left open. No-op once done.
    /// @throws KafkaException: retriable when the broker is unreachable, fenced when a newer
    ///         instance registered the id meanwhile.
    void init_transactions();
    bool initialised() const;
    /// True once a fencing error was seen; every further call throws it again.
    bool fenced() const;

    /// @throws KafkaException
    void begin();
    /// Enqueues one record in the open transaction; waits (polling) while the local queue is
    /// full. @throws KafkaException
    void produce(const OutgoingRecord& record);
    /// Adds consumed offsets to the open transaction (exactly-once read-process-write).
    /// @throws KafkaException
    void send_offsets(const std::vector<TopicPartitionOffset>& offsets, const Consumer& consumer);

    /// Commits. A retriable error is retried (the commit may already be on its way, so it is
    /// never turned into an abort) until the broker's transaction timeout has surely passed;
    /// an error that requires an abort aborts. After a fatal error, when an abort does not
    /// complete, or when the outcome stays unknown, the handle is recreated (call
    /// init_transactions() again) and kUnknown is returned. Never leaves a transaction open.
    /// With `give_up_at`, retrying stops then (sooner than the transaction timeout): the
    /// outcome is kUnknown if nothing settled it by that time. Does not throw.
    TxnOutcome commit_or_abort(
        std::optional<std::chrono::steady_clock::time_point> give_up_at = std::nullopt);

    /// Aborts the open transaction, if any (retrying a retriable error). When the abort cannot
    /// be completed the handle is recreated: its init_transactions aborts what is left open.
    /// Does not throw. @returns false when the handle had to be recreated or is fenced.
    bool abort();

    /// Waits until every produced record reached the broker (or the timeout). Inside a
    /// transaction this only delivers; visibility still waits for the commit.
    /// @throws KafkaException on timeout.
    void flush(std::chrono::milliseconds timeout);

    /// Per partition, the offset after the last record of this producer the broker
    /// acknowledged (acks=all: it is in the log whatever becomes of its transaction), since the
    /// producer was constructed, across recreations of the handle. A transaction can only
    /// commit once all its records are acknowledged, so a reader that has passed these offsets
    /// (read_committed, which passes a record only once its transaction is settled) has seen
    /// everything this producer ever committed. That holds when listing a partition's end does
    /// not: right after a leader moves, the new leader can answer an end older than records it
    /// holds. Delivery reports are served by produce/flush/commit; thread-safe.
    PartitionOffsets acknowledged() const;

    const ProducerOptions& options() const;

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

/// A plain idempotent producer (acks=all, no transaction) for records that stand alone, such as
/// a command to another instance: each send is written at most once, in order per partition,
/// and `done` says whether it was (nullopt) or why not. Thread-safe; its own thread serves the
/// delivery reports, so `done` runs there and must not block.
class Producer {
  public:
    using Done = std::function<void(const std::optional<KafkaError>& error)>;
    /// `timeout`: a send not acknowledged by then fails (message.timeout.ms).
    /// @throws ConfigurationError when a property is refused.
    Producer(ClientConfig config, std::chrono::milliseconds timeout);
    ~Producer();  ///< flushes (bounded by the timeout), then fails what is left
    Producer(const Producer&) = delete;
    Producer& operator=(const Producer&) = delete;

    /// Enqueues `record`; `done` is called exactly once (also when enqueuing fails, at once).
    void send(const OutgoingRecord& record, Done done);

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

/// The partition of a topic with `partition_count` partitions that the producers of this
/// project put a record keyed `key` in: librdkafka's default partitioner (consistent_random:
/// CRC32 of the key). Records keyed by one order id land in the same partition number on every
/// topic with as many partitions (co-partitioned), which is what lets one instance own all
/// of an order's decisions (docs/ARCHITECTURE.md "Scaling out").
int partition_for_key(std::string_view key, int partition_count);

/// Calls producer.init_transactions() until it succeeds, backing off (250 ms growing to 5 s)
/// after each retriable failure and telling `report` why it could not (for readiness and logs).
/// @returns false when `stop` was set first.
/// @throws KafkaException when fenced (a newer instance owns the id) or on a non-retriable error.
bool init_transactions_retrying(TransactionalProducer& producer, const std::atomic<bool>& stop,
                                const std::function<void(const std::string&)>& report);

}  // namespace orderpipe::kafka
