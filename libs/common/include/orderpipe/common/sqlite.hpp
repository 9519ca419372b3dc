#pragma once
/// A thin RAII layer over SQLite: one `Database` per file, prepared `Statement`s, and
/// `Transaction` guards. Errors throw `SqliteError` with the SQL and SQLite's message.
///
/// Thread-safety: a Database and its statements belong to one thread at a time (SQLite is built
/// serialized on Debian, but statements are stateful); callers serialise access.

#include <cstdint>
#include <functional>
#include <map>
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

/// A statement of Database::cached(), lent for one use: reset (and its bindings cleared) when
/// the lease ends, so an unfinished SELECT never keeps a read transaction (and a stale
/// snapshot) open on the connection.
class CachedStatement {
  public:
    explicit CachedStatement(Statement& s) : s_(&s) {}
    ~CachedStatement() { s_->reset(); }
    CachedStatement(const CachedStatement&) = delete;
    CachedStatement& operator=(const CachedStatement&) = delete;

    CachedStatement& bind(int index, std::string_view text) {
        s_->bind(index, text);
        return *this;
    }
    CachedStatement& bind(int index, std::int64_t value) {
        s_->bind(index, value);
        return *this;
    }
    CachedStatement& bind_null(int index) {
        s_->bind_null(index);
        return *this;
    }
    bool step() { return s_->step(); }
    void run() { s_->run(); }
    void reset() { s_->reset(); }
    std::int64_t column_int(int col) const { return s_->column_int(col); }
    std::string column_text(int col) const { return s_->column_text(col); }
    bool column_is_null(int col) const { return s_->column_is_null(col); }

  private:
    Statement* s_;
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
    /// A statement prepared once per connection and kept (for statements on hot paths), lent
    /// for one use (see CachedStatement).
    CachedStatement cached(std::string_view sql);
    std::int64_t changes() const;
    /// True while a transaction is open on this connection.
    bool in_transaction() const;

  private:
    struct Closer {
        void operator()(sqlite3* db) const;
    };
    // Declared after the connection, so the cached statements are finalized before it closes.
    std::unique_ptr<sqlite3, Closer> db_;
    std::map<std::string, std::unique_ptr<Statement>, std::less<>> cache_;
};

/// SAVEPOINT on construction; ROLLBACK TO it (undoing what was done since) on destruction
/// unless release() was called. Nests inside a Transaction.
class Savepoint {
  public:
    explicit Savepoint(Database& db);
    ~Savepoint();
    Savepoint(const Savepoint&) = delete;
    Savepoint& operator=(const Savepoint&) = delete;
    void release();

  private:
    Database& db_;
    bool done_ = false;
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

/// A read transaction (BEGIN DEFERRED): the reads made under it see one committed state, while
/// a writer on another connection goes on (WAL). Ends on destruction.
class ReadTransaction {
  public:
    explicit ReadTransaction(Database& db);
    ~ReadTransaction();
    ReadTransaction(const ReadTransaction&) = delete;
    ReadTransaction& operator=(const ReadTransaction&) = delete;

  private:
    Database& db_;
};

}  // namespace orderpipe::sqlite
