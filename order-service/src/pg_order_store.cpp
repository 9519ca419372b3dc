#include "pg_order_store.hpp"

#include "orderpipe/common/json.hpp"

#include <array>

namespace orderpipe::order {
namespace {

using contract::OrderStatus;
using nlohmann::json;

constexpr std::array kMigrations = {
    pg::Migration{1, "orders, their history, the projection's positions", R"(
        CREATE TABLE orders (
            order_id          TEXT PRIMARY KEY,
            status            TEXT NOT NULL,
            reason            TEXT NOT NULL DEFAULT '',
            detail            TEXT NOT NULL DEFAULT '',
            doc               TEXT NOT NULL,
            correlation_id    TEXT NOT NULL,
            traceparent       TEXT NOT NULL,
            last_event_id     TEXT NOT NULL,
            created_ms        BIGINT NOT NULL,
            decided           BOOLEAN NOT NULL DEFAULT FALSE,
            release_requested BOOLEAN NOT NULL DEFAULT FALSE);
        CREATE INDEX orders_pending ON orders (created_ms) WHERE status = 'PENDING';
        CREATE TABLE order_history (
            event_id TEXT PRIMARY KEY,
            order_id TEXT NOT NULL,
            status   TEXT NOT NULL,
            at       TEXT NOT NULL,
            seq      INTEGER NOT NULL,
            UNIQUE (order_id, seq));
        CREATE TABLE projection_positions (
            projection  TEXT NOT NULL,
            topic       TEXT NOT NULL,
            partition   INTEGER NOT NULL,
            next_offset BIGINT NOT NULL,
            PRIMARY KEY (projection, topic, partition));
    )"},
};

constexpr const char* kColumns =
    "status, reason, detail, doc, correlation_id, traceparent, last_event_id, created_ms, "
    "decided, release_requested";

/// The projection's unit of work: one connection and transaction, which the order store's
/// writes use while it is open.
class PgProjectionStore final : public runtime::ProjectionStore {
  public:
    explicit PgProjectionStore(pg::Scope& db) : db_(db) {}

    Positions positions(const std::string& name) override {
        auto c = db_.pool().acquire();
        auto r = c->run(
            "SELECT topic, partition, next_offset FROM projection_positions "
            "WHERE projection = $1",
            {name});
        Positions out;
        for (int i = 0; i < r.rows(); ++i) {
            out[{std::string(r.text(i, 0)), static_cast<std::int32_t>(r.int64(i, 1))}] =
                r.int64(i, 2);
        }
        return out;
    }
    void begin() override {
        lease_.emplace(db_.pool().acquire());
        (*lease_)->exec("BEGIN");
        db_.enter(**lease_);
    }
    void mark_record() override { (*lease_)->exec("SAVEPOINT record"); }
    void keep_record() override { (*lease_)->exec("RELEASE SAVEPOINT record"); }
    void undo_record() override {
        (*lease_)->exec("ROLLBACK TO SAVEPOINT record");
        (*lease_)->exec("RELEASE SAVEPOINT record");
    }
    void advance(const std::string& name, const Positions& next) override {
        for (const auto& [tp, n] : next) {
            (*lease_)->run(
                "INSERT INTO projection_positions (projection, topic, partition, next_offset) "
                "VALUES ($1, $2, $3, $4) ON CONFLICT (projection, topic, partition) DO UPDATE "
                "SET next_offset = GREATEST(projection_positions.next_offset, "
                "excluded.next_offset)",
                {name, tp.topic, tp.partition, n});
        }
    }
    void commit() override {
        (*lease_)->exec("COMMIT");
        end();
    }
    void rollback() noexcept override {
        try {
            if (lease_ && (*lease_)->healthy()) (*lease_)->exec("ROLLBACK");
        } catch (...) {  // NOLINT(bugprone-empty-catch): a broken connection is dropped
        }
        end();
    }

  private:
    void end() {
        db_.leave();
        lease_.reset();
    }
    pg::Scope& db_;
    std::optional<pg::Pool::Lease> lease_;
};

class PgOrderStore final : public OrderStore {
  public:
    explicit PgOrderStore(std::shared_ptr<pg::Pool> pool) : db_(std::move(pool)), positions_(db_) {}

    void together(const std::function<void()>& work) override { db_.together(work); }

    std::optional<OrderRecord> get(const std::string& order_id, bool with_history) override {
        return db_.with([&](pg::Connection& c) -> std::optional<OrderRecord> {
            auto q = c.run(std::string("SELECT ") + kColumns + " FROM orders WHERE order_id = $1",
                           {order_id});
            if (q.rows() == 0) return std::nullopt;
            OrderRecord r;
            r.order_id = order_id;
            r.status = contract::parse_order_status(q.text(0, 0)).value_or(OrderStatus::kPending);
            r.reason = contract::parse_cancel_reason(q.text(0, 1));
            r.detail = std::string(q.text(0, 2));
            r.doc = json::parse(q.text(0, 3));
            r.correlation_id = std::string(q.text(0, 4));
            r.traceparent = std::string(q.text(0, 5));
            r.last_event_id = std::string(q.text(0, 6));
            r.created_ms = q.int64(0, 7);
            r.decided = q.boolean(0, 8);
            r.release_requested = q.boolean(0, 9);
            if (with_history) {
                r.history = json::array();
                auto h =
                    c.run("SELECT status, at FROM order_history WHERE order_id = $1 ORDER BY seq",
                          {order_id});
                for (int i = 0; i < h.rows(); ++i) {
                    r.history.push_back({{"status", h.text(i, 0)}, {"at", h.text(i, 1)}});
                }
            }
            return r;
        });
    }

    bool has_event(const std::string& event_id) override {
        return db_.with([&](pg::Connection& c) {
            return c.run("SELECT 1 FROM order_history WHERE event_id = $1", {event_id}).rows() > 0;
        });
    }

    void insert(const OrderRecord& r, const std::string& created_event_id) override {
        db_.with([&](pg::Connection& c) {
            c.run(
                "INSERT INTO orders (order_id, status, doc, correlation_id, traceparent, "
                "last_event_id, created_ms) VALUES ($1, 'PENDING', $2, $3, $4, $5, $6) "
                "ON CONFLICT (order_id) DO NOTHING",
                {r.order_id, r.doc.dump(), r.correlation_id, r.traceparent, created_event_id,
                 r.created_ms});
            // One PENDING entry per order, whichever writer got here first.
            c.run(
                "INSERT INTO order_history (event_id, order_id, status, at, seq) "
                "VALUES ($1, $2, 'PENDING', $3, 0) ON CONFLICT DO NOTHING",
                {created_event_id, r.order_id, string_field(r.doc, "created_at")});
            return 0;
        });
    }

    void apply_transition(const std::string& order_id, const std::string& event_id,
                          const Transition& t) override {
        db_.with([&](pg::Connection& c) {
            if (c.run("SELECT 1 FROM order_history WHERE event_id = $1", {event_id}).rows() > 0) {
                return 0;  // already applied
            }
            // The status only moves forward (status_rank): a writer applying an older decision
            // after a newer one (another instance's projection, behind the owner's
            // write-through) leaves the newer in place; the flags only ever turn on.
            const std::string forward = std::string(kStatusRankSql) + " < $8";
            c.run("UPDATE orders SET status = CASE WHEN " + forward +
                      " THEN $1 ELSE status END, reason = CASE WHEN " + forward +
                      " THEN $2 ELSE reason END, detail = CASE WHEN " + forward +
                      " THEN $3 ELSE detail END, last_event_id = CASE WHEN " + forward +
                      " THEN $4 ELSE last_event_id END, decided = decided OR $5, "
                      "release_requested = release_requested OR $6 WHERE order_id = $7",
                  {std::string(contract::to_string(t.status)),
                   t.reason ? std::string(contract::to_string(*t.reason)) : std::string(), t.detail,
                   event_id, t.decided, t.releases, order_id,
                   static_cast<std::int64_t>(status_rank(t.status))});
            // Its place in the history is its status's rank, whatever the order it arrives in.
            // The same event from another writer is skipped (its key), and so is a second event
            // of one status (never written: one decision per order, I1).
            c.run(
                "INSERT INTO order_history (event_id, order_id, status, at, seq) "
                "VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                {event_id, order_id, std::string(contract::to_string(t.status)), t.at,
                 static_cast<std::int64_t>(status_rank(t.status))});
            return 0;
        });
    }

    void mark_release_requested(const std::string& order_id) override {
        db_.with([&](pg::Connection& c) {
            c.run("UPDATE orders SET release_requested = TRUE WHERE order_id = $1", {order_id});
            return 0;
        });
    }

    std::vector<std::string> pending_before(std::int64_t created_before_ms,
                                            std::size_t limit) override {
        return db_.with([&](pg::Connection& c) {
            auto r = c.run(
                "SELECT order_id FROM orders WHERE status = 'PENDING' AND created_ms < $1 "
                "ORDER BY created_ms LIMIT $2",
                {created_before_ms, static_cast<std::int64_t>(limit)});
            std::vector<std::string> out;
            for (int i = 0; i < r.rows(); ++i) out.emplace_back(r.text(i, 0));
            return out;
        });
    }

    runtime::ProjectionStore& projection_positions() override { return positions_; }

  private:
    pg::Scope db_;  // shared with the projection's unit of work
    PgProjectionStore positions_;
};

}  // namespace

std::span<const pg::Migration> order_store_migrations() { return kMigrations; }

std::unique_ptr<OrderStore> open_pg_orders(std::shared_ptr<pg::Pool> pool) {
    return std::make_unique<PgOrderStore>(std::move(pool));
}

}  // namespace orderpipe::order
