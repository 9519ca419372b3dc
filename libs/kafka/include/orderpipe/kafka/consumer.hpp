#pragma once
/// A group consumer with manual commits, read_committed isolation and an eager assignor
/// (librdkafka 2.0.2: cooperative-sticky is avoided). Not thread-safe: one thread polls.

#include "orderpipe/kafka/error.hpp"
#include "orderpipe/kafka/types.hpp"

#include <chrono>
#include <functional>
#include <memory>
#include <vector>

namespace orderpipe::kafka {

/// Called from inside poll_batch() on the polling thread.
struct RebalanceListener {
    virtual ~RebalanceListener() = default;
    virtual void on_assigned(const std::vector<TopicPartition>& /*partitions*/) {}
    /// Partitions are about to be revoked: finish (commit) work for them now.
    virtual void on_revoked(const std::vector<TopicPartition>& /*partitions*/) {}
    /// Partitions were lost (session timeout): their uncommitted work must be aborted.
    virtual void on_lost(const std::vector<TopicPartition>& /*partitions*/) {}
};

struct ConsumerOptions {
    std::string group_id;
    /// Static membership (KIP-345): a restarted instance with the same id takes its
    /// partitions back at once instead of waiting for a rebalance. Empty = dynamic.
    std::string group_instance_id;
    bool read_committed = true;
    std::string auto_offset_reset = "earliest";
    bool partition_eof = false;  ///< report end of partition (for readers that stop at the end)
    std::chrono::milliseconds session_timeout{10000};
    std::chrono::milliseconds max_poll_interval{300000};
    /// How much may be prefetched and waiting (queued.max.messages.kbytes; a KAFKA_* setting
    /// overrides it). 16 MiB (librdkafka's default is 64 MiB): a consumer far behind otherwise
    /// holds its backlog in memory.
    int prefetch_kbytes = 16384;
    /// For readers that seek from record to record (read_at): how long a partition waits before
    /// its next fetch while its prefetched records are over the thresholds
    /// (fetch.queue.backoff.ms, librdkafka 2.2+; unknown to older ones, then not set). Its
    /// default, a second, made every timeline of a long history take a second. -1: the default.
    int fetch_queue_backoff_ms = -1;
    /// max.partition.fetch.bytes in KiB (a record batch bigger than it still comes whole);
    /// 0: librdkafka's default, 1 MiB.
    int max_partition_fetch_kbytes = 0;
    /// Fault injection scope (orderpipe/common/faults.hpp): seek_to_committed consults the point
    /// rewind-partition-error (the broker answers one partition's committed offset with an
    /// error).
    std::string fault_scope;
};

/// One poll result: records, plus partitions that reached their end (if partition_eof).
struct PollResult {
    std::vector<ConsumedRecord> records;
    /// Partitions whose end (the last stable offset, read_committed) was reached; `offset` is
    /// that end offset.
    std::vector<TopicPartitionOffset> reached_end;
    /// The broker refused this client's principal the group or a topic (an ACL is missing):
    /// the error as librdkafka describes it. The consumer keeps retrying.
    std::optional<std::string> not_authorized;
};

class Consumer {
  public:
    /// @throws ConfigurationError
    Consumer(ClientConfig config, ConsumerOptions options, RebalanceListener* listener = nullptr);
    ~Consumer();  ///< closes (leaves the group) if close() was not called
    Consumer(const Consumer&) = delete;
    Consumer& operator=(const Consumer&) = delete;

    void subscribe(const std::vector<std::string>& topics);
    /// Manual assignment (no group rebalancing); offsets as given (use kBeginning for earliest).
    void assign(const std::vector<TopicPartitionOffset>& partitions);
    static constexpr std::int64_t kBeginning = -2;
    static constexpr std::int64_t kEnd = -1;
    static constexpr std::int64_t kStored = -1000;  ///< the committed offset

    /// Waits up to `timeout` for the first record, then takes what is already there, up to `max`.
    /// Errors that only mean "not yet" (partition EOF, transient broker errors) are not thrown.
    /// @throws KafkaException on a fatal consumer error.
    PollResult poll_batch(std::size_t max, std::chrono::milliseconds timeout);

    std::vector<TopicPartition> assignment() const;
    /// Stops (resumes) fetching every assigned partition; polls keep serving the group
    /// (backpressure). A pause lasts until resume_all() or the next rebalance: partitions
    /// assigned by a rebalance start unpaused. @throws KafkaException
    void pause_all();
    void resume_all();
    /// Moves assigned partitions to the given offsets (kBeginning allowed). Asynchronous: later
    /// polls return records from there on. @throws KafkaException naming a partition it could
    /// not position.
    void seek(const std::vector<TopicPartitionOffset>& positions);
    /// Rewinds every assigned partition to its committed offset (after an aborted transaction).
    /// @throws KafkaException when any partition could not be positioned (nothing is assumed:
    ///         call again until it succeeds).
    void seek_to_committed(std::chrono::milliseconds timeout = std::chrono::seconds(10));
    /// The group's committed offsets of `partitions` (kNoOffset where none is committed). Needs
    /// a group id but no subscription. @throws KafkaException on any per-partition error.
    std::vector<TopicPartitionOffset> committed(const std::vector<TopicPartition>& partitions,
                                                std::chrono::milliseconds timeout);
    static constexpr std::int64_t kNoOffset = -1001;
    /// Commits `offsets` for the group, synchronously, outside any transaction (an administrative
    /// reset: the group must have no active member, else the broker refuses it).
    /// @throws KafkaException naming the first partition whose commit was refused.
    void commit(const std::vector<TopicPartitionOffset>& offsets);
    /// Low and high watermarks as seen by this consumer's isolation level.
    std::pair<std::int64_t, std::int64_t> watermarks(const std::string& topic,
                                                     std::int32_t partition,
                                                     std::chrono::milliseconds timeout);
    /// Number of partitions of `topic`, or 0 if it does not exist.
    int partition_count(const std::string& topic, std::chrono::milliseconds timeout);

    /// Per assigned partition: high watermark minus position, from locally cached watermarks
    /// (no broker round trip). Partitions without a known position are skipped.
    std::vector<std::pair<TopicPartition, std::int64_t>> lag() const;

    /// Makes a poll_batch() that is waiting return early. Thread-safe.
    void wake();

    /// Leaves the group. Idempotent.
    void close();

    /// For TransactionalProducer::send_offsets; opaque.
    void* native_handle() const;

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

/// The committed records at `positions` (read_committed), fetched by offset without reading the
/// partitions through: each partition is read from the first offset wanted, and moved on to the
/// next one when it is more than a few hundred records further. A position with no committed
/// record (past retention, compacted away, beyond the end) is left out, as is whatever was not
/// read within `timeout`. In the order of the topic, partition and offset.
std::vector<ConsumedRecord> read_at(const ClientConfig& config,
                                    const std::vector<TopicPartitionOffset>& positions,
                                    std::chrono::milliseconds timeout);

}  // namespace orderpipe::kafka
