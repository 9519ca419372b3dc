#include "pg_inventory_state.hpp"

#include "orderpipe/common/time.hpp"

#include <algorithm>
#include <array>
#include <set>

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

/// One batch's unit of work, in few round trips whatever its size: what the batch looks up is
/// read at once (expect(), hold_stock()), the stock rows held stay in memory with the changes
/// made to them, and the writes are kept and sent at commit as one statement per table
/// (unnest()ed arrays). A step that throws drops what it kept, with no SAVEPOINT. What was read
/// stays true meanwhile: the stock rows are locked (FOR UPDATE) until the work ends; a
/// reservation and a processed event belong to the order's partition, which one instance
/// processes at a time — and should two (a partition moving) process one event at once, the
/// second's processed_events insert fails on the key at commit and its batch runs again.
class PgInventoryWork final : public InventoryWork {
  public:
    explicit PgInventoryWork(pg::Pool& pool) : c_(pool.acquire()), tx_(*c_) {}

    void expect(const std::vector<std::string>& event_ids,
                const std::vector<std::string>& order_ids) override {
        std::vector<std::string> events, orders;
        for (const auto& id : event_ids)
            if (!produced_.contains(id)) events.push_back(id);
        for (const auto& id : order_ids)
            if (!reservations_.contains(id)) orders.push_back(id);
        if (!events.empty()) {
            for (const auto& id : events) produced_.emplace(id, std::nullopt);
            auto r = c_->run(
                "SELECT ce_id, result FROM processed_events WHERE consumer = $1 AND "
                "ce_id = ANY($2::text[])",
                {kConsumer, pg::text_array(events)});
            for (int i = 0; i < r.rows(); ++i)
                produced_[std::string(r.text(i, 0))] = std::string(r.text(i, 1));
        }
        if (!orders.empty()) {
            for (const auto& id : orders) reservations_.emplace(id, std::nullopt);
            auto r = c_->run(
                "SELECT order_id, state, lines FROM reservations WHERE order_id = ANY($1::text[])",
                {pg::text_array(orders)});
            for (int i = 0; i < r.rows(); ++i) {
                reservations_[std::string(r.text(i, 0))] = Reservation{
                    parse_reservation_state(r.text(i, 1)), lines_from_json(r.text(i, 2))};
            }
        }
    }

    std::optional<std::string> produced_by(const std::string& event_id) override {
        if (auto it = produced_.find(event_id); it != produced_.end()) return it->second;
        auto r = c_->run("SELECT result FROM processed_events WHERE consumer = $1 AND ce_id = $2",
                         {kConsumer, event_id});
        auto& known = produced_[event_id];
        if (r.rows() > 0) known = std::string(r.text(0, 0));
        return known;
    }

    void step(const std::function<void()>& step) override {
        const std::size_t undo_mark = undo_.size();
        const auto kept = kept_sizes();
        in_step_ = true;
        try {
            step();
        } catch (const pg::Error&) {
            in_step_ = false;
            throw;  // the database's own failure: the whole work is done again
        } catch (...) {
            in_step_ = false;
            // What the step changed, undone in memory; what it kept for the commit, dropped.
            while (undo_.size() > undo_mark) {
                undo_.back()();
                undo_.pop_back();
            }
            drop_kept_since(kept);
            throw;
        }
        in_step_ = false;
        undo_.resize(undo_mark);
    }

    std::map<std::string, StockLevel> hold_stock(std::vector<std::string> skus) override {
        std::sort(skus.begin(), skus.end());
        skus.erase(std::unique(skus.begin(), skus.end()), skus.end());
        std::vector<std::string> missing;
        for (const auto& sku : skus)
            if (!held_.contains(sku) && !unknown_.contains(sku)) missing.push_back(sku);
        if (!missing.empty()) {
            auto r = c_->run(
                "SELECT sku, available, reserved, unit_price, currency FROM stock "
                "WHERE sku = ANY($1::text[]) ORDER BY sku FOR UPDATE",
                {pg::text_array(missing)});
            for (int i = 0; i < r.rows(); ++i) {
                held_[std::string(r.text(i, 0))] =
                    StockLevel{r.int64(i, 1), r.int64(i, 2), Money::from_minor_units(r.int64(i, 3)),
                               std::string(r.text(i, 4))};
            }
            for (const auto& sku : missing)
                if (!held_.contains(sku)) unknown_.insert(sku);
        }
        std::map<std::string, StockLevel> out;
        for (const auto& sku : skus) {
            if (auto it = held_.find(sku); it != held_.end()) out.emplace(sku, it->second);
        }
        return out;
    }

    void move_stock(const std::string& sku, std::int64_t available_delta,
                    std::int64_t reserved_delta) override {
        auto it = held_.find(sku);
        if (it == held_.end()) {
            hold_stock({sku});
            it = held_.find(sku);
            if (it == held_.end()) return;  // an unknown SKU: nothing to move (as UPDATE did)
        }
        if (it->second.available + available_delta < 0 ||
            it->second.reserved + reserved_delta < 0) {
            // What the table's CHECK would refuse, refused now rather than at the commit.
            throw pg::Error(pg::ErrorKind::kOther, "23514",
                            "stock of " + sku + " would go below zero");
        }
        it->second.available += available_delta;
        it->second.reserved += reserved_delta;
        stock_moves_.push_back({sku, available_delta, reserved_delta});
        if (in_step_) {
            undo_.push_back([this, sku, available_delta, reserved_delta] {
                held_[sku].available -= available_delta;
                held_[sku].reserved -= reserved_delta;
            });
        }
    }

    std::optional<Reservation> reservation(const std::string& order_id) override {
        if (auto it = reservations_.find(order_id); it != reservations_.end()) return it->second;
        auto r = c_->run("SELECT state, lines FROM reservations WHERE order_id = $1", {order_id});
        auto& known = reservations_[order_id];
        if (r.rows() > 0) {
            known =
                Reservation{parse_reservation_state(r.text(0, 0)), lines_from_json(r.text(0, 1))};
        }
        return known;
    }

    void put_reservation(const std::string& order_id, const Reservation& r) override {
        remember(reservations_, order_id);
        reservations_[order_id] = r;
        reservation_writes_.push_back(order_id);
    }

    void record_processed(const std::string& event_id, const std::string& produced) override {
        remember(produced_, event_id);
        produced_[event_id] = produced;
        processed_writes_.push_back(event_id);
    }

    void advance(const std::string& topic, std::int32_t partition,
                 std::int64_t next_offset) override {
        auto& next = positions_[{topic, partition}];
        next = std::max(next, next_offset);
    }

    std::optional<CatalogItem> set_available(const std::string& sku,
                                             std::int64_t available) override {
        flush();  // an absolute value: after every change kept so far
        auto r = c_->run("UPDATE stock SET available = $1 WHERE sku = $2", {available, sku});
        if (r.affected() == 0) return std::nullopt;
        if (auto it = held_.find(sku); it != held_.end()) it->second.available = available;
        return item_on(*c_, sku);
    }

    void add_outbox(const std::string& record) override { outbox_.push_back(record); }

    void commit() override {
        flush();
        tx_.commit();
    }

  private:
    struct StockMove {
        std::string sku;
        std::int64_t available, reserved;
    };
    struct KeptSizes {
        std::size_t moves, reservations, processed, outbox;
    };

    KeptSizes kept_sizes() const {
        return {stock_moves_.size(), reservation_writes_.size(), processed_writes_.size(),
                outbox_.size()};
    }
    void drop_kept_since(const KeptSizes& k) {
        stock_moves_.resize(k.moves);
        reservation_writes_.resize(k.reservations);
        processed_writes_.resize(k.processed);
        outbox_.resize(k.outbox);
    }
    /// Inside a step: how to put `map[key]` back as it is now.
    template <typename Map>
    void remember(Map& map, const std::string& key) {
        if (!in_step_) return;
        auto it = map.find(key);
        if (it == map.end()) {
            undo_.push_back([&map, key] { map.erase(key); });
        } else {
            undo_.push_back([&map, key, was = it->second] { map[key] = was; });
        }
    }

    /// Sends what was kept: one statement per table.
    void flush() {
        if (!stock_moves_.empty()) {
            std::map<std::string, std::pair<std::int64_t, std::int64_t>> net;
            for (const auto& m : stock_moves_) {
                net[m.sku].first += m.available;
                net[m.sku].second += m.reserved;
            }
            std::vector<std::string> skus;
            std::vector<std::int64_t> available, reserved;
            for (const auto& [sku, d] : net) {
                if (d.first == 0 && d.second == 0) continue;
                skus.push_back(sku);
                available.push_back(d.first);
                reserved.push_back(d.second);
            }
            if (!skus.empty()) {
                c_->run(
                    "UPDATE stock SET available = stock.available + d.available, "
                    "reserved = stock.reserved + d.reserved FROM unnest($1::text[], "
                    "$2::bigint[], $3::bigint[]) AS d(sku, available, reserved) "
                    "WHERE stock.sku = d.sku",
                    {pg::text_array(skus), pg::int_array(available), pg::int_array(reserved)});
            }
            stock_moves_.clear();
        }
        if (!reservation_writes_.empty()) {
            std::vector<std::string> orders, states, lines;
            std::set<std::string> seen;
            for (const auto& id : reservation_writes_) {
                if (!seen.insert(id).second) continue;
                const auto& r = *reservations_.at(id);
                orders.push_back(id);
                states.push_back(state_name(r.state));
                lines.push_back(lines_to_json(r.lines));
            }
            c_->run(
                "INSERT INTO reservations(order_id, state, lines) SELECT * FROM "
                "unnest($1::text[], $2::text[], $3::text[]) ON CONFLICT (order_id) DO UPDATE "
                "SET state = excluded.state, lines = excluded.lines",
                {pg::text_array(orders), pg::text_array(states), pg::text_array(lines)});
            reservation_writes_.clear();
        }
        if (!processed_writes_.empty()) {
            // No ON CONFLICT: an instance that processed the same event meanwhile makes this
            // work fail (unique violation) and run again, finding what that one stored.
            std::vector<std::string> ids, results;
            for (const auto& id : processed_writes_) {
                ids.push_back(id);
                results.push_back(*produced_.at(id));
            }
            c_->run(
                "INSERT INTO processed_events(consumer, ce_id, result, processed_ms) "
                "SELECT $1, e.ce_id, e.result, $4 FROM unnest($2::text[], $3::text[]) "
                "AS e(ce_id, result)",
                {kConsumer, pg::text_array(ids), pg::text_array(results), unix_now_ms()});
            processed_writes_.clear();
        }
        if (!positions_.empty()) {
            std::vector<std::string> topics;
            std::vector<std::int64_t> partitions, offsets;
            for (const auto& [tp, next] : positions_) {
                topics.push_back(tp.first);
                partitions.push_back(tp.second);
                offsets.push_back(next);
            }
            c_->run(
                "INSERT INTO consumed_positions(consumer, topic, partition, next_offset) "
                "SELECT $1, p.topic, p.partition, p.next_offset FROM unnest($2::text[], "
                "$3::integer[], $4::bigint[]) AS p(topic, partition, next_offset) "
                "ON CONFLICT (consumer, topic, partition) DO UPDATE SET next_offset = "
                "GREATEST(consumed_positions.next_offset, excluded.next_offset)",
                {kConsumer, pg::text_array(topics), pg::int_array(partitions),
                 pg::int_array(offsets)});
            positions_.clear();
        }
        if (!outbox_.empty()) {
            c_->run(
                "INSERT INTO outbox(record) SELECT r FROM unnest($1::text[]) WITH ORDINALITY "
                "AS o(r, n) ORDER BY n",
                {pg::text_array(outbox_)});
            outbox_.clear();
        }
    }

    pg::Pool::Lease c_;
    pg::Transaction tx_;
    bool in_step_ = false;
    std::vector<std::function<void()>> undo_;  ///< the open step's changes to what is below
    std::map<std::string, StockLevel> held_;   ///< locked rows, with the changes made to them
    std::set<std::string> unknown_;            ///< SKUs asked for that do not exist
    std::map<std::string, std::optional<std::string>> produced_;      ///< known processed events
    std::map<std::string, std::optional<Reservation>> reservations_;  ///< known reservations
    // Kept for the commit:
    std::vector<StockMove> stock_moves_;
    std::vector<std::string> reservation_writes_;  ///< orders whose reservation was put
    std::vector<std::string> processed_writes_;    ///< events recorded as processed
    std::map<std::pair<std::string, std::int32_t>, std::int64_t> positions_;
    std::vector<std::string> outbox_;
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
