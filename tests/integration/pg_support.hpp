#pragma once
// For tests against the `postgres_server` fixture: the server's URL and a database of a test's
// own, so nothing one test leaves is seen by another.

#include "orderpipe/pg/pg.hpp"

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

}  // namespace orderpipe::test
