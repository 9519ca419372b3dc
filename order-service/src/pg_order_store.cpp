#include "pg_order_store.hpp"

#include "orderpipe/common/json.hpp"

#include <array>
#include <map>

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
            auto q = c.run(
                std::string("SELECT order_id, ") + kColumns + " FROM orders WHERE order_id = $1",
                {order_id});
            if (q.rows() == 0) return std::nullopt;
            OrderRecord r = record_at(q, 0);
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

    std::map<std::string, OrderRecord> get_many(
        const std::vector<std::string>& order_ids) override {
        std::map<std::string, OrderRecord> out;
        if (order_ids.empty()) return out;
        db_.with([&](pg::Connection& c) {
            auto q = c.run(std::string("SELECT order_id, ") + kColumns +
                               " FROM orders WHERE order_id = ANY($1::text[])",
                           {pg::text_array(order_ids)});
            for (int i = 0; i < q.rows(); ++i) {
                auto r = record_at(q, i);
                auto id = r.order_id;
                out.emplace(std::move(id), std::move(r));
            }
            return 0;
        });
        return out;
    }

    bool has_event(const std::string& event_id) override {
        return db_.with([&](pg::Connection& c) {
            return c.run("SELECT 1 FROM order_history WHERE event_id = $1", {event_id}).rows() > 0;
        });
    }

    /// At most four statements whatever the batch's size, each over unnest()ed arrays in order
    /// id order: the new orders, every history entry, then the orders changed locked and
    /// updated once each, with what all their transitions do together (the status of the
    /// furthest, the flags of any).
    void write(const ReadModelChanges& changes) override {
        if (changes.empty()) return;
        db_.atomically([&](pg::Connection& c) {
            insert_orders(c, changes.created);
            insert_history(c, changes);
            update_orders(c, changes);
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
    static OrderRecord record_at(const pg::Result& q, int i) {
        OrderRecord r;
        r.order_id = std::string(q.text(i, 0));
        r.status = contract::parse_order_status(q.text(i, 1)).value_or(OrderStatus::kPending);
        r.reason = contract::parse_cancel_reason(q.text(i, 2));
        r.detail = std::string(q.text(i, 3));
        r.doc = json::parse(q.text(i, 4));
        r.correlation_id = std::string(q.text(i, 5));
        r.traceparent = std::string(q.text(i, 6));
        r.last_event_id = std::string(q.text(i, 7));
        r.created_ms = q.int64(i, 8);
        r.decided = q.boolean(i, 9);
        r.release_requested = q.boolean(i, 10);
        return r;
    }

    static void insert_orders(pg::Connection& c,
                              const std::vector<ReadModelChanges::Created>& created) {
        if (created.empty()) return;
        std::vector<std::string> ids, docs, correlations, traces, events;
        std::vector<std::int64_t> created_ms;
        for (const auto& [r, event_id] : created) {
            ids.push_back(r.order_id);
            docs.push_back(r.doc.dump());
            correlations.push_back(r.correlation_id);
            traces.push_back(r.traceparent);
            events.push_back(event_id);
            created_ms.push_back(r.created_ms);
        }
        c.run(
            "INSERT INTO orders (order_id, status, doc, correlation_id, traceparent, "
            "last_event_id, created_ms) SELECT n.id, 'PENDING', n.doc, n.cid, n.tp, n.ev, n.ms "
            "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], "
            "$6::bigint[]) AS n(id, doc, cid, tp, ev, ms) ORDER BY n.id "
            "ON CONFLICT (order_id) DO NOTHING",
            {pg::text_array(ids), pg::text_array(docs), pg::text_array(correlations),
             pg::text_array(traces), pg::text_array(events), pg::int_array(created_ms)});
    }

    /// One PENDING entry per order (seq 0) whichever writer got there first; a transition's
    /// place is its status's rank, whatever the order it arrives in. The same event from
    /// another writer is skipped (its key), and so is a second event of one status (never
    /// written: one decision per order, I1).
    static void insert_history(pg::Connection& c, const ReadModelChanges& changes) {
        std::vector<std::string> events, ids, statuses, ats;
        std::vector<std::int64_t> seqs;
        for (const auto& [r, event_id] : changes.created) {
            events.push_back(event_id);
            ids.push_back(r.order_id);
            statuses.emplace_back(contract::to_string(OrderStatus::kPending));
            ats.push_back(string_field(r.doc, "created_at"));
            seqs.push_back(0);
        }
        for (const auto& [event_id, t] : changes.applied) {
            events.push_back(event_id);
            ids.push_back(t.order_id);
            statuses.emplace_back(contract::to_string(t.status));
            ats.push_back(t.at);
            seqs.push_back(status_rank(t.status));
        }
        if (events.empty()) return;
        c.run(
            "INSERT INTO order_history (event_id, order_id, status, at, seq) "
            "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[]) "
            "AS h(ev, id, st, at, seq) ORDER BY h.id, h.seq ON CONFLICT DO NOTHING",
            {pg::text_array(events), pg::text_array(ids), pg::text_array(statuses),
             pg::text_array(ats), pg::int_array(seqs)});
    }

    /// What an order's transitions of one batch do together.
    struct Fold {
        int rank = -1;  ///< of the furthest status; -1: the status stays (a release alone)
        const ReadModelChanges::Applied* furthest = nullptr;
        bool decided = false;
        bool releases = false;
    };

    static void update_orders(pg::Connection& c, const ReadModelChanges& changes) {
        std::map<std::string, Fold> folds;  // in order id order
        for (const auto& a : changes.applied) {
            auto& f = folds[a.t.order_id];
            // The first of one rank wins, as when they are applied one by one.
            if (status_rank(a.t.status) > f.rank) {
                f.rank = status_rank(a.t.status);
                f.furthest = &a;
            }
            f.decided = f.decided || a.t.decided;
            f.releases = f.releases || a.t.releases;
        }
        for (const auto& id : changes.releases) folds[id].releases = true;
        if (folds.empty()) return;
        std::vector<std::string> ids, statuses, reasons, details, events;
        std::vector<std::int64_t> ranks;
        std::vector<bool> decided, releases;
        for (const auto& [id, f] : folds) {
            ids.push_back(id);
            ranks.push_back(f.rank);
            statuses.emplace_back(f.furthest ? contract::to_string(f.furthest->t.status) : "");
            reasons.emplace_back(f.furthest && f.furthest->t.reason
                                     ? contract::to_string(*f.furthest->t.reason)
                                     : "");
            details.push_back(f.furthest ? f.furthest->t.detail : std::string());
            events.push_back(f.furthest ? f.furthest->event_id : std::string());
            decided.push_back(f.decided);
            releases.push_back(f.releases);
        }
        const auto id_array = pg::text_array(ids);
        // Locked in order id order first: an UPDATE ... FROM locks rows in its join's order.
        c.run("SELECT 1 FROM orders WHERE order_id = ANY($1::text[]) ORDER BY order_id FOR UPDATE",
              {id_array});
        // The status only moves forward (status_rank): a writer applying an older decision
        // after a newer one (another instance's projection, behind the owner's write-through)
        // leaves the newer in place; the flags only ever turn on.
        const std::string forward = std::string(kStatusRankSql) + " < u.rnk";
        c.run("UPDATE orders SET status = CASE WHEN " + forward +
                  " THEN u.st ELSE status END, reason = CASE WHEN " + forward +
                  " THEN u.rsn ELSE reason END, detail = CASE WHEN " + forward +
                  " THEN u.dtl ELSE detail END, last_event_id = CASE WHEN " + forward +
                  " THEN u.ev ELSE last_event_id END, decided = decided OR u.dcd, "
                  "release_requested = release_requested OR u.rel "
                  "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], "
                  "$6::boolean[], $7::boolean[], $8::int[]) AS u(id, st, rsn, dtl, ev, dcd, rel, "
                  "rnk) WHERE orders.order_id = u.id",
              {id_array, pg::text_array(statuses), pg::text_array(reasons), pg::text_array(details),
               pg::text_array(events), pg::bool_array(decided), pg::bool_array(releases),
               pg::int_array(ranks)});
    }

    pg::Scope db_;  // shared with the projection's unit of work
    PgProjectionStore positions_;
};

}  // namespace

std::span<const pg::Migration> order_store_migrations() { return kMigrations; }

std::unique_ptr<OrderStore> open_pg_orders(std::shared_ptr<pg::Pool> pool) {
    return std::make_unique<PgOrderStore>(std::move(pool));
}

}  // namespace orderpipe::order
