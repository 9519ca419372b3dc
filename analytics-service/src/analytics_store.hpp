#pragma once
/// The analytics-service's SQLite file (the SQLite adapter's engine: sqlite_analytics_state.hpp):
/// the business figures and, in the same transactions, how far each input partition has been
/// counted (docs/ARCHITECTURE.md "Analytics").
///
///   counters      name → value: "orders.created", "cancellation_reasons.TIMEOUT",
///                 "revenue.confirmed.USD" (in cents), ...
///   series        (minute, name) → value: the same names per minute of the events' ce_time
///   orders        order id → ce_time of ORDER_CREATED and of its decision, and the saga latency
///   dead_letters  dlq.resolutions key → in a DLQ?, resolved?
///   order_records (order id, topic, partition, offset) → ce_type, Kafka timestamp: every record
///                 of an order on every topic read, so a timeline is fetched by offset
///   order_customers order id → customer id, email (lowercased), time: the console's search
///   positions     (topic, partition) → next offset to count: a record below it was counted
///   rebuild_marks (topic, partition) → offset the consumer group had committed when this file
///                 was rebuilt from the beginning: poison below it is already in its DLQ
///
/// Thread-safety: one AnalyticsStore per thread (each opens its own connection; SQLite's WAL lets
/// the HTTP readers see the last committed batch while the loop writes the next).

#include "analytics_state.hpp"

#include "orderpipe/common/sqlite.hpp"
#include "orderpipe/kafka/types.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace orderpipe::analytics {

class AnalyticsStore {
  public:
    /// Opens (creating) the file. @throws sqlite::SqliteError
    explicit AnalyticsStore(const std::string& path);

    sqlite::Database& db() { return db_; }

    // --- the loop's writes: call inside one sqlite::Transaction per batch -------------------

    /// ORDER_CREATED of `order_id` at `time_us`; completes its latency if its decision is known.
    void order_created(BatchChanges& changes, const std::string& order_id, std::int64_t time_us);
    /// The decision of `order_id` at `time_us` (the first one counts); completes its latency if
    /// its ORDER_CREATED is known.
    void order_decided(BatchChanges& changes, const std::string& order_id, std::int64_t time_us);
    /// A dead letter at `key` (its dlq.resolutions key) on `topic`.
    void dead_letter_seen(BatchChanges& changes, const std::string& key, const std::string& topic);
    /// The latest dlq.resolutions record of `key`: resolved, or (a tombstone) not any more.
    void resolution(BatchChanges& changes, const std::string& key, const std::string& topic,
                    bool resolved);
    /// `record` belongs to `order_id` (the per-order index).
    void order_record(const std::string& order_id, const OrderRecord& record);
    void order_customer(const OrderCustomer& customer);
    /// Writes the batch's counter and series increments and the new positions.
    void finish_batch(const BatchChanges& changes,
                      const std::map<kafka::TopicPartition, std::int64_t>& positions);
    /// Forgets per-minute figures older than `minute` (a Unix minute).
    void prune_series(std::int64_t before_minute);

    // --- reads -------------------------------------------------------------------------------

    std::map<kafka::TopicPartition, std::int64_t> positions();
    std::map<kafka::TopicPartition, std::int64_t> rebuild_marks();
    std::map<std::string, std::int64_t> counters();
    /// The records of `order_id` by time, at most `limit`.
    std::vector<OrderRecord> order_records(const std::string& order_id, std::size_t limit);
    /// See AnalyticsState::find_orders.
    std::vector<OrderCustomer> find_orders(const std::string& q, std::size_t limit);
    /// Per DLQ topic, records in it that dlq.resolutions does not mark resolved.
    std::map<std::string, std::int64_t> dead_letters_pending();
    LatencyPercentiles latency_percentiles();
    /// Every completed saga latency in bucket counts: result[i] = latencies ≤ bounds_us[i] and >
    /// the previous bound; one more entry for the rest. And their sum.
    std::pair<std::vector<std::int64_t>, std::int64_t> latency_histogram(
        const std::vector<std::int64_t>& bounds_us);
    /// name → value per minute in [from_minute, to_minute].
    std::map<std::int64_t, std::map<std::string, std::int64_t>> series(std::int64_t from_minute,
                                                                       std::int64_t to_minute);

    // --- rebuilding from the beginning of the topics -----------------------------------------

    using RebuildState = AnalyticsState::RebuildState;
    RebuildState rebuild_state();
    /// Records the group's committed offsets as rebuild marks (in one transaction) and
    /// `reset_pending` as the state.
    void begin_rebuild(const std::vector<kafka::TopicPartitionOffset>& marks);
    void set_rebuild_done();

  private:
    void order_event(BatchChanges& changes, const std::string& order_id, std::int64_t time_us,
                     bool created);
    std::optional<std::string> meta(const std::string& name);
    void set_meta(const std::string& name, const std::string& value);
    std::optional<std::int64_t> latency_at_rank(std::int64_t rank, std::int64_t count);

    sqlite::Database db_;
};

}  // namespace orderpipe::analytics
