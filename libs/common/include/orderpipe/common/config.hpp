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

    /// Every `KAFKA_*` variable as a librdkafka property (docs/CONFIGURATION.md):
    /// `KAFKA_SECURITY_PROTOCOL=SASL_SSL` → `security.protocol=SASL_SSL`, except
    /// `KAFKA_BOOTSTRAP_SERVERS` (read on its own) and the variables of the broker scripts and
    /// Kafka's own tools (`KAFKA_HEAP_OPTS`, `KAFKA_OPTS`, ...). A property that orderpipe sets
    /// itself because exactly-once depends on it (`isolation.level`, `transactional.id`,
    /// `enable.auto.commit`, ...) is a problem naming the variable: it is never overridden.
    std::map<std::string, std::string> kafka_passthrough();

    /// A variable that was renamed: setting the old name is a problem that names the new one.
    void renamed(const std::string& old_name, const std::string& new_name);

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

}  // namespace orderpipe
