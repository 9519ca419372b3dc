#include "sqlite_idempotency_store.hpp"

#include "orderpipe/common/time.hpp"

#include "orderpipe/common/sqlite.hpp"

namespace orderpipe::order {
namespace {

class SqliteIdempotencyStore final : public IdempotencyStore {
  public:
    SqliteIdempotencyStore(const std::string& path, std::chrono::hours retention);
    void together(const std::function<void()>& work) override {
        sqlite::Transaction tx(db_);
        work();
        tx.commit();
    }
    Claim claim(const std::string& key, const std::string& body, const std::string& order_id,
                const std::string& legacy_body) override;
    void complete(const std::string& key, const Stored& answer) override;
    void release(const std::string& key, const std::string& order_id) override;
    void mark_unknown(const std::string& key, const std::string& order_id) override;
    std::int64_t pending_to_unknown() override;
    std::int64_t abandoned_to_unknown(std::chrono::milliseconds /*older_than*/) override {
        return 0;  // one instance: every pending key is this process's own
    }
    std::vector<UnknownKey> unknown(std::size_t limit) override;
    std::int64_t purge_expired() override;

  private:
    sqlite::Database db_;
    std::chrono::hours retention_;
};

SqliteIdempotencyStore::SqliteIdempotencyStore(const std::string& path,
                                               std::chrono::hours retention)
    : db_(path, /*durable=*/true), retention_(retention) {
    db_.exec(R"(CREATE TABLE IF NOT EXISTS idempotency_keys (
        key        TEXT PRIMARY KEY,
        body       TEXT NOT NULL,
        order_id   TEXT NOT NULL,
        state      TEXT NOT NULL CHECK (state IN ('pending', 'unknown', 'committed')),
        status     INTEGER,
        response   TEXT,
        created_ms INTEGER NOT NULL))");
    db_.exec("CREATE INDEX IF NOT EXISTS idempotency_keys_created ON idempotency_keys(created_ms)");
    db_.exec("CREATE INDEX IF NOT EXISTS idempotency_keys_state ON idempotency_keys(state)");
}

IdempotencyStore::Claim SqliteIdempotencyStore::claim(const std::string& key,
                                                      const std::string& body,
                                                      const std::string& order_id,
                                                      const std::string& legacy_body) {
    auto find = db_.cached(
        "SELECT body, order_id, state, status, response FROM idempotency_keys WHERE key = ?");
    find.bind(1, key);
    if (find.step()) {
        Claim c{ClaimResult::kReplay, Stored{static_cast<int>(find.column_int(3)),
                                             find.column_text(1), find.column_text(4)}};
        const std::string stored = find.column_text(0);
        const bool legacy_row = !legacy_body.empty() && stored.rfind("v2:", 0) != 0;
        if (stored != (legacy_row ? legacy_body : body)) {
            c = {ClaimResult::kMismatch, std::nullopt};
        } else if (find.column_text(2) != "committed") {
            c.result = ClaimResult::kInProgress;
        }
        find.reset();
        return c;
    }
    find.reset();
    auto insert = db_.cached(
        "INSERT INTO idempotency_keys(key, body, order_id, state, created_ms) "
        "VALUES (?, ?, ?, 'pending', ?)");
    insert.bind(1, key).bind(2, body).bind(3, order_id).bind(4, unix_now_ms());
    insert.run();
    return {ClaimResult::kClaimed, std::nullopt};
}

void SqliteIdempotencyStore::complete(const std::string& key, const Stored& s) {
    auto update = db_.cached(
        "UPDATE idempotency_keys SET state = 'committed', status = ?, response = ? "
        "WHERE key = ? AND order_id = ?");
    update.bind(1, static_cast<std::int64_t>(s.status))
        .bind(2, s.response)
        .bind(3, key)
        .bind(4, s.order_id);
    update.run();
}

void SqliteIdempotencyStore::release(const std::string& key, const std::string& order_id) {
    auto del = db_.cached(
        "DELETE FROM idempotency_keys WHERE key = ? AND order_id = ? AND state != 'committed'");
    del.bind(1, key).bind(2, order_id);
    del.run();
}

void SqliteIdempotencyStore::mark_unknown(const std::string& key, const std::string& order_id) {
    auto up = db_.cached(
        "UPDATE idempotency_keys SET state = 'unknown' WHERE key = ? AND order_id = ? AND "
        "state = 'pending'");
    up.bind(1, key).bind(2, order_id);
    up.run();
}

std::int64_t SqliteIdempotencyStore::pending_to_unknown() {
    db_.exec("UPDATE idempotency_keys SET state = 'unknown' WHERE state = 'pending'");
    return db_.changes();
}

std::vector<IdempotencyStore::UnknownKey> SqliteIdempotencyStore::unknown(std::size_t limit) {
    std::vector<UnknownKey> out;
    auto q =
        db_.cached("SELECT key, order_id FROM idempotency_keys WHERE state = 'unknown' LIMIT ?");
    q.bind(1, static_cast<std::int64_t>(limit));
    while (q.step()) out.push_back({q.column_text(0), q.column_text(1)});
    q.reset();
    return out;
}

std::int64_t SqliteIdempotencyStore::purge_expired() {
    const auto cutoff =
        unix_now_ms() - std::chrono::duration_cast<std::chrono::milliseconds>(retention_).count();
    // Unknown keys are kept until they are resolved, however old.
    auto del =
        db_.cached("DELETE FROM idempotency_keys WHERE created_ms < ? AND state != 'unknown'");
    del.bind(1, cutoff);
    del.run();
    return db_.changes();
}

}  // namespace

std::unique_ptr<IdempotencyStore> open_sqlite_keys(const std::string& path,
                                                   std::chrono::hours retention) {
    return std::make_unique<SqliteIdempotencyStore>(path, retention);
}

}  // namespace orderpipe::order
