#include "orderpipe/common/config.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <set>

extern char** environ;  // NOLINT: POSIX

namespace orderpipe {
namespace {

std::string join_lines(const std::vector<std::string>& lines) {
    std::string out = "invalid configuration:";
    for (const auto& l : lines) out += "\n  - " + l;
    return out;
}

std::optional<std::int64_t> to_int(const std::string& s) {
    std::int64_t v = 0;
    const char* end = s.data() + s.size();
    auto [ptr, ec] = std::from_chars(s.data(), end, v);
    if (ec != std::errc{} || ptr != end) return std::nullopt;
    return v;
}

}  // namespace

ConfigError::ConfigError(std::vector<std::string> problems)
    : std::runtime_error(join_lines(problems)), problems_(std::move(problems)) {}

EnvReader::EnvReader()
    : lookup_([](const std::string& name) -> std::optional<std::string> {
          const char* v = std::getenv(name.c_str());  // NOLINT(concurrency-mt-unsafe): start-up
          if (v == nullptr) return std::nullopt;
          return std::string(v);
      }) {}

EnvReader::EnvReader(Lookup lookup) : lookup_(std::move(lookup)) {}

EnvReader::EnvReader(std::map<std::string, std::string> values) : fixed_(std::move(values)) {}

std::optional<std::string> EnvReader::get(const std::string& name) const {
    if (fixed_) {
        auto it = fixed_->find(name);
        if (it == fixed_->end()) return std::nullopt;
        return it->second;
    }
    auto v = lookup_(name);
    if (v && v->empty()) return std::nullopt;  // VAR= means "use the default"
    return v;
}

std::string EnvReader::string(const std::string& name, std::string fallback) {
    return get(name).value_or(std::move(fallback));
}

std::string EnvReader::required(const std::string& name) {
    auto v = get(name);
    if (!v) {
        problems_.push_back(name + " is required");
        return {};
    }
    return *v;
}

std::int64_t EnvReader::integer(const std::string& name, std::int64_t fallback, std::int64_t min,
                                std::int64_t max) {
    auto v = get(name);
    if (!v) return fallback;
    auto n = to_int(*v);
    if (!n || *n < min || *n > max) {
        problems_.push_back(name + "=\"" + *v + "\": expected an integer from " +
                            std::to_string(min) + " to " + std::to_string(max));
        return fallback;
    }
    return *n;
}

std::uint16_t EnvReader::port(const std::string& name, std::uint16_t fallback) {
    return static_cast<std::uint16_t>(integer(name, fallback, 0, 65535));
}

std::chrono::milliseconds EnvReader::millis(const std::string& name,
                                            std::chrono::milliseconds fallback,
                                            std::chrono::milliseconds min,
                                            std::chrono::milliseconds max) {
    auto v = get(name);
    if (!v) return fallback;
    // Accept plain milliseconds ("2000") or a unit suffix: ms, s, m ("2s", "500ms", "1m").
    std::string text = *v;
    std::int64_t scale = 1;
    auto ends_with = [&](std::string_view suffix) {
        return text.size() > suffix.size() &&
               std::string_view(text).substr(text.size() - suffix.size()) == suffix;
    };
    if (ends_with("ms")) {
        text.resize(text.size() - 2);
    } else if (ends_with("s")) {
        text.pop_back();
        scale = 1000;
    } else if (ends_with("m")) {
        text.pop_back();
        scale = 60000;
    }
    auto n = to_int(text);
    if (!n || *n < 0 || *n > max.count() / scale || *n * scale < min.count()) {
        problems_.push_back(name + "=\"" + *v + "\": expected a duration from " +
                            std::to_string(min.count()) + "ms to " + std::to_string(max.count()) +
                            "ms (plain milliseconds, or with a unit: 500ms, 2s, 1m)");
        return fallback;
    }
    return std::chrono::milliseconds(*n * scale);
}

bool EnvReader::boolean(const std::string& name, bool fallback) {
    auto v = get(name);
    if (!v) return fallback;
    std::string s = *v;
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    if (s == "1" || s == "true" || s == "yes" || s == "on") return true;
    if (s == "0" || s == "false" || s == "no" || s == "off") return false;
    problems_.push_back(name + "=\"" + *v + "\": expected true or false");
    return fallback;
}

std::string EnvReader::choice(const std::string& name, std::string fallback,
                              const std::vector<std::string>& allowed) {
    auto v = get(name);
    if (!v) return fallback;
    if (std::find(allowed.begin(), allowed.end(), *v) != allowed.end()) return *v;
    std::string list;
    for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
    problems_.push_back(name + "=\"" + *v + "\": expected one of " + list);
    return fallback;
}

namespace {

// Variables of scripts/kafka.sh and of Kafka's own launch scripts (kafka-run-class.sh): they
// share the KAFKA_ prefix but are not librdkafka properties.
const std::set<std::string, std::less<>> kNotClientProperties = {"KAFKA_BOOTSTRAP_SERVERS",
                                                                 "KAFKA_PORT",
                                                                 "KAFKA_CONTROLLER_PORT",
                                                                 "KAFKA_DATA_DIR",
                                                                 "KAFKA_HEAP",
                                                                 "KAFKA_HOST",
                                                                 "KAFKA_OPTS",
                                                                 "KAFKA_START_TIMEOUT",
                                                                 "KAFKA_STOP_TIMEOUT",
                                                                 "KAFKA_HOME",
                                                                 "KAFKA_LIBS",
                                                                 "KAFKA_HEAP_OPTS",
                                                                 "KAFKA_JVM_PERFORMANCE_OPTS",
                                                                 "KAFKA_LOG4J_OPTS",
                                                                 "KAFKA_GC_LOG_OPTS",
                                                                 "KAFKA_JMX_OPTS",
                                                                 "KAFKA_VERSION"};

// Properties orderpipe sets itself, and why: overriding one would break a guarantee.
const std::map<std::string, std::string, std::less<>> kOwnedProperties = {
    {"transactional.id", "it is <service>-<INSTANCE_ID>; set INSTANCE_ID"},
    {"group.id", "it is the service's consumer group; set GROUP_PREFIX"},
    {"group.instance.id", "it follows INSTANCE_ID"},
    {"isolation.level", "exactly-once reads need read_committed"},
    {"enable.auto.commit", "offsets are committed inside each transaction"},
    {"enable.auto.offset.store", "offsets are committed inside each transaction"},
    {"enable.idempotence", "transactions need the idempotent producer"},
    {"auto.offset.reset", "a new group must read its topics from the beginning"},
    {"partition.assignment.strategy",
     "librdkafka 2.0.2 needs an eager assignor, and the range assignor keeps an order's "
     "partitions of inventory.responses and orders.commands on one instance"},
    {"partitioner",
     "an order's records must land in the partition its decisions are routed by (librdkafka's "
     "default)"},
    {"client.id", "it is <service>-<INSTANCE_ID>-<role>, used in logs and quotas"},
    {"enable.partition.eof", "the loops rely on their own setting"},
};

}  // namespace

std::map<std::string, std::string> EnvReader::kafka_passthrough() {
    std::map<std::string, std::string> out;
    auto consider = [&](const std::string& name, const std::string& value) {
        if (name.rfind("KAFKA_", 0) != 0 || name.size() <= 6) return;
        if (kNotClientProperties.contains(name)) return;
        std::string key = name.substr(6);
        for (auto& c : key) {
            c = c == '_' ? '.' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        }
        if (auto owned = kOwnedProperties.find(key); owned != kOwnedProperties.end()) {
            problems_.push_back(name + ": " + key + " is set by orderpipe (" + owned->second +
                                "); remove the variable");
            return;
        }
        out[key] = value;
    };
    if (fixed_) {
        for (const auto& [k, v] : *fixed_) consider(k, v);
    } else {
        for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
            std::string_view entry(*e);
            auto eq = entry.find('=');
            if (eq == std::string_view::npos) continue;
            consider(std::string(entry.substr(0, eq)), std::string(entry.substr(eq + 1)));
        }
    }
    return out;
}

void EnvReader::renamed(const std::string& old_name, const std::string& new_name) {
    if (get(old_name)) {
        problems_.push_back(old_name + " was renamed: set " + new_name + " instead");
    }
}

void EnvReader::problem(std::string message) { problems_.push_back(std::move(message)); }

void EnvReader::finish() const {
    if (!problems_.empty()) throw ConfigError(problems_);
}

}  // namespace orderpipe
