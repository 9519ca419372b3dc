#include "orderpipe/pg/pg.hpp"

#include <libpq-fe.h>
#include <poll.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <thread>

namespace orderpipe::pg {
namespace {

std::string trim(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s;
}

bool contains(std::string_view haystack, std::string_view needle) {
    return haystack.find(needle) != std::string_view::npos;
}

/// libpq reports why a connection could not be made as text only (no SQLSTATE). Only what a
/// retry cannot mend is kConfiguration (the service then exits 2): the server refused these
/// credentials or this database, or the URL's options are wrong. Everything else — refused or
/// reset connections, a server starting up or full, SSL broken mid-handshake ("SSL SYSCALL
/// error") — is the database being away, which start-up waits out.
ErrorKind classify_connect_failure(std::string_view msg) {
    for (std::string_view what :
         {"authentication failed", "does not exist", "no pg_hba.conf entry", "no password supplied",
          "is not permitted to log in", "permission denied for database", "invalid sslmode value",
          "invalid integer value", "invalid port number", "server does not support SSL",
          "certificate verify failed", "root certificate file", "unsupported"}) {
        if (contains(msg, what)) return ErrorKind::kConfiguration;
    }
    return ErrorKind::kConnectionLost;
}

/// libpq's message with every quoted part elided: a parse error may quote a piece of the URL,
/// and that piece may be the password.
std::string without_quoted(std::string_view msg) {
    std::string out;
    bool quoted = false;
    for (const char c : msg) {
        if (c == '"') {
            out += quoted ? "\"" : "\"…";
            quoted = !quoted;
        } else if (!quoted) {
            out += c;
        }
    }
    return out;
}

}  // namespace

std::string_view to_string(ErrorKind k) {
    switch (k) {
        case ErrorKind::kSerialization:
            return "serialization failure";
        case ErrorKind::kDeadlock:
            return "deadlock";
        case ErrorKind::kUniqueViolation:
            return "unique violation";
        case ErrorKind::kConnectionLost:
            return "connection lost";
        case ErrorKind::kTimeout:
            return "timeout";
        case ErrorKind::kConfiguration:
            return "configuration";
        case ErrorKind::kOther:
            return "error";
    }
    return "error";
}

ErrorKind classify(std::string_view s) {
    if (s == "40001") return ErrorKind::kSerialization;
    if (s == "40P01") return ErrorKind::kDeadlock;
    if (s == "23505") return ErrorKind::kUniqueViolation;
    // connection_exception; admin_shutdown, crash_shutdown, cannot_connect_now;
    // too_many_connections
    if (s.starts_with("08") || s == "57P01" || s == "57P02" || s == "57P03" || s == "53300") {
        return ErrorKind::kConnectionLost;
    }
    if (s == "57014" || s == "55P03")
        return ErrorKind::kTimeout;  // query_canceled, lock_not_available
    // invalid_authorization_specification, invalid_password, invalid_catalog_name
    if (s.starts_with("28") || s == "3D000") return ErrorKind::kConfiguration;
    return ErrorKind::kOther;
}

std::string text_array(std::span<const std::string> values) {
    std::string out = "{";
    for (std::size_t i = 0; i < values.size(); ++i) {
        if (i > 0) out += ',';
        out += '"';
        for (const char c : values[i]) {
            if (c == '"' || c == '\\') out += '\\';
            out += c;
        }
        out += '"';
    }
    return out + "}";
}

std::string int_array(std::span<const std::int64_t> values) {
    std::string out = "{";
    for (std::size_t i = 0; i < values.size(); ++i) {
        if (i > 0) out += ',';
        out += std::to_string(values[i]);
    }
    return out + "}";
}

std::string int_array(std::span<const std::optional<std::int64_t>> values) {
    std::string out = "{";
    for (std::size_t i = 0; i < values.size(); ++i) {
        if (i > 0) out += ',';
        out += values[i] ? std::to_string(*values[i]) : std::string("NULL");
    }
    return out + "}";
}

std::string bool_array(const std::vector<bool>& values) {
    std::string out = "{";
    for (std::size_t i = 0; i < values.size(); ++i) {
        if (i > 0) out += ',';
        out += values[i] ? 't' : 'f';
    }
    return out + "}";
}

// ---- Result -------------------------------------------------------------------------------

void Result::Clear::operator()(pg_result* r) const { PQclear(r); }

Result::Result(pg_result* r) : r_(r) {}

int Result::rows() const { return r_ ? PQntuples(r_.get()) : 0; }
int Result::columns() const { return r_ ? PQnfields(r_.get()) : 0; }

bool Result::is_null(int row, int col) const { return PQgetisnull(r_.get(), row, col) != 0; }

std::string_view Result::text(int row, int col) const {
    return {PQgetvalue(r_.get(), row, col),
            static_cast<std::size_t>(PQgetlength(r_.get(), row, col))};
}

std::int64_t Result::int64(int row, int col) const {
    const auto t = text(row, col);
    std::int64_t v = 0;
    const auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
    if (ec != std::errc() || p != t.data() + t.size()) {
        throw Error(
            ErrorKind::kOther, "",
            "column " + std::to_string(col) + " is not an integer: '" + std::string(t) + "'");
    }
    return v;
}

bool Result::boolean(int row, int col) const { return text(row, col) == "t"; }

std::int64_t Result::affected() const {
    const char* n = PQcmdTuples(r_.get());
    return (n == nullptr || *n == '\0') ? 0 : std::stoll(n);
}

// ---- Connection ---------------------------------------------------------------------------

void Connection::Finish::operator()(pg_conn* c) const { PQfinish(c); }

void check_url(const std::string& url) {
    if (url.empty()) throw Error(ErrorKind::kConfiguration, "", "the database URL is empty");
    char* err = nullptr;
    PQconninfoOption* opts = PQconninfoParse(url.c_str(), &err);
    if (opts == nullptr) {
        const std::string why = err != nullptr ? without_quoted(trim(err)) : "out of memory";
        PQfreemem(err);
        throw Error(ErrorKind::kConfiguration, "",
                    "the database URL is not a libpq connection string: " + why);
    }
    PQconninfoFree(opts);
}

std::string describe(const std::string& url) {
    char* err = nullptr;
    PQconninfoOption* opts = PQconninfoParse(url.c_str(), &err);
    if (opts == nullptr) {
        PQfreemem(err);
        return "(a database URL libpq cannot read)";
    }
    std::map<std::string, std::string, std::less<>> v;
    for (const auto* o = opts; o->keyword != nullptr; ++o) {
        if (o->val != nullptr) v[o->keyword] = o->val;
    }
    PQconninfoFree(opts);
    std::string out = "postgresql://";
    if (v.contains("user")) out += v["user"] + "@";
    out += v.contains("host") ? v["host"] : v.contains("hostaddr") ? v["hostaddr"] : "localhost";
    if (v.contains("port")) out += ":" + v["port"];
    out += "/" + (v.contains("dbname") ? v["dbname"] : std::string());
    return out;
}

Connection::Connection(const ConnectionOptions& o) {
    check_url(o.url);
    if (o.statement_timeout.count() > 0) answer_deadline_ = o.statement_timeout + kAnswerMargin;
    const std::string timeout = std::to_string(o.connect_timeout.count());
    // A peer that vanished (host down, network cut) is noticed by TCP within ~15 s, idle or not:
    // keepalives while waiting for an answer, tcp_user_timeout while our bytes go unacknowledged.
    const std::string user_timeout = std::to_string(kTcpUserTimeout.count());
    // Ours first: what the URL says overrides them (expand_dbname).
    const std::array<const char*, 9> keys{"connect_timeout",
                                          "application_name",
                                          "keepalives",
                                          "keepalives_idle",
                                          "keepalives_interval",
                                          "keepalives_count",
                                          "tcp_user_timeout",
                                          "dbname",
                                          nullptr};
    const std::array<const char*, 9> values{timeout.c_str(),
                                            o.application_name.c_str(),
                                            "1",
                                            "5",
                                            "2",
                                            "4",
                                            user_timeout.c_str(),
                                            o.url.c_str(),
                                            nullptr};
    conn_.reset(PQconnectdbParams(keys.data(), values.data(), /*expand_dbname=*/1));
    if (!conn_) throw Error(ErrorKind::kConnectionLost, "", "libpq: out of memory");
    if (PQstatus(conn_.get()) != CONNECTION_OK) {
        const std::string msg = trim(PQerrorMessage(conn_.get()));
        throw Error(classify_connect_failure(msg), "",
                    "cannot connect to the database " + describe(o.url) + ": " + msg);
    }
    std::string set = "SET client_min_messages = warning;";  // no NOTICEs on stderr
    set += "SET statement_timeout = " + std::to_string(o.statement_timeout.count()) + ";";
    set += "SET lock_timeout = " + std::to_string(o.lock_timeout.count()) + ";";
    exec(set);
}

Connection::~Connection() = default;

void Connection::fail(pg_result* raw, std::string_view what) {
    Result r(raw);  // cleared on the way out
    const char* state = raw != nullptr ? PQresultErrorField(raw, PG_DIAG_SQLSTATE) : nullptr;
    std::string msg =
        trim(raw != nullptr && *PQresultErrorMessage(raw) != '\0' ? PQresultErrorMessage(raw)
                                                                  : PQerrorMessage(conn_.get()));
    const bool lost = PQstatus(conn_.get()) != CONNECTION_OK;
    if (lost) broken_ = true;
    ErrorKind kind = state != nullptr ? classify(state) : ErrorKind::kOther;
    if (lost) kind = ErrorKind::kConnectionLost;
    if (kind == ErrorKind::kConnectionLost) broken_ = true;
    throw Error(kind, state != nullptr ? state : "", std::string(what) + ": " + msg);
}

pg_result* Connection::await(bool sent, std::string_view what) {
    if (!sent) fail(nullptr, what);
    // The server cancels a statement at statement_timeout; a server that cannot (stopped,
    // swapped out, its host frozen) still answers TCP, so the client keeps its own deadline and
    // drops the connection when it passes.
    const auto deadline = std::chrono::steady_clock::now() + answer_deadline_;
    pg_result* first_error = nullptr;
    pg_result* last = nullptr;
    for (;;) {
        while (PQisBusy(conn_.get()) != 0) {
            int wait_ms = -1;
            if (answer_deadline_.count() > 0) {
                const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - std::chrono::steady_clock::now());
                if (left.count() <= 0) {
                    PQclear(first_error);
                    PQclear(last);
                    broken_ = true;
                    throw Error(ErrorKind::kTimeout, "",
                                std::string(what) + ": no answer from the database in " +
                                    std::to_string(answer_deadline_.count()) +
                                    " ms; the connection is dropped");
                }
                wait_ms = static_cast<int>(left.count());
            }
            pollfd p{PQsocket(conn_.get()), POLLIN, 0};
            if (::poll(&p, 1, wait_ms) < 0 && errno != EINTR) {
                PQclear(first_error);
                PQclear(last);
                broken_ = true;
                throw Error(ErrorKind::kConnectionLost, "", std::string(what) + ": poll failed");
            }
            if (PQconsumeInput(conn_.get()) == 0) {
                PQclear(first_error);
                PQclear(last);
                fail(nullptr, what);
            }
        }
        pg_result* r = PQgetResult(conn_.get());
        if (r == nullptr) break;
        const auto st = PQresultStatus(r);
        if ((st == PGRES_FATAL_ERROR || st == PGRES_BAD_RESPONSE) && first_error == nullptr) {
            first_error = r;
        } else if (first_error != nullptr) {
            PQclear(r);
        } else {
            PQclear(last);
            last = r;
        }
    }
    if (first_error != nullptr) {
        PQclear(last);
        fail(first_error, what);
    }
    if (last == nullptr) fail(nullptr, what);
    return last;
}

void Connection::exec(std::string_view sql) {
    const std::string s(sql);
    pg_result* r = await(PQsendQuery(conn_.get(), s.c_str()) != 0, s.substr(0, 120));
    const auto st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) fail(r, s.substr(0, 120));
    // A COMMIT of a transaction that had failed answers ROLLBACK, without an error.
    const bool rolled_back = sql == "COMMIT" && std::string_view(PQcmdStatus(r)) == "ROLLBACK";
    PQclear(r);
    if (rolled_back) {
        throw Error(ErrorKind::kOther, "",
                    "COMMIT: the transaction had failed and was rolled back");
    }
}

Result Connection::run(std::string_view sql, std::span<const Param> params) {
    auto it = prepared_.find(sql);
    if (it == prepared_.end()) {
        const std::string name = "s" + std::to_string(prepared_.size() + 1);
        const std::string s(sql);
        pg_result* r = await(PQsendPrepare(conn_.get(), name.c_str(), s.c_str(), 0, nullptr) != 0,
                             "prepare " + s.substr(0, 120));
        if (PQresultStatus(r) != PGRES_COMMAND_OK) fail(r, "prepare " + s);
        PQclear(r);
        it = prepared_.emplace(s, name).first;
    }
    std::vector<const char*> values;
    values.reserve(params.size());
    for (const auto& p : params) values.push_back(p.c_str());
    pg_result* r =
        await(PQsendQueryPrepared(conn_.get(), it->second.c_str(), static_cast<int>(values.size()),
                                  values.data(), nullptr, nullptr, 0) != 0,
              sql.substr(0, 120));
    const auto st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) fail(r, sql.substr(0, 120));
    return Result(r);
}

bool Connection::healthy() const {
    return conn_ && !broken_ && PQstatus(conn_.get()) == CONNECTION_OK;
}

int Connection::backend_pid() const { return PQbackendPID(conn_.get()); }

bool Connection::in_transaction() const {
    const auto s = PQtransactionStatus(conn_.get());
    return s == PQTRANS_INTRANS || s == PQTRANS_INERROR || s == PQTRANS_ACTIVE;
}

// ---- Transaction --------------------------------------------------------------------------

Transaction::Transaction(Connection& c, Isolation isolation) : c_(c) {
    switch (isolation) {
        case Isolation::kReadCommitted:
            c_.exec("BEGIN");
            break;
        case Isolation::kRepeatableRead:
            c_.exec("BEGIN ISOLATION LEVEL REPEATABLE READ");
            break;
        case Isolation::kSerializable:
            c_.exec("BEGIN ISOLATION LEVEL SERIALIZABLE");
            break;
    }
}

Transaction::~Transaction() {
    if (done_ || !c_.healthy()) return;
    try {
        c_.exec("ROLLBACK");
    } catch (const Error&) {  // NOLINT(bugprone-empty-catch): the connection is dropped
    }
}

void Transaction::commit() {
    done_ = true;
    c_.exec("COMMIT");
}

// ---- Pool ---------------------------------------------------------------------------------

Pool::Pool(ConnectionOptions options, std::size_t size)
    : options_(std::move(options)), size_(std::max<std::size_t>(size, 1)) {}

Pool::Lease::~Lease() {
    if (pool_ != nullptr && c_) pool_->give_back(std::move(c_));
}

Pool::Lease Pool::acquire(std::chrono::milliseconds wait) {
    std::unique_lock lock(mu_);
    const auto deadline = std::chrono::steady_clock::now() + wait;
    while (idle_.empty() && lent_ >= size_) {
        if (cv_.wait_until(lock, deadline) == std::cv_status::timeout && idle_.empty() &&
            lent_ >= size_) {
            throw Error(ErrorKind::kTimeout, "",
                        "no database connection came free in " + std::to_string(wait.count()) +
                            " ms (" + std::to_string(size_) + " in use)");
        }
    }
    ++lent_;
    if (!idle_.empty()) {
        auto c = std::move(idle_.back());
        idle_.pop_back();
        return Lease(*this, std::move(c));
    }
    lock.unlock();
    try {
        return Lease(*this, std::make_unique<Connection>(options_));
    } catch (...) {
        lock.lock();
        --lent_;
        cv_.notify_one();
        throw;
    }
}

void Pool::give_back(std::unique_ptr<Connection> c) {
    std::lock_guard lock(mu_);
    --lent_;
    if (c->healthy() && !c->in_transaction()) idle_.push_back(std::move(c));
    cv_.notify_one();
}

// ---- Scope --------------------------------------------------------------------------------

void Scope::together(const std::function<void()>& work) {
    auto lease = pool_->acquire();
    Transaction tx(*lease);
    enter(*lease);
    struct Leave {
        Scope& s;
        ~Leave() { s.leave(); }
    } leave_on_exit{*this};
    work();
    tx.commit();
}

void Scope::atomically(const std::function<void(Connection&)>& work) {
    if (current_ != nullptr) {
        work(*current_);
        return;
    }
    together([&] { work(*current_); });
}

// ---- in_transaction -----------------------------------------------------------------------

void in_transaction(Pool& pool, const std::function<void(Connection&)>& work, Isolation isolation,
                    RetryPolicy retry) {
    auto backoff = retry.first_backoff;
    for (int attempt = 1;; ++attempt) {
        bool committing = false;
        try {
            auto c = pool.acquire();
            Transaction tx(*c, isolation);
            work(*c);
            committing = true;
            tx.commit();
            return;
        } catch (const Error& e) {
            if (!e.retriable() || attempt >= retry.attempts) throw;
            if (committing && e.kind() == ErrorKind::kConnectionLost) throw;  // outcome unknown
        }
        std::this_thread::sleep_for(backoff);
        backoff = std::min(backoff * 2, retry.max_backoff);
    }
}

// ---- migrate ------------------------------------------------------------------------------

int migrate(Connection& c, std::string_view component, std::span<const Migration> migrations) {
    const std::string key = "orderpipe.migrate." + std::string(component);
    c.run("SELECT pg_advisory_lock(hashtextextended($1, 0))", {key});
    struct Unlock {
        Connection& c;
        const std::string& key;
        ~Unlock() {
            if (!c.healthy()) return;  // the lock went with the session
            try {
                c.run("SELECT pg_advisory_unlock(hashtextextended($1, 0))", {key});
            } catch (const Error&) {  // NOLINT(bugprone-empty-catch): ends with the session
            }
        }
    } unlock{c, key};

    c.exec(R"(CREATE TABLE IF NOT EXISTS schema_migrations (
        component   TEXT NOT NULL,
        version     INTEGER NOT NULL,
        description TEXT NOT NULL,
        applied_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
        PRIMARY KEY (component, version)))");
    auto r = c.run("SELECT COALESCE(MAX(version), 0) FROM schema_migrations WHERE component = $1",
                   {std::string(component)});
    int at = static_cast<int>(r.int64(0, 0));
    const int known = migrations.empty() ? 0 : migrations.back().version;
    if (at > known) {
        throw Error(ErrorKind::kConfiguration, "",
                    "the database's " + std::string(component) + " schema is at version " +
                        std::to_string(at) + ", newer than this release knows (" +
                        std::to_string(known) + "): run the release that migrated it, or newer");
    }
    for (const auto& m : migrations) {
        if (m.version <= at) continue;
        Transaction tx(c);
        c.exec(m.sql);
        c.run(
            "INSERT INTO schema_migrations(component, version, description) "
            "VALUES ($1, $2, $3)",
            {std::string(component), m.version, std::string(m.description)});
        tx.commit();
        at = m.version;
    }
    return at;
}

}  // namespace orderpipe::pg
