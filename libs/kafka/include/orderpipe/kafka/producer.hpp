#pragma once
/// Transactional producer (exactly-once). Thread-safety: one thread drives a transaction at a
/// time (begin/produce/commit); `produce` itself is thread-safe in librdkafka, but the
/// transaction API calls must not race each other.

#include "orderpipe/kafka/error.hpp"
#include "orderpipe/kafka/types.hpp"

#include <chrono>
#include <memory>
#include <vector>

namespace orderpipe::kafka {

class Consumer;

struct ProducerOptions {
    std::string transactional_id;  ///< stable per service instance: fences a restarted zombie
    /// Bound for a delivery, a commit or an abort (message.timeout.ms is set to it as well).
    std::chrono::milliseconds operation_timeout{10000};
    std::chrono::milliseconds transaction_timeout{60000};  ///< broker aborts a txn left open
    std::chrono::milliseconds linger{5};
};

/// Outcome of finishing a transaction.
enum class TxnOutcome {
    kCommitted,
    kAborted,  ///< definitely not visible to read_committed readers
    /// The commit request may have reached the coordinator but no answer came back in time:
    /// the transaction may become visible or not. The handle was recreated; the next
    /// init_transactions() makes the coordinator finish it one way or the other.
    kUnknown,
};

class TransactionalProducer {
  public:
    /// Creates the librdkafka handle. Does not contact the broker.
    /// @throws ConfigurationError when a property is refused.
    TransactionalProducer(ClientConfig config, ProducerOptions options);
    ~TransactionalProducer();
    TransactionalProducer(const TransactionalProducer&) = delete;
    TransactionalProducer& operator=(const TransactionalProducer&) = delete;

    /// init_transactions: registers the transactional.id, fencing an older instance and aborting
    /// what it left open. @throws KafkaException (retriable when the broker is unreachable).
    void init_transactions();
    bool initialised() const;

    /// @throws KafkaException
    void begin();
    /// Enqueues one record in the open transaction; waits (polling) while the local queue is full.
    /// @throws KafkaException
    void produce(const OutgoingRecord& record);
    /// Adds consumed offsets to the open transaction (exactly-once read-process-write).
    /// @throws KafkaException
    void send_offsets(const std::vector<TopicPartitionOffset>& offsets, const Consumer& consumer);

    /// Commits. A retriable error is retried (the commit may already be on its way, so it is
    /// never turned into an abort) until the broker's transaction timeout has surely passed;
    /// an error that requires an abort (the commit request was never sent) aborts.
    /// After a fatal error, or when the outcome stays unknown, the handle is recreated (call
    /// init_transactions() again). Never leaves a transaction open. Does not throw.
    TxnOutcome commit_or_abort();

    /// Aborts the open transaction, if any (retrying a retriable error). After a fatal error the
    /// handle is recreated. @throws KafkaException if the abort could not be established.
    void abort();

    /// Waits until every produced record reached the broker (or the timeout). Inside a
    /// transaction this only delivers; visibility still waits for the commit.
    void flush(std::chrono::milliseconds timeout);

    const ProducerOptions& options() const;

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace orderpipe::kafka
