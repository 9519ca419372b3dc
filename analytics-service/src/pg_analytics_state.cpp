#include "pg_analytics_state.hpp"

#include <algorithm>
#include <array>

namespace orderpipe::analytics {
namespace {

constexpr std::array kMigrations = {
    pg::Migration{1, "figures per instance, orders, dead letters, positions, rebuild marks", R"(
        CREATE TABLE analytics_counters (
            shard TEXT NOT NULL,
            name  TEXT NOT NULL,
            value BIGINT NOT NULL,
            PRIMARY KEY (shard, name));
        CREATE TABLE analytics_series (
            shard  TEXT NOT NULL,
            minute BIGINT NOT NULL,
            name   TEXT NOT NULL,
            value  BIGINT NOT NULL,
            PRIMARY KEY (shard, minute, name));
        CREATE INDEX analytics_series_minute ON analytics_series (minute);
        CREATE TABLE analytics_orders (
            order_id   TEXT PRIMARY KEY,
            created_us BIGINT,
            decided_us BIGINT,
            latency_us BIGINT);
        CREATE INDEX analytics_orders_latency ON analytics_orders (latency_us)
            WHERE latency_us IS NOT NULL;
        CREATE TABLE analytics_dead_letters (
            key      TEXT PRIMARY KEY,
            topic    TEXT NOT NULL,
            present  BOOLEAN NOT NULL,
            resolved BOOLEAN NOT NULL);
        CREATE INDEX analytics_dead_letters_pending ON analytics_dead_letters (topic)
            WHERE present AND NOT resolved;
        CREATE TABLE analytics_positions (
            topic       TEXT NOT NULL,
            partition   INTEGER NOT NULL,
            next_offset BIGINT NOT NULL,
            PRIMARY KEY (topic, partition));
        CREATE TABLE analytics_rebuild_marks (
            topic     TEXT NOT NULL,
            partition INTEGER NOT NULL,
            mark      BIGINT NOT NULL,
            PRIMARY KEY (topic, partition));
        CREATE TABLE analytics_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    )"},
    pg::Migration{2, "the per-order index of records", R"(
        CREATE TABLE analytics_order_records (
            order_id  TEXT NOT NULL,
            topic     TEXT NOT NULL,
            partition INTEGER NOT NULL,
            "offset"  BIGINT NOT NULL,
            type      TEXT NOT NULL,
            time_ms   BIGINT NOT NULL,
            PRIMARY KEY (order_id, topic, partition, "offset"));
    )"},
    pg::Migration{3, "orders by customer, for the console's search", R"(
        CREATE TABLE analytics_order_customers (
            order_id    TEXT PRIMARY KEY,
            customer_id TEXT NOT NULL,
            email       TEXT NOT NULL,
            time_ms     BIGINT NOT NULL);
        CREATE INDEX analytics_order_customers_customer ON analytics_order_customers (customer_id);
        CREATE INDEX analytics_order_customers_email ON analytics_order_customers (email);
    )"},
};

Offsets offsets_of(const pg::Result& r) {
    Offsets out;
    for (int i = 0; i < r.rows(); ++i) {
        out[{std::string(r.text(i, 0)), static_cast<std::int32_t>(r.int64(i, 1))}] = r.int64(i, 2);
    }
    return out;
}

std::map<std::string, std::int64_t> counters_on(pg::Connection& c) {
    std::map<std::string, std::int64_t> out;
    auto r = c.run("SELECT name, SUM(value)::BIGINT FROM analytics_counters GROUP BY name");
    for (int i = 0; i < r.rows(); ++i) out[std::string(r.text(i, 0))] = r.int64(i, 1);
    return out;
}

std::map<std::string, std::int64_t> pending_on(pg::Connection& c) {
    std::map<std::string, std::int64_t> out;
    auto r = c.run(
        "SELECT topic, COUNT(*) FROM analytics_dead_letters WHERE present AND NOT resolved "
        "GROUP BY topic");
    for (int i = 0; i < r.rows(); ++i) out[std::string(r.text(i, 0))] = r.int64(i, 1);
    return out;
}

LatencyPercentiles latency_on(pg::Connection& c) {
    LatencyPercentiles out;
    out.count =
        c.run("SELECT COUNT(*) FROM analytics_orders WHERE latency_us IS NOT NULL").int64(0, 0);
    if (out.count == 0) return out;
    // Nearest rank, as the SQLite adapter: the smallest latency with at least p% at or below it.
    auto at = [&](int percent) -> std::optional<double> {
        const std::int64_t rank = std::max<std::int64_t>(1, (out.count * percent + 99) / 100);
        auto r = c.run(
            "SELECT latency_us FROM analytics_orders WHERE latency_us IS NOT NULL "
            "ORDER BY latency_us LIMIT 1 OFFSET $1",
            {rank - 1});
        if (r.rows() == 0) return std::nullopt;
        return static_cast<double>(r.int64(0, 0)) / 1000.0;
    };
    out.p50 = at(50);
    out.p90 = at(90);
    out.p99 = at(99);
    return out;
}

class PgAnalyticsWork final : public AnalyticsWork {
  public:
    PgAnalyticsWork(pg::Pool& pool, const std::string& shard)
        : c_(pool.acquire()), tx_(*c_), shard_(shard) {}

    Offsets hold_positions(const std::vector<kafka::TopicPartition>& partitions) override {
        if (partitions.empty()) return {};
        // In one order for every instance: two batches inserting the same new rows wait for
        // each other, never in a circle.
        std::vector<kafka::TopicPartition> sorted(partitions);
        std::sort(sorted.begin(), sorted.end());
        std::vector<std::string> topics;
        std::vector<std::string> numbers;
        for (const auto& tp : sorted) {
            topics.push_back(tp.topic);
            numbers.push_back(std::to_string(tp.partition));
        }
        const auto t = pg::text_array(topics);
        const auto p = pg::text_array(numbers);
        // A row for each, so there is something to lock; 0 = nothing counted yet.
        c_->run(
            "INSERT INTO analytics_positions (topic, partition, next_offset) "
            "SELECT t, p::integer, 0 FROM unnest($1::text[], $2::text[]) AS u(t, p) "
            "ORDER BY t, p::integer ON CONFLICT DO NOTHING",
            {t, p});
        auto r = c_->run(
            "SELECT topic, partition, next_offset FROM analytics_positions "
            "WHERE (topic, partition) IN (SELECT t, p::integer FROM unnest($1::text[], "
            "$2::text[]) AS u(t, p)) ORDER BY topic, partition FOR UPDATE",
            {t, p});
        return offsets_of(r);
    }
    void order_created(BatchChanges& changes, const std::string& order_id,
                       std::int64_t time_us) override {
        order_event(changes, order_id, time_us, /*created=*/true);
    }
    void order_decided(BatchChanges& changes, const std::string& order_id,
                       std::int64_t time_us) override {
        order_event(changes, order_id, time_us, /*created=*/false);
    }
    void dead_letter_seen(BatchChanges& changes, const std::string& key,
                          const std::string& topic) override {
        c_->run(
            "INSERT INTO analytics_dead_letters (key, topic, present, resolved) "
            "VALUES ($1, $2, TRUE, FALSE) ON CONFLICT (key) DO UPDATE SET present = TRUE",
            {key, topic});
        changes.dead_letters_changed = true;
    }
    void resolution(BatchChanges& changes, const std::string& key, const std::string& topic,
                    bool resolved) override {
        c_->run(
            "INSERT INTO analytics_dead_letters (key, topic, present, resolved) "
            "VALUES ($1, $2, FALSE, $3) ON CONFLICT (key) DO UPDATE SET resolved = $3",
            {key, topic, resolved});
        changes.dead_letters_changed = true;
    }
    void order_record(const std::string& order_id, const OrderRecord& record) override {
        order_records_.emplace_back(order_id, record);  // written by finish()
    }
    void order_customer(const OrderCustomer& customer) override {
        order_customers_.push_back(customer);  // written by finish()
    }
    void finish(BatchChanges& changes, const Offsets& positions) override {
        write_orders(changes);
        write_order_records();
        write_order_customers();
        // One statement per table for the whole batch, this instance's rows only.
        if (!changes.counters.empty()) {
            std::vector<std::string> names;
            std::vector<std::string> deltas;
            for (const auto& [name, delta] : changes.counters) {
                names.push_back(name);
                deltas.push_back(std::to_string(delta));
            }
            c_->run(
                "INSERT INTO analytics_counters (shard, name, value) "
                "SELECT $1, n, d::bigint FROM unnest($2::text[], $3::text[]) AS u(n, d) "
                "ON CONFLICT (shard, name) DO UPDATE "
                "SET value = analytics_counters.value + excluded.value",
                {shard_, pg::text_array(names), pg::text_array(deltas)});
        }
        if (!changes.series.empty()) {
            std::vector<std::string> minutes;
            std::vector<std::string> names;
            std::vector<std::string> deltas;
            for (const auto& [at, delta] : changes.series) {
                minutes.push_back(std::to_string(at.first));
                names.push_back(at.second);
                deltas.push_back(std::to_string(delta));
            }
            c_->run(
                "INSERT INTO analytics_series (shard, minute, name, value) "
                "SELECT $1, m::bigint, n, d::bigint "
                "FROM unnest($2::text[], $3::text[], $4::text[]) AS u(m, n, d) "
                "ON CONFLICT (shard, minute, name) DO UPDATE "
                "SET value = analytics_series.value + excluded.value",
                {shard_, pg::text_array(minutes), pg::text_array(names), pg::text_array(deltas)});
        }
        if (!positions.empty()) {
            std::vector<std::string> topics;
            std::vector<std::int64_t> partitions;
            std::vector<std::int64_t> next;
            for (const auto& [tp, n] : positions) {
                topics.push_back(tp.topic);
                partitions.push_back(tp.partition);
                next.push_back(n);
            }
            // Held since hold_positions: never moves back.
            c_->run(
                "UPDATE analytics_positions p SET next_offset = GREATEST(p.next_offset, u.n) "
                "FROM unnest($1::text[], $2::int[], $3::bigint[]) AS u(t, pt, n) "
                "WHERE p.topic = u.t AND p.partition = u.pt",
                {pg::text_array(topics), pg::int_array(partitions), pg::int_array(next)});
        }
    }
    std::map<std::string, std::int64_t> dead_letters_pending() override { return pending_on(*c_); }
    void prune_series(std::int64_t before_minute) override {
        c_->run("DELETE FROM analytics_series WHERE shard = $1 AND minute < $2",
                {shard_, before_minute});
    }
    void commit() override { tx_.commit(); }

  private:
    struct OrderEvent {
        std::string order_id;
        std::int64_t time_us;
        bool created;
    };
    void order_event(BatchChanges& /*changes*/, const std::string& order_id, std::int64_t time_us,
                     bool created) {
        order_events_.push_back({order_id, time_us, created});  // written by finish()
    }

    /// The batch's order events in three statements: their rows made, locked in order id
    /// order and read, then updated once each. The first ORDER_CREATED and the first decision
    /// count (see the SQLite adapter); a latency is complete when both are known.
    void write_orders(BatchChanges& changes) {
        if (order_events_.empty()) return;
        struct Row {
            std::optional<std::int64_t> created;
            std::optional<std::int64_t> decided;
            std::optional<std::int64_t> latency;
            bool changed = false;
        };
        std::map<std::string, Row> rows;
        for (const auto& e : order_events_) rows[e.order_id];
        std::vector<std::string> ids;
        ids.reserve(rows.size());
        for (const auto& [id, row] : rows) ids.push_back(id);
        const auto id_array = pg::text_array(ids);
        c_->run(
            "INSERT INTO analytics_orders (order_id) SELECT i FROM unnest($1::text[]) AS u(i) "
            "ORDER BY i ON CONFLICT DO NOTHING",
            {id_array});
        auto r = c_->run(
            "SELECT order_id, created_us, decided_us FROM analytics_orders "
            "WHERE order_id = ANY($1::text[]) ORDER BY order_id FOR UPDATE",
            {id_array});
        for (int i = 0; i < r.rows(); ++i) {
            auto& row = rows[std::string(r.text(i, 0))];
            if (!r.is_null(i, 1)) row.created = r.int64(i, 1);
            if (!r.is_null(i, 2)) row.decided = r.int64(i, 2);
        }
        for (const auto& e : order_events_) {
            auto& row = rows[e.order_id];
            auto& mine = e.created ? row.created : row.decided;
            if (mine) continue;
            mine = e.time_us;
            row.changed = true;
            if (row.created && row.decided) {
                // Services' clocks may disagree by a little: never a negative latency.
                row.latency = std::max<std::int64_t>(0, *row.decided - *row.created);
                changes.latencies_us.push_back(*row.latency);
            }
        }
        order_events_.clear();
        std::vector<std::string> changed;
        std::vector<std::optional<std::int64_t>> created, decided, latency;
        for (const auto& [id, row] : rows) {
            if (!row.changed) continue;
            changed.push_back(id);
            created.push_back(row.created);
            decided.push_back(row.decided);
            latency.push_back(row.latency);
        }
        if (changed.empty()) return;
        c_->run(
            "UPDATE analytics_orders o SET created_us = u.c, decided_us = u.d, latency_us = u.l "
            "FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[]) AS u(i, c, d, l) "
            "WHERE o.order_id = u.i",
            {pg::text_array(changed), pg::int_array(created), pg::int_array(decided),
             pg::int_array(latency)});
    }

    /// The batch's index rows in one statement; DO NOTHING: another instance (the partition
    /// moved) or a rebuild may note the same offset again.
    void write_order_records() {
        if (order_records_.empty()) return;
        std::vector<std::string> ids, topics, types;
        std::vector<std::int64_t> partitions, offsets, times;
        for (const auto& [id, r] : order_records_) {
            ids.push_back(id);
            topics.push_back(r.topic);
            partitions.push_back(r.partition);
            offsets.push_back(r.offset);
            types.push_back(r.type);
            times.push_back(r.time_ms);
        }
        order_records_.clear();
        c_->run(
            "INSERT INTO analytics_order_records (order_id, topic, partition, \"offset\", type, "
            "time_ms) SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::bigint[], "
            "$5::text[], $6::bigint[]) ON CONFLICT DO NOTHING",
            {pg::text_array(ids), pg::text_array(topics), pg::int_array(partitions),
             pg::int_array(offsets), pg::text_array(types), pg::int_array(times)});
    }

    void write_order_customers() {
        if (order_customers_.empty()) return;
        std::vector<std::string> ids, customers, emails;
        std::vector<std::int64_t> times;
        for (const auto& c : order_customers_) {
            ids.push_back(c.order_id);
            customers.push_back(c.customer_id);
            emails.push_back(c.email);
            times.push_back(c.time_ms);
        }
        order_customers_.clear();
        c_->run(
            "INSERT INTO analytics_order_customers (order_id, customer_id, email, time_ms) "
            "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) "
            "ON CONFLICT DO NOTHING",
            {pg::text_array(ids), pg::text_array(customers), pg::text_array(emails),
             pg::int_array(times)});
    }

    pg::Pool::Lease c_;
    pg::Transaction tx_;
    std::string shard_;
    std::vector<OrderEvent> order_events_;
    std::vector<std::pair<std::string, OrderRecord>> order_records_;
    std::vector<OrderCustomer> order_customers_;
};

class PgAnalyticsState final : public AnalyticsState {
  public:
    PgAnalyticsState(std::shared_ptr<pg::Pool> pool, std::string shard)
        : pool_(std::move(pool)), shard_(std::move(shard)) {}

    std::unique_ptr<AnalyticsWork> begin() override {
        return std::make_unique<PgAnalyticsWork>(*pool_, shard_);
    }
    Offsets positions() override {
        auto c = pool_->acquire();
        // Rows at 0 were only made to be locked: nothing counted there.
        return offsets_of(c->run(
            "SELECT topic, partition, next_offset FROM analytics_positions WHERE next_offset > 0"));
    }
    Offsets rebuild_marks() override {
        auto c = pool_->acquire();
        return offsets_of(c->run("SELECT topic, partition, mark FROM analytics_rebuild_marks"));
    }
    Figures figures() override {
        auto c = pool_->acquire();
        pg::Transaction tx(*c, pg::Isolation::kRepeatableRead);  // one snapshot
        Figures f;
        f.counters = counters_on(*c);
        f.dead_letters_pending = pending_on(*c);
        f.latency = latency_on(*c);
        tx.commit();
        return f;
    }
    std::map<std::string, std::int64_t> counters() override {
        auto c = pool_->acquire();
        return counters_on(*c);
    }
    std::map<std::string, std::int64_t> dead_letters_pending() override {
        auto c = pool_->acquire();
        return pending_on(*c);
    }
    LatencyPercentiles latency_percentiles() override {
        auto c = pool_->acquire();
        return latency_on(*c);
    }
    std::pair<std::vector<std::int64_t>, std::int64_t> latency_histogram(
        const std::vector<std::int64_t>& bounds_us) override {
        auto c = pool_->acquire();
        // One scan, whatever the number of buckets: width_bucket() counts from lower bounds,
        // and a latency ≤ bound (whole µs) is one < bound + 1.
        std::vector<std::int64_t> lower;
        lower.reserve(bounds_us.size());
        for (auto bound : bounds_us) lower.push_back(bound + 1);
        auto r = c->run(
            "SELECT width_bucket(latency_us, $1::bigint[]), COUNT(*), SUM(latency_us)::BIGINT "
            "FROM analytics_orders WHERE latency_us IS NOT NULL GROUP BY 1",
            {pg::int_array(lower)});
        std::vector<std::int64_t> buckets(bounds_us.size() + 1, 0);
        std::int64_t sum = 0;
        for (int i = 0; i < r.rows(); ++i) {
            const auto bucket = static_cast<std::size_t>(r.int64(i, 0));
            buckets.at(std::min(bucket, bounds_us.size())) += r.int64(i, 1);
            sum += r.int64(i, 2);
        }
        return {buckets, sum};
    }
    std::map<std::int64_t, std::map<std::string, std::int64_t>> series(
        std::int64_t from_minute, std::int64_t to_minute) override {
        auto c = pool_->acquire();
        auto r = c->run(
            "SELECT minute, name, SUM(value)::BIGINT FROM analytics_series "
            "WHERE minute BETWEEN $1 AND $2 GROUP BY minute, name",
            {from_minute, to_minute});
        std::map<std::int64_t, std::map<std::string, std::int64_t>> out;
        for (int i = 0; i < r.rows(); ++i) {
            out[r.int64(i, 0)][std::string(r.text(i, 1))] = r.int64(i, 2);
        }
        return out;
    }
    std::vector<OrderRecord> order_records(const std::string& order_id,
                                           std::size_t limit) override {
        auto c = pool_->acquire();
        auto r = c->run(
            "SELECT topic, partition, \"offset\", type, time_ms FROM analytics_order_records "
            "WHERE order_id = $1 ORDER BY time_ms, topic, partition, \"offset\" LIMIT $2",
            {order_id, static_cast<std::int64_t>(limit)});
        std::vector<OrderRecord> out;
        for (int i = 0; i < r.rows(); ++i) {
            out.push_back({.topic = std::string(r.text(i, 0)),
                           .partition = static_cast<std::int32_t>(r.int64(i, 1)),
                           .offset = r.int64(i, 2),
                           .type = std::string(r.text(i, 3)),
                           .time_ms = r.int64(i, 4)});
        }
        return out;
    }
    std::vector<OrderCustomer> find_orders(const std::string& q, std::size_t limit) override {
        auto c = pool_->acquire();
        auto r = c->run(
            "SELECT order_id, customer_id, email, time_ms FROM analytics_order_customers "
            "WHERE order_id = $1 OR customer_id = $1 OR email = lower($1) "
            "ORDER BY time_ms DESC, order_id LIMIT $2",
            {q, static_cast<std::int64_t>(limit)});
        std::vector<OrderCustomer> out;
        for (int i = 0; i < r.rows(); ++i) {
            out.push_back({.order_id = std::string(r.text(i, 0)),
                           .customer_id = std::string(r.text(i, 1)),
                           .email = std::string(r.text(i, 2)),
                           .time_ms = r.int64(i, 3)});
        }
        return out;
    }
    RebuildState rebuild_state() override {
        auto c = pool_->acquire();
        auto r = c->run("SELECT value FROM analytics_meta WHERE key = 'rebuild'");
        if (r.rows() == 0) return RebuildState::kUnknown;
        return r.text(0, 0) == "reset_pending" ? RebuildState::kResetPending : RebuildState::kDone;
    }
    void begin_rebuild(const std::vector<kafka::TopicPartitionOffset>& marks) override {
        pg::in_transaction(*pool_, [&](pg::Connection& c) {
            for (const auto& m : marks) {
                c.run(
                    "INSERT INTO analytics_rebuild_marks (topic, partition, mark) "
                    "VALUES ($1, $2, $3) ON CONFLICT (topic, partition) DO UPDATE "
                    "SET mark = excluded.mark",
                    {m.topic, m.partition, m.offset});
            }
            set_meta(c, "reset_pending");
        });
    }
    void set_rebuild_done() override {
        auto c = pool_->acquire();
        set_meta(*c, "done");
    }

  private:
    static void set_meta(pg::Connection& c, const std::string& value) {
        c.run(
            "INSERT INTO analytics_meta (key, value) VALUES ('rebuild', $1) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            {value});
    }
    std::shared_ptr<pg::Pool> pool_;
    std::string shard_;
};

}  // namespace

std::span<const pg::Migration> analytics_migrations() { return kMigrations; }

std::unique_ptr<AnalyticsState> open_pg_analytics(std::shared_ptr<pg::Pool> pool,
                                                  std::string shard) {
    return std::make_unique<PgAnalyticsState>(std::move(pool), std::move(shard));
}

}  // namespace orderpipe::analytics
