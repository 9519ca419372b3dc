#include "pg_inventory_state.hpp"

#include "orderpipe/common/time.hpp"

#include <algorithm>
#include <array>

namespace orderpipe::inventory {
namespace {

constexpr const char* kConsumer = "inventory-service";
/// A claim on an outbox entry lapses after this: its claimant is taken for dead.
constexpr const char* kClaimFor = "30 seconds";

constexpr std::array kMigrations = {
    pg::Migration{1, "stock, reservations, outbox, processed events, positions", R"(
        CREATE TABLE stock (
            sku        TEXT PRIMARY KEY,
            name       TEXT NOT NULL,
            unit_price BIGINT NOT NULL,
            currency   TEXT NOT NULL,
            available  BIGINT NOT NULL CHECK (available >= 0),
            reserved   BIGINT NOT NULL CHECK (reserved >= 0));
        CREATE TABLE reservations (
            order_id TEXT PRIMARY KEY,
            state    TEXT NOT NULL,
            lines    TEXT NOT NULL);
        CREATE TABLE outbox (
            id            BIGSERIAL PRIMARY KEY,
            record        TEXT NOT NULL,
            claimed_by    TEXT,
            claimed_until TIMESTAMPTZ);
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE processed_events (
            consumer     TEXT NOT NULL,
            ce_id        TEXT NOT NULL,
            result       TEXT NOT NULL,
            processed_ms BIGINT NOT NULL,
            PRIMARY KEY (consumer, ce_id));
        CREATE INDEX processed_events_age ON processed_events (processed_ms);
        CREATE TABLE consumed_positions (
            consumer    TEXT NOT NULL,
            topic       TEXT NOT NULL,
            partition   INTEGER NOT NULL,
            next_offset BIGINT NOT NULL,
            PRIMARY KEY (consumer, topic, partition));
    )"},
};

CatalogItem read_item(const pg::Result& r, int row) {
    return CatalogItem{std::string(r.text(row, 0)),
                       std::string(r.text(row, 1)),
                       Money::from_minor_units(r.int64(row, 2)),
                       r.int64(row, 3),
                       r.int64(row, 4),
                       std::string(r.text(row, 5))};
}

constexpr const char* kItemColumns = "sku, name, unit_price, available, reserved, currency";

std::optional<CatalogItem> item_on(pg::Connection& c, const std::string& sku) {
    auto r = c.run(std::string("SELECT ") + kItemColumns + " FROM stock WHERE sku = $1", {sku});
    if (r.rows() == 0) return std::nullopt;
    return read_item(r, 0);
}

class PgInventoryWork final : public InventoryWork {
  public:
    explicit PgInventoryWork(pg::Pool& pool) : c_(pool.acquire()), tx_(*c_) {}

    std::optional<std::string> produced_by(const std::string& event_id) override {
        auto r = c_->run("SELECT result FROM processed_events WHERE consumer = $1 AND ce_id = $2",
                         {kConsumer, event_id});
        if (r.rows() == 0) return std::nullopt;
        return std::string(r.text(0, 0));
    }

    void step(const std::function<void()>& step) override {
        c_->exec("SAVEPOINT step");
        try {
            step();
        } catch (const pg::Error&) {
            throw;  // the database's own failure: the whole work is done again
        } catch (...) {
            c_->exec("ROLLBACK TO SAVEPOINT step");
            throw;
        }
        c_->exec("RELEASE SAVEPOINT step");
    }

    std::map<std::string, StockLevel> hold_stock(std::vector<std::string> skus) override {
        std::sort(skus.begin(), skus.end());
        skus.erase(std::unique(skus.begin(), skus.end()), skus.end());
        std::map<std::string, StockLevel> out;
        if (skus.empty()) return out;
        auto r = c_->run(
            "SELECT sku, available, reserved, unit_price, currency FROM stock "
            "WHERE sku = ANY($1::text[]) ORDER BY sku FOR UPDATE",
            {pg::text_array(skus)});
        for (int i = 0; i < r.rows(); ++i) {
            out[std::string(r.text(i, 0))] =
                StockLevel{r.int64(i, 1), r.int64(i, 2), Money::from_minor_units(r.int64(i, 3)),
                           std::string(r.text(i, 4))};
        }
        return out;
    }

    void move_stock(const std::string& sku, std::int64_t available_delta,
                    std::int64_t reserved_delta) override {
        c_->run(
            "UPDATE stock SET available = available + $1, reserved = reserved + $2 "
            "WHERE sku = $3",
            {available_delta, reserved_delta, sku});
    }

    std::optional<Reservation> reservation(const std::string& order_id) override {
        auto r = c_->run("SELECT state, lines FROM reservations WHERE order_id = $1", {order_id});
        if (r.rows() == 0) return std::nullopt;
        Reservation out;
        out.state = parse_reservation_state(r.text(0, 0));
        out.lines = lines_from_json(r.text(0, 1));
        return out;
    }

    void put_reservation(const std::string& order_id, const Reservation& r) override {
        c_->run(
            "INSERT INTO reservations(order_id, state, lines) VALUES ($1, $2, $3) "
            "ON CONFLICT (order_id) DO UPDATE SET state = excluded.state, "
            "lines = excluded.lines",
            {order_id, state_name(r.state), lines_to_json(r.lines)});
    }

    void record_processed(const std::string& event_id, const std::string& produced) override {
        // No ON CONFLICT: an instance that processed the same event meanwhile makes this work
        // fail (unique violation) and run again, finding what that one stored.
        c_->run(
            "INSERT INTO processed_events(consumer, ce_id, result, processed_ms) "
            "VALUES ($1, $2, $3, $4)",
            {kConsumer, event_id, produced, unix_now_ms()});
    }

    void advance(const std::string& topic, std::int32_t partition,
                 std::int64_t next_offset) override {
        c_->run(
            "INSERT INTO consumed_positions(consumer, topic, partition, next_offset) "
            "VALUES ($1, $2, $3, $4) ON CONFLICT (consumer, topic, partition) DO UPDATE "
            "SET next_offset = GREATEST(consumed_positions.next_offset, excluded.next_offset)",
            {kConsumer, topic, static_cast<std::int64_t>(partition), next_offset});
    }

    std::optional<CatalogItem> set_available(const std::string& sku,
                                             std::int64_t available) override {
        auto r = c_->run("UPDATE stock SET available = $1 WHERE sku = $2", {available, sku});
        if (r.affected() == 0) return std::nullopt;
        return item_on(*c_, sku);
    }

    void add_outbox(const std::string& record) override {
        c_->run("INSERT INTO outbox(record) VALUES ($1)", {record});
    }

    void commit() override { tx_.commit(); }

  private:
    pg::Pool::Lease c_;
    pg::Transaction tx_;
};

constexpr std::chrono::milliseconds kReadWait{2'000};

class PgInventoryState final : public InventoryState {
  public:
    PgInventoryState(std::shared_ptr<pg::Pool> pool, std::chrono::hours retention,
                     std::string instance)
        : pool_(std::move(pool)), retention_(retention), instance_(std::move(instance)) {}

    std::unique_ptr<InventoryWork> begin() override {
        return std::make_unique<PgInventoryWork>(*pool_);
    }

    bool seed_once(const std::vector<CatalogItem>& catalog) override {
        bool seeded = false;
        pg::in_transaction(*pool_, [&](pg::Connection& c) {
            // Whoever inserts the row seeds; an instance starting at the same moment waits on
            // the key until this commits, then finds it there.
            seeded = c.run(
                          "INSERT INTO meta(key, value) VALUES ('seeded_at', now()::text) "
                          "ON CONFLICT (key) DO NOTHING")
                         .affected() == 1;
            if (!seeded) return;
            for (const auto& item : catalog) {
                c.run(
                    "INSERT INTO stock(sku, name, unit_price, currency, available, reserved) "
                    "VALUES ($1, $2, $3, $4, $5, 0) ON CONFLICT (sku) DO UPDATE SET "
                    "name = excluded.name, unit_price = excluded.unit_price, "
                    "currency = excluded.currency, available = excluded.available",
                    {item.sku, item.name, item.unit_price.minor_units(), item.currency,
                     item.available});
            }
        });
        return seeded;
    }

    // Reads for HTTP threads: a plain snapshot (no row locks: a GET never holds up a
    // reservation), and a short wait for a connection, so a busy pool answers 503 quickly.
    std::optional<CatalogItem> item(const std::string& sku) override {
        auto c = pool_->acquire(kReadWait);
        return item_on(*c, sku);
    }

    std::vector<CatalogItem> items() override {
        auto c = pool_->acquire(kReadWait);
        auto r = c->run(std::string("SELECT ") + kItemColumns + " FROM stock ORDER BY sku");
        std::vector<CatalogItem> out;
        out.reserve(static_cast<std::size_t>(r.rows()));
        for (int i = 0; i < r.rows(); ++i) out.push_back(read_item(r, i));
        return out;
    }

    Positions positions() override {
        auto c = pool_->acquire();
        auto r = c->run(
            "SELECT topic, partition, next_offset FROM consumed_positions WHERE consumer = $1",
            {kConsumer});
        Positions out;
        for (int i = 0; i < r.rows(); ++i) {
            out[{std::string(r.text(i, 0)), static_cast<std::int32_t>(r.int64(i, 1))}] =
                r.int64(i, 2);
        }
        return out;
    }

    void seed_positions(const Positions& positions) override {
        pg::in_transaction(*pool_, [&](pg::Connection& c) {
            for (const auto& [tp, next] : positions) {
                c.run(
                    "INSERT INTO consumed_positions(consumer, topic, partition, next_offset) "
                    "VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                    {kConsumer, tp.first, static_cast<std::int64_t>(tp.second), next});
            }
        });
    }

    std::vector<OutboxEntry> outbox(std::size_t limit) override {
        std::vector<OutboxEntry> out;
        pg::in_transaction(*pool_, [&](pg::Connection& c) {
            out.clear();
            // Unclaimed entries, this instance's own, and those whose claimant is gone; an
            // entry another instance is claiming right now is skipped, not waited for.
            auto r = c.run(std::string("UPDATE outbox SET claimed_by = $1, claimed_until = "
                                       "now() + interval '") +
                               kClaimFor +
                               "' WHERE id IN (SELECT id FROM outbox WHERE claimed_by IS NULL "
                               "OR claimed_by = $1 OR claimed_until < now() ORDER BY id "
                               "LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING id, record",
                           {instance_, static_cast<std::int64_t>(limit)});
            for (int i = 0; i < r.rows(); ++i) {
                out.push_back({r.int64(i, 0), std::string(r.text(i, 1))});
            }
        });
        std::sort(out.begin(), out.end(),
                  [](const OutboxEntry& a, const OutboxEntry& b) { return a.id < b.id; });
        return out;
    }

    void remove_outbox(const std::vector<std::int64_t>& ids) override {
        if (ids.empty()) return;
        std::string list = "{";
        for (std::size_t i = 0; i < ids.size(); ++i) {
            list += (i > 0 ? "," : "") + std::to_string(ids[i]);
        }
        list += "}";
        pg::in_transaction(*pool_, [&](pg::Connection& c) {
            c.run("DELETE FROM outbox WHERE id = ANY($1::bigint[])", {list});
        });
    }

    std::int64_t purge_processed() override {
        const auto cutoff =
            unix_now_ms() -
            std::chrono::duration_cast<std::chrono::milliseconds>(retention_).count();
        std::int64_t n = 0;
        pg::in_transaction(*pool_, [&](pg::Connection& c) {
            n = c.run("DELETE FROM processed_events WHERE processed_ms < $1", {cutoff}).affected();
        });
        return n;
    }

  private:
    std::shared_ptr<pg::Pool> pool_;
    std::chrono::hours retention_;
    std::string instance_;
};

}  // namespace

std::span<const pg::Migration> inventory_migrations() { return kMigrations; }

std::unique_ptr<InventoryState> open_pg_inventory(std::shared_ptr<pg::Pool> pool,
                                                  std::chrono::hours processed_retention,
                                                  std::string instance) {
    return std::make_unique<PgInventoryState>(std::move(pool), processed_retention,
                                              std::move(instance));
}

}  // namespace orderpipe::inventory
