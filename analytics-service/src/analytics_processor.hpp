#pragma once
/// The analytics-service's processor: counts every input record exactly once into the
/// figures (AnalyticsState), and sends poison to its topic's DLQ exactly once (docs/ARCHITECTURE.md
/// "Analytics").
///
/// Two ledgers, each exact on its own:
/// - What is *counted* is decided by the state: a batch's figures and, per partition, the next
///   offset to count commit in one unit of work, before the Kafka transaction. A record
///   below that position was counted already (the Kafka transaction that followed was aborted,
///   or its outcome was lost with a crash): it is skipped.
/// - What is *dead-lettered* is decided by Kafka: a poison record goes to its DLQ in the Kafka
///   transaction of its offset, every time the record is delivered, whatever the state says. Only
///   one of those transactions can commit.
/// Poison is never counted; dead letters (DLQ topics) and the dlq.resolutions ledger are read
/// raw and never dead-lettered further, except a ledger record that is not a resolution.

#include "analytics_metrics.hpp"
#include "analytics_state.hpp"

#include "orderpipe/kafka/processing_loop.hpp"

#include <chrono>
#include <map>
#include <optional>
#include <string>

namespace orderpipe::analytics {

/// The inputs, full names (with any TOPIC_PREFIX).
struct AnalyticsTopics {
    std::string orders_events;
    std::string inventory_events;
    std::string notifications_events;
    std::string dlq_resolutions;
    std::vector<std::string> dead_letters;  ///< every DLQ topic
    /// Read for the per-order index only (nothing is counted from them, nothing is poison):
    /// the saga's requests, responses and commands.
    std::vector<std::string> indexed;

    std::vector<std::string> all() const;
};

class AnalyticsProcessor final : public kafka::BatchProcessor {
  public:
    /// `state` belongs to the loop thread from now on. `shared`: N instances count into it
    /// (DATABASE_URL), so the metrics are refreshed from the whole state, not moved by batches.
    AnalyticsProcessor(AnalyticsState& state, AnalyticsTopics topics, AnalyticsMetrics& metrics,
                       bool shared = false);

    void process(std::vector<kafka::Incoming>& batch, kafka::BatchOutput& out) override;
    /// Everything is read raw: the processor decides what is poison (and whether it was
    /// dead-lettered before a rebuild).
    bool decodes(const std::string& /*topic*/) override { return false; }
    bool resync(std::chrono::milliseconds budget,
                const kafka::PartitionOffsets& acknowledged) override;
    /// Records are counted once per offset: the next offset of `tp` counted so far.
    std::optional<std::int64_t> stored_position(const kafka::TopicPartition& tp) override {
        const auto it = positions_.find(tp);
        return it == positions_.end() ? std::nullopt : std::optional<std::int64_t>(it->second);
    }
    /// Reads the positions and rebuild marks from the state (first before the loop runs, once
    /// the state can be read; again after a rebuild started, or on the loop thread).
    void reload();

  private:
    enum class Input { kOrders, kInventory, kNotifications, kDeadLetters, kResolutions, kIndexed };

    /// Notes `record` in the per-order index under its key (every topic but dlq.resolutions is
    /// keyed by order id; STOCK_ADJUSTED, keyed by SKU, is not an order's).
    void index(const kafka::ConsumedRecord& record);

    /// Reads `record` and, when `count`, adds it to the figures. @returns why it is poison.
    std::optional<std::string> take(Input input, const kafka::ConsumedRecord& record, bool count,
                                    BatchChanges& changes);
    std::optional<std::string> take_event(Input input, const kafka::ConsumedRecord& record,
                                          bool count, BatchChanges& changes);
    std::optional<std::string> take_resolution(const kafka::ConsumedRecord& record, bool count,
                                               BatchChanges& changes);

    AnalyticsState& state_;
    AnalyticsWork* work_ = nullptr;  ///< the batch's, during process()
    AnalyticsTopics topics_;
    AnalyticsMetrics& metrics_;
    std::map<std::string, Input> inputs_;
    bool shared_;
    std::map<kafka::TopicPartition, std::int64_t> positions_;  ///< as last committed
    std::map<kafka::TopicPartition, std::int64_t> marks_;      ///< rebuild marks
    std::int64_t pruned_before_ = 0;                           ///< Unix minute
};

}  // namespace orderpipe::analytics
