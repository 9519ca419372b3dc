#pragma once
/// The order read model's store: status, reason, history and the full order of every order,
/// kept from orders.events by three writers: the intake's write-through (read-your-writes), the
/// saga's write-through after its commits, and the projection of orders.events (which repairs
/// both after a crash). Every write is idempotent by event id, so they can apply the same event
/// in any order without harm; what an event changes is order_record.hpp's rule.
///
/// The port the intake, the saga and the projection use (docs/ARCHITECTURE.md "Storage");
/// sqlite_order_store.hpp is its SQLite adapter. Not thread-safe: each thread opens its own.

#include "order_record.hpp"

#include "orderpipe/common/cloudevent.hpp"
#include "orderpipe/runtime/projection.hpp"

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

namespace orderpipe::order {

/// What a batch of orders.events events does to the read model, gathered first and written in
/// one go (OrderStore::write): a malformed event is refused before anything is written, and a
/// database adapter sends a batch in a few statements instead of a few per event.
struct ReadModelChanges {
    struct Created {
        OrderRecord record;
        std::string event_id;  ///< its ORDER_CREATED
    };
    struct Applied {
        std::string event_id;
        Transition t;
    };
    std::vector<Created> created;
    std::vector<Applied> applied;
    std::vector<std::string> releases;  ///< orders whose release was requested

    /// Adds an orders.events event: ORDER_CREATED or a transition (other types add nothing).
    /// @throws contract::ContractError when the data is malformed; nothing is added then.
    void add(const CloudEvent& event);
    bool empty() const { return created.empty() && applied.empty() && releases.empty(); }
    void clear();
};

class OrderStore {
  public:
    virtual ~OrderStore() = default;

    /// Runs `work`'s writes as one unit: all of them are kept, or (when it throws) none.
    virtual void together(const std::function<void()>& work) = 0;

    virtual std::optional<OrderRecord> get(const std::string& order_id,
                                           bool with_history = true) = 0;
    /// The orders of `order_ids` that exist, without their history (a batch's reads at once).
    virtual std::map<std::string, OrderRecord> get_many(
        const std::vector<std::string>& order_ids) = 0;
    /// True when the order's history holds the event `event_id`.
    virtual bool has_event(const std::string& event_id) = 0;

    /// Writes `changes` as one unit, idempotently: an order already there is not inserted
    /// again, an event already applied changes nothing, a status only moves forward
    /// (status_rank), the flags only turn on. A shared database's adapter locks rows in order
    /// id order, as every writer does (no deadlock between them).
    virtual void write(const ReadModelChanges& changes) = 0;
    /// write() of one event. @throws contract::ContractError when the data is malformed.
    void apply(const CloudEvent& event);
    /// write() of a release requested (an event that is not on orders.events).
    void mark_release_requested(const std::string& order_id);

    /// PENDING orders created before `created_before_ms`, oldest first.
    virtual std::vector<std::string> pending_before(std::int64_t created_before_ms,
                                                    std::size_t limit) = 0;

    /// The projection of orders.events keeps its positions here, with the orders.
    virtual runtime::ProjectionStore& projection_positions() = 0;
};

/// The ids of the events this process has written through to the read model (the intake's
/// ORDER_CREATED, the saga's decisions), once their write returned: the projection of
/// orders.events skips those without decoding them, so an event is written once, not twice
/// (docs/ARCHITECTURE.md "The read model"). Only a saving: an id not remembered (another
/// instance's, one from before a restart) is applied as before, a no-op write. The most recent
/// `capacity` ids are kept: one the projection applied before the write-through remembered it
/// is never taken, and leaves with age instead of filling the set. Thread-safe.
class WrittenThrough {
  public:
    explicit WrittenThrough(std::size_t capacity = 32768) : capacity_(capacity) {}
    /// After `changes` were written (their write returned).
    void add(const ReadModelChanges& changes);
    /// True, once, when the event `event_id` was written through.
    bool take(std::string_view event_id);
    std::size_t size() const;

  private:
    void remember(const std::string& id);

    mutable std::mutex mu_;
    std::unordered_set<std::string> ids_;
    std::deque<std::string> oldest_first_;  ///< every id remembered, taken or not
    std::size_t capacity_;
};

}  // namespace orderpipe::order
