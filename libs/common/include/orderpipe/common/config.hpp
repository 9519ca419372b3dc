#pragma once
/// Typed configuration from environment variables (12-factor). Every problem is collected, then
/// reported at once by `EnvReader::finish()` with the variable's name and what it accepts.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace orderpipe {

/// Thrown by EnvReader::finish(): one line per invalid variable. Not retryable: fix the setting.
class ConfigError : public std::runtime_error {
  public:
    explicit ConfigError(std::vector<std::string> problems);
    const std::vector<std::string>& problems() const { return problems_; }

  private:
    std::vector<std::string> problems_;
};

/// Reads variables through `lookup` (getenv by default) so tests can supply their own.
/// Not thread-safe; use at start-up.
class EnvReader {
  public:
    using Lookup = std::function<std::optional<std::string>(const std::string&)>;
    EnvReader();
    explicit EnvReader(Lookup lookup);
    /// From a fixed map: handy in tests.
    explicit EnvReader(std::map<std::string, std::string> values);

    std::string string(const std::string& name, std::string fallback);
    /// A required, non-empty string; empty result if missing (and a problem is recorded).
    std::string required(const std::string& name);
    std::int64_t integer(const std::string& name, std::int64_t fallback, std::int64_t min,
                         std::int64_t max);
    std::uint16_t port(const std::string& name, std::uint16_t fallback);
    std::chrono::milliseconds millis(const std::string& name, std::chrono::milliseconds fallback,
                                     std::chrono::milliseconds min, std::chrono::milliseconds max);
    bool boolean(const std::string& name, bool fallback);
    /// One of `allowed` (case-sensitive).
    std::string choice(const std::string& name, std::string fallback,
                       const std::vector<std::string>& allowed);

    /// Every `KAFKA_*` variable except those in `except`, as librdkafka properties:
    /// `KAFKA_SECURITY_PROTOCOL=SASL_SSL` → `security.protocol=SASL_SSL`.
    std::map<std::string, std::string> kafka_passthrough(const std::vector<std::string>& except);

    /// Records a problem found by the caller's own checks.
    void problem(std::string message);

    /// @throws ConfigError if any variable was invalid.
    void finish() const;

  private:
    std::optional<std::string> get(const std::string& name) const;
    Lookup lookup_;
    std::optional<std::map<std::string, std::string>> fixed_;
    std::vector<std::string> problems_;
};

/// Settings every service reads (SPEC §10).
struct CommonConfig {
    std::string service;  ///< e.g. "order-service"
    std::string bootstrap_servers = "localhost:9092";
    std::uint16_t http_port = 0;
    std::string data_dir = "./data";
    std::string instance_id = "0";
    std::string log_level = "info";
    std::chrono::milliseconds shutdown_timeout{10000};
    std::map<std::string, std::string> kafka_overrides;  ///< from other KAFKA_* variables
    /// TOPIC_PREFIX / GROUP_PREFIX: namespace every topic and consumer group (shared clusters,
    /// tests). Empty by default: the SPEC's names.
    std::string topic_prefix;
    std::string group_prefix;

    /// FAULT_KILL_BEFORE_COMMIT (chaos testing only): see kafka::LoopOptions.
    std::size_t fault_kill_before_commit = 0;

    std::string topic(const std::string& name) const { return topic_prefix + name; }
    std::string group(const std::string& name) const { return group_prefix + name; }

    /// `<service>-<instance>`: stable across restarts so a restarted instance fences its
    /// predecessor.
    std::string transactional_id() const { return service + "-" + instance_id; }

    static CommonConfig read(EnvReader& env, std::string service, std::uint16_t default_port);
};

}  // namespace orderpipe
