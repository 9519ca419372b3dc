// How the services start, refuse and stop, run as real processes: they listen at once and say
// what is missing, exit 2 on what an operator must fix (before touching Kafka), refuse a second
// instance (which would otherwise fence the running one, or sell its stock twice), refuse to
// start when their local state was lost, and stop on SIGTERM within SHUTDOWN_TIMEOUT.
#include "pipeline.hpp"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <future>
#include <sstream>

using namespace orderpipe;
using namespace orderpipe::testing;

namespace {

const std::string kOrder =
    R"({"customer_id":"c-42","customer_email":"ana@example.com","currency":"USD","items":[{"sku":"LAPTOP-001","quantity":1,"unit_price":"999.99"}]})";

std::string file_text(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::string base(std::uint16_t port) { return "http://127.0.0.1:" + std::to_string(port); }

/// A TCP port with a listener that never answers (a "broker" that is not Kafka would be
/// worse; a closed port is what a stopped broker looks like).
std::uint16_t closed_port() { return free_port(); }

}  // namespace

TEST_CASE("with Kafka unreachable the order-service listens at once, says why, and stops in time",
          "[lifecycle][kafka]") {
    Pipeline p;
    p.extra_env = {{"KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:" + std::to_string(closed_port())},
                   {"SHUTDOWN_TIMEOUT", "4s"}};
    p.start_order_process({}, /*wait=*/false);
    REQUIRE(eventually(
        [&] {
            try {
                return http_request("GET", base(p.order_port) + "/livez").status == 200;
            } catch (const std::exception&) {
                return false;
            }
        },
        std::chrono::seconds(5)));
    HttpResponse ready;
    REQUIRE(eventually([&] {
        ready = http_request("GET", base(p.order_port) + "/readyz");
        return ready.status == 503 && ready.json()["checks"]["kafka"].get<std::string>().find(
                                          "unreachable") != std::string::npos;
    }));
    CHECK(ready.json()["detail"].get<std::string>().find("kafka") != std::string::npos);
    auto post = http_request("POST", base(p.order_port) + "/orders", kOrder,
                             {"Content-Type: application/json"});
    CHECK(post.status == 503);
    CHECK(post.headers.count("retry-after") == 1);
    const auto started = std::chrono::steady_clock::now();
    CHECK(p.order_process->terminate(std::chrono::seconds(10)) == 0);
    CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(6));
}

TEST_CASE("a missing topic is named by /readyz, and orders are refused meanwhile",
          "[lifecycle][kafka]") {
    Pipeline p;
    p.extra_env = {{"TOPIC_PREFIX", p.prefix + ".nothing-here."}};
    p.start_order_process({}, /*wait=*/false);
    HttpResponse ready;
    REQUIRE(eventually([&] {
        try {
            ready = http_request("GET", base(p.order_port) + "/readyz");
            return ready.status == 503 && ready.json()["checks"].contains("topics");
        } catch (const std::exception&) {
            return false;
        }
    }));
    const std::string topics = ready.json()["checks"]["topics"];
    CHECK(topics.find(p.prefix + ".nothing-here.orders.events") != std::string::npos);
    CHECK(topics.find("scripts/create-topics.sh") != std::string::npos);
    CHECK(http_request("POST", base(p.order_port) + "/orders", kOrder,
                       {"Content-Type: application/json"})
              .status == 503);
    CHECK(p.order_process->terminate() == 0);
}

TEST_CASE("settings an operator must fix exit 2, naming what is wrong", "[lifecycle][kafka]") {
    Pipeline p;
    struct Case {
        std::string name;
        std::map<std::string, std::string> env;
        std::string says;
    };
    // A port in use.
    int busy = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
    addr.sin_port = 0;
    REQUIRE(::bind(busy, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(busy, 1) == 0);
    socklen_t len = sizeof addr;
    ::getsockname(busy, reinterpret_cast<sockaddr*>(&addr), &len);
    const auto busy_port = ntohs(addr.sin_port);
    const std::vector<Case> cases = {
        {"a refused KAFKA_* property", {{"KAFKA_NO_SUCH_PROPERTY", "1"}}, "no.such.property"},
        {"a bad value", {{"COMMIT_TIMEOUT", "soon"}}, "COMMIT_TIMEOUT"},
        {"an unwritable DATA_DIR", {{"DATA_DIR", "/proc/orderpipe-cannot-be-here"}}, "DATA_DIR"},
        {"a port in use", {{"HTTP_PORT", std::to_string(busy_port)}}, "port"},
    };
    for (const auto& c : cases) {
        for (const std::string service : {"order-service", "inventory-service"}) {
            INFO(service << ": " << c.name);
            auto env = p.env(service);
            env["HTTP_PORT"] = std::to_string(free_port());
            for (const auto& [k, v] : c.env) env[k] = v;
            const std::string log = p.dir.path() + "/" + service + "-config.log";
            ChildProcess child(
                service == "order-service" ? ORDER_SERVICE_BIN : INVENTORY_SERVICE_BIN, env, log);
            CHECK(child.wait_exit(std::chrono::seconds(10)) == 2);
            CHECK(file_text(log).find(c.says) != std::string::npos);
        }
    }
    ::close(busy);
}

TEST_CASE("a second order-service with the same INSTANCE_ID on a busy port never fences the first",
          "[lifecycle][kafka][fencing]") {
    Pipeline p;
    p.start_inventory();
    p.start_order_process();
    const auto id = p.place({{"LAPTOP-001", 1}});
    REQUIRE(p.wait_terminal(id)["status"] == "CONFIRMED");

    // Same INSTANCE_ID (same transactional ids), same port: it must fail on the port before it
    // touches Kafka. (It used to fence the running instance's producers first.)
    auto env = p.env("order-service");
    env["HTTP_PORT"] = std::to_string(p.order_port);
    env["DATA_DIR"] = p.dir.path() + "/second-order-service";
    ChildProcess second(ORDER_SERVICE_BIN, env, p.dir.path() + "/second.log");
    CHECK(second.wait_exit(std::chrono::seconds(15)) == 2);
    // Same DATA_DIR, another port: refused by the data directory's lock, also before Kafka.
    env["DATA_DIR"] = p.dir.path() + "/order-service";
    env["HTTP_PORT"] = std::to_string(free_port());
    ChildProcess third(ORDER_SERVICE_BIN, env, p.dir.path() + "/third.log");
    CHECK(third.wait_exit(std::chrono::seconds(15)) == 2);
    CHECK(file_text(p.dir.path() + "/third.log").find("in use by another process") !=
          std::string::npos);

    // Its own DATA_DIR and port: nothing local stops it, but the first one is alive with the
    // same id (it answers /livez where its group member says): refused, naming it. (It used to
    // fence the first and serve with an empty Idempotency-Key store: a retried key got a
    // second order.)
    env["DATA_DIR"] = p.dir.path() + "/fourth-order-service";
    env["HTTP_PORT"] = std::to_string(free_port());
    ChildProcess fourth(ORDER_SERVICE_BIN, env, p.dir.path() + "/fourth.log");
    CHECK(fourth.wait_exit(std::chrono::seconds(60)) == 2);
    const auto fourth_says = file_text(p.dir.path() + "/fourth.log");
    INFO(fourth_says);
    CHECK(fourth_says.find("with this INSTANCE_ID") != std::string::npos);
    CHECK(fourth_says.find(":" + std::to_string(p.order_port)) != std::string::npos);

    // The first one is untouched: ready, taking and deciding orders, never fenced.
    CHECK(Pipeline::ready(p.order_port));
    const auto after = p.place({{"LAPTOP-001", 1}});
    CHECK(p.wait_terminal(after)["status"] == "CONFIRMED");
    CHECK(p.order_process->running());
    CHECK(file_text(p.dir.path() + "/order-service.log").find("fenced") == std::string::npos);

    // Stopped, and started again on an empty DATA_DIR: its Idempotency-Keys are gone while the
    // group has history, so it refuses (as the inventory does), saying how to recover.
    REQUIRE(p.order_process->terminate() == 0);
    env["DATA_DIR"] = p.dir.path() + "/empty-order-service";
    ChildProcess empty(ORDER_SERVICE_BIN, env, p.dir.path() + "/empty.log");
    CHECK(empty.wait_exit(std::chrono::seconds(60)) == 2);
    const auto empty_says = file_text(p.dir.path() + "/empty.log");
    INFO(empty_says);
    CHECK(empty_says.find("holds no state") != std::string::npos);
    CHECK(empty_says.find("Idempotency-Key") != std::string::npos);

    // The original, restarted on its own DATA_DIR, carries on.
    p.start_order_process();
    CHECK(p.wait_terminal(p.place({{"LAPTOP-001", 1}}))["status"] == "CONFIRMED");
}

TEST_CASE("a second inventory-service is refused, and so is one whose local state was lost",
          "[lifecycle][kafka][instances]") {
    Pipeline p;
    p.start_inventory_process();
    p.start_orders();
    for (int i = 0; i < 3; ++i)
        REQUIRE(p.wait_terminal(p.place({{"LAPTOP-001", 10}}))["status"] == "CONFIRMED");
    REQUIRE(p.stock("LAPTOP-001")["available"] == 20);

    // Another INSTANCE_ID with a DATA_DIR of its own would join the group and sell its own
    // copy of the stock (50 laptops, 83 confirmed): refused while the first one runs.
    auto env = p.env("inventory-service");
    env["INSTANCE_ID"] = "another";
    env["DATA_DIR"] = p.dir.path() + "/inventory-another";
    env["HTTP_PORT"] = std::to_string(free_port());
    ChildProcess other(INVENTORY_SERVICE_BIN, env, p.dir.path() + "/inventory-another.log");
    CHECK(other.wait_exit(std::chrono::seconds(30)) == 2);
    CHECK(file_text(p.dir.path() + "/inventory-another.log").find("another instance") !=
          std::string::npos);

    // The same INSTANCE_ID with an empty DATA_DIR while the first one runs: a live twin,
    // refused before it fences anything.
    env = p.env("inventory-service");
    env["DATA_DIR"] = p.dir.path() + "/inventory-empty";
    env["HTTP_PORT"] = std::to_string(free_port());
    ChildProcess twin(INVENTORY_SERVICE_BIN, env, p.dir.path() + "/inventory-twin.log");
    CHECK(twin.wait_exit(std::chrono::seconds(60)) == 2);
    CHECK(file_text(p.dir.path() + "/inventory-twin.log").find("with this INSTANCE_ID") !=
          std::string::npos);

    // The first one never noticed: still ready, still the only seller of its stock.
    CHECK(Pipeline::ready(p.inventory_port));
    CHECK(p.wait_terminal(p.place({{"LAPTOP-001", 10}}))["status"] == "CONFIRMED");
    CHECK(p.stock("LAPTOP-001")["available"] == 10);
    CHECK(p.inventory_process->terminate() == 0);

    // Stopped, the same INSTANCE_ID with an empty DATA_DIR would seed a fresh catalog and go on
    // from the group's offsets (selling the same units twice): refused, saying how to recover.
    // (The twin above already seeded a catalog there before it was refused: that file, never
    // verified, is still no state.)
    ChildProcess empty(INVENTORY_SERVICE_BIN, env, p.dir.path() + "/inventory-empty.log");
    CHECK(empty.wait_exit(std::chrono::seconds(60)) == 2);
    const auto says = file_text(p.dir.path() + "/inventory-empty.log");
    CHECK(says.find("holds no state") != std::string::npos);
    CHECK(says.find("kafka-consumer-groups") != std::string::npos);

    // Restarted on its own DATA_DIR it carries on from its state.
    p.start_inventory_process();
    CHECK(p.stock("LAPTOP-001")["available"] == 10);
    CHECK(p.wait_terminal(p.place({{"LAPTOP-001", 10}}))["status"] == "CONFIRMED");
    CHECK(p.stock("LAPTOP-001")["available"] == 0);
}

TEST_CASE(
    "a DATA_DIR restored from a backup older than what was processed is refused; the backup "
    "procedure of docs/CONFIGURATION.md never oversells",
    "[lifecycle][kafka][instances][backup]") {
    namespace fs = std::filesystem;
    Pipeline p(nlohmann::json::array(
        {{{"sku", "LAST-001"}, {"name", "Ten left"}, {"unit_price", "999.99"}, {"stock", 10}}}));
    p.start_inventory_process();
    p.start_orders();
    const std::string data_dir = p.env("inventory-service").at("DATA_DIR");
    const auto backup = [&](const std::string& to) {
        // docs/CONFIGURATION.md "Backup and restore": stop, copy DATA_DIR, start.
        REQUIRE(p.inventory_process->terminate() == 0);
        fs::remove_all(to);
        fs::copy(data_dir, to, fs::copy_options::recursive);
        p.start_inventory_process();
    };
    const auto restore = [&](const std::string& from) {  // the service stopped
        fs::remove_all(data_dir);
        fs::copy(from, data_dir, fs::copy_options::recursive);
    };
    const std::string old_backup = p.dir.path() + "/backup-old";
    const std::string new_backup = p.dir.path() + "/backup-new";
    REQUIRE(p.wait_terminal(p.place({{"LAST-001", 1}}))["status"] == "CONFIRMED");
    backup(old_backup);  // 9 left
    for (int i = 0; i < 9; ++i) {
        REQUIRE(p.wait_terminal(p.place({{"LAST-001", 1}}))["status"] == "CONFIRMED");
    }
    REQUIRE(p.stock("LAST-001")["available"] == 0);
    backup(new_backup);  // 0 left

    // The old backup holds 9 units the group has already sold: refused, naming the partitions
    // and both ways out. (It used to start at once and sell the 9 units again.)
    REQUIRE(p.inventory_process->terminate() == 0);
    restore(old_backup);
    auto env = p.env("inventory-service");
    env["HTTP_PORT"] = std::to_string(p.inventory_port);
    ChildProcess stale(INVENTORY_SERVICE_BIN, env, p.dir.path() + "/inventory-stale.log");
    CHECK(stale.wait_exit(std::chrono::seconds(60)) == 2);
    const auto says = file_text(p.dir.path() + "/inventory-stale.log");
    INFO(says);
    CHECK(says.find("older than what inventory-service has processed") != std::string::npos);
    CHECK(says.find("offset(s) consumed after it") != std::string::npos);
    CHECK(says.find("--reset-offsets") != std::string::npos);

    // The latest backup, taken at the last stop, is accepted: nothing is sold twice.
    restore(new_backup);
    p.start_inventory_process();
    CHECK(p.stock("LAST-001")["available"] == 0);
    CHECK(p.stock("LAST-001")["reserved"] == 10);
    CHECK(p.wait_terminal(p.place({{"LAST-001", 1}}))["reason"] == "INSUFFICIENT_STOCK");
}

TEST_CASE("a second analytics-service with the same INSTANCE_ID exits 2 instead of waiting",
          "[lifecycle][kafka][instances]") {
    Pipeline p;
    p.start_analytics_process();
    // Its own DATA_DIR and port, the default INSTANCE_ID: the running one is alive with the same
    // id, so the newcomer refuses. (It used to wait in start-up for the other to leave the
    // group, forever.)
    auto env = p.env("analytics-service");
    env["DATA_DIR"] = p.dir.path() + "/analytics-second";
    env["HTTP_PORT"] = std::to_string(free_port());
    ChildProcess second(ANALYTICS_SERVICE_BIN, env, p.dir.path() + "/analytics-second.log");
    CHECK(second.wait_exit(std::chrono::seconds(60)) == 2);
    const auto says = file_text(p.dir.path() + "/analytics-second.log");
    INFO(says);
    CHECK(says.find("with this INSTANCE_ID") != std::string::npos);
    CHECK(Pipeline::ready(p.analytics_port));
}

TEST_CASE("on SIGTERM an open long-poll is answered with the order's current state",
          "[lifecycle][kafka][stop]") {
    Pipeline p;  // no inventory: the order stays PENDING
    p.start_order_process({{"ORDER_TIMEOUT", "10m"}});
    const auto id = p.place({{"LAPTOP-001", 1}});
    auto poll = std::async(std::launch::async, [&] {
        return http_request("GET",
                            base(p.order_port) + "/orders/" + id +
                                "?wait=CONFIRMED&timeout_ms=120000",
                            {}, {}, std::chrono::seconds(60));
    });
    REQUIRE(eventually(
        [&] { return Pipeline::metric(base(p.order_port), "order_long_polls") == 1; }));
    CHECK(p.order_process->terminate() == 0);
    // Answered, not dropped: before, it was closed without a response after the drain timeout.
    const auto answer = poll.get();
    CHECK(answer.status == 200);
    CHECK(answer.json()["status"] == "PENDING");
}
