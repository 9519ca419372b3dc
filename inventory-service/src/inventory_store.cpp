#include "inventory_store.hpp"

#include "orderpipe/common/json.hpp"

#include <fstream>
#include <sstream>

namespace orderpipe::inventory {
namespace {

const char* state_name(ReservationState s) {
    switch (s) {
        case ReservationState::kReserved:
            return "RESERVED";
        case ReservationState::kRejected:
            return "REJECTED";
        case ReservationState::kReleased:
            return "RELEASED";
    }
    return "?";
}

}  // namespace

nlohmann::json CatalogItem::to_json() const {
    return {{"sku", sku},
            {"name", name},
            {"unit_price", unit_price.to_string()},
            {"currency", currency},
            {"available", available},
            {"reserved", reserved}};
}

InventoryStore::InventoryStore(const std::string& path) : db_(path, /*durable=*/true) {
    db_.exec(R"(CREATE TABLE IF NOT EXISTS stock (
        sku        TEXT PRIMARY KEY,
        name       TEXT NOT NULL,
        unit_price INTEGER NOT NULL,
        available  INTEGER NOT NULL CHECK (available >= 0),
        reserved   INTEGER NOT NULL CHECK (reserved >= 0)))");
    db_.exec(R"(CREATE TABLE IF NOT EXISTS reservations (
        order_id TEXT PRIMARY KEY,
        state    TEXT NOT NULL,
        lines    TEXT NOT NULL))");
    db_.exec(R"(CREATE TABLE IF NOT EXISTS outbox (
        id     INTEGER PRIMARY KEY AUTOINCREMENT,
        record TEXT NOT NULL))");
    db_.exec("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
    // Each SKU's price currency (the catalog is the price authority): a DATA_DIR from before it
    // gets the column, its prices having been USD.
    auto has_currency =
        db_.prepare("SELECT 1 FROM pragma_table_info('stock') WHERE name = 'currency'");
    if (!has_currency.step()) {
        db_.exec("ALTER TABLE stock ADD COLUMN currency TEXT NOT NULL DEFAULT 'USD'");
    }
}

bool InventoryStore::seed_once(const std::vector<CatalogItem>& catalog) {
    sqlite::Transaction tx(db_);
    auto seeded = db_.cached("SELECT value FROM meta WHERE key = 'seeded_at'");
    if (seeded.step()) return false;
    seeded.reset();
    auto insert = db_.cached(
        "INSERT OR REPLACE INTO stock(sku, name, unit_price, available, reserved, currency) "
        "VALUES (?, ?, ?, ?, 0, ?)");
    for (const auto& item : catalog) {
        insert.bind(1, item.sku)
            .bind(2, item.name)
            .bind(3, item.unit_price.minor_units())
            .bind(4, item.available)
            .bind(5, item.currency);
        insert.run();
    }
    db_.exec("INSERT INTO meta(key, value) VALUES ('seeded_at', datetime('now'))");
    tx.commit();
    return true;
}

std::optional<StockLevel> InventoryStore::stock(const std::string& sku) {
    auto q = db_.cached(
        "SELECT available, reserved, unit_price, currency FROM stock WHERE sku = ?");
    q.bind(1, sku);
    if (!q.step()) return std::nullopt;
    return StockLevel{q.column_int(0), q.column_int(1), Money::from_minor_units(q.column_int(2)),
                      q.column_text(3)};
}

std::optional<CatalogItem> InventoryStore::item(const std::string& sku) {
    auto q = db_.cached(
        "SELECT sku, name, unit_price, available, reserved, currency FROM stock WHERE sku = ?");
    q.bind(1, sku);
    if (!q.step()) return std::nullopt;
    return CatalogItem{q.column_text(0), q.column_text(1), Money::from_minor_units(q.column_int(2)),
                       q.column_int(3), q.column_int(4), q.column_text(5)};
}

std::vector<CatalogItem> InventoryStore::items() {
    std::vector<CatalogItem> out;
    auto q = db_.cached(
        "SELECT sku, name, unit_price, available, reserved, currency FROM stock ORDER BY sku");
    while (q.step()) {
        out.push_back({q.column_text(0), q.column_text(1), Money::from_minor_units(q.column_int(2)),
                       q.column_int(3), q.column_int(4), q.column_text(5)});
    }
    return out;
}

void InventoryStore::add_to_stock(const std::string& sku, std::int64_t available_delta,
                                  std::int64_t reserved_delta) {
    // The CHECK constraints make a negative `available` impossible even if a caller erred.
    auto u = db_.cached(
        "UPDATE stock SET available = available + ?, reserved = reserved + ? WHERE sku = ?");
    u.bind(1, available_delta).bind(2, reserved_delta).bind(3, sku);
    u.run();
}

std::optional<CatalogItem> InventoryStore::set_available(const std::string& sku,
                                                         std::int64_t available) {
    auto u = db_.cached("UPDATE stock SET available = ? WHERE sku = ?");
    u.bind(1, available).bind(2, sku);
    u.run();
    if (db_.changes() == 0) return std::nullopt;
    return item(sku);
}

std::optional<Reservation> InventoryStore::reservation(const std::string& order_id) {
    auto q = db_.cached("SELECT state, lines FROM reservations WHERE order_id = ?");
    q.bind(1, order_id);
    if (!q.step()) return std::nullopt;
    Reservation r;
    const std::string state = q.column_text(0);
    r.state = state == "RESERVED"   ? ReservationState::kReserved
              : state == "RELEASED" ? ReservationState::kReleased
                                    : ReservationState::kRejected;
    for (const auto& l : nlohmann::json::parse(q.column_text(1))) {
        r.lines.push_back({l.at("sku").get<std::string>(), l.at("quantity").get<std::int64_t>()});
    }
    return r;
}

void InventoryStore::put_reservation(const std::string& order_id, const Reservation& r) {
    nlohmann::json lines = nlohmann::json::array();
    for (const auto& l : r.lines) lines.push_back({{"sku", l.sku}, {"quantity", l.quantity}});
    auto u = db_.cached(
        "INSERT INTO reservations(order_id, state, lines) VALUES (?, ?, ?) "
        "ON CONFLICT(order_id) DO UPDATE SET state = excluded.state, lines = excluded.lines");
    u.bind(1, order_id).bind(2, state_name(r.state)).bind(3, lines.dump());
    u.run();
}

void InventoryStore::add_outbox(const std::string& record) {
    auto i = db_.cached("INSERT INTO outbox(record) VALUES (?)");
    i.bind(1, record);
    i.run();
}

std::vector<OutboxEntry> InventoryStore::outbox(std::size_t limit) {
    std::vector<OutboxEntry> out;
    auto q = db_.cached("SELECT id, record FROM outbox ORDER BY id LIMIT ?");
    q.bind(1, static_cast<std::int64_t>(limit));
    while (q.step()) out.push_back({q.column_int(0), q.column_text(1)});
    return out;
}

void InventoryStore::remove_outbox(std::int64_t up_to_id) {
    auto d = db_.cached("DELETE FROM outbox WHERE id <= ?");
    d.bind(1, up_to_id);
    d.run();
}

std::vector<CatalogItem> default_catalog() {
    auto price = [](const char* p) { return *Money::parse(p); };
    return {
        {"LAPTOP-001", "Laptop 14\"", price("999.99"), 50, 0},
        {"MOUSE-001", "Wireless mouse", price("29.99"), 200, 0},
        {"KEYBOARD-001", "Mechanical keyboard", price("79.99"), 100, 0},
        {"MONITOR-001", "27\" monitor", price("249.99"), 30, 0},
        {"HEADSET-001", "Headset", price("59.99"), 80, 0},
    };
}

std::vector<CatalogItem> load_catalog(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw std::runtime_error("INVENTORY_SEED: cannot read " + path);
    std::stringstream ss;
    ss << in.rdbuf();
    auto parsed = parse_untrusted_json(ss.str());
    if (auto* err = std::get_if<JsonParseError>(&parsed)) {
        throw std::runtime_error("INVENTORY_SEED " + path + ": " + err->message);
    }
    const auto& j = std::get<nlohmann::json>(parsed);
    if (!j.is_array())
        throw std::runtime_error("INVENTORY_SEED " + path + ": expected a JSON array");
    std::vector<CatalogItem> out;
    for (std::size_t i = 0; i < j.size(); ++i) {
        const auto& e = j[i];
        const std::string at = "INVENTORY_SEED " + path + " entry " + std::to_string(i) + ": ";
        if (!e.is_object() || !e.contains("sku") || !e["sku"].is_string() ||
            e["sku"].get<std::string>().empty()) {
            throw std::runtime_error(at + "needs a non-empty string \"sku\"");
        }
        if (!e.contains("stock") || !e["stock"].is_number_integer() ||
            e["stock"].get<std::int64_t>() < 0) {
            throw std::runtime_error(at + "needs \"stock\", an integer >= 0");
        }
        std::optional<Money> p;
        if (e.contains("unit_price") && (e["unit_price"].is_string()))
            p = Money::parse(e["unit_price"].get<std::string>());
        if (e.contains("unit_price") && e["unit_price"].is_number_integer())
            p = Money::parse(e["unit_price"].dump());
        if (!p) throw std::runtime_error(at + "needs \"unit_price\", a decimal like \"999.99\"");
        const std::string currency = string_field(e, "currency", "USD");
        if (!is_currency_code(currency)) {
            throw std::runtime_error(at + "\"currency\" must be an ISO 4217 code, not \"" +
                                     currency + "\"");
        }
        out.push_back({e["sku"].get<std::string>(),
                       string_field(e, "name", e["sku"].get<std::string>()), *p,
                       e["stock"].get<std::int64_t>(), 0, currency});
    }
    return out;
}

}  // namespace orderpipe::inventory
