#pragma once
// For tests against the `postgres_server` fixture: the server's URL and a database of a test's
// own, so nothing one test leaves is seen by another. Tests that crash the server start one of
// their own (PrivatePostgres).

#include "orderpipe/pg/pg.hpp"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>
#include <string>

namespace orderpipe::test {

inline std::string pg_server_url() {
    std::ifstream in(ORDERPIPE_PG_STATE_DIR "/url");
    std::string url;
    std::getline(in, url);
    if (url.empty()) {
        throw std::runtime_error("no PostgreSQL URL in " ORDERPIPE_PG_STATE_DIR
                                 "/url: run with the postgres_server fixture");
    }
    return url;
}

/// `url` naming database `db` instead.
inline std::string pg_with_database(const std::string& url, const std::string& db) {
    return url.substr(0, url.rfind('/') + 1) + db;
}

/// Creates an empty database and returns its URL.
inline std::string pg_fresh_database() {
    static std::mt19937_64 rng{std::random_device{}()};
    const std::string name = "t_" + std::to_string(rng() % 1'000'000'000'000ULL);
    pg::Connection admin(pg::ConnectionOptions{.url = pg_server_url()});
    admin.exec("CREATE DATABASE " + name);
    return pg_with_database(pg_server_url(), name);
}

/// A PostgreSQL server of a test's own (scripts/postgres.sh), in `dir`, for tests that SIGKILL
/// and restart it. Stopped by the destructor.
class PrivatePostgres {
  public:
    PrivatePostgres(std::string source_dir, std::string dir)
        : script_(std::move(source_dir) + "/scripts/postgres.sh"), dir_(std::move(dir)) {
        start();
        std::ifstream in(dir_ + "/url");
        std::getline(in, url_);
        if (url_.empty()) throw std::runtime_error("postgres.sh wrote no URL in " + dir_);
    }
    ~PrivatePostgres() { run("stop"); }
    PrivatePostgres(const PrivatePostgres&) = delete;
    PrivatePostgres& operator=(const PrivatePostgres&) = delete;

    const std::string& url() const { return url_; }
    /// Starts it (again, on the same port and data). @throws when it does not come up.
    void start() {
        if (run("start --url-file " + dir_ + "/url") != 0) {
            throw std::runtime_error("scripts/postgres.sh start failed (" + dir_ + "/pg.log)");
        }
    }
    /// SIGKILLs the server and every backend: a crash.
    void kill() { run("kill"); }

  private:
    int run(const std::string& args) const {
        const std::string cmd =
            script_ + " " + args + " --data-dir " + dir_ + " >>" + dir_ + "/pg.log 2>&1";
        std::filesystem::create_directories(dir_);
        return std::system(cmd.c_str());  // NOLINT(cert-env33-c): a test's own script
    }
    std::string script_;
    std::string dir_;
    std::string url_;
};

}  // namespace orderpipe::test
