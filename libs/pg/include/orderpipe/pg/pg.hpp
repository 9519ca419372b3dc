#pragma once
/// PostgreSQL through libpq, wrapped once (as libs/kafka wraps librdkafka): RAII connections,
/// statements prepared once per connection, transaction guards, a small connection pool, errors
/// classified by SQLSTATE, and versioned schema migrations applied under an advisory lock.
/// libpq-fe.h is included by pg.cpp only; nothing of libpq reaches the callers.
///
/// Thread-safety: a Connection belongs to one thread at a time (lend it from a Pool); the Pool is
/// thread-safe.

#include "orderpipe/common/storage_error.hpp"

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

struct pg_conn;
struct pg_result;

namespace orderpipe::pg {

/// What a failure means to the caller (docs/ARCHITECTURE.md "Storage").
enum class ErrorKind {
    kSerialization,    ///< 40001: run the transaction again
    kDeadlock,         ///< 40P01: run the transaction again
    kUniqueViolation,  ///< 23505: another writer got there first; run again, reading its row
    kConnectionLost,   ///< class 08, 57P01-57P03, no connection: reconnect, then run again
    kTimeout,          ///< 57014 (statement_timeout, lock_timeout): the database is stuck
    kConfiguration,    ///< the URL, the credentials or the database named do not work
    kOther,            ///< everything else: a defect or a broken database; not retried
};

std::string_view to_string(ErrorKind k);

/// Transient (StorageError::transient()) for every kind but kConfiguration and kOther: what a
/// caller above the storage port answers 503 or retries.
class Error : public StorageError {
  public:
    Error(ErrorKind kind, std::string sqlstate, const std::string& what)
        : StorageError(what, kind != ErrorKind::kConfiguration && kind != ErrorKind::kOther),
          kind_(kind),
          sqlstate_(std::move(sqlstate)) {}
    ErrorKind kind() const { return kind_; }
    /// Five characters, or empty when the server did not send one (e.g. no connection).
    const std::string& sqlstate() const { return sqlstate_; }
    /// Worth running the same transaction again (on a fresh connection if it was lost).
    bool retriable() const {
        return kind_ == ErrorKind::kSerialization || kind_ == ErrorKind::kDeadlock ||
               kind_ == ErrorKind::kUniqueViolation || kind_ == ErrorKind::kConnectionLost;
    }

  private:
    ErrorKind kind_;
    std::string sqlstate_;
};

/// The kind an SQLSTATE stands for.
ErrorKind classify(std::string_view sqlstate);

/// A statement parameter: text in PostgreSQL's input syntax, or NULL.
class Param {
  public:
    Param(std::nullptr_t) {}  // NOLINT(google-explicit-constructor): NULL
    Param(std::string_view s) : value_(std::string(s)) {}  // NOLINT(google-explicit-constructor)
    Param(const std::string& s) : value_(s) {}             // NOLINT(google-explicit-constructor)
    Param(const char* s) : value_(std::string(s)) {}       // NOLINT(google-explicit-constructor)
    Param(std::int64_t v) : value_(std::to_string(v)) {}   // NOLINT(google-explicit-constructor)
    Param(int v) : value_(std::to_string(v)) {}            // NOLINT(google-explicit-constructor)
    Param(bool v) : value_(v ? "t" : "f") {}               // NOLINT(google-explicit-constructor)
    const char* c_str() const { return value_ ? value_->c_str() : nullptr; }

  private:
    std::optional<std::string> value_;
};

/// A text[] parameter's input syntax ({"a","b"}), each element quoted and escaped.
std::string text_array(std::span<const std::string> values);
/// A bigint[] parameter's input syntax ({1,2,3}).
std::string int_array(std::span<const std::int64_t> values);
/// The same with NULL for each nullopt.
std::string int_array(std::span<const std::optional<std::int64_t>> values);
/// A boolean[] parameter's input syntax ({t,f}).
std::string bool_array(const std::vector<bool>& values);

/// Rows of one statement. Owns the libpq result.
class Result {
  public:
    Result() = default;
    explicit Result(pg_result* r);
    Result(Result&&) noexcept = default;
    Result& operator=(Result&&) noexcept = default;

    int rows() const;
    int columns() const;
    bool is_null(int row, int col) const;
    /// The value as text ("" for NULL).
    std::string_view text(int row, int col) const;
    std::int64_t int64(int row, int col) const;
    bool boolean(int row, int col) const;
    /// Rows an INSERT/UPDATE/DELETE touched.
    std::int64_t affected() const;

  private:
    struct Clear {
        void operator()(pg_result* r) const;
    };
    std::unique_ptr<pg_result, Clear> r_;
};

struct ConnectionOptions {
    /// A libpq URI or key=value string (DATABASE_URL).
    std::string url;
    /// Set on every connection: a statement running longer is cancelled (kTimeout), so a stuck
    /// database never hangs a loop for good. 0 = none.
    std::chrono::milliseconds statement_timeout{10'000};
    /// Waiting for a row lock longer than this fails the statement (kTimeout). 0 = none.
    std::chrono::milliseconds lock_timeout{5'000};
    std::chrono::seconds connect_timeout{5};
    std::string application_name = "orderpipe";
};

/// Checks `url`'s syntax without connecting. @throws Error (kConfiguration) naming what is wrong.
void check_url(const std::string& url);
/// Where `url` points, for messages and logs: postgresql://user@host:port/dbname, built from the
/// fields libpq reads, so no password (in the URI, a password= option or a quoted value) and no
/// other option ever shows.
std::string describe(const std::string& url);

class Connection {
  public:
    /// Connects. @throws Error: kConfiguration (bad URL, credentials, database missing) or
    /// kConnectionLost (server unreachable).
    explicit Connection(const ConnectionOptions& options);
    Connection(Connection&&) noexcept = default;
    Connection& operator=(Connection&&) noexcept = default;
    ~Connection();

    /// Runs one or more statements without parameters (simple query protocol).
    void exec(std::string_view sql);
    /// Runs `sql` ($1, $2… placeholders), prepared once per connection and kept.
    Result run(std::string_view sql, std::span<const Param> params = {});
    Result run(std::string_view sql, std::initializer_list<Param> params) {
        return run(sql, std::span<const Param>(params.begin(), params.size()));
    }
    /// False once the connection broke (it is then dropped, not reused).
    bool healthy() const;
    /// The server's process id (for tests that terminate a session).
    int backend_pid() const;
    /// Inside BEGIN … COMMIT/ROLLBACK (or failed inside one).
    bool in_transaction() const;

  private:
    /// How long past statement_timeout the client waits for an answer before it gives up on the
    /// connection; and how long sent bytes may go unacknowledged (tcp_user_timeout).
    static constexpr std::chrono::milliseconds kAnswerMargin{5'000};
    static constexpr std::chrono::milliseconds kTcpUserTimeout{15'000};
    [[noreturn]] void fail(pg_result* r, std::string_view what);
    /// The result of the statement just sent (`sent`: whether libpq could send it), waiting at
    /// most answer_deadline_. @throws Error (kTimeout when no answer came: the connection is
    /// then broken and dropped; or the statement's own error).
    pg_result* await(bool sent, std::string_view what);
    std::chrono::milliseconds answer_deadline_{0};  // 0 = wait for as long as it takes
    struct Finish {
        void operator()(pg_conn* c) const;
    };
    std::unique_ptr<pg_conn, Finish> conn_;
    std::map<std::string, std::string, std::less<>> prepared_;  // sql -> statement name
    bool broken_ = false;
};

enum class Isolation { kReadCommitted, kRepeatableRead, kSerializable };

/// BEGIN on construction; ROLLBACK on destruction unless commit() was called.
class Transaction {
  public:
    explicit Transaction(Connection& c, Isolation isolation = Isolation::kReadCommitted);
    ~Transaction();
    Transaction(const Transaction&) = delete;
    Transaction& operator=(const Transaction&) = delete;
    /// @throws Error: a commit that fails is rolled back by the server (kSerialization at commit
    /// for serializable transactions); kConnectionLost means its outcome is unknown.
    void commit();

  private:
    Connection& c_;
    bool done_ = false;
};

/// At most `size` connections to one database, opened on demand and kept; one that broke is
/// dropped when it is given back, so the next lease connects again.
class Pool {
  public:
    Pool(ConnectionOptions options, std::size_t size);
    Pool(const Pool&) = delete;
    Pool& operator=(const Pool&) = delete;

    class Lease {
      public:
        Lease(Pool& pool, std::unique_ptr<Connection> c) : pool_(&pool), c_(std::move(c)) {}
        Lease(Lease&&) noexcept = default;
        Lease& operator=(Lease&&) noexcept = default;
        ~Lease();
        Connection& operator*() const { return *c_; }
        Connection* operator->() const { return c_.get(); }

      private:
        Pool* pool_;
        std::unique_ptr<Connection> c_;
    };

    /// A connection, waiting up to `wait` for one to be given back when all are lent.
    /// @throws Error (kTimeout when none came back, or what connecting threw).
    Lease acquire(std::chrono::milliseconds wait = std::chrono::seconds(10));
    const ConnectionOptions& options() const { return options_; }

  private:
    void give_back(std::unique_ptr<Connection> c);
    ConnectionOptions options_;
    std::size_t size_;
    std::mutex mu_;
    std::condition_variable cv_;
    std::vector<std::unique_ptr<Connection>> idle_;
    std::size_t lent_ = 0;
};

/// What a store's calls run on: the connection of the unit of work open on this store (together(),
/// or one a caller entered), else a connection lent for the one call. Not thread-safe: one per
/// store instance, as the stores are.
class Scope {
  public:
    explicit Scope(std::shared_ptr<Pool> pool) : pool_(std::move(pool)) {}
    /// Runs `work` in one transaction; the calls it makes through with() share it.
    void together(const std::function<void()>& work);
    /// Runs `work`'s statements as one unit: in the unit of work open on this store, else in a
    /// transaction of their own.
    void atomically(const std::function<void(Connection&)>& work);
    template <class F>
    auto with(F&& f) {
        if (current_ != nullptr) return f(*current_);
        auto lease = pool_->acquire();
        return f(*lease);
    }
    /// For a unit of work driven from outside (a projection's batch): with() uses `c` until
    /// leave().
    void enter(Connection& c) { current_ = &c; }
    void leave() { current_ = nullptr; }
    Pool& pool() { return *pool_; }

  private:
    std::shared_ptr<Pool> pool_;
    Connection* current_ = nullptr;
};

/// How a retried unit of work backs off.
struct RetryPolicy {
    int attempts = 8;
    std::chrono::milliseconds first_backoff{10};
    std::chrono::milliseconds max_backoff{1'000};
};

/// Runs `work` in a transaction on a connection of `pool`, again (after a backoff, on a fresh
/// connection when it broke) while it fails with a retriable error. `work` must be safe to run
/// again: everything it did in a failed attempt was rolled back. Errors that are not retriable,
/// and the last retriable one, are thrown. A lost connection at COMMIT is thrown as is (its
/// outcome is unknown): the caller's work must be idempotent to retry that.
void in_transaction(Pool& pool, const std::function<void(Connection&)>& work,
                    Isolation isolation = Isolation::kReadCommitted, RetryPolicy retry = {});

/// One step of a component's schema.
struct Migration {
    int version;  ///< 1, 2, 3… in order, never reused
    std::string_view description;
    std::string_view sql;
};

/// Brings `component`'s schema to the last of `migrations`, each in its own transaction, under a
/// session advisory lock so N instances starting at once apply each step once. Versions are kept
/// in the table schema_migrations(component, version, description, applied_at).
/// @returns the version the schema is at. @throws Error (kConfiguration) when the database holds
/// a version newer than the last one known here (a newer release migrated it: refuse to run).
int migrate(Connection& c, std::string_view component, std::span<const Migration> migrations);

}  // namespace orderpipe::pg
