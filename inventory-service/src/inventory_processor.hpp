#pragma once
/// The inventory's read-process-write step (SPEC §5.2, §5.5): consumes inventory.requests,
/// reserves all-or-nothing or releases, and emits the result and the inventory event.
///
/// Exactly once: for each request, the stock change and its ProcessedEvents row (holding the
/// records it produced) commit in one SQLite transaction *before* the Kafka transaction commits.
/// If the Kafka transaction then aborts (or the process dies), the request is delivered again
/// and the stored records are re-emitted — same ce_ids — instead of reserving twice.

#include "inventory_store.hpp"

#include "orderpipe/common/processed_events.hpp"
#include "orderpipe/kafka/processing_loop.hpp"

#include <prometheus/counter.h>

#include <atomic>

namespace orderpipe::inventory {

struct InventoryTopics {
    std::string requests = "inventory.requests";
    std::string responses = "inventory.responses";
    std::string events = "inventory.events";
};

class InventoryProcessor final : public kafka::BatchProcessor {
  public:
    static constexpr const char* kConsumer = "inventory-service";
    static constexpr const char* kSource = "/inventory-service";

    InventoryProcessor(InventoryStore& store, InventoryTopics topics,
                       std::chrono::hours processed_retention, prometheus::Counter& replayed);

    void process(std::vector<kafka::Incoming>& batch, kafka::BatchOutput& out) override;
    void idle(kafka::BatchOutput& out) override;
    bool has_idle_work() override { return outbox_pending_.load(); }
    void committed() override;
    void aborted() override {
        if (outbox_sent_up_to_ > 0) outbox_pending_ = true;  // send them again
        outbox_sent_up_to_ = 0;
    }

    /// A STOCK_ADJUSTED was queued in the outbox by another connection.
    void outbox_added() { outbox_pending_ = true; }

  private:
    std::vector<kafka::OutgoingRecord> reserve(const kafka::Incoming& in, std::string& poison);
    std::vector<kafka::OutgoingRecord> release(const kafka::Incoming& in, std::string& poison);

    InventoryStore& store_;
    InventoryTopics topics_;
    ProcessedEvents processed_;
    std::atomic<bool> outbox_pending_{true};  // check once at start
    std::int64_t outbox_sent_up_to_ = 0;
    std::chrono::steady_clock::time_point last_purge_{};
    prometheus::Counter& replayed_;  ///< redeliveries answered from ProcessedEvents
};

/// The STOCK_ADJUSTED record for an item (keyed by SKU).
kafka::OutgoingRecord stock_adjusted_record(const std::string& topic, const CatalogItem& item);

}  // namespace orderpipe::inventory
