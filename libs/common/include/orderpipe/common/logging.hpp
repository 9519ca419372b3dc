#pragma once
/// JSON-lines logging on stdout over spdlog: one object per line with ts, level, service, msg
/// and any structured fields (order_id, correlation_id, ...).
///
/// Plain spdlog calls (`spdlog::info("...")`) also come out as JSON lines. Structured fields:
///   log::info("order accepted", {{"order_id", id}, {"correlation_id", cid}});

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include <array>
#include <string>
#include <string_view>
#include <utility>

namespace orderpipe::log {

/// Installs the JSON-lines formatter on the default logger (stdout, thread-safe).
/// @param level one of trace, debug, info, warn, error, critical, off.
void init(std::string service, std::string_view level);

/// Emits `msg` with extra fields merged into the JSON line. Thread-safe.
void write(spdlog::level::level_enum level, std::string_view msg, const nlohmann::json& fields);

inline void debug(std::string_view msg, const nlohmann::json& fields = nlohmann::json::object()) {
    if (spdlog::should_log(spdlog::level::debug)) write(spdlog::level::debug, msg, fields);
}
inline void info(std::string_view msg, const nlohmann::json& fields = nlohmann::json::object()) {
    if (spdlog::should_log(spdlog::level::info)) write(spdlog::level::info, msg, fields);
}
inline void warn(std::string_view msg, const nlohmann::json& fields = nlohmann::json::object()) {
    write(spdlog::level::warn, msg, fields);
}
inline void error(std::string_view msg, const nlohmann::json& fields = nlohmann::json::object()) {
    write(spdlog::level::err, msg, fields);
}

/// A few string fields that refer to strings owned elsewhere, for a Scope around the handling
/// of one record: building them copies and allocates nothing, which matters because a scope is
/// opened for every record whether or not a line is written (docs/BENCHMARKS.md "The cost of a
/// log line"). The strings must outlive every Scope made of them (an event's or a record's, while
/// it is handled). At most four; empty values are left out.
class Fields {
  public:
    Fields& add(std::string_view key, std::string_view value) {
        if (!value.empty() && n_ < kv_.size()) kv_[n_++] = {key, value};
        return *this;
    }
    std::size_t size() const { return n_; }
    const std::pair<std::string_view, std::string_view>* begin() const { return kv_.data(); }
    const std::pair<std::string_view, std::string_view>* end() const { return kv_.data() + n_; }
    /// The same as a JSON object (tests, and anything that is not hot).
    nlohmann::json to_json() const;

  private:
    std::array<std::pair<std::string_view, std::string_view>, 4> kv_{};
    std::size_t n_ = 0;
};

/// Fields added to every line the current thread logs while the scope lives, e.g. the order,
/// correlation id and traceparent of the event being processed, so that every line about an
/// order carries them without each call site repeating them. Scopes nest; a call's own fields
/// win over a scope's, an inner scope's over an outer one's.
class Scope {
  public:
    explicit Scope(nlohmann::json fields);
    /// Refers to `fields`' strings: they must outlive the scope (see Fields).
    explicit Scope(const Fields& fields);
    ~Scope();
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

  private:
    friend std::string format_line(std::string_view, spdlog::level::level_enum, std::string_view,
                                   const nlohmann::json*, spdlog::log_clock::time_point);
    nlohmann::json fields_;  ///< null when made of Fields
    Fields views_;
    const Scope* outer_;
};

/// Formats one line; exposed for tests.
std::string format_line(std::string_view service, spdlog::level::level_enum level,
                        std::string_view msg, const nlohmann::json* fields,
                        spdlog::log_clock::time_point when);

}  // namespace orderpipe::log
