#include "orderpipe/common/config.hpp"
#include "orderpipe/runtime/settings.hpp"

#include "inventory_service.hpp"
#include "order_service.hpp"

#include <catch2/catch.hpp>

#include <unistd.h>

using orderpipe::ConfigError;
using orderpipe::EnvReader;
using orderpipe::runtime::ServiceSettings;

TEST_CASE("defaults apply when nothing is set", "[config]") {
    EnvReader env(std::map<std::string, std::string>{});
    auto c = ServiceSettings::read(env, "order-service", 8080);
    env.finish();
    CHECK(c.bootstrap_servers == "localhost:9092");
    CHECK(c.http_port == 8080);
    CHECK(c.transactional_id() == "order-service-0");
    CHECK(c.transactional_id("saga") == "order-service-0-saga");
    CHECK(c.shutdown_timeout == std::chrono::seconds(10));
    CHECK(c.commit_timeout == std::chrono::seconds(10));
    CHECK(c.batch_max == 500);
}

TEST_CASE("every bad variable is named with what it accepts", "[config]") {
    EnvReader env(std::map<std::string, std::string>{{"HTTP_PORT", "99999"},
                                                     {"LOG_LEVEL", "loud"},
                                                     {"INSTANCE_ID", "a b"},
                                                     {"SHUTDOWN_TIMEOUT", "soon"},
                                                     {"FAULT_INJECT", "loop:point"}});
    ServiceSettings::read(env, "order-service", 8080);
    try {
        env.finish();
        FAIL("expected ConfigError");
    } catch (const ConfigError& e) {
        REQUIRE(e.problems().size() == 5);
        const std::string all = e.what();
        CHECK_THAT(all,
                   Catch::Contains("HTTP_PORT=\"99999\": expected an integer from 0 to 65535"));
        CHECK_THAT(all, Catch::Contains("LOG_LEVEL=\"loud\": expected one of trace, debug"));
        CHECK_THAT(all, Catch::Contains("INSTANCE_ID"));
        CHECK_THAT(all, Catch::Contains("SHUTDOWN_TIMEOUT=\"soon\""));
        CHECK_THAT(all, Catch::Contains("FAULT_INJECT"));
    }
}

TEST_CASE("the common settings have one name in every service", "[config]") {
    const std::map<std::string, std::string> vars{{"COMMIT_TIMEOUT", "3s"},
                                                  {"BATCH_MAX", "7"},
                                                  {"BATCH_LINGER", "9ms"},
                                                  {"HTTP_THREADS", "3"},
                                                  {"INSTANCE_ID", "b"}};
    EnvReader order_env(vars);
    auto order = orderpipe::order::OrderServiceConfig::from_env(order_env);
    order_env.finish();
    EnvReader inventory_env(vars);
    auto inventory = orderpipe::inventory::InventoryServiceConfig::from_env(inventory_env);
    inventory_env.finish();
    for (const auto* s : {&order.settings, &inventory.settings}) {
        CHECK(s->commit_timeout == std::chrono::seconds(3));
        CHECK(s->batch_max == 7);
        CHECK(s->batch_linger == std::chrono::milliseconds(9));
        CHECK(s->http_threads == 3);
    }
    CHECK(order.settings.transactional_id() == "order-service-b");
    CHECK(inventory.settings.transactional_id() == "inventory-service-b");
}

TEST_CASE("a renamed variable says what it is called now", "[config]") {
    EnvReader env(std::map<std::string, std::string>{{"INTAKE_COMMIT_TIMEOUT", "10s"}});
    orderpipe::order::OrderServiceConfig::from_env(env);
    CHECK_THROWS_WITH(env.finish(), Catch::Contains("set COMMIT_TIMEOUT instead"));
}

TEST_CASE("durations accept units", "[config]") {
    EnvReader env(std::map<std::string, std::string>{{"A", "2s"}, {"B", "250ms"}, {"C", "1500"}});
    using std::chrono::milliseconds;
    CHECK(env.millis("A", milliseconds(1), milliseconds(0), milliseconds(60000)) ==
          milliseconds(2000));
    CHECK(env.millis("B", milliseconds(1), milliseconds(0), milliseconds(60000)) ==
          milliseconds(250));
    CHECK(env.millis("C", milliseconds(1), milliseconds(0), milliseconds(60000)) ==
          milliseconds(1500));
    env.finish();
}

TEST_CASE("other KAFKA_ variables pass through as librdkafka properties", "[config]") {
    EnvReader env(std::map<std::string, std::string>{{"KAFKA_BOOTSTRAP_SERVERS", "b:9092"},
                                                     {"KAFKA_SECURITY_PROTOCOL", "SASL_SSL"},
                                                     {"KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"},
                                                     {"NOT_KAFKA", "x"}});
    auto c = ServiceSettings::read(env, "inventory-service", 8081);
    env.finish();
    CHECK(c.bootstrap_servers == "b:9092");
    CHECK(c.kafka_properties ==
          std::map<std::string, std::string>{{"security.protocol", "SASL_SSL"},
                                             {"sasl.mechanism", "SCRAM-SHA-512"}});
    CHECK(c.kafka_client("x").properties == c.kafka_properties);
}

TEST_CASE("KAFKA_DEBUG reaches librdkafka; the broker scripts' variables do not", "[config]") {
    EnvReader env(std::map<std::string, std::string>{{"KAFKA_DEBUG", "broker,protocol"},
                                                     {"KAFKA_HEAP_OPTS", "-Xmx1g"},
                                                     {"KAFKA_OPTS", "-Dx=y"},
                                                     {"KAFKA_PORT", "9092"}});
    auto c = ServiceSettings::read(env, "order-service", 8080);
    env.finish();
    CHECK(c.kafka_properties == std::map<std::string, std::string>{{"debug", "broker,protocol"}});
}

TEST_CASE("a KAFKA_ variable that would override what exactly-once needs is refused, by name",
          "[config]") {
    for (const auto& [name, value] :
         std::map<std::string, std::string>{{"KAFKA_ISOLATION_LEVEL", "read_uncommitted"},
                                            {"KAFKA_ENABLE_AUTO_COMMIT", "true"},
                                            {"KAFKA_TRANSACTIONAL_ID", "mine"},
                                            {"KAFKA_GROUP_ID", "other"},
                                            {"KAFKA_ENABLE_IDEMPOTENCE", "false"},
                                            {"KAFKA_AUTO_OFFSET_RESET", "latest"}}) {
        EnvReader env(std::map<std::string, std::string>{{name, value}});
        auto c = ServiceSettings::read(env, "order-service", 8080);
        try {
            env.finish();
            FAIL("accepted " << name);
        } catch (const ConfigError& e) {
            REQUIRE(e.problems().size() == 1);
            CHECK(e.problems()[0].rfind(name + ": ", 0) == 0);
            CHECK(e.problems()[0].find("set by orderpipe") != std::string::npos);
        }
        CHECK(c.kafka_properties.empty());
    }
}

TEST_CASE("INSTANCE_ID=auto is this host's name", "[config]") {
    EnvReader env(std::map<std::string, std::string>{{"INSTANCE_ID", "auto"}});
    auto c = ServiceSettings::read(env, "notification-service", 8082);
    env.finish();
    char host[256] = {};
    REQUIRE(gethostname(host, sizeof host - 1) == 0);
    CHECK(c.instance_id == host);
    CHECK(c.transactional_id("") == std::string("notification-service-") + host);
}

TEST_CASE("topic and group prefixes; every DLQ name comes from the contract", "[config]") {
    EnvReader env(
        std::map<std::string, std::string>{{"TOPIC_PREFIX", "t."}, {"GROUP_PREFIX", "g-"}});
    auto c = ServiceSettings::read(env, "order-service", 8080);
    env.finish();
    CHECK(c.topic("orders.events") == "t.orders.events");
    CHECK(c.group_id("order-service") == "g-order-service");
    CHECK(c.dlq_topic("t.inventory.requests") == "t.inventory.requests.dlq");
    CHECK(c.dlq_topic("t.notifications.requests") == "t.notifications.dlq");
}
