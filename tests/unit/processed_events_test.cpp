// The ProcessedEvents store on SQLite: results found again, rows kept on their leaf pages, and a
// file of the earlier layout (WITHOUT ROWID) moved into the current one without losing a row.

#include <string>

#include <catch2/catch.hpp>

#include "orderpipe/common/processed_events.hpp"
#include "orderpipe/common/sqlite.hpp"
#include "temp_file.hpp"

using namespace orderpipe;

namespace {

struct TempFile : testing::TempFile {
    TempFile() : testing::TempFile("processed-events-test") {}
};

/// A result of the size the inventory stores (two records with their headers, ~1.9 KB).
std::string result_of(int i) { return "[" + std::string(1900, 'x') + std::to_string(i) + "]"; }

std::int64_t pragma(sqlite::Database& db, const std::string& name) {
    auto q = db.prepare("PRAGMA " + name);
    REQUIRE(q.step());
    return q.column_int(0);
}

std::string table_sql(sqlite::Database& db) {
    auto q = db.prepare(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'processed_events'");
    REQUIRE(q.step());
    return q.column_text(0);
}

}  // namespace

TEST_CASE("a recorded result is found again, by consumer and event id", "[processed-events]") {
    TempFile f;
    sqlite::Database db(f.path, true);
    ProcessedEvents events(db);
    {
        sqlite::Transaction tx(db);
        events.record("inventory", "e-1", result_of(1));
        events.advance("inventory", "inventory.requests", 2, 41);
        events.advance("inventory", "inventory.requests", 2, 40);  // never moves back
        tx.commit();
    }
    CHECK(events.find("inventory", "e-1") == result_of(1));
    CHECK_FALSE(events.find("inventory", "e-2"));
    CHECK_FALSE(events.find("other", "e-1"));
    const auto positions = events.positions("inventory");
    REQUIRE(positions.size() == 1);
    CHECK(positions.at({"inventory.requests", 2}) == 41);
}

TEST_CASE("a result of ~2 KB is stored on its leaf page, not in an overflow page of its own",
          "[processed-events]") {
    TempFile f;
    sqlite::Database db(f.path, true);
    ProcessedEvents events(db);
    const auto before = pragma(db, "page_count");
    constexpr int kRows = 200;
    {
        sqlite::Transaction tx(db);
        for (int i = 0; i < kRows; ++i)
            events.record("inventory", "e-" + std::to_string(i), result_of(i));
        tx.commit();
    }
    // Two rows fit a 4 KB leaf page: ~100 leaf pages and a few index pages. Spilled rows would
    // take an overflow page each on top of that (over 300 pages).
    CHECK(pragma(db, "page_count") - before < kRows * 3 / 4);
    CHECK(table_sql(db).find("WITHOUT ROWID") == std::string::npos);
}

TEST_CASE("a file of the WITHOUT ROWID layout is moved into the current one, every row kept",
          "[processed-events]") {
    TempFile f;
    {
        sqlite::Database db(f.path, true);
        db.exec(R"(CREATE TABLE processed_events (
            consumer     TEXT NOT NULL,
            ce_id        TEXT NOT NULL,
            result       TEXT NOT NULL,
            processed_ms INTEGER NOT NULL,
            PRIMARY KEY (consumer, ce_id)) WITHOUT ROWID)");
        db.exec("CREATE INDEX processed_events_age ON processed_events(processed_ms)");
        db.exec(
            "INSERT INTO processed_events VALUES ('inventory', 'old-1', '[1]', 1), "
            "('inventory', 'old-2', '[2]', 9999999999999), ('notifications', 'old-1', '[3]', 2)");
    }
    sqlite::Database db(f.path, true);
    ProcessedEvents events(db);
    CHECK(table_sql(db).find("WITHOUT ROWID") == std::string::npos);
    CHECK(events.find("inventory", "old-1") == "[1]");
    CHECK(events.find("inventory", "old-2") == "[2]");
    CHECK(events.find("notifications", "old-1") == "[3]");
    // The key still refuses a second row for one event; the age index still serves the purge.
    CHECK_THROWS_AS(events.record("inventory", "old-1", "[again]"), sqlite::SqliteError);
    CHECK(events.purge_expired() == 2);  // the two rows of 1970
    CHECK(events.find("inventory", "old-2") == "[2]");
    // Opened again: nothing more to move.
    ProcessedEvents again(db);
    CHECK(again.find("inventory", "old-2") == "[2]");
}
