#include "orderpipe/common/processed_events.hpp"

#include "orderpipe/common/logging.hpp"
#include "orderpipe/common/time.hpp"

namespace orderpipe {
namespace {

// A rowid table: a row (the records a result re-emits, ~2 KB) is stored on its leaf page. In a
// WITHOUT ROWID table a row longer than ~1 KB spills into an overflow page of its own, so every
// processed event wrote a whole 4 KB page more to the WAL (docs/BENCHMARKS.md "SQLite:
// ProcessedEvents rows on their page").
constexpr const char* kCreateProcessedEvents = R"(CREATE TABLE IF NOT EXISTS processed_events (
        consumer     TEXT NOT NULL,
        ce_id        TEXT NOT NULL,
        result       TEXT NOT NULL,
        processed_ms INTEGER NOT NULL,
        PRIMARY KEY (consumer, ce_id)))";

/// A file written before the table was a rowid table: its rows are moved into one, once, in
/// one transaction (a crash leaves the old table as it was).
void migrate_without_rowid(sqlite::Database& db) {
    std::string sql;
    {
        auto q = db.prepare(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'processed_events'");
        if (q.step()) sql = q.column_text(0);
    }  // finalized: a table cannot be renamed under a running statement
    if (sql.find("WITHOUT ROWID") == std::string::npos) return;
    sqlite::Transaction tx(db);
    db.exec("DROP INDEX IF EXISTS processed_events_age");
    db.exec("ALTER TABLE processed_events RENAME TO processed_events_without_rowid");
    db.exec(kCreateProcessedEvents);
    db.exec(
        "INSERT INTO processed_events(consumer, ce_id, result, processed_ms) "
        "SELECT consumer, ce_id, result, processed_ms FROM processed_events_without_rowid "
        "ORDER BY processed_ms");
    const auto moved = db.changes();
    db.exec("DROP TABLE processed_events_without_rowid");
    tx.commit();
    log::info("processed_events moved to a rowid table", {{"rows", std::to_string(moved)}});
}

sqlite::Database& with_table(sqlite::Database& db) {
    migrate_without_rowid(db);
    db.exec(kCreateProcessedEvents);
    db.exec("CREATE INDEX IF NOT EXISTS processed_events_age ON processed_events(processed_ms)");
    db.exec(R"(CREATE TABLE IF NOT EXISTS consumed_positions (
        consumer    TEXT NOT NULL,
        topic       TEXT NOT NULL,
        partition   INTEGER NOT NULL,
        next_offset INTEGER NOT NULL,
        PRIMARY KEY (consumer, topic, partition)) WITHOUT ROWID)");
    return db;
}

}  // namespace

ProcessedEvents::ProcessedEvents(sqlite::Database& db, std::chrono::hours retention)
    : db_(with_table(db)),
      retention_(retention),
      find_(db.prepare("SELECT result FROM processed_events WHERE consumer = ? AND ce_id = ?")),
      insert_(db.prepare("INSERT INTO processed_events(consumer, ce_id, result, processed_ms) "
                         "VALUES (?, ?, ?, ?)")),
      advance_(
          db.prepare("INSERT INTO consumed_positions(consumer, topic, partition, next_offset) "
                     "VALUES (?, ?, ?, ?) ON CONFLICT(consumer, topic, partition) DO UPDATE SET "
                     "next_offset = max(next_offset, excluded.next_offset)")) {}

void ProcessedEvents::advance(const std::string& consumer, const std::string& topic,
                              std::int32_t partition, std::int64_t next_offset) {
    advance_.bind(1, consumer)
        .bind(2, topic)
        .bind(3, static_cast<std::int64_t>(partition))
        .bind(4, next_offset);
    advance_.run();
}

std::map<std::pair<std::string, std::int32_t>, std::int64_t> ProcessedEvents::positions(
    const std::string& consumer) {
    std::map<std::pair<std::string, std::int32_t>, std::int64_t> out;
    auto q = db_.prepare(
        "SELECT topic, partition, next_offset FROM consumed_positions WHERE consumer = ?");
    q.bind(1, consumer);
    while (q.step()) {
        out[{q.column_text(0), static_cast<std::int32_t>(q.column_int(1))}] = q.column_int(2);
    }
    return out;
}

std::optional<std::string> ProcessedEvents::find(const std::string& consumer,
                                                 const std::string& ce_id) {
    find_.bind(1, consumer).bind(2, ce_id);
    std::optional<std::string> out;
    if (find_.step()) out = find_.column_text(0);
    find_.reset();
    return out;
}

void ProcessedEvents::record(const std::string& consumer, const std::string& ce_id,
                             const std::string& result) {
    insert_.bind(1, consumer).bind(2, ce_id).bind(3, result).bind(4, unix_now_ms());
    insert_.run();
}

std::int64_t ProcessedEvents::purge_expired() {
    const auto cutoff =
        unix_now_ms() - std::chrono::duration_cast<std::chrono::milliseconds>(retention_).count();
    auto del = db_.prepare("DELETE FROM processed_events WHERE processed_ms < ?");
    del.bind(1, cutoff);
    del.run();
    return db_.changes();
}

}  // namespace orderpipe
