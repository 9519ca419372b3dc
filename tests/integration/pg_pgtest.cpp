// libs/pg against a real PostgreSQL 15 server (the `postgres_server` fixture): statements,
// errors classified as they happen (not as a table says), a pool that drops what broke, retried
// transactions, and migrations applied once when many instances start at once.
#include "orderpipe/pg/pg.hpp"
#include "pg_support.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <csignal>
#include <latch>
#include <thread>
#include <utility>

using namespace orderpipe;
using namespace std::chrono_literals;

namespace {

using test::pg_fresh_database;
using test::pg_server_url;

std::string with_database(const std::string& url, const std::string& db) {
    return test::pg_with_database(url, db);
}
std::string fresh_database() { return pg_fresh_database(); }
std::string server_url() { return pg_server_url(); }

pg::ConnectionOptions options(const std::string& url) { return pg::ConnectionOptions{.url = url}; }

template <class F>
pg::Error error_of(F&& f) {
    try {
        f();
    } catch (const pg::Error& e) {
        return e;
    }
    FAIL("no pg::Error was thrown");
    throw std::logic_error("unreachable");
}

}  // namespace

TEST_CASE("statements with parameters, NULLs and integers round-trip", "[pg]") {
    pg::Connection c(options(fresh_database()));
    c.exec("CREATE TABLE t (k TEXT PRIMARY KEY, n BIGINT, note TEXT)");
    for (int i = 0; i < 3; ++i) {
        const auto r = c.run("INSERT INTO t(k, n, note) VALUES ($1, $2, $3)",
                             {"k" + std::to_string(i), std::int64_t{1} << (40 + i), nullptr});
        CHECK(r.affected() == 1);
    }
    const auto r = c.run("SELECT k, n, note FROM t WHERE n > $1 ORDER BY k", {std::int64_t{0}});
    REQUIRE(r.rows() == 3);
    CHECK(r.text(2, 0) == "k2");
    CHECK(r.int64(2, 1) == (std::int64_t{1} << 42));
    CHECK(r.is_null(0, 2));
    CHECK(r.text(0, 2).empty());
    const auto quoted = c.run("SELECT $1::text", {"it's; DROP TABLE t; --"});
    CHECK(quoted.text(0, 0) == "it's; DROP TABLE t; --");
    CHECK(c.run("SELECT count(*) FROM t").int64(0, 0) == 3);
}

TEST_CASE("errors are classified by what the server says", "[pg]") {
    const auto url = fresh_database();
    pg::Connection a(options(url));
    a.exec("CREATE TABLE t (k INT PRIMARY KEY, v INT NOT NULL)");
    a.exec("INSERT INTO t VALUES (1, 0), (2, 0)");

    SECTION("a duplicate key is a unique violation, retriable") {
        const auto e = error_of([&] { a.run("INSERT INTO t VALUES ($1, 0)", {1}); });
        CHECK(e.kind() == pg::ErrorKind::kUniqueViolation);
        CHECK(e.sqlstate() == "23505");
        CHECK(e.retriable());
        CHECK(a.healthy());
    }
    SECTION("a defect is not retriable") {
        const auto e = error_of([&] { a.exec("SELEC 1"); });
        CHECK(e.kind() == pg::ErrorKind::kOther);
        CHECK(e.sqlstate() == "42601");
        CHECK_FALSE(e.retriable());
        const auto n = error_of([&] { a.run("INSERT INTO t VALUES ($1, NULL)", {3}); });
        CHECK(n.sqlstate() == "23502");
        CHECK_FALSE(n.retriable());
    }
    SECTION("two transactions locking in opposite orders: one is a deadlock") {
        pg::Connection b(options(url));
        pg::Transaction ta(a);
        pg::Transaction tb(b);
        a.run("UPDATE t SET v = v + 1 WHERE k = 1");
        b.run("UPDATE t SET v = v + 1 WHERE k = 2");
        std::optional<pg::Error> from_b;
        std::thread other([&] {
            try {
                b.run("UPDATE t SET v = v + 1 WHERE k = 1");
            } catch (const pg::Error& e) {
                from_b = e;
            }
        });
        std::optional<pg::Error> from_a;
        try {
            a.run("UPDATE t SET v = v + 1 WHERE k = 2");
        } catch (const pg::Error& e) {
            from_a = e;
        }
        other.join();
        REQUIRE((from_a.has_value() != from_b.has_value()));
        const auto& e = from_a ? *from_a : *from_b;
        CHECK(e.kind() == pg::ErrorKind::kDeadlock);
        CHECK(e.retriable());
    }
    SECTION("concurrent serializable updates: a serialization failure") {
        pg::Connection b(options(url));
        pg::Transaction ta(a, pg::Isolation::kSerializable);
        pg::Transaction tb(b, pg::Isolation::kSerializable);
        CHECK(a.run("SELECT v FROM t WHERE k = 1").int64(0, 0) == 0);
        CHECK(b.run("SELECT v FROM t WHERE k = 1").int64(0, 0) == 0);
        a.run("UPDATE t SET v = 1 WHERE k = 1");
        ta.commit();
        const auto e = error_of([&] { b.run("UPDATE t SET v = 2 WHERE k = 1"); });
        CHECK(e.kind() == pg::ErrorKind::kSerialization);
        CHECK(e.retriable());
    }
    SECTION("a statement longer than statement_timeout is cancelled: a timeout") {
        auto o = options(url);
        o.statement_timeout = 200ms;
        pg::Connection slow(o);
        const auto e = error_of([&] { slow.exec("SELECT pg_sleep(5)"); });
        CHECK(e.kind() == pg::ErrorKind::kTimeout);
        CHECK(e.sqlstate() == "57014");
        CHECK(slow.healthy());
    }
    SECTION("a row lock held longer than lock_timeout: a timeout") {
        auto o = options(url);
        o.lock_timeout = 200ms;
        pg::Connection b(o);
        pg::Transaction ta(a);
        a.run("SELECT v FROM t WHERE k = 1 FOR UPDATE");
        pg::Transaction tb(b);
        const auto e = error_of([&] { b.run("SELECT v FROM t WHERE k = 1 FOR UPDATE"); });
        CHECK(e.kind() == pg::ErrorKind::kTimeout);
        CHECK(e.sqlstate() == "55P03");
    }
    SECTION("a session the server ends: connection lost, and the connection is not reused") {
        pg::Connection b(options(url));
        a.run("SELECT pg_terminate_backend($1)", {b.backend_pid()});
        const auto e = error_of([&] { b.run("SELECT 1"); });
        CHECK(e.kind() == pg::ErrorKind::kConnectionLost);
        CHECK(e.retriable());
        CHECK_FALSE(b.healthy());
    }
    SECTION("COMMIT of a transaction that failed is an error, not a silent rollback") {
        pg::Transaction tx(a);
        CHECK_THROWS(a.exec("SELEC 1"));
        const auto e = error_of([&] { tx.commit(); });
        CHECK_THAT(e.what(), Catch::Contains("rolled back"));
    }
}

TEST_CASE("a wrong URL names itself; an unreachable server is a lost connection", "[pg]") {
    const auto url = server_url();
    const auto bad = error_of([] { pg::Connection c(options("postgresql://a:b@h:notaport/x")); });
    CHECK(bad.kind() == pg::ErrorKind::kConfiguration);
    CHECK_THAT(bad.what(), Catch::Contains("postgresql://a@h:notaport/x"));
    CHECK_THAT(bad.what(), !Catch::Contains(":b@"));
    const auto missing =
        error_of([&] { pg::Connection c(options(with_database(url, "nope_db"))); });
    CHECK(missing.kind() == pg::ErrorKind::kConfiguration);
    CHECK_THAT(missing.what(), Catch::Contains("nope_db"));
    const auto role = error_of(
        [&] { pg::Connection c(options("postgresql://nobody@" + url.substr(url.find('@') + 1))); });
    CHECK(role.kind() == pg::ErrorKind::kConfiguration);
    // Port 1 on this host: nothing listens there.
    const auto away = error_of([] {
        auto o = options("postgresql://orderpipe@127.0.0.1:1/orderpipe");
        o.connect_timeout = 2s;
        pg::Connection c(o);
    });
    CHECK(away.kind() == pg::ErrorKind::kConnectionLost);
    // Where a URL points, never its password, however it was written.
    CHECK(pg::describe("host=h password=s3cret dbname=x") == "postgresql://h/x");
    CHECK(pg::describe("host=h password = 's3 cret' user=u port=6 dbname=x") ==
          "postgresql://u@h:6/x");
    CHECK(pg::describe("postgresql://u:s3cret@h/x?password=s3cret") == "postgresql://u@h/x");
    // A URL libpq cannot read: its message quotes the piece it choked on, which is elided.
    const auto unreadable = error_of([] { pg::check_url("postgresql://u:s3%zzcret@h/x"); });
    CHECK(unreadable.kind() == pg::ErrorKind::kConfiguration);
    CHECK_THAT(unreadable.what(), !Catch::Contains("s3") && !Catch::Contains("cret"));
    const auto unparsed = error_of([] { pg::check_url("host=h password='s3cret"); });
    CHECK_THAT(unparsed.what(), !Catch::Contains("s3cret"));
}

TEST_CASE("a server that stops answering is given up after statement_timeout and a margin",
          "[pg]") {
    // The backend is stopped (SIGSTOP): the kernel still answers TCP, the server cannot cancel
    // anything; only the client's own deadline ends the wait.
    auto o = options(fresh_database());
    o.statement_timeout = 300ms;
    pg::Connection c(o);
    const int pid = c.backend_pid();
    REQUIRE(::kill(pid, SIGSTOP) == 0);
    struct Resume {
        int pid;
        ~Resume() { ::kill(pid, SIGCONT); }
    } resume{pid};
    const auto started = std::chrono::steady_clock::now();
    const auto e = error_of([&] { c.run("SELECT 1"); });
    const auto waited = std::chrono::steady_clock::now() - started;
    CHECK(e.kind() == pg::ErrorKind::kTimeout);
    CHECK_THAT(e.what(), Catch::Contains("no answer from the database"));
    CHECK(!c.healthy());  // dropped, never lent again
    CHECK(waited >= 5s);  // the deadline, not an error of another kind
}

TEST_CASE("the pool lends at most its size, and drops a connection that broke", "[pg]") {
    const auto url = fresh_database();
    pg::Pool pool(options(url), 2);
    int first_pid = 0;
    {
        auto a = pool.acquire();
        auto b = pool.acquire();
        first_pid = a->backend_pid();
        CHECK(a->backend_pid() != b->backend_pid());
        const auto e = error_of([&] { pool.acquire(100ms); });
        CHECK(e.kind() == pg::ErrorKind::kTimeout);
    }
    {
        auto a = pool.acquire();
        pg::Connection killer(options(url));
        killer.run(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()");
        CHECK_THROWS(a->run("SELECT 1"));
    }
    // Both pooled sessions were ended: the broken one was dropped; the idle one breaks on use
    // and in_transaction runs the work again on a fresh connection.
    int runs = 0;
    pg::in_transaction(pool, [&](pg::Connection& c) {
        ++runs;
        c.run("SELECT 1");
    });
    CHECK(runs >= 1);
    CHECK(runs <= 2);
    auto c = pool.acquire();
    CHECK(c->backend_pid() != first_pid);
    CHECK(c->run("SELECT 1").int64(0, 0) == 1);
}

TEST_CASE("in_transaction runs a conflicting transaction again until it commits once", "[pg]") {
    const auto url = fresh_database();
    {
        pg::Connection c(options(url));
        c.exec(
            "CREATE TABLE counter (k INT PRIMARY KEY, v INT NOT NULL); "
            "INSERT INTO counter VALUES (1, 0)");
    }
    pg::Pool pool(options(url), 4);
    constexpr int kThreads = 4;
    constexpr int kEach = 25;
    std::atomic<int> attempts{0};
    // Every thread's first attempt reads before any of them writes: all but one must fail and
    // run again, however the machine schedules the threads (no hoping for a collision).
    std::latch all_read(kThreads);
    std::vector<std::thread> ts;
    for (int t = 0; t < kThreads; ++t) {
        ts.emplace_back([&] {
            bool first = true;
            for (int i = 0; i < kEach; ++i) {
                pg::in_transaction(
                    pool,
                    [&](pg::Connection& c) {
                        ++attempts;
                        const auto v = c.run("SELECT v FROM counter WHERE k = 1").int64(0, 0);
                        if (std::exchange(first, false)) all_read.arrive_and_wait();
                        c.run("UPDATE counter SET v = $1 WHERE k = 1", {v + 1});
                    },
                    pg::Isolation::kSerializable, pg::RetryPolicy{.attempts = 1000});
            }
        });
    }
    for (auto& t : ts) t.join();
    auto c = pool.acquire();
    CHECK(c->run("SELECT v FROM counter WHERE k = 1").int64(0, 0) == kThreads * kEach);
    // Read-then-write under SERIALIZABLE: without the retries, updates would be lost or thrown.
    CHECK(attempts.load() >= kThreads * kEach + kThreads - 1);
}

TEST_CASE("migrations: applied once when instances start at once; a newer schema is refused",
          "[pg]") {
    const auto url = fresh_database();
    static constexpr std::array kV2 = {
        pg::Migration{1, "items",
                      "CREATE TABLE items (id INT PRIMARY KEY); "
                      "CREATE TABLE applied (step INT NOT NULL)"},
        pg::Migration{2, "items.note",
                      "ALTER TABLE items ADD COLUMN note TEXT; "
                      "INSERT INTO applied VALUES (2)"},
    };
    constexpr int kInstances = 6;
    std::vector<std::thread> ts;
    std::atomic<int> at_two{0};
    std::atomic<int> failed{0};
    for (int i = 0; i < kInstances; ++i) {
        ts.emplace_back([&] {
            try {
                pg::Connection c(options(url));
                if (pg::migrate(c, "inventory", kV2) == 2) ++at_two;
            } catch (const std::exception& e) {
                UNSCOPED_INFO(e.what());
                ++failed;
            }
        });
    }
    for (auto& t : ts) t.join();
    CHECK(failed.load() == 0);
    CHECK(at_two.load() == kInstances);
    pg::Connection c(options(url));
    CHECK(c.run("SELECT count(*) FROM applied").int64(0, 0) == 1);
    CHECK(
        c.run("SELECT count(*) FROM schema_migrations WHERE component = 'inventory'").int64(0, 0) ==
        2);
    // Another component's history is its own.
    static constexpr std::array kOther = {pg::Migration{1, "x", "CREATE TABLE other_x (i INT)"}};
    CHECK(pg::migrate(c, "analytics", kOther) == 1);

    // An older release meets the schema a newer one left.
    const auto v1 = std::span(kV2).first(1);
    const auto e = error_of([&] { pg::migrate(c, "inventory", v1); });
    CHECK(e.kind() == pg::ErrorKind::kConfiguration);
    CHECK_THAT(e.what(), Catch::Contains("version 2") && Catch::Contains("newer"));
    // The lock was given back: the same session migrates again at once.
    CHECK(pg::migrate(c, "inventory", kV2) == 2);
}

TEST_CASE("a failed migration step is rolled back whole, and the next start retries it", "[pg]") {
    const auto url = fresh_database();
    pg::Connection c(options(url));
    static constexpr std::array kBad = {
        pg::Migration{1, "a", "CREATE TABLE a (i INT)"},
        pg::Migration{2, "b", "CREATE TABLE b (i INT); CREATE TABLE broken (i NOTATYPE)"},
    };
    CHECK_THROWS(pg::migrate(c, "svc", kBad));
    CHECK(c.run("SELECT COALESCE(MAX(version), 0) FROM schema_migrations WHERE component = 'svc'")
              .int64(0, 0) == 1);
    CHECK(c.run("SELECT to_regclass('b') IS NULL").boolean(0, 0));
    static constexpr std::array kFixed = {
        pg::Migration{1, "a", "CREATE TABLE a (i INT)"},
        pg::Migration{2, "b", "CREATE TABLE b (i INT)"},
    };
    CHECK(pg::migrate(c, "svc", kFixed) == 2);
}
