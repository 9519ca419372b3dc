#include "orderpipe/common/processed_events.hpp"

namespace orderpipe {
namespace {

std::int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

sqlite::Database& with_table(sqlite::Database& db) {
    db.exec(R"(CREATE TABLE IF NOT EXISTS processed_events (
        consumer     TEXT NOT NULL,
        ce_id        TEXT NOT NULL,
        result       TEXT NOT NULL,
        processed_ms INTEGER NOT NULL,
        PRIMARY KEY (consumer, ce_id)) WITHOUT ROWID)");
    db.exec("CREATE INDEX IF NOT EXISTS processed_events_age ON processed_events(processed_ms)");
    return db;
}

}  // namespace

ProcessedEvents::ProcessedEvents(sqlite::Database& db, std::chrono::hours retention)
    : db_(with_table(db)),
      retention_(retention),
      find_(db.prepare("SELECT result FROM processed_events WHERE consumer = ? AND ce_id = ?")),
      insert_(db.prepare("INSERT INTO processed_events(consumer, ce_id, result, processed_ms) "
                         "VALUES (?, ?, ?, ?)")) {}

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
    insert_.bind(1, consumer).bind(2, ce_id).bind(3, result).bind(4, now_ms());
    insert_.run();
}

std::int64_t ProcessedEvents::purge_expired() {
    const auto cutoff =
        now_ms() - std::chrono::duration_cast<std::chrono::milliseconds>(retention_).count();
    auto del = db_.prepare("DELETE FROM processed_events WHERE processed_ms < ?");
    del.bind(1, cutoff);
    del.run();
    return db_.changes();
}

}  // namespace orderpipe
