#include "order_store.hpp"

#include "orderpipe/common/json.hpp"

#include "orderpipe/common/time.hpp"

namespace orderpipe::order {

using nlohmann::json;

OrderStore::OrderStore(const std::string& path) : db_(path, /*durable=*/false) {
    db_.exec(R"(CREATE TABLE IF NOT EXISTS orders (
        order_id          TEXT PRIMARY KEY,
        status            TEXT NOT NULL,
        reason            TEXT NOT NULL DEFAULT '',
        detail            TEXT NOT NULL DEFAULT '',
        doc               TEXT NOT NULL,
        correlation_id    TEXT NOT NULL,
        traceparent       TEXT NOT NULL,
        last_event_id     TEXT NOT NULL,
        created_ms        INTEGER NOT NULL,
        decided           INTEGER NOT NULL DEFAULT 0,
        release_requested INTEGER NOT NULL DEFAULT 0))");
    db_.exec("CREATE INDEX IF NOT EXISTS orders_pending ON orders(status, created_ms)");
    db_.exec(R"(CREATE TABLE IF NOT EXISTS order_history (
        event_id TEXT PRIMARY KEY,
        order_id TEXT NOT NULL,
        status   TEXT NOT NULL,
        at       TEXT NOT NULL,
        seq      INTEGER NOT NULL))");
    db_.exec("CREATE INDEX IF NOT EXISTS order_history_order ON order_history(order_id, seq)");
    db_.exec(R"(CREATE TABLE IF NOT EXISTS projection_offsets (
        topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL,
        PRIMARY KEY (topic, partition)))");
}

std::optional<OrderRecord> OrderStore::get(const std::string& order_id, bool with_history) {
    auto q = db_.prepare(
        "SELECT status, reason, detail, doc, correlation_id, traceparent, last_event_id, "
        "created_ms, decided, release_requested FROM orders WHERE order_id = ?");
    q.bind(1, order_id);
    if (!q.step()) return std::nullopt;
    OrderRecord r;
    r.order_id = order_id;
    r.status = q.column_text(0);
    r.reason = q.column_text(1);
    r.detail = q.column_text(2);
    r.doc = json::parse(q.column_text(3));
    r.correlation_id = q.column_text(4);
    r.traceparent = q.column_text(5);
    r.last_event_id = q.column_text(6);
    r.created_ms = q.column_int(7);
    r.decided = q.column_int(8) != 0;
    r.release_requested = q.column_int(9) != 0;
    if (with_history) {
        auto h =
            db_.prepare("SELECT status, at FROM order_history WHERE order_id = ? ORDER BY seq");
        h.bind(1, order_id);
        while (h.step())
            r.history.push_back({{"status", h.column_text(0)}, {"at", h.column_text(1)}});
    }
    return r;
}

void OrderStore::apply_created(const std::string& event_id, const std::string& correlation_id,
                               const std::string& traceparent, const json& doc) {
    const std::string order_id = string_field(doc, "order_id");
    const std::string created_at = string_field(doc, "created_at");
    std::int64_t created_ms = 0;
    if (auto t = parse_rfc3339(created_at)) {
        created_ms =
            std::chrono::duration_cast<std::chrono::milliseconds>(t->time_since_epoch()).count();
    }
    auto ins = db_.prepare(
        "INSERT OR IGNORE INTO orders(order_id, status, doc, correlation_id, traceparent, "
        "last_event_id, created_ms) VALUES (?, 'PENDING', ?, ?, ?, ?, ?)");
    ins.bind(1, order_id)
        .bind(2, doc.dump())
        .bind(3, correlation_id)
        .bind(4, traceparent)
        .bind(5, event_id)
        .bind(6, created_ms);
    ins.run();
    // One PENDING entry per order, whichever path (intake, saga, projection) got here first.
    auto hist = db_.prepare(
        "INSERT OR IGNORE INTO order_history(event_id, order_id, status, at, seq) "
        "SELECT ?, ?, 'PENDING', ?, 0 WHERE NOT EXISTS "
        "(SELECT 1 FROM order_history WHERE order_id = ? AND seq = 0)");
    hist.bind(1, event_id).bind(2, order_id).bind(3, created_at).bind(4, order_id);
    hist.run();
}

void OrderStore::apply_change(const OrderChange& c) {
    if (!c.add_history) {
        auto flags = db_.prepare(
            "UPDATE orders SET release_requested = MAX(release_requested, ?) WHERE order_id = ?");
        flags.bind(1, static_cast<std::int64_t>(c.release_requested)).bind(2, c.order_id);
        flags.run();
        return;
    }
    auto seen = db_.prepare("SELECT 1 FROM order_history WHERE event_id = ?");
    seen.bind(1, c.event_id);
    if (seen.step()) return;  // already applied
    seen.reset();
    auto up = db_.prepare(
        "UPDATE orders SET status = ?, reason = ?, detail = ?, last_event_id = ?, "
        "decided = MAX(decided, ?), release_requested = MAX(release_requested, ?) "
        "WHERE order_id = ?");
    up.bind(1, c.status)
        .bind(2, c.reason)
        .bind(3, c.detail)
        .bind(4, c.event_id)
        .bind(5, static_cast<std::int64_t>(c.decided))
        .bind(6, static_cast<std::int64_t>(c.release_requested))
        .bind(7, c.order_id);
    up.run();
    auto hist = db_.prepare(
        "INSERT OR IGNORE INTO order_history(event_id, order_id, status, at, seq) "
        "VALUES (?, ?, ?, ?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM order_history WHERE order_id = "
        "?))");
    hist.bind(1, c.event_id)
        .bind(2, c.order_id)
        .bind(3, c.status)
        .bind(4, c.at)
        .bind(5, c.order_id);
    hist.run();
}

std::vector<std::string> OrderStore::pending_before(std::int64_t created_before_ms,
                                                    std::size_t limit) {
    std::vector<std::string> out;
    auto q = db_.prepare(
        "SELECT order_id FROM orders WHERE status = 'PENDING' AND created_ms < ? "
        "ORDER BY created_ms LIMIT ?");
    q.bind(1, created_before_ms).bind(2, static_cast<std::int64_t>(limit));
    while (q.step()) out.push_back(q.column_text(0));
    return out;
}

std::vector<std::pair<int, std::int64_t>> OrderStore::offsets(const std::string& topic) {
    std::vector<std::pair<int, std::int64_t>> out;
    auto q = db_.prepare("SELECT partition, next_offset FROM projection_offsets WHERE topic = ?");
    q.bind(1, topic);
    while (q.step()) out.emplace_back(static_cast<int>(q.column_int(0)), q.column_int(1));
    return out;
}

void OrderStore::set_offset(const std::string& topic, int partition, std::int64_t next) {
    auto u = db_.prepare(
        "INSERT INTO projection_offsets(topic, partition, next_offset) VALUES (?, ?, ?) "
        "ON CONFLICT(topic, partition) DO UPDATE SET next_offset = MAX(next_offset, "
        "excluded.next_offset)");
    u.bind(1, topic).bind(2, static_cast<std::int64_t>(partition)).bind(3, next);
    u.run();
}

json order_view(const OrderRecord& r) {
    json v = {{"order_id", r.order_id},
              {"status", r.status},
              {"customer_id", string_field(r.doc, "customer_id")},
              {"items", r.doc.value("items", json::array())},
              {"total", string_field(r.doc, "total")},
              {"currency", string_field(r.doc, "currency")},
              {"created_at", string_field(r.doc, "created_at")},
              {"history", r.history}};
    if (!r.reason.empty()) v["reason"] = r.reason;
    if (!r.detail.empty()) v["detail"] = r.detail;
    return v;
}

}  // namespace orderpipe::order
