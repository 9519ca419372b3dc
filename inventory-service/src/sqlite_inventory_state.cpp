#include "sqlite_inventory_state.hpp"

#include "orderpipe/common/processed_events.hpp"
#include "orderpipe/common/sqlite.hpp"

namespace orderpipe::inventory {
namespace {

constexpr const char* kConsumer = "inventory-service";

sqlite::Database& with_schema(sqlite::Database& db) {
    db.exec(R"(CREATE TABLE IF NOT EXISTS stock (
        sku        TEXT PRIMARY KEY,
        name       TEXT NOT NULL,
        unit_price INTEGER NOT NULL,
        available  INTEGER NOT NULL CHECK (available >= 0),
        reserved   INTEGER NOT NULL CHECK (reserved >= 0)))");
    db.exec(R"(CREATE TABLE IF NOT EXISTS reservations (
        order_id TEXT PRIMARY KEY,
        state    TEXT NOT NULL,
        lines    TEXT NOT NULL))");
    db.exec(R"(CREATE TABLE IF NOT EXISTS outbox (
        id     INTEGER PRIMARY KEY AUTOINCREMENT,
        record TEXT NOT NULL))");
    db.exec("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
    // Each SKU's price currency (the catalog is the price authority): a DATA_DIR from before it
    // gets the column, its prices having been USD.
    auto has_currency =
        db.prepare("SELECT 1 FROM pragma_table_info('stock') WHERE name = 'currency'");
    if (!has_currency.step()) {
        db.exec("ALTER TABLE stock ADD COLUMN currency TEXT NOT NULL DEFAULT 'USD'");
    }
    return db;
}

class SqliteInventoryState final : public InventoryState {
  public:
    SqliteInventoryState(const std::string& path, std::chrono::hours retention)
        : db_(path, /*durable=*/true), processed_(with_schema(db_), retention) {}

    std::unique_ptr<InventoryWork> begin() override;

    bool seed_once(const std::vector<CatalogItem>& catalog) override {
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

    std::optional<CatalogItem> item(const std::string& sku) override {
        auto q = db_.cached(
            "SELECT sku, name, unit_price, available, reserved, currency FROM stock "
            "WHERE sku = ?");
        q.bind(1, sku);
        if (!q.step()) return std::nullopt;
        return read_item(q);
    }

    std::vector<CatalogItem> items() override {
        std::vector<CatalogItem> out;
        auto q = db_.cached(
            "SELECT sku, name, unit_price, available, reserved, currency FROM stock "
            "ORDER BY sku");
        while (q.step()) out.push_back(read_item(q));
        return out;
    }

    Positions positions() override { return processed_.positions(kConsumer); }

    void seed_positions(const Positions& positions) override {
        sqlite::Transaction tx(db_);
        for (const auto& [tp, next] : positions) {
            processed_.advance(kConsumer, tp.first, tp.second, next);
        }
        tx.commit();
    }

    std::vector<OutboxEntry> outbox(std::size_t limit) override {
        std::vector<OutboxEntry> out;
        auto q = db_.cached("SELECT id, record FROM outbox ORDER BY id LIMIT ?");
        q.bind(1, static_cast<std::int64_t>(limit));
        while (q.step()) out.push_back({q.column_int(0), q.column_text(1)});
        return out;
    }

    void remove_outbox(const std::vector<std::int64_t>& ids) override {
        sqlite::Transaction tx(db_);
        auto d = db_.cached("DELETE FROM outbox WHERE id = ?");
        for (const auto id : ids) {
            d.bind(1, id);
            d.run();
        }
        tx.commit();
    }

    std::int64_t purge_processed() override { return processed_.purge_expired(); }

  private:
    friend class SqliteInventoryWork;

    static CatalogItem read_item(sqlite::CachedStatement& q) {
        return CatalogItem{
            q.column_text(0), q.column_text(1), Money::from_minor_units(q.column_int(2)),
            q.column_int(3),  q.column_int(4),  q.column_text(5)};
    }

    sqlite::Database db_;
    ProcessedEvents processed_;
};

class SqliteInventoryWork final : public InventoryWork {
  public:
    explicit SqliteInventoryWork(SqliteInventoryState& s) : s_(s), db_(s.db_), tx_(s.db_) {}

    std::optional<std::string> produced_by(const std::string& event_id) override {
        return s_.processed_.find(kConsumer, event_id);
    }

    void step(const std::function<void()>& step) override {
        sqlite::Savepoint sp(db_);
        step();  // throws: `sp` undoes what it changed
        sp.release();
    }

    std::map<std::string, StockLevel> hold_stock(std::vector<std::string> skus) override {
        // The transaction (BEGIN IMMEDIATE) holds SQLite's write lock: nothing else changes
        // the stock until it ends.
        std::map<std::string, StockLevel> out;
        auto q =
            db_.cached("SELECT available, reserved, unit_price, currency FROM stock WHERE sku = ?");
        for (const auto& sku : skus) {
            q.bind(1, sku);
            if (q.step()) {
                out[sku] = StockLevel{q.column_int(0), q.column_int(1),
                                      Money::from_minor_units(q.column_int(2)), q.column_text(3)};
            }
            q.reset();
        }
        return out;
    }

    void move_stock(const std::string& sku, std::int64_t available_delta,
                    std::int64_t reserved_delta) override {
        // The CHECK constraints make a negative `available` impossible even if a caller erred.
        auto u = db_.cached(
            "UPDATE stock SET available = available + ?, reserved = reserved + ? WHERE sku = ?");
        u.bind(1, available_delta).bind(2, reserved_delta).bind(3, sku);
        u.run();
    }

    std::optional<Reservation> reservation(const std::string& order_id) override {
        auto q = db_.cached("SELECT state, lines FROM reservations WHERE order_id = ?");
        q.bind(1, order_id);
        if (!q.step()) return std::nullopt;
        Reservation r;
        r.state = parse_reservation_state(q.column_text(0));
        r.lines = lines_from_json(q.column_text(1));
        return r;
    }

    void put_reservation(const std::string& order_id, const Reservation& r) override {
        auto u = db_.cached(
            "INSERT INTO reservations(order_id, state, lines) VALUES (?, ?, ?) "
            "ON CONFLICT(order_id) DO UPDATE SET state = excluded.state, lines = excluded.lines");
        u.bind(1, order_id).bind(2, state_name(r.state)).bind(3, lines_to_json(r.lines));
        u.run();
    }

    void record_processed(const std::string& event_id, const std::string& produced) override {
        s_.processed_.record(kConsumer, event_id, produced);
    }

    void advance(const std::string& topic, std::int32_t partition,
                 std::int64_t next_offset) override {
        s_.processed_.advance(kConsumer, topic, partition, next_offset);
    }

    std::optional<CatalogItem> set_available(const std::string& sku,
                                             std::int64_t available) override {
        auto u = db_.cached("UPDATE stock SET available = ? WHERE sku = ?");
        u.bind(1, available).bind(2, sku);
        u.run();
        if (db_.changes() == 0) return std::nullopt;
        return s_.item(sku);
    }

    void add_outbox(const std::string& record) override {
        auto i = db_.cached("INSERT INTO outbox(record) VALUES (?)");
        i.bind(1, record);
        i.run();
    }

    void commit() override { tx_.commit(); }

  private:
    SqliteInventoryState& s_;
    sqlite::Database& db_;
    sqlite::Transaction tx_;
};

std::unique_ptr<InventoryWork> SqliteInventoryState::begin() {
    return std::make_unique<SqliteInventoryWork>(*this);
}

}  // namespace

std::unique_ptr<InventoryState> open_sqlite_inventory(const std::string& path,
                                                      std::chrono::hours processed_retention) {
    return std::make_unique<SqliteInventoryState>(path, processed_retention);
}

}  // namespace orderpipe::inventory
