#pragma once
/// The inventory's read-process-write step (docs/ARCHITECTURE.md "Reservations"): consumes
/// inventory.requests, reserves all-or-nothing or releases, and emits the result and the
/// inventory event. Restocks (PUT /inventory/{sku}) run here too, as commands, so every write to
/// the stock happens on this one thread and no HTTP thread ever waits on the state's lock.
///
/// Exactly once: for each request, the stock change and its ProcessedEvents row (holding the
/// records it produced) commit in one unit of work of the state *before* the Kafka transaction
/// commits. If the Kafka transaction then aborts (or the process dies), the request is delivered
/// again and the stored records are re-emitted — same ce_ids — instead of reserving twice. A
/// restock writes its STOCK_ADJUSTED to an outbox in the same unit of work as the stock; the
/// outbox is produced in every transaction until one commits.

#include "inventory_state.hpp"

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
    /// `state` is the loop thread's own; `shared`: other instances write to it too.
    InventoryProcessor(InventoryState& state, InventoryTopics topics, bool shared = false);

    enum class RestockOutcome {
        kAdjusted,  ///< in the state; its STOCK_ADJUSTED follows through the outbox
        kUnknownSku,
        kNotApplied,  ///< not done by its deadline (the loop is not running): nothing changed
    };
    using RestockDone = std::function<void(RestockOutcome, const std::optional<CatalogItem>&)>;

    /// Queues a restock, answered by `deadline` at the latest. Thread-safe.
    /// @returns false when too many are queued.
    bool restock(std::string sku, std::int64_t available, RestockDone done,
                 std::chrono::steady_clock::time_point deadline);

    void process(std::vector<kafka::Incoming>& batch, kafka::BatchOutput& out) override;
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
    /// The SKUs `batch` may change (poison records left out).
    static std::vector<std::string> skus_of(const std::vector<kafka::Incoming>& batch,
                                            InventoryWork& work);
    /// One request's outputs, or an exception (ContractError: poison).
    std::vector<kafka::OutgoingRecord> decide(InventoryWork& work, const kafka::Incoming& in);
    std::vector<kafka::OutgoingRecord> reserve(InventoryWork& work, const kafka::Incoming& in);
    std::vector<kafka::OutgoingRecord> release(InventoryWork& work, const kafka::Incoming& in);

    InventoryState& state_;
    InventoryTopics topics_;
    bool shared_;
    runtime::DeadlineQueue<Restock> restocks_;
    bool outbox_pending_ = true;             // check once at start
    std::vector<std::int64_t> outbox_sent_;  // in the transaction under way
    std::chrono::steady_clock::time_point last_purge_{};
    static constexpr std::chrono::seconds kOutboxLook{10};
    std::chrono::steady_clock::time_point last_outbox_look_{};
};

/// The STOCK_ADJUSTED record for an item (keyed by SKU).
kafka::OutgoingRecord stock_adjusted_record(const std::string& topic, const CatalogItem& item);

}  // namespace orderpipe::inventory
