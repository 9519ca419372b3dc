#pragma once
// A whole order pipeline on its own topics, groups and data dirs: order-service and
// inventory-service, each either in-process or as a child process (for SIGKILL tests).

#include "inventory_service.hpp"
#include "order_service.hpp"
#include "support.hpp"

#include "orderpipe/kafka/event_record.hpp"

#include <catch2/catch.hpp>

#include <fstream>

namespace orderpipe::testing {

inline const std::vector<std::string> kPipelineTopics = {
    "orders.events",          "inventory.requests",     "inventory.responses",
    "inventory.events",       "notifications.requests", "inventory.requests.dlq",
    "inventory.responses.dlq"};

struct Pipeline {
    std::string prefix = unique_name("saga");
    std::map<std::string, std::string> topics = create_test_topics(prefix, kPipelineTopics);
    TempDir dir;
    std::string seed_path = dir.path() + "/seed.json";
    std::chrono::milliseconds order_timeout{30000};
    std::unique_ptr<order::OrderService> orders;
    std::unique_ptr<inventory::InventoryService> inventory;
    std::unique_ptr<ChildProcess> order_process;
    std::unique_ptr<ChildProcess> inventory_process;
    std::uint16_t order_port = 0;
    std::uint16_t inventory_port = 0;

    explicit Pipeline(
        const nlohmann::json& catalog = nlohmann::json::array(
            {{{"sku", "LAPTOP-001"}, {"name", "Laptop"}, {"unit_price", "999.99"}, {"stock", 50}},
             {{"sku", "MOUSE-001"}, {"name", "Mouse"}, {"unit_price", "29.99"}, {"stock", 200}}})) {
        std::ofstream(seed_path) << catalog.dump();
    }
    ~Pipeline() {
        orders.reset();
        inventory.reset();
    }

    std::string topic(const std::string& name) const { return topics.at(name); }

    /// Environment for a service child process (SPEC §10 names).
    std::map<std::string, std::string> env(const std::string& service) const {
        return {{"KAFKA_BOOTSTRAP_SERVERS", bootstrap()},
                {"DATA_DIR", dir.path() + "/" + service},
                {"INSTANCE_ID", prefix},
                {"LOG_LEVEL", "info"},
                {"INVENTORY_SEED", seed_path},
                {"ORDER_TIMEOUT", std::to_string(order_timeout.count())},
                {"TOPIC_PREFIX", prefix + "."},
                {"GROUP_PREFIX", prefix + "-"}};
    }

    order::OrderServiceConfig order_config() const {
        EnvReader e(env("order-service"));
        auto c = order::OrderServiceConfig::from_env(e);
        e.finish();
        c.common.http_port = 0;
        return c;
    }
    inventory::InventoryServiceConfig inventory_config() const {
        EnvReader e(env("inventory-service"));
        auto c = inventory::InventoryServiceConfig::from_env(e);
        e.finish();
        c.common.http_port = 0;
        return c;
    }

    void start_orders() {
        orders = std::make_unique<order::OrderService>(order_config());
        orders->start();
        order_port = orders->http_port();
        wait_ready(order_port);
    }
    void start_inventory() {
        inventory = std::make_unique<inventory::InventoryService>(inventory_config());
        inventory->start();
        inventory_port = inventory->http_port();
        wait_ready(inventory_port);
    }
    void start_order_process() {
        order_port = free_port();
        auto e = env("order-service");
        e["HTTP_PORT"] = std::to_string(order_port);
        order_process =
            std::make_unique<ChildProcess>(ORDER_SERVICE_BIN, e, dir.path() + "/order-service.log");
        wait_ready(order_port);
    }
    void start_inventory_process() {
        inventory_port = free_port();
        auto e = env("inventory-service");
        e["HTTP_PORT"] = std::to_string(inventory_port);
        inventory_process = std::make_unique<ChildProcess>(INVENTORY_SERVICE_BIN, e,
                                                           dir.path() + "/inventory-service.log");
        wait_ready(inventory_port);
    }

    static void wait_ready(std::uint16_t port) {
        REQUIRE(eventually(
            [&] {
                try {
                    return http_request("GET",
                                        "http://127.0.0.1:" + std::to_string(port) + "/readyz", {},
                                        {}, std::chrono::seconds(2))
                               .status == 200;
                } catch (const std::exception&) {
                    return false;
                }
            },
            std::chrono::seconds(60)));
    }

    std::string order_url(const std::string& path) const {
        return "http://127.0.0.1:" + std::to_string(order_port) + path;
    }
    std::string inventory_url(const std::string& path) const {
        return "http://127.0.0.1:" + std::to_string(inventory_port) + path;
    }

    /// POSTs an order; returns its id (REQUIREs 201).
    std::string place(const std::vector<std::pair<std::string, int>>& lines) const {
        nlohmann::json items = nlohmann::json::array();
        for (const auto& [sku, qty] : lines) {
            items.push_back({{"sku", sku},
                             {"quantity", qty},
                             {"unit_price", sku == "MOUSE-001" ? "29.99" : "999.99"}});
        }
        nlohmann::json body = {{"customer_id", "c-42"},
                               {"customer_email", "ana@example.com"},
                               {"currency", "USD"},
                               {"items", items}};
        auto r = http_request("POST", order_url("/orders"), body.dump(),
                              {"Content-Type: application/json"});
        REQUIRE(r.status == 201);
        return r.json()["order_id"];
    }

    /// GET with ?wait=terminal.
    nlohmann::json wait_terminal(const std::string& id, int timeout_ms = 30000) const {
        auto r = http_request(
            "GET",
            order_url("/orders/" + id + "?wait=terminal&timeout_ms=" + std::to_string(timeout_ms)));
        REQUIRE(r.status == 200);
        return r.json();
    }

    nlohmann::json stock(const std::string& sku) const {
        auto r = http_request("GET", inventory_url("/inventory/" + sku));
        REQUIRE(r.status == 200);
        return r.json();
    }

    /// Decoded events of a topic (read_committed), in partition order.
    std::vector<CloudEvent> events(const std::string& name, std::size_t at_least = 0) const {
        std::vector<CloudEvent> out;
        for (const auto& rec : read_committed(topic(name), at_least)) {
            auto e = kafka::from_record(rec);
            if (auto* ev = std::get_if<CloudEvent>(&e)) out.push_back(*ev);
        }
        return out;
    }
};

inline std::size_t count_events(const std::vector<CloudEvent>& events, const std::string& type,
                                const std::string& order_id) {
    std::size_t n = 0;
    for (const auto& e : events) n += (e.type == type && e.subject == order_id) ? 1 : 0;
    return n;
}

}  // namespace orderpipe::testing
