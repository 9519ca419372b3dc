#include "analytics_store.hpp"

#include <algorithm>
#include <cmath>

namespace orderpipe::analytics {

AnalyticsStore::AnalyticsStore(const std::string& path) : db_(path, /*durable=*/true) {
    db_.exec(R"(CREATE TABLE IF NOT EXISTS counters (
        name  TEXT PRIMARY KEY,
        value INTEGER NOT NULL) WITHOUT ROWID)");
    db_.exec(R"(CREATE TABLE IF NOT EXISTS series (
        minute INTEGER NOT NULL,
        name   TEXT NOT NULL,
        value  INTEGER NOT NULL,
        PRIMARY KEY (minute, name)) WITHOUT ROWID)");
    db_.exec(R"(CREATE TABLE IF NOT EXISTS orders (
        order_id   TEXT PRIMARY KEY,
        created_us INTEGER,
        decided_us INTEGER,
        latency_us INTEGER) WITHOUT ROWID)");
    db_.exec(
        "CREATE INDEX IF NOT EXISTS orders_by_latency ON orders(latency_us) "
        "WHERE latency_us IS NOT NULL");
    db_.exec(R"(CREATE TABLE IF NOT EXISTS dead_letters (
        key      TEXT PRIMARY KEY,
        topic    TEXT NOT NULL,
        present  INTEGER NOT NULL,
        resolved INTEGER NOT NULL) WITHOUT ROWID)");
    db_.exec(
        "CREATE INDEX IF NOT EXISTS dead_letters_pending ON dead_letters(topic) "
        "WHERE present = 1 AND resolved = 0");
    db_.exec(R"(CREATE TABLE IF NOT EXISTS positions (
        topic       TEXT NOT NULL,
        partition   INTEGER NOT NULL,
        next_offset INTEGER NOT NULL,
        PRIMARY KEY (topic, partition)) WITHOUT ROWID)");
    db_.exec(R"(CREATE TABLE IF NOT EXISTS rebuild_marks (
        topic     TEXT NOT NULL,
        partition INTEGER NOT NULL,
        mark      INTEGER NOT NULL,
        PRIMARY KEY (topic, partition)) WITHOUT ROWID)");
    db_.exec("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
    db_.exec(R"(CREATE TABLE IF NOT EXISTS order_records (
        order_id  TEXT NOT NULL,
        topic     TEXT NOT NULL,
        partition INTEGER NOT NULL,
        offset    INTEGER NOT NULL,
        type      TEXT NOT NULL,
        time_ms   INTEGER NOT NULL,
        PRIMARY KEY (order_id, topic, partition, offset)) WITHOUT ROWID)");
    db_.exec(R"(CREATE TABLE IF NOT EXISTS order_customers (
        order_id    TEXT PRIMARY KEY,
        customer_id TEXT NOT NULL,
        email       TEXT NOT NULL,
        time_ms     INTEGER NOT NULL) WITHOUT ROWID)");
    db_.exec("CREATE INDEX IF NOT EXISTS order_customers_customer ON order_customers(customer_id)");
    db_.exec("CREATE INDEX IF NOT EXISTS order_customers_email ON order_customers(email)");
}

void AnalyticsStore::order_record(const std::string& order_id, const OrderRecord& record) {
    // OR IGNORE: a rebuild or a second instance may note the same offset again.
    db_.cached(
           "INSERT OR IGNORE INTO order_records(order_id, topic, partition, offset, type, time_ms) "
           "VALUES (?, ?, ?, ?, ?, ?)")
        .bind(1, order_id)
        .bind(2, record.topic)
        .bind(3, record.partition)
        .bind(4, record.offset)
        .bind(5, record.type)
        .bind(6, record.time_ms)
        .run();
}

void AnalyticsStore::order_customer(const OrderCustomer& c) {
    db_.cached(
           "INSERT OR IGNORE INTO order_customers(order_id, customer_id, email, time_ms) "
           "VALUES (?, ?, ?, ?)")
        .bind(1, c.order_id)
        .bind(2, c.customer_id)
        .bind(3, c.email)
        .bind(4, c.time_ms)
        .run();
}

std::vector<OrderCustomer> AnalyticsStore::find_orders(const std::string& q, std::size_t limit) {
    std::vector<OrderCustomer> out;
    auto s = db_.cached(
        "SELECT order_id, customer_id, email, time_ms FROM order_customers WHERE order_id = ?1 "
        "OR customer_id = ?1 OR email = lower(?1) ORDER BY time_ms DESC, order_id LIMIT ?2");
    s.bind(1, q).bind(2, static_cast<std::int64_t>(limit));
    while (s.step()) {
        out.push_back({.order_id = s.column_text(0),
                       .customer_id = s.column_text(1),
                       .email = s.column_text(2),
                       .time_ms = s.column_int(3)});
    }
    return out;
}

std::vector<OrderRecord> AnalyticsStore::order_records(const std::string& order_id,
                                                       std::size_t limit) {
    std::vector<OrderRecord> out;
    auto q = db_.cached(
        "SELECT topic, partition, offset, type, time_ms FROM order_records WHERE order_id = ? "
        "ORDER BY time_ms, topic, partition, offset LIMIT ?");
    q.bind(1, order_id).bind(2, static_cast<std::int64_t>(limit));
    while (q.step()) {
        out.push_back({.topic = q.column_text(0),
                       .partition = static_cast<std::int32_t>(q.column_int(1)),
                       .offset = q.column_int(2),
                       .type = q.column_text(3),
                       .time_ms = q.column_int(4)});
    }
    return out;
}

void AnalyticsStore::order_created(BatchChanges& changes, const std::string& order_id,
                                   std::int64_t time_us) {
    order_event(changes, order_id, time_us, /*created=*/true);
}

void AnalyticsStore::order_decided(BatchChanges& changes, const std::string& order_id,
                                   std::int64_t time_us) {
    order_event(changes, order_id, time_us, /*created=*/false);
}

void AnalyticsStore::order_event(BatchChanges& changes, const std::string& order_id,
                                 std::int64_t time_us, bool created) {
    auto q = db_.cached("SELECT created_us, decided_us FROM orders WHERE order_id = ?");
    q.bind(1, order_id);
    if (!q.step()) {
        q.reset();
        db_.cached(created ? "INSERT INTO orders(order_id, created_us) VALUES (?, ?)"
                           : "INSERT INTO orders(order_id, decided_us) VALUES (?, ?)")
            .bind(1, order_id)
            .bind(2, time_us)
            .run();
        return;
    }
    // The first ORDER_CREATED and the first decision count; the other one may have been read
    // first (a decision can only come first from another partition, e.g. after the topic's
    // partitions changed).
    if (!q.column_is_null(created ? 0 : 1)) return;
    const std::int64_t other = q.column_int(created ? 1 : 0);
    q.reset();
    // Services' clocks may disagree by a little: never a negative latency.
    const std::int64_t latency =
        std::max<std::int64_t>(0, created ? other - time_us : time_us - other);
    db_.cached(created ? "UPDATE orders SET created_us = ?, latency_us = ? WHERE order_id = ?"
                       : "UPDATE orders SET decided_us = ?, latency_us = ? WHERE order_id = ?")
        .bind(1, time_us)
        .bind(2, latency)
        .bind(3, order_id)
        .run();
    changes.latencies_us.push_back(latency);
}

void AnalyticsStore::dead_letter_seen(BatchChanges& changes, const std::string& key,
                                      const std::string& topic) {
    db_.cached(
           "INSERT INTO dead_letters(key, topic, present, resolved) VALUES (?, ?, 1, 0) "
           "ON CONFLICT(key) DO UPDATE SET present = 1")
        .bind(1, key)
        .bind(2, topic)
        .run();
    changes.dead_letters_changed = true;
}

void AnalyticsStore::resolution(BatchChanges& changes, const std::string& key,
                                const std::string& topic, bool resolved) {
    db_.cached(
           "INSERT INTO dead_letters(key, topic, present, resolved) VALUES (?, ?, 0, ?) "
           "ON CONFLICT(key) DO UPDATE SET resolved = excluded.resolved")
        .bind(1, key)
        .bind(2, topic)
        .bind(3, resolved ? 1 : 0)
        .run();
    changes.dead_letters_changed = true;
}

void AnalyticsStore::finish_batch(const BatchChanges& changes,
                                  const std::map<kafka::TopicPartition, std::int64_t>& positions) {
    auto counter = db_.cached(
        "INSERT INTO counters(name, value) VALUES (?, ?) "
        "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value");
    for (const auto& [name, delta] : changes.counters) {
        counter.bind(1, name).bind(2, delta);
        counter.run();
    }
    auto series = db_.cached(
        "INSERT INTO series(minute, name, value) VALUES (?, ?, ?) "
        "ON CONFLICT(minute, name) DO UPDATE SET value = value + excluded.value");
    for (const auto& [at, delta] : changes.series) {
        series.bind(1, at.first).bind(2, at.second).bind(3, delta);
        series.run();
    }
    auto position = db_.cached(
        "INSERT INTO positions(topic, partition, next_offset) VALUES (?, ?, ?) "
        "ON CONFLICT(topic, partition) DO UPDATE SET next_offset = excluded.next_offset");
    for (const auto& [tp, next] : positions) {
        position.bind(1, tp.topic).bind(2, tp.partition).bind(3, next);
        position.run();
    }
}

void AnalyticsStore::prune_series(std::int64_t before_minute) {
    db_.cached("DELETE FROM series WHERE minute < ?").bind(1, before_minute).run();
}

namespace {

std::map<kafka::TopicPartition, std::int64_t> offsets_of(sqlite::Database& db,
                                                         std::string_view sql) {
    std::map<kafka::TopicPartition, std::int64_t> out;
    auto q = db.cached(sql);
    while (q.step()) {
        out[{q.column_text(0), static_cast<std::int32_t>(q.column_int(1))}] = q.column_int(2);
    }
    return out;
}

}  // namespace

std::map<kafka::TopicPartition, std::int64_t> AnalyticsStore::positions() {
    return offsets_of(db_, "SELECT topic, partition, next_offset FROM positions");
}

std::map<kafka::TopicPartition, std::int64_t> AnalyticsStore::rebuild_marks() {
    return offsets_of(db_, "SELECT topic, partition, mark FROM rebuild_marks");
}

std::map<std::string, std::int64_t> AnalyticsStore::counters() {
    std::map<std::string, std::int64_t> out;
    auto q = db_.cached("SELECT name, value FROM counters");
    while (q.step()) out[q.column_text(0)] = q.column_int(1);
    return out;
}

std::map<std::string, std::int64_t> AnalyticsStore::dead_letters_pending() {
    std::map<std::string, std::int64_t> out;
    auto q = db_.cached(
        "SELECT topic, COUNT(*) FROM dead_letters WHERE present = 1 AND resolved = 0 "
        "GROUP BY topic");
    while (q.step()) out[q.column_text(0)] = q.column_int(1);
    return out;
}

std::optional<std::int64_t> AnalyticsStore::latency_at_rank(std::int64_t rank, std::int64_t count) {
    // Walk the index from the nearer end.
    const bool from_top = rank > count / 2;
    auto q = db_.cached(from_top ? "SELECT latency_us FROM orders WHERE latency_us IS NOT NULL "
                                   "ORDER BY latency_us DESC LIMIT 1 OFFSET ?"
                                 : "SELECT latency_us FROM orders WHERE latency_us IS NOT NULL "
                                   "ORDER BY latency_us ASC LIMIT 1 OFFSET ?");
    q.bind(1, from_top ? count - rank : rank - 1);
    if (!q.step()) return std::nullopt;
    return q.column_int(0);
}

LatencyPercentiles AnalyticsStore::latency_percentiles() {
    LatencyPercentiles out;
    {
        auto q = db_.cached("SELECT COUNT(*) FROM orders WHERE latency_us IS NOT NULL");
        q.step();
        out.count = q.column_int(0);
    }
    if (out.count == 0) return out;
    // Nearest rank: the smallest latency with at least p% of the latencies at or below it.
    auto at = [&](int percent) -> std::optional<double> {
        const std::int64_t rank = std::max<std::int64_t>(1, (out.count * percent + 99) / 100);
        auto us = latency_at_rank(rank, out.count);
        if (!us) return std::nullopt;
        return static_cast<double>(*us) / 1000.0;
    };
    out.p50 = at(50);
    out.p90 = at(90);
    out.p99 = at(99);
    return out;
}

std::pair<std::vector<std::int64_t>, std::int64_t> AnalyticsStore::latency_histogram(
    const std::vector<std::int64_t>& bounds_us) {
    std::vector<std::int64_t> buckets;
    auto q =
        db_.cached("SELECT COUNT(*) FROM orders WHERE latency_us IS NOT NULL AND latency_us <= ?");
    std::int64_t below = 0;
    for (auto bound : bounds_us) {
        q.bind(1, bound);
        q.step();
        const std::int64_t n = q.column_int(0);
        q.reset();
        buckets.push_back(n - below);
        below = n;
    }
    auto total = db_.cached(
        "SELECT COUNT(*), COALESCE(SUM(latency_us), 0) FROM orders WHERE latency_us IS NOT NULL");
    total.step();
    buckets.push_back(total.column_int(0) - below);
    return {buckets, total.column_int(1)};
}

std::map<std::int64_t, std::map<std::string, std::int64_t>> AnalyticsStore::series(
    std::int64_t from_minute, std::int64_t to_minute) {
    std::map<std::int64_t, std::map<std::string, std::int64_t>> out;
    auto q = db_.cached("SELECT minute, name, value FROM series WHERE minute BETWEEN ? AND ?");
    q.bind(1, from_minute).bind(2, to_minute);
    while (q.step()) out[q.column_int(0)][q.column_text(1)] = q.column_int(2);
    return out;
}

std::optional<std::string> AnalyticsStore::meta(const std::string& name) {
    auto q = db_.cached("SELECT value FROM meta WHERE key = ?");
    q.bind(1, name);
    if (!q.step()) return std::nullopt;
    return q.column_text(0);
}

void AnalyticsStore::set_meta(const std::string& name, const std::string& value) {
    db_.cached("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)")
        .bind(1, name)
        .bind(2, value)
        .run();
}

AnalyticsStore::RebuildState AnalyticsStore::rebuild_state() {
    const auto v = meta("rebuild");
    if (!v) return RebuildState::kUnknown;
    return *v == "reset_pending" ? RebuildState::kResetPending : RebuildState::kDone;
}

void AnalyticsStore::begin_rebuild(const std::vector<kafka::TopicPartitionOffset>& marks) {
    sqlite::Transaction tx(db_);
    auto insert =
        db_.cached("INSERT OR REPLACE INTO rebuild_marks(topic, partition, mark) VALUES (?, ?, ?)");
    for (const auto& m : marks) {
        insert.bind(1, m.topic).bind(2, m.partition).bind(3, m.offset);
        insert.run();
    }
    set_meta("rebuild", "reset_pending");
    tx.commit();
}

void AnalyticsStore::set_rebuild_done() { set_meta("rebuild", "done"); }

}  // namespace orderpipe::analytics
