#pragma once
/// The inventory's read-process-write step (docs/ARCHITECTURE.md "Reservations"): consumes
/// inventory.requests, reserves all-or-nothing or releases, and emits the result and the
/// inventory event. Restocks (PUT /inventory/{sku}) run here too, as commands, so every write to
/// the stock happens on this one thread and no HTTP thread ever waits on a SQLite lock.
///
/// Exactly once: for each request, the stock change and its ProcessedEvents row (holding the
/// records it produced) commit in one SQLite transaction *before* the Kafka transaction commits.
/// If the Kafka transaction then aborts (or the process dies), the request is delivered again
/// and the stored records are re-emitted — same ce_ids — instead of reserving twice. A restock
/// writes its STOCK_ADJUSTED to an outbox in the same SQLite transaction as the stock; the
/// outbox is produced in every transaction until one commits.

#include "inventory_store.hpp"

#include "orderpipe/common/processed_events.hpp"
#include "orderpipe/kafka/processing_loop.hpp"
#include "orderpipe/runtime/deadline_queue.hpp"

#include <prometheus/counter.h>

#include <functional>
#include <map>

namespace orderpipe::inventory {

struct InventoryTopics {
    std::string requests;
    std::string responses;
    std::string events;
};

class InventoryProcessor final : public kafka::BatchProcessor {
  public:
    static constexpr const char* kConsumer = "inventory-service";

    InventoryProcessor(InventoryStore& store, InventoryTopics topics,
                       std::chrono::hours processed_retention);

    enum class RestockOutcome {
        kAdjusted,  ///< in SQLite; its STOCK_ADJUSTED follows through the outbox
        kUnknownSku,
        kNotApplied,  ///< not done by its deadline (the loop is not running): nothing changed
    };
    using RestockDone = std::function<void(RestockOutcome, const std::optional<CatalogItem>&)>;

    /// Queues a restock, answered by `deadline` at the latest. Thread-safe.
    /// @returns false when too many are queued.
    bool restock(std::string sku, std::int64_t available, RestockDone done,
                 std::chrono::steady_clock::time_point deadline);

    void process(std::vector<kafka::Incoming>& batch, kafka::BatchOutput& out) override;
    /// How far the state has processed inventory.requests: (topic, partition) → next offset.
    /// Before the loop starts only (not thread-safe).
    std::map<std::pair<std::string, std::int32_t>, std::int64_t> positions() {
        return processed_.positions(kConsumer);
    }
    void idle(kafka::BatchOutput& out) override;
    bool has_idle_work() override;
    void committed() override;
    void aborted() override;

  private:
    struct Restock {
        std::string sku;
        std::int64_t available;
        RestockDone done;
    };
    /// One request's outputs, or an exception (ContractError: poison).
    std::vector<kafka::OutgoingRecord> decide(const kafka::Incoming& in);
    std::vector<kafka::OutgoingRecord> reserve(const kafka::Incoming& in);
    std::vector<kafka::OutgoingRecord> release(const kafka::Incoming& in);

    InventoryStore& store_;
    InventoryTopics topics_;
    ProcessedEvents processed_;
    runtime::DeadlineQueue<Restock> restocks_;
    bool outbox_pending_ = true;  // check once at start
    std::int64_t outbox_sent_up_to_ = 0;
    std::chrono::steady_clock::time_point last_purge_{};
};

/// The STOCK_ADJUSTED record for an item (keyed by SKU).
kafka::OutgoingRecord stock_adjusted_record(const std::string& topic, const CatalogItem& item);

}  // namespace orderpipe::inventory
