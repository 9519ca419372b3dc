#pragma once
/// The inventory's state in its own terms: the port the processor and the HTTP handlers use
/// (docs/ARCHITECTURE.md "Storage"). Nothing here names a database: the SQLite adapter
/// (sqlite_inventory_state.hpp, one instance, DATA_DIR) implements it today, and a shared
/// database for N instances implements the same promises.
///
/// The promises an adapter keeps:
/// - A unit of work (InventoryWork) commits whole or not at all: a stock change, its
///   reservation, its ProcessedEvents row and the consumed position go together.
/// - hold_stock() holds the SKUs it returns until the work ends: no other writer changes them
///   meanwhile, so a reservation decided on those levels never sells a unit twice.
/// - Not thread-safe: each thread opens its own InventoryState.

#include "reservation.hpp"

#include "orderpipe/common/money.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace orderpipe::inventory {

struct CatalogItem {
    std::string sku;
    std::string name;
    Money unit_price;
    std::int64_t available = 0;
    std::int64_t reserved = 0;
    std::string currency = "USD";  ///< of unit_price (ISO 4217)
    nlohmann::json to_json() const;
};

enum class ReservationState { kReserved, kRejected, kReleased };

struct Reservation {
    ReservationState state;
    std::vector<RequestedLine> lines;
};

/// How every adapter stores a reservation: its state's name ("RESERVED", …) and its lines as
/// JSON ([{sku, quantity}]).
const char* state_name(ReservationState s);
ReservationState parse_reservation_state(std::string_view name);
std::string lines_to_json(const std::vector<RequestedLine>& lines);
std::vector<RequestedLine> lines_from_json(std::string_view json);

/// A STOCK_ADJUSTED waiting to be produced: written with its stock change, removed once a Kafka
/// transaction carrying it committed.
struct OutboxEntry {
    std::int64_t id;
    std::string record;  ///< serialised OutgoingRecord (JSON)
};

/// (topic, partition) → the next offset the state has processed.
using Positions = std::map<std::pair<std::string, std::int32_t>, std::int64_t>;

/// One unit of work. Destroyed without commit(): nothing it did remains.
class InventoryWork {
  public:
    virtual ~InventoryWork() = default;

    /// The events and orders the work is about to look up (produced_by, reservation): an
    /// adapter may read them all at once. Optional; a hint, never a promise.
    virtual void expect(const std::vector<std::string>& /*event_ids*/,
                        const std::vector<std::string>& /*order_ids*/) {}
    /// What processing `event_id` produced (the records, serialised), if it was processed.
    virtual std::optional<std::string> produced_by(const std::string& event_id) = 0;
    /// Runs `step`; if it throws, what it changed is undone and the exception passes on, the
    /// rest of the work staying as it was (a poison record in a batch).
    virtual void step(const std::function<void()>& step) = 0;
    /// The stock of `skus`, held until the work ends; an unknown SKU is absent.
    virtual std::map<std::string, StockLevel> hold_stock(std::vector<std::string> skus) = 0;
    /// Moves units between available and reserved (negative `available` is refused).
    virtual void move_stock(const std::string& sku, std::int64_t available_delta,
                            std::int64_t reserved_delta) = 0;
    virtual std::optional<Reservation> reservation(const std::string& order_id) = 0;
    virtual void put_reservation(const std::string& order_id, const Reservation& r) = 0;
    /// Records `event_id` as processed, with what it produced.
    virtual void record_processed(const std::string& event_id, const std::string& produced) = 0;
    /// The state now goes up to `next_offset` of `topic[partition]` (never moves back).
    virtual void advance(const std::string& topic, std::int32_t partition,
                         std::int64_t next_offset) = 0;
    /// Admin restock: sets `available`. @returns the item, or nullopt for an unknown SKU.
    virtual std::optional<CatalogItem> set_available(const std::string& sku,
                                                     std::int64_t available) = 0;
    virtual void add_outbox(const std::string& record) = 0;
    virtual void commit() = 0;
};

class InventoryState {
  public:
    virtual ~InventoryState() = default;

    virtual std::unique_ptr<InventoryWork> begin() = 0;
    /// Seeds the catalog on the state's first start only, whoever starts first.
    /// @returns true if this call seeded it.
    virtual bool seed_once(const std::vector<CatalogItem>& catalog) = 0;
    virtual std::optional<CatalogItem> item(const std::string& sku) = 0;
    virtual std::vector<CatalogItem> items() = 0;
    /// How far the state has processed what it consumed.
    virtual Positions positions() = 0;
    /// Stores `positions` into a state that has none (written before they were kept).
    virtual void seed_positions(const Positions& positions) = 0;
    /// The oldest entries of the outbox.
    virtual std::vector<OutboxEntry> outbox(std::size_t limit) = 0;
    /// Removes these entries (produced in a transaction that committed).
    virtual void remove_outbox(const std::vector<std::int64_t>& ids) = 0;
    /// Forgets processed events older than the retention. @returns how many.
    virtual std::int64_t purge_processed() = 0;
};

/// The default catalog (used when INVENTORY_SEED is not set): LAPTOP-001 50, MOUSE-001 200, ...
std::vector<CatalogItem> default_catalog();
/// Parses an INVENTORY_SEED file: [{sku,name,unit_price,currency,stock}] (currency optional,
/// default USD). @throws std::runtime_error naming the file and the entry that is wrong.
std::vector<CatalogItem> load_catalog(const std::string& path);

}  // namespace orderpipe::inventory
