#include "sqlite_order_store.hpp"

#include "orderpipe/common/json.hpp"
#include "orderpipe/common/sqlite.hpp"
#include "orderpipe/runtime/sqlite_projection_store.hpp"

namespace orderpipe::order {
namespace {

using contract::EventType;
using contract::OrderStatus;
using nlohmann::json;

class SqliteOrderStore final : public OrderStore {
  public:
    explicit SqliteOrderStore(const std::string& path);

    void together(const std::function<void()>& work) override {
        sqlite::Transaction tx(db_);
        work();
        tx.commit();
    }
    std::optional<OrderRecord> get(const std::string& order_id, bool with_history) override;
    std::map<std::string, OrderRecord> get_many(
        const std::vector<std::string>& order_ids) override {
        std::map<std::string, OrderRecord> out;  // statement by statement: no round trips here
        for (const auto& id : order_ids) {
            if (auto r = get(id, false)) out.emplace(id, std::move(*r));
        }
        return out;
    }
    bool has_event(const std::string& event_id) override;
    void write(const ReadModelChanges& changes) override {
        // One writer (one instance): the entries in the order they came, in the unit of work
        // open (the projection's batch, together()) or in one of their own.
        if (db_.in_transaction()) {
            write_now(changes);
        } else {
            together([&] { write_now(changes); });
        }
    }
    std::vector<std::string> pending_before(std::int64_t created_before_ms,
                                            std::size_t limit) override;
    runtime::ProjectionStore& projection_positions() override { return *positions_; }

  private:
    void write_now(const ReadModelChanges& changes) {
        for (const auto& [record, event_id] : changes.created) insert(record, event_id);
        for (const auto& [event_id, t] : changes.applied) apply_transition(event_id, t);
        for (const auto& id : changes.releases) mark_release_requested_now(id);
    }
    void insert(const OrderRecord& record, const std::string& created_event_id);
    void apply_transition(const std::string& event_id, const Transition& t);
    void mark_release_requested_now(const std::string& order_id);

    sqlite::Database db_;
    std::unique_ptr<runtime::SqliteProjectionStore> positions_;
};

SqliteOrderStore::SqliteOrderStore(const std::string& path) : db_(path, /*durable=*/false) {
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
    positions_ = std::make_unique<runtime::SqliteProjectionStore>(db_);
}

std::optional<OrderRecord> SqliteOrderStore::get(const std::string& order_id, bool with_history) {
    auto q = db_.cached(
        "SELECT status, reason, detail, doc, correlation_id, traceparent, last_event_id, "
        "created_ms, decided, release_requested FROM orders WHERE order_id = ?");
    q.bind(1, order_id);
    if (!q.step()) return std::nullopt;
    OrderRecord r;
    r.order_id = order_id;
    r.status = contract::parse_order_status(q.column_text(0)).value_or(OrderStatus::kPending);
    r.reason = contract::parse_cancel_reason(q.column_text(1));
    r.detail = q.column_text(2);
    r.doc = json::parse(q.column_text(3));
    r.correlation_id = q.column_text(4);
    r.traceparent = q.column_text(5);
    r.last_event_id = q.column_text(6);
    r.created_ms = q.column_int(7);
    r.decided = q.column_int(8) != 0;
    r.release_requested = q.column_int(9) != 0;
    q.reset();
    if (with_history) {
        r.history = json::array();
        auto h = db_.cached("SELECT status, at FROM order_history WHERE order_id = ? ORDER BY seq");
        h.bind(1, order_id);
        while (h.step())
            r.history.push_back({{"status", h.column_text(0)}, {"at", h.column_text(1)}});
    }
    return r;
}

bool SqliteOrderStore::has_event(const std::string& event_id) {
    auto q = db_.cached("SELECT 1 FROM order_history WHERE event_id = ?");
    q.bind(1, event_id);
    const bool found = q.step();
    q.reset();
    return found;
}

void SqliteOrderStore::insert(const OrderRecord& r, const std::string& created_event_id) {
    auto ins = db_.cached(
        "INSERT OR IGNORE INTO orders(order_id, status, doc, correlation_id, traceparent, "
        "last_event_id, created_ms) VALUES (?, 'PENDING', ?, ?, ?, ?, ?)");
    ins.bind(1, r.order_id)
        .bind(2, r.doc.dump())
        .bind(3, r.correlation_id)
        .bind(4, r.traceparent)
        .bind(5, created_event_id)
        .bind(6, r.created_ms);
    ins.run();
    // One PENDING entry per order, whichever writer got here first.
    auto hist = db_.cached(
        "INSERT OR IGNORE INTO order_history(event_id, order_id, status, at, seq) "
        "SELECT ?, ?, 'PENDING', ?, 0 WHERE NOT EXISTS "
        "(SELECT 1 FROM order_history WHERE order_id = ? AND seq = 0)");
    hist.bind(1, created_event_id)
        .bind(2, r.order_id)
        .bind(3, string_field(r.doc, "created_at"))
        .bind(4, r.order_id);
    hist.run();
}

void SqliteOrderStore::apply_transition(const std::string& event_id, const Transition& t) {
    const auto& order_id = t.order_id;
    if (has_event(event_id)) return;  // already applied
    // The status only moves forward (status_rank): an older decision applied after a newer one
    // leaves the newer in place; the flags only ever turn on.
    const std::string forward = std::string(kStatusRankSql) + " < ?8";
    auto up = db_.cached("UPDATE orders SET status = CASE WHEN " + forward +
                         " THEN ?1 ELSE status END, reason = CASE WHEN " + forward +
                         " THEN ?2 ELSE reason END, detail = CASE WHEN " + forward +
                         " THEN ?3 ELSE detail END, last_event_id = CASE WHEN " + forward +
                         " THEN ?4 ELSE last_event_id END, decided = MAX(decided, ?5), "
                         "release_requested = MAX(release_requested, ?6) WHERE order_id = ?7");
    up.bind(1, contract::to_string(t.status))
        .bind(2, t.reason ? contract::to_string(*t.reason) : std::string_view())
        .bind(3, t.detail)
        .bind(4, event_id)
        .bind(5, static_cast<std::int64_t>(t.decided))
        .bind(6, static_cast<std::int64_t>(t.releases))
        .bind(7, order_id)
        .bind(8, static_cast<std::int64_t>(status_rank(t.status)));
    up.run();
    // Its place in the history is its status's rank, whatever the order it arrives in.
    auto hist = db_.cached(
        "INSERT OR IGNORE INTO order_history(event_id, order_id, status, at, seq) "
        "VALUES (?, ?, ?, ?, ?)");
    hist.bind(1, event_id)
        .bind(2, order_id)
        .bind(3, contract::to_string(t.status))
        .bind(4, t.at)
        .bind(5, static_cast<std::int64_t>(status_rank(t.status)));
    hist.run();
}

void SqliteOrderStore::mark_release_requested_now(const std::string& order_id) {
    auto up = db_.cached("UPDATE orders SET release_requested = 1 WHERE order_id = ?");
    up.bind(1, order_id);
    up.run();
}

std::vector<std::string> SqliteOrderStore::pending_before(std::int64_t created_before_ms,
                                                          std::size_t limit) {
    std::vector<std::string> out;
    auto q = db_.cached(
        "SELECT order_id FROM orders WHERE status = 'PENDING' AND created_ms < ? "
        "ORDER BY created_ms LIMIT ?");
    q.bind(1, created_before_ms).bind(2, static_cast<std::int64_t>(limit));
    while (q.step()) out.push_back(q.column_text(0));
    q.reset();
    return out;
}

}  // namespace

std::unique_ptr<OrderStore> open_sqlite_orders(const std::string& path) {
    return std::make_unique<SqliteOrderStore>(path);
}

}  // namespace orderpipe::order
