#pragma once
/// A thin RAII layer over SQLite: one `Database` per file, prepared `Statement`s, and
/// `Transaction` guards. Errors throw `SqliteError` with the SQL and SQLite's message.
///
/// Thread-safety: a Database and its statements belong to one thread at a time (SQLite is built
/// serialized on Debian, but statements are stateful); callers serialise access.

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

struct sqlite3;
struct sqlite3_stmt;

namespace orderpipe::sqlite {

class SqliteError : public std::runtime_error {
  public:
    SqliteError(int code, const std::string& what) : std::runtime_error(what), code_(code) {}
    int code() const { return code_; }

  private:
    int code_;
};

class Statement {
  public:
    Statement(sqlite3* db, std::string_view sql);
    Statement(Statement&&) noexcept = default;
    Statement& operator=(Statement&&) noexcept = default;

    Statement& bind(int index, std::string_view text);  ///< 1-based, like SQLite
    Statement& bind(int index, std::int64_t value);
    Statement& bind_null(int index);

    /// Steps once. @returns true when a row is available, false when done.
    bool step();
    /// Resets for reuse and clears bindings.
    void reset();
    /// Steps to completion (for statements that return no rows), then resets.
    void run();

    std::int64_t column_int(int col) const;
    std::string column_text(int col) const;
    bool column_is_null(int col) const;

  private:
    struct Finalizer {
        void operator()(sqlite3_stmt* s) const;
    };
    sqlite3* db_;
    std::unique_ptr<sqlite3_stmt, Finalizer> stmt_;
    std::string sql_;
};

class Database {
  public:
    /// Opens (creating) `path` in WAL mode with synchronous=NORMAL... unless `durable` is set,
    /// which uses synchronous=FULL so a committed transaction survives power loss.
    explicit Database(const std::string& path, bool durable = true);
    Database(Database&&) noexcept = default;
    Database& operator=(Database&&) noexcept = default;

    void exec(std::string_view sql);
    Statement prepare(std::string_view sql) { return Statement(db_.get(), sql); }
    std::int64_t changes() const;
    sqlite3* handle() const { return db_.get(); }

  private:
    struct Closer {
        void operator()(sqlite3* db) const;
    };
    std::unique_ptr<sqlite3, Closer> db_;
};

/// BEGIN IMMEDIATE on construction; ROLLBACK on destruction unless commit() was called.
class Transaction {
  public:
    explicit Transaction(Database& db);
    ~Transaction();
    Transaction(const Transaction&) = delete;
    Transaction& operator=(const Transaction&) = delete;
    void commit();

  private:
    Database& db_;
    bool done_ = false;
};

}  // namespace orderpipe::sqlite
