#include "orderpipe/runtime/sqlite_projection_store.hpp"

namespace orderpipe::runtime {

SqliteProjectionStore::SqliteProjectionStore(sqlite::Database& db) : db_(db) {
    db_.exec(R"(CREATE TABLE IF NOT EXISTS projection_positions (
        projection  TEXT NOT NULL,
        topic       TEXT NOT NULL,
        partition   INTEGER NOT NULL,
        next_offset INTEGER NOT NULL,
        PRIMARY KEY (projection, topic, partition)))");
}

ProjectionStore::Positions SqliteProjectionStore::positions(const std::string& name) {
    Positions out;
    auto q = db_.cached(
        "SELECT topic, partition, next_offset FROM projection_positions WHERE projection = ?");
    q.bind(1, name);
    while (q.step()) {
        out[{q.column_text(0), static_cast<std::int32_t>(q.column_int(1))}] = q.column_int(2);
    }
    q.reset();
    return out;
}

void SqliteProjectionStore::begin() { db_.exec("BEGIN IMMEDIATE"); }

void SqliteProjectionStore::advance(const std::string& name, const Positions& next) {
    auto upsert = db_.cached(
        "INSERT INTO projection_positions(projection, topic, partition, next_offset) "
        "VALUES (?, ?, ?, ?) ON CONFLICT(projection, topic, partition) DO UPDATE SET "
        "next_offset = MAX(next_offset, excluded.next_offset)");
    for (const auto& [tp, n] : next) {
        upsert.bind(1, name)
            .bind(2, tp.topic)
            .bind(3, static_cast<std::int64_t>(tp.partition))
            .bind(4, n);
        upsert.run();
    }
}

void SqliteProjectionStore::commit() { db_.exec("COMMIT"); }

void SqliteProjectionStore::rollback() noexcept {
    try {
        db_.exec("ROLLBACK");
    } catch (...) {  // NOLINT(bugprone-empty-catch): SQLite rolls back a failed transaction itself
    }
}

}  // namespace orderpipe::runtime
