#include "orderpipe/runtime/settings.hpp"

#include "orderpipe/common/faults.hpp"
#include "orderpipe/contract/topics.hpp"
#include "orderpipe/pg/pg.hpp"

#include <unistd.h>

#include <cctype>

namespace orderpipe::runtime {

std::string ServiceSettings::topic(std::string_view name) const {
    return topic_prefix + std::string(name);
}

std::string_view ServiceSettings::contract_name(std::string_view full) const {
    if (full.substr(0, topic_prefix.size()) == topic_prefix)
        return full.substr(topic_prefix.size());
    return full;
}

std::string ServiceSettings::dlq_topic(const std::string& consumed) const {
    return topic(contract::dlq_topic_for(contract_name(consumed)));
}

std::string ServiceSettings::group_id(std::string_view name) const {
    return group_prefix + std::string(name);
}

std::string ServiceSettings::transactional_id(std::string_view suffix) const {
    std::string id = service + "-" + instance_id;
    if (!suffix.empty()) id += "-" + std::string(suffix);
    return id;
}

kafka::ClientConfig ServiceSettings::kafka_client(std::string client_id) const {
    return {bootstrap_servers, std::move(client_id), kafka_properties};
}

ServiceSettings ServiceSettings::read(EnvReader& env, std::string service,
                                      std::uint16_t default_port) {
    ServiceSettings s;
    s.service = std::move(service);
    s.bootstrap_servers = env.string("KAFKA_BOOTSTRAP_SERVERS", s.bootstrap_servers);
    s.http_port = env.port("HTTP_PORT", default_port);
    s.http_threads = static_cast<unsigned>(env.integer("HTTP_THREADS", s.http_threads, 1, 64));
    s.data_dir = env.string("DATA_DIR", s.data_dir);
    s.instance_id = env.string("INSTANCE_ID", s.instance_id);
    if (s.instance_id == "auto") {
        // Scaled replicas (docker compose --scale) get distinct ids from their host names; a
        // restarted container keeps its name, so it still fences its predecessor.
        char host[256] = {};
        if (gethostname(host, sizeof host - 1) == 0 && host[0] != '\0') {
            s.instance_id = host;
        } else {
            env.problem("INSTANCE_ID=auto: this host has no name; set INSTANCE_ID explicitly");
        }
    }
    for (char ch : s.instance_id) {
        if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '_' && ch != '.') {
            env.problem("INSTANCE_ID=\"" + s.instance_id +
                        "\": expected letters, digits, '-', '_' or '.' (it is part of the "
                        "transactional.id)");
            break;
        }
    }
    s.log_level = env.choice("LOG_LEVEL", s.log_level,
                             {"trace", "debug", "info", "warn", "error", "critical", "off"});
    s.shutdown_timeout = env.millis("SHUTDOWN_TIMEOUT", s.shutdown_timeout,
                                    std::chrono::milliseconds(100), std::chrono::minutes(10));
    s.commit_timeout = env.millis("COMMIT_TIMEOUT", s.commit_timeout,
                                  std::chrono::milliseconds(1000), std::chrono::minutes(5));
    s.batch_max = static_cast<std::size_t>(
        env.integer("BATCH_MAX", static_cast<std::int64_t>(s.batch_max), 1, 10000));
    s.batch_linger = env.millis("BATCH_LINGER", s.batch_linger, std::chrono::milliseconds(0),
                                std::chrono::milliseconds(1000));
    s.topic_prefix = env.string("TOPIC_PREFIX", "");
    s.group_prefix = env.string("GROUP_PREFIX", "");
    s.fault_inject = env.string("FAULT_INJECT", "");
    if (auto problem = faults::validate(s.fault_inject); !problem.empty()) {
        env.problem("FAULT_INJECT=\"" + s.fault_inject + "\": " + problem);
    }
    s.database_url = env.string("DATABASE_URL", "");
    if (s.shared_database()) {
        try {
            pg::check_url(s.database_url);
        } catch (const std::exception& e) {
            env.problem(std::string("DATABASE_URL: ") + e.what() +
                        " (expected postgresql://user:password@host:port/database)");
        }
    }
    s.database_pool_size = static_cast<std::size_t>(
        env.integer("DATABASE_POOL_SIZE", static_cast<std::int64_t>(s.database_pool_size), 3, 100));
    s.database_statement_timeout =
        env.millis("DATABASE_STATEMENT_TIMEOUT", s.database_statement_timeout,
                   std::chrono::milliseconds(100), std::chrono::minutes(10));
    s.kafka_properties = env.kafka_passthrough();
    // OpenTelemetry's own variable names, so a collector set up for other services just works.
    const std::string otlp = env.string("OTEL_EXPORTER_OTLP_ENDPOINT", "");
    s.traces_url = env.string("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "");
    if (s.traces_url.empty() && !otlp.empty()) {
        s.traces_url = otlp.back() == '/' ? otlp + "v1/traces" : otlp + "/v1/traces";
    }
    if (!s.traces_url.empty() && s.traces_url.rfind("http://", 0) != 0 &&
        s.traces_url.rfind("https://", 0) != 0) {
        env.problem("OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=\"" +
                    s.traces_url + "\": expected an http:// or https:// URL (OTLP/HTTP)");
    }
    s.trace_service = env.string("OTEL_SERVICE_NAME", s.service);
    return s;
}

}  // namespace orderpipe::runtime
