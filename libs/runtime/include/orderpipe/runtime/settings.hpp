#pragma once
/// The settings every service reads, under one name each (docs/CONFIGURATION.md). A service's
/// own settings are read by its own `from_env`, after these.

#include "orderpipe/common/config.hpp"
#include "orderpipe/kafka/types.hpp"

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

namespace orderpipe::runtime {

struct ServiceSettings {
    std::string service;  ///< e.g. "order-service"; also the consumer group's base name
    std::string bootstrap_servers = "localhost:9092";     ///< KAFKA_BOOTSTRAP_SERVERS
    std::map<std::string, std::string> kafka_properties;  ///< every other KAFKA_* variable
    std::uint16_t http_port = 0;                          ///< HTTP_PORT
    unsigned http_threads = 2;                            ///< HTTP_THREADS
    std::string data_dir = "./data";                      ///< DATA_DIR
    std::string instance_id = "0";                        ///< INSTANCE_ID
    std::string log_level = "info";                       ///< LOG_LEVEL
    std::chrono::milliseconds shutdown_timeout{10000};    ///< SHUTDOWN_TIMEOUT
    /// COMMIT_TIMEOUT: bound for one Kafka operation (a delivery, a commit, an abort), and for
    /// the answer to a request that waits on one.
    std::chrono::milliseconds commit_timeout{10000};
    std::size_t batch_max = 500;                ///< BATCH_MAX: records per loop transaction
    std::chrono::milliseconds batch_linger{1};  ///< BATCH_LINGER: wait to fill a batch
    std::string topic_prefix;                   ///< TOPIC_PREFIX (shared clusters, tests)
    std::string group_prefix;                   ///< GROUP_PREFIX
    std::string fault_inject;                   ///< FAULT_INJECT (tests and chaos only)
    /// DATABASE_URL: a PostgreSQL database (libpq URI or key=value string) the service's state
    /// lives in, shared by all its instances; empty: SQLite in DATA_DIR, one instance.
    std::string database_url;
    std::size_t database_pool_size = 8;  ///< DATABASE_POOL_SIZE: connections per process
    /// DATABASE_STATEMENT_TIMEOUT: a statement running longer is cancelled, so a stuck database
    /// never hangs a loop or a request for good.
    std::chrono::milliseconds database_statement_timeout{10000};
    /// Where spans go (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, or OTEL_EXPORTER_OTLP_ENDPOINT plus
    /// /v1/traces); empty: tracing off. Named OTEL_SERVICE_NAME (default: the service).
    std::string traces_url;
    std::string trace_service;

    /// The state lives in a database shared by N instances (DATABASE_URL set).
    bool shared_database() const { return !database_url.empty(); }

    /// A contract topic name with TOPIC_PREFIX.
    std::string topic(std::string_view name) const;
    /// Removes TOPIC_PREFIX from a full topic name (for contract lookups).
    std::string_view contract_name(std::string_view full) const;
    /// The DLQ of a consumed topic (full names).
    std::string dlq_topic(const std::string& consumed) const;
    /// A consumer group name with GROUP_PREFIX.
    std::string group_id(std::string_view name) const;
    /// `<service>-<instance>[-<suffix>]`: stable across restarts, so a restarted instance
    /// fences its predecessor.
    std::string transactional_id(std::string_view suffix = {}) const;
    /// Connection settings for a Kafka client named `client_id`.
    kafka::ClientConfig kafka_client(std::string client_id) const;

    /// Reads the common variables. Every problem is collected in `env` (EnvReader::finish()).
    static ServiceSettings read(EnvReader& env, std::string service, std::uint16_t default_port);
};

}  // namespace orderpipe::runtime
