#pragma once
/// Inventory state in SQLite (WAL): stock per SKU, the reservation of each order, the outbox of
/// STOCK_ADJUSTED events and the ProcessedEvents rows — all in one file, so a stock change and
/// its ProcessedEvents row commit together.
///
/// Not thread-safe: each thread opens its own InventoryStore on the same file.

#include "reservation.hpp"

#include "orderpipe/common/money.hpp"
#include "orderpipe/common/sqlite.hpp"

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
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

struct OutboxEntry {
    std::int64_t id;
    std::string record;  ///< serialised OutgoingRecord (JSON)
};

class InventoryStore {
  public:
    explicit InventoryStore(const std::string& path);

    sqlite::Database& db() { return db_; }

    /// Seeds the catalog on first start only. @returns true if it seeded.
    bool seed_once(const std::vector<CatalogItem>& catalog);

    std::optional<StockLevel> stock(const std::string& sku);
    std::optional<CatalogItem> item(const std::string& sku);
    std::vector<CatalogItem> items();
    void add_to_stock(const std::string& sku, std::int64_t available_delta,
                      std::int64_t reserved_delta);
    /// Admin restock: sets `available`. @returns the item, or nullopt for an unknown SKU.
    std::optional<CatalogItem> set_available(const std::string& sku, std::int64_t available);

    std::optional<Reservation> reservation(const std::string& order_id);
    void put_reservation(const std::string& order_id, const Reservation& r);

    void add_outbox(const std::string& record);
    std::vector<OutboxEntry> outbox(std::size_t limit);
    void remove_outbox(std::int64_t up_to_id);

  private:
    sqlite::Database db_;
};

/// The default catalog (used when INVENTORY_SEED is not set): LAPTOP-001 50, MOUSE-001 200, ...
std::vector<CatalogItem> default_catalog();
/// Parses an INVENTORY_SEED file: [{sku,name,unit_price,currency,stock}] (currency optional,
/// default USD). @throws std::runtime_error
/// naming the file and the entry that is wrong.
std::vector<CatalogItem> load_catalog(const std::string& path);

}  // namespace orderpipe::inventory
