#include "idempotency_store.hpp"

namespace orderpipe::order {
namespace {

std::int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

}  // namespace

IdempotencyStore::IdempotencyStore(const std::string& path, std::chrono::hours retention)
    // synchronous=NORMAL: in WAL mode a process crash (SIGKILL) loses nothing; only a power
    // loss could drop the last commits, and Kafka then still holds the truth.
    : db_(path, /*durable=*/false), retention_(retention) {
    db_.exec(R"(CREATE TABLE IF NOT EXISTS idempotency_keys (
        key        TEXT PRIMARY KEY,
        body       TEXT NOT NULL,
        order_id   TEXT NOT NULL,
        state      TEXT NOT NULL CHECK (state IN ('pending', 'committed')),
        status     INTEGER,
        response   TEXT,
        created_ms INTEGER NOT NULL))");
    db_.exec("CREATE INDEX IF NOT EXISTS idempotency_keys_created ON idempotency_keys(created_ms)");
}

IdempotencyStore::Claim IdempotencyStore::claim(const std::string& key, const std::string& body,
                                                const std::string& order_id) {
    std::lock_guard lock(mu_);
    auto find = db_.prepare(
        "SELECT body, order_id, state, status, response FROM idempotency_keys WHERE key = ?");
    find.bind(1, key);
    if (find.step()) {
        if (find.column_text(0) != body) return {ClaimResult::kMismatch, std::nullopt};
        Stored s{static_cast<int>(find.column_int(3)), find.column_text(1), find.column_text(4)};
        if (find.column_text(2) == "pending") return {ClaimResult::kInProgress, s};
        return {ClaimResult::kReplay, s};
    }
    find.reset();
    auto insert = db_.prepare(
        "INSERT INTO idempotency_keys(key, body, order_id, state, created_ms) "
        "VALUES (?, ?, ?, 'pending', ?)");
    insert.bind(1, key).bind(2, body).bind(3, order_id).bind(4, now_ms());
    insert.run();
    return {ClaimResult::kClaimed, std::nullopt};
}

void IdempotencyStore::complete(const std::vector<std::pair<std::string, Stored>>& answered) {
    if (answered.empty()) return;
    std::lock_guard lock(mu_);
    sqlite::Transaction tx(db_);
    auto update = db_.prepare(
        "UPDATE idempotency_keys SET state = 'committed', status = ?, response = ? WHERE key = ?");
    for (const auto& [key, s] : answered) {
        update.bind(1, static_cast<std::int64_t>(s.status)).bind(2, s.response).bind(3, key);
        update.run();
    }
    tx.commit();
}

void IdempotencyStore::release(const std::vector<std::string>& keys) {
    if (keys.empty()) return;
    std::lock_guard lock(mu_);
    sqlite::Transaction tx(db_);
    auto del = db_.prepare("DELETE FROM idempotency_keys WHERE key = ? AND state = 'pending'");
    for (const auto& key : keys) {
        del.bind(1, key);
        del.run();
    }
    tx.commit();
}

std::vector<IdempotencyStore::PendingKey> IdempotencyStore::pending(
    std::int64_t older_than_ms) const {
    std::lock_guard lock(mu_);
    std::vector<PendingKey> out;
    auto q = const_cast<sqlite::Database&>(db_).prepare(
        "SELECT key, order_id, created_ms FROM idempotency_keys "
        "WHERE state = 'pending' AND created_ms < ?");
    q.bind(1, older_than_ms);
    while (q.step()) out.push_back({q.column_text(0), q.column_text(1), q.column_int(2)});
    return out;
}

std::int64_t IdempotencyStore::purge_expired() {
    std::lock_guard lock(mu_);
    const auto cutoff =
        now_ms() - std::chrono::duration_cast<std::chrono::milliseconds>(retention_).count();
    auto del = db_.prepare("DELETE FROM idempotency_keys WHERE created_ms < ?");
    del.bind(1, cutoff);
    del.run();
    return db_.changes();
}

}  // namespace orderpipe::order
