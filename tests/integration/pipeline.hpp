#pragma once
// A whole order pipeline on its own topics (every topic of the contract, under a unique
// TOPIC_PREFIX), groups and data dirs: order-service and inventory-service, each either
// in-process or as a child process (for SIGKILL tests). Services are configured the way an
// operator does it: through the environment variables of docs/CONFIGURATION.md.

#include "analytics_service.hpp"
#include "inventory_service.hpp"
#include "notification_service.hpp"
#include "order_service.hpp"
#include "support.hpp"

#include "orderpipe/common/ids.hpp"
#include "orderpipe/contract/events.hpp"
#include "orderpipe/kafka/event_record.hpp"
#include "orderpipe/kafka/producer.hpp"

#include <catch2/catch.hpp>

#include <fstream>

namespace orderpipe::testing {

struct Pipeline {
    std::string prefix = unique_name("p");
    std::map<std::string, std::string> topics = create_contract_topics(prefix);
    TempDir dir;
    std::string seed_path = dir.path() + "/seed.json";
    std::chrono::milliseconds order_timeout{30000};
    /// More variables for every service (e.g. COMMIT_TIMEOUT, FAULT_INJECT for children).
    std::map<std::string, std::string> extra_env;
    std::unique_ptr<order::OrderService> orders;
    std::unique_ptr<inventory::InventoryService> inventory;
    std::unique_ptr<notification::NotificationService> notifications;
    std::unique_ptr<analytics::AnalyticsService> analytics;
    std::unique_ptr<ChildProcess> analytics_process;
    std::unique_ptr<ChildProcess> order_process;
    std::unique_ptr<ChildProcess> inventory_process;
    std::unique_ptr<ChildProcess> provider_process;
    std::vector<std::unique_ptr<ChildProcess>> notification_processes;
    std::uint16_t order_port = 0;
    std::uint16_t inventory_port = 0;
    std::uint16_t notification_port = 0;
    std::uint16_t analytics_port = 0;
    std::uint16_t provider_port = 0;

    explicit Pipeline(
        const nlohmann::json& catalog = nlohmann::json::array(
            {{{"sku", "LAPTOP-001"}, {"name", "Laptop"}, {"unit_price", "999.99"}, {"stock", 50}},
             {{"sku", "MOUSE-001"}, {"name", "Mouse"}, {"unit_price", "29.99"}, {"stock", 200}}})) {
        std::ofstream(seed_path) << catalog.dump();
    }
    ~Pipeline() {
        orders.reset();
        inventory.reset();
        notifications.reset();
        analytics.reset();
    }

    std::string topic(const std::string& name) const { return topics.at(name); }

    /// A service's configuration read from env(service), on an ephemeral HTTP port.
    template <typename Config>
    Config config_of(const std::string& service) const {
        EnvReader e(env(service));
        auto c = Config::from_env(e);
        e.finish();
        c.settings.http_port = 0;
        return c;
    }

    /// Environment for a service (the names of docs/CONFIGURATION.md).
    std::map<std::string, std::string> env(const std::string& service) const {
        std::map<std::string, std::string> e{
            {"KAFKA_BOOTSTRAP_SERVERS", bootstrap()},
            {"DATA_DIR", dir.path() + "/" + service},
            {"INSTANCE_ID", prefix},
            {"LOG_LEVEL", "info"},
            {"INVENTORY_SEED", seed_path},
            {"ORDER_TIMEOUT", std::to_string(order_timeout.count())},
            {"TOPIC_PREFIX", prefix + "."},
            {"GROUP_PREFIX", prefix + "-"},
            {"SHUTDOWN_TIMEOUT", "20s"}};
        if (provider_port != 0) e["NOTIFY_EMAIL_URL"] = provider_url("/send");
        for (const auto& [k, v] : extra_env) e[k] = v;
        return e;
    }

    order::OrderServiceConfig order_config() const {
        return config_of<order::OrderServiceConfig>("order-service");
    }
    inventory::InventoryServiceConfig inventory_config() const {
        return config_of<inventory::InventoryServiceConfig>("inventory-service");
    }

    notification::NotificationServiceConfig notification_config() const {
        return config_of<notification::NotificationServiceConfig>("notification-service");
    }

    analytics::AnalyticsServiceConfig analytics_config() const {
        return config_of<analytics::AnalyticsServiceConfig>("analytics-service");
    }
    void start_analytics() {
        analytics = std::make_unique<analytics::AnalyticsService>(analytics_config());
        analytics->start();
        analytics_port = analytics->http_port();
        wait_ready(analytics_port);
    }
    /// Starts analytics-service as a child process (on analytics_port if set, else a free port).
    void start_analytics_process(bool wait = true) {
        analytics_process = spawn(ANALYTICS_SERVICE_BIN, "analytics-service", analytics_port, {});
        if (wait) wait_ready(analytics_port);
    }
    std::string analytics_url(const std::string& path) const {
        return "http://127.0.0.1:" + std::to_string(analytics_port) + path;
    }

    /// Writes `records` in one committed transaction of a producer of the test's own (e.g.
    /// poison records), as any other writer of a topic could.
    static void produce(const std::vector<kafka::OutgoingRecord>& records) {
        kafka::ProducerOptions po;
        po.transactional_id = unique_name("test-writer");
        kafka::TransactionalProducer producer(client_config("test-writer"), po);
        producer.init_transactions();
        producer.begin();
        for (const auto& r : records) producer.produce(r);
        REQUIRE(producer.commit_or_abort() == kafka::TxnOutcome::kCommitted);
    }

    /// Writes NOTIFICATION_REQUESTED events straight to notifications.requests (one committed
    /// transaction), one per order, addressed to `to`. @returns their notification ids.
    std::vector<std::string> request_notifications(
        const std::vector<std::string>& order_ids,
        const std::string& to = "ana@example.com") const {
        std::vector<kafka::OutgoingRecord> records;
        std::vector<std::string> ids;
        for (const auto& order : order_ids) {
            contract::NotificationRequested n;
            n.notification_id = new_uuid_v7();
            n.order_id = order;
            n.kind = contract::NotificationKind::kOrderConfirmed;
            n.to = to;
            n.subject = "Your order " + order;
            n.text = "text of " + n.notification_id;
            auto e = contract::new_event(contract::EventType::kNotificationRequested, "/test",
                                         order, "saga-" + order, std::nullopt,
                                         TraceContext::fresh().header(), n.to_json());
            records.push_back(kafka::to_record(topic("notifications.requests"), order, e));
            ids.push_back(n.notification_id);
        }
        produce(records);
        return ids;
    }

    /// The fake email provider, as a child process on a free port.
    void start_provider() {
        if (provider_port == 0) provider_port = free_port();
        provider_process = std::make_unique<ChildProcess>(
            FAKE_EMAIL_PROVIDER_BIN,
            std::map<std::string, std::string>{{"HTTP_PORT", std::to_string(provider_port)},
                                               {"LOG_LEVEL", "warn"}},
            dir.path() + "/fake-email-provider.log");
        REQUIRE(eventually([&] {
            try {
                return http_request("GET", provider_url("/sent")).status == 200;
            } catch (const std::exception&) {
                return false;
            }
        }));
    }
    std::string provider_url(const std::string& path) const {
        return "http://127.0.0.1:" + std::to_string(provider_port) + path;
    }
    /// Adds failure rules to the provider (see tools/fake-email-provider).
    void provider_rules(const nlohmann::json& rules) const {
        REQUIRE(http_request("POST", provider_url("/admin/rules"), rules.dump(),
                             {"Content-Type: application/json"})
                    .status == 201);
    }
    void provider_heal() const {
        REQUIRE(http_request("DELETE", provider_url("/admin/rules")).status == 200);
    }

    void start_notifications() { start_notifications(notification_config()); }
    void start_notifications(notification::NotificationServiceConfig config) {
        notifications = std::make_unique<notification::NotificationService>(std::move(config));
        notifications->start();
        notification_port = notifications->http_port();
        wait_ready(notification_port);
    }
    std::string notification_url(const std::string& path) const {
        return "http://127.0.0.1:" + std::to_string(notification_port) + path;
    }

    /// Runs dlqctl against this pipeline's topics. @returns its exit code and output.
    std::pair<int, std::string> dlqctl(const std::string& args,
                                       const std::string& env_vars = "") const {
        return run_command(env_vars + " KAFKA_BOOTSTRAP_SERVERS=" + bootstrap() + " TOPIC_PREFIX=" +
                           prefix + ". " + DLQCTL_BIN + " " + args + " 2>&1 </dev/null");
    }

    void start_orders() { start_orders(order_config()); }
    void start_orders(order::OrderServiceConfig config) {
        orders = std::make_unique<order::OrderService>(std::move(config));
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
    /// Starts order-service as a child process (on order_port if set, else a free port).
    void start_order_process(const std::map<std::string, std::string>& more = {},
                             bool wait = true) {
        order_process = spawn(ORDER_SERVICE_BIN, "order-service", order_port, more);
        if (wait) wait_ready(order_port);
    }
    void start_inventory_process(const std::map<std::string, std::string>& more = {},
                                 bool wait = true) {
        inventory_process = spawn(INVENTORY_SERVICE_BIN, "inventory-service", inventory_port, more);
        if (wait) wait_ready(inventory_port);
    }
    /// Starts `binary` as a child process with env(service) plus `more`, on `port` (a free one
    /// the first time); its output goes to <dir>/<service>.log.
    std::unique_ptr<ChildProcess> spawn(const char* binary, const std::string& service,
                                        std::uint16_t& port,
                                        const std::map<std::string, std::string>& more) const {
        if (port == 0) port = free_port();
        auto e = env(service);
        e["HTTP_PORT"] = std::to_string(port);
        for (const auto& [k, v] : more) e[k] = v;
        return std::make_unique<ChildProcess>(binary, e, dir.path() + "/" + service + ".log");
    }

    static bool ready(std::uint16_t port) {
        try {
            return http_request("GET", "http://127.0.0.1:" + std::to_string(port) + "/readyz", {},
                                {}, std::chrono::seconds(2))
                       .status == 200;
        } catch (const std::exception&) {
            return false;
        }
    }
    static void wait_ready(std::uint16_t port) {
        REQUIRE(eventually([&] { return ready(port); }, std::chrono::seconds(60)));
    }

    std::string order_url(const std::string& path) const {
        return "http://127.0.0.1:" + std::to_string(order_port) + path;
    }
    std::string inventory_url(const std::string& path) const {
        return "http://127.0.0.1:" + std::to_string(inventory_port) + path;
    }

    /// The catalog price of the SKUs the tests seed (the catalog is the price authority: any
    /// other price is cancelled PRICE_MISMATCH); 999.99 for the others.
    static std::string catalog_price(const std::string& sku) {
        if (sku == "MOUSE-001") return "29.99";
        if (sku == "RACE-001") return "10.00";
        return "999.99";
    }

    static nlohmann::json order_body(const std::vector<std::pair<std::string, int>>& lines) {
        nlohmann::json items = nlohmann::json::array();
        for (const auto& [sku, qty] : lines) {
            items.push_back({{"sku", sku}, {"quantity", qty}, {"unit_price", catalog_price(sku)}});
        }
        return {{"customer_id", "c-42"},
                {"customer_email", "ana@example.com"},
                {"currency", "USD"},
                {"items", items}};
    }

    /// POSTs an order. @returns its id, or the answer that was not a 201 (as "<status> <body>")
    /// in `failure`. No Catch2 macro: safe on any thread.
    std::optional<std::string> try_place(const std::vector<std::pair<std::string, int>>& lines,
                                         std::string* failure = nullptr) const {
        try {
            auto r = http_request("POST", order_url("/orders"), order_body(lines).dump(),
                                  {"Content-Type: application/json"});
            if (r.status == 201) return r.json()["order_id"].get<std::string>();
            if (failure != nullptr) *failure = std::to_string(r.status) + " " + r.body;
        } catch (const std::exception& e) {
            if (failure != nullptr) *failure = e.what();
        }
        return std::nullopt;
    }
    /// POSTs an order; returns its id (REQUIREs 201). On the test's thread only.
    std::string place(const std::vector<std::pair<std::string, int>>& lines) const {
        std::string failure;
        auto id = try_place(lines, &failure);
        INFO(failure);
        REQUIRE(id);
        return *id;
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

    /// A counter or gauge of a service's /metrics (the first series whose text starts with
    /// `series`, e.g. `kafka_transactions_total{loop="intake",result="committed"}`); 0 if absent.
    static double metric(const std::string& base_url, const std::string& series) {
        const auto text = http_request("GET", base_url + "/metrics").body;
        const auto pos = text.find("\n" + series);
        if (pos == std::string::npos) return 0;
        const auto space = text.find(' ', pos + 1 + series.size());
        return std::stod(text.substr(space + 1, text.find('\n', space) - space - 1));
    }
};

inline std::size_t count_events(const std::vector<CloudEvent>& events, const std::string& type,
                                const std::string& order_id) {
    std::size_t n = 0;
    for (const auto& e : events) n += (e.type == type && e.subject == order_id) ? 1 : 0;
    return n;
}

}  // namespace orderpipe::testing
