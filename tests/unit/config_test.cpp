#include "orderpipe/common/config.hpp"

#include <catch2/catch.hpp>

using orderpipe::CommonConfig;
using orderpipe::ConfigError;
using orderpipe::EnvReader;

TEST_CASE("defaults apply when nothing is set", "[config]") {
    EnvReader env(std::map<std::string, std::string>{});
    auto c = CommonConfig::read(env, "order-service", 8080);
    env.finish();
    CHECK(c.bootstrap_servers == "localhost:9092");
    CHECK(c.http_port == 8080);
    CHECK(c.transactional_id() == "order-service-0");
    CHECK(c.shutdown_timeout == std::chrono::seconds(10));
}

TEST_CASE("every bad variable is named with what it accepts", "[config]") {
    EnvReader env(std::map<std::string, std::string>{{"HTTP_PORT", "99999"},
                                                     {"LOG_LEVEL", "loud"},
                                                     {"INSTANCE_ID", "a b"},
                                                     {"SHUTDOWN_TIMEOUT", "soon"}});
    CommonConfig::read(env, "order-service", 8080);
    try {
        env.finish();
        FAIL("expected ConfigError");
    } catch (const ConfigError& e) {
        REQUIRE(e.problems().size() == 4);
        const std::string all = e.what();
        CHECK_THAT(all,
                   Catch::Contains("HTTP_PORT=\"99999\": expected an integer from 0 to 65535"));
        CHECK_THAT(all, Catch::Contains("LOG_LEVEL=\"loud\": expected one of trace, debug"));
        CHECK_THAT(all, Catch::Contains("INSTANCE_ID"));
        CHECK_THAT(all, Catch::Contains("SHUTDOWN_TIMEOUT=\"soon\""));
    }
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
    auto c = CommonConfig::read(env, "inventory-service", 8081);
    env.finish();
    CHECK(c.bootstrap_servers == "b:9092");
    CHECK(c.kafka_overrides ==
          std::map<std::string, std::string>{{"security.protocol", "SASL_SSL"},
                                             {"sasl.mechanism", "SCRAM-SHA-512"}});
}
