// The email client against a local HTTP server playing the provider: sends beyond its
// connections wait for one, and still answer within their own timeout counted from send().

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <prometheus/registry.h>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "email_client.hpp"
#include "orderpipe/http/server.hpp"

namespace {

using namespace std::chrono_literals;
using orderpipe::http::Request;
using orderpipe::http::Responder;
using orderpipe::http::Response;
using orderpipe::http::Server;
using orderpipe::http::ServerOptions;
using orderpipe::notification::EmailClient;
using orderpipe::notification::SendResult;
using Clock = std::chrono::steady_clock;

/// The provider: holds every request until the test answers it.
struct Provider {
    std::mutex mu;
    std::condition_variable changed;
    std::vector<std::pair<std::string, Responder>> held;  // Idempotency-Key, responder
    std::size_t most_held = 0;
    Server server{[] {
                      ServerOptions o;
                      o.address = "127.0.0.1";
                      o.service_name = "provider";
                      return o;
                  }(),
                  std::make_shared<prometheus::Registry>()};

    Provider() {
        server.route("POST", "/send", [this](Request&& req, Responder respond) {
            std::lock_guard lock(mu);
            held.emplace_back(req.header("Idempotency-Key").value_or(""), std::move(respond));
            most_held = std::max(most_held, held.size());
            changed.notify_all();
        });
        server.start();
    }
    std::string url() const {
        return "http://127.0.0.1:" + std::to_string(server.port()) + "/send";
    }
};

/// The answers the client delivered: id → result, and when.
struct Answers {
    std::mutex mu;
    std::condition_variable changed;
    std::map<std::uint64_t, std::pair<SendResult, Clock::time_point>> got;

    EmailClient::Done done() {
        return [this](std::uint64_t id, SendResult r) {
            std::lock_guard lock(mu);
            got.emplace(id, std::make_pair(std::move(r), Clock::now()));
            changed.notify_all();
        };
    }
    bool wait_for(std::size_t n, std::chrono::seconds within) {
        std::unique_lock lock(mu);
        return changed.wait_for(lock, within, [&] { return got.size() >= n; });
    }
};

EmailClient::Request request(std::uint64_t id) {
    return EmailClient::Request{.id = id,
                                .body = R"({"to":"a@example.com"})",
                                .idempotency_key = "n-" + std::to_string(id)};
}

}  // namespace

TEST_CASE("sends beyond the connections wait for one, and every one is answered",
          "[notification][email-client]") {
    Provider provider;
    Answers answers;
    EmailClient client(provider.url(), 10s, /*max_connections=*/2, answers.done());
    constexpr std::uint64_t kSends = 12;
    for (std::uint64_t id = 1; id <= kSends; ++id) client.send(request(id));
    CHECK(client.in_flight() == kSends);

    // Answer whatever the provider holds, until every send was answered.
    const auto deadline = Clock::now() + 20s;
    while (true) {
        std::vector<Responder> now;
        {
            std::unique_lock lock(provider.mu);
            provider.changed.wait_until(lock, std::min(deadline, Clock::now() + 100ms),
                                        [&] { return !provider.held.empty(); });
            for (auto& [key, r] : provider.held) now.push_back(std::move(r));
            provider.held.clear();
        }
        for (auto& r : now) r(Response::json(202, nlohmann::json::object()));
        std::lock_guard lock(answers.mu);
        if (answers.got.size() == kSends || Clock::now() > deadline) break;
    }
    REQUIRE(answers.got.size() == kSends);
    for (const auto& [id, answer] : answers.got) CHECK(answer.first.status == 202);
    CHECK(provider.most_held <= 2);  // never more requests at once than connections
    CHECK(client.in_flight() == 0);
}

TEST_CASE("a send waiting for a connection times out within its own timeout",
          "[notification][email-client]") {
    // One connection and a provider that never answers: the sends after the first wait for the
    // connection, and each is still answered within NOTIFY_TIMEOUT_MS of its send() — not one
    // timeout after another.
    Provider provider;
    Answers answers;
    constexpr auto kTimeout = 1000ms;
    constexpr std::uint64_t kSends = 40;
    EmailClient client(provider.url(), kTimeout, /*max_connections=*/1, answers.done());
    const auto sent = Clock::now();
    for (std::uint64_t id = 1; id <= kSends; ++id) client.send(request(id));
    REQUIRE(answers.wait_for(kSends, 30s));
    Clock::time_point last = sent;
    for (const auto& [id, answer] : answers.got) {
        CHECK(answer.first.status == 0);
        CHECK(answer.first.error == "timeout after 1000 ms");
        last = std::max(last, answer.second);
    }
    // One after another would take kSends timeouts; all together take one. The bound leaves
    // room for a loaded machine.
    CHECK(last - sent < 3 * kTimeout);
    // (The provider may hold more than one: a timed-out send's connection is closed by the
    // client before the provider drops what it held for it.)
    client.stop();
    // The provider's held answers are dropped with it (a 500 to a gone client).
}
