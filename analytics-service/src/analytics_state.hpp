#pragma once
/// The analytics-service's state in its own terms: the port its processor, metrics and HTTP
/// handlers use (docs/ARCHITECTURE.md "Storage"). Adapters: SQLite in DATA_DIR (one instance,
/// analytics_store.hpp) and PostgreSQL (DATABASE_URL, shared by N instances of one group).
///
/// The promises an adapter keeps:
/// - A unit of work (AnalyticsWork) commits whole or not at all: a batch's figures and, per
///   partition, the next offset to count go together, before the Kafka transaction.
/// - hold_positions() returns the partitions' positions held until the work ends: no other
///   writer counts those partitions meanwhile, so a record is counted once even while its
///   partition moves between instances (the one that did not hold it sees the other's position).
/// - Figures are whole: every instance reads the totals of all, never its share.
/// - Not thread-safe: each thread opens its own AnalyticsState.

#include "counting.hpp"

#include "orderpipe/kafka/types.hpp"

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace orderpipe::analytics {

using Offsets = std::map<kafka::TopicPartition, std::int64_t>;

/// One record of an order in the per-order index: where it is and what it is, so its record can
/// be fetched by offset instead of searched for (docs/CONTRACT.md "The per-order index").
struct OrderRecord {
    std::string topic;  ///< the full name, with any TOPIC_PREFIX
    std::int32_t partition = 0;
    std::int64_t offset = 0;
    std::string type;          ///< its ce_type; a resolution's action; "" when it has neither
    std::int64_t time_ms = 0;  ///< the record's Kafka timestamp

    friend bool operator==(const OrderRecord&, const OrderRecord&) = default;
};

/// An order as its ORDER_CREATED names it: what the console searches by.
struct OrderCustomer {
    std::string order_id;
    std::string customer_id;
    std::string email;         ///< lowercased
    std::int64_t time_ms = 0;  ///< the record's Kafka timestamp

    friend bool operator==(const OrderCustomer&, const OrderCustomer&) = default;
};

/// One batch's unit of work. Destroyed without commit(): nothing it did remains.
class AnalyticsWork {
  public:
    virtual ~AnalyticsWork() = default;
    /// The next offset to count of each of `partitions` (absent: nothing counted yet), held
    /// until the work ends.
    virtual Offsets hold_positions(const std::vector<kafka::TopicPartition>& partitions) = 0;
    /// ORDER_CREATED of `order_id` at `time_us`; completes its latency if its decision is known.
    virtual void order_created(BatchChanges& changes, const std::string& order_id,
                               std::int64_t time_us) = 0;
    /// The decision of `order_id` at `time_us` (the first one counts); completes its latency if
    /// its ORDER_CREATED is known.
    virtual void order_decided(BatchChanges& changes, const std::string& order_id,
                               std::int64_t time_us) = 0;
    /// A dead letter at `key` (its dlq.resolutions key) on `topic`.
    virtual void dead_letter_seen(BatchChanges& changes, const std::string& key,
                                  const std::string& topic) = 0;
    /// The latest dlq.resolutions record of `key`: resolved, or (a tombstone) not any more.
    virtual void resolution(BatchChanges& changes, const std::string& key, const std::string& topic,
                            bool resolved) = 0;
    /// `record` belongs to `order_id` (noted once per offset, like the figures).
    virtual void order_record(const std::string& order_id, const OrderRecord& record) = 0;
    /// The customer of an order (from its ORDER_CREATED; noted once, a later one is ignored).
    virtual void order_customer(const OrderCustomer& customer) = 0;
    /// Writes what the work noted (an adapter may keep order_created()/order_decided() until
    /// now, to send a batch's in a few statements: the latencies they complete are added to
    /// `changes` then), the batch's counter and series increments and the new positions.
    virtual void finish(BatchChanges& changes, const Offsets& positions) = 0;
    /// Per DLQ topic, dead letters not resolved (as this work sees them).
    virtual std::map<std::string, std::int64_t> dead_letters_pending() = 0;
    /// Forgets per-minute figures older than `before_minute` (a Unix minute).
    virtual void prune_series(std::int64_t before_minute) = 0;
    virtual void commit() = 0;
};

class AnalyticsState {
  public:
    virtual ~AnalyticsState() = default;

    virtual std::unique_ptr<AnalyticsWork> begin() = 0;

    virtual Offsets positions() = 0;
    virtual Offsets rebuild_marks() = 0;
    /// What GET /api/metrics shows, read at one moment.
    virtual Figures figures() = 0;
    virtual std::map<std::string, std::int64_t> counters() = 0;
    virtual std::map<std::string, std::int64_t> dead_letters_pending() = 0;
    virtual LatencyPercentiles latency_percentiles() = 0;
    /// Every completed saga latency in bucket counts: result[i] = latencies ≤ bounds_us[i] and >
    /// the previous bound; one more entry for the rest. And their sum.
    virtual std::pair<std::vector<std::int64_t>, std::int64_t> latency_histogram(
        const std::vector<std::int64_t>& bounds_us) = 0;
    /// name → value per minute in [from_minute, to_minute].
    virtual std::map<std::int64_t, std::map<std::string, std::int64_t>> series(
        std::int64_t from_minute, std::int64_t to_minute) = 0;

    /// The records of `order_id` the index holds, by time then topic, partition and offset; at
    /// most `limit`.
    virtual std::vector<OrderRecord> order_records(const std::string& order_id,
                                                   std::size_t limit) = 0;
    /// The orders whose id or customer id is `q`, or whose email is `q` (ignoring ASCII case),
    /// newest first; at most `limit`.
    virtual std::vector<OrderCustomer> find_orders(const std::string& q, std::size_t limit) = 0;

    // --- rebuilding from the beginning of the topics -----------------------------------------
    enum class RebuildState { kUnknown, kResetPending, kDone };
    virtual RebuildState rebuild_state() = 0;
    /// Records the group's committed offsets as rebuild marks and `reset_pending` as the state,
    /// together.
    virtual void begin_rebuild(const std::vector<kafka::TopicPartitionOffset>& marks) = 0;
    virtual void set_rebuild_done() = 0;
};

}  // namespace orderpipe::analytics
