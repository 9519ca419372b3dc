#include "orderpipe/common/logging.hpp"

#include "orderpipe/common/signals.hpp"
#include "orderpipe/common/time.hpp"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>

namespace orderpipe::log {
namespace {

// Structured calls hand their fields to the formatter through this thread-local, so one
// formatter serves both plain spdlog calls and ours without re-parsing anything.
thread_local const nlohmann::json* tls_fields = nullptr;
// The innermost log::Scope of this thread.
thread_local const Scope* tls_scope = nullptr;

class JsonLineFormatter final : public spdlog::formatter {
  public:
    explicit JsonLineFormatter(std::string service) : service_(std::move(service)) {}

    void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
        const std::string line = format_line(
            service_, msg.level, std::string_view(msg.payload.data(), msg.payload.size()),
            tls_fields, msg.time);
        dest.append(line.data(), line.data() + line.size());
        dest.push_back('\n');
    }

    std::unique_ptr<spdlog::formatter> clone() const override {
        return std::make_unique<JsonLineFormatter>(service_);
    }

  private:
    std::string service_;
};

}  // namespace

std::string format_line(std::string_view service, spdlog::level::level_enum level,
                        std::string_view msg, const nlohmann::json* fields,
                        spdlog::log_clock::time_point when) {
    nlohmann::json line = nlohmann::json::object();
    line["ts"] =
        format_rfc3339(std::chrono::time_point_cast<std::chrono::system_clock::duration>(when));
    const auto lv = spdlog::level::to_string_view(level);
    line["level"] = std::string_view(lv.data(), lv.size());
    line["service"] = service;
    line["msg"] = msg;
    auto merge = [&line](const nlohmann::json& more) {
        if (!more.is_object()) return;
        for (const auto& [k, v] : more.items()) {
            if (!line.contains(k)) line[k] = v;
        }
    };
    if (fields != nullptr) merge(*fields);
    for (const Scope* s = tls_scope; s != nullptr; s = s->outer_) merge(s->fields_);
    // Replace invalid UTF-8 rather than throw: a log line must never take the process down.
    return line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Scope::Scope(nlohmann::json fields) : fields_(std::move(fields)), outer_(tls_scope) {
    tls_scope = this;
}

Scope::~Scope() { tls_scope = outer_; }

void init(std::string service, std::string_view level) {
    auto logger = spdlog::stdout_logger_mt(service + "-log");
    logger->set_formatter(std::make_unique<JsonLineFormatter>(std::move(service)));
    logger->set_level(spdlog::level::from_str(std::string(level)));
    // A line per order step at info is thousands a second under load: written in blocks,
    // flushed at once from warn up and otherwise within a second (a SIGKILL can lose that
    // second of info lines, never a warning).
    logger->flush_on(spdlog::level::warn);
    spdlog::set_default_logger(std::move(logger));
    // Its flusher thread never takes a signal meant for the process's signal thread.
    with_signals_blocked([] { spdlog::flush_every(std::chrono::seconds(1)); });
}

void write(spdlog::level::level_enum level, std::string_view msg, const nlohmann::json& fields) {
    tls_fields = &fields;
    spdlog::default_logger_raw()->log(level, "{}", msg);
    tls_fields = nullptr;
}

}  // namespace orderpipe::log
