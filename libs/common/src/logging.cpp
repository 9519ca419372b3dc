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

namespace {

/// `s` as a JSON string, quoted and escaped; bytes that are not UTF-8 become U+FFFD (a log line
/// must never take the process down, nor come out as invalid JSON).
void append_string(std::string& out, std::string_view s) {
    static constexpr char kHex[] = "0123456789abcdef";
    out.push_back('"');
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    const auto* const end = p + s.size();
    while (p < end) {
        const unsigned char c = *p;
        if (c < 0x80) {
            switch (c) {
                case '"':
                    out += "\\\"";
                    break;
                case '\\':
                    out += "\\\\";
                    break;
                case '\n':
                    out += "\\n";
                    break;
                case '\r':
                    out += "\\r";
                    break;
                case '\t':
                    out += "\\t";
                    break;
                case '\b':
                    out += "\\b";
                    break;
                case '\f':
                    out += "\\f";
                    break;
                default:
                    if (c < 0x20) {
                        out += "\\u00";
                        out.push_back(kHex[c >> 4]);
                        out.push_back(kHex[c & 0xF]);
                    } else {
                        out.push_back(static_cast<char>(c));
                    }
            }
            ++p;
            continue;
        }
        // A multi-byte sequence: its length from the lead byte, the range of its second byte
        // (no overlong forms, no surrogates, nothing past U+10FFFF), then continuation bytes.
        std::size_t len = 0;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;
        }
        bool valid =
            len != 0 && static_cast<std::size_t>(end - p) >= len && p[1] >= lo && p[1] <= hi;
        for (std::size_t i = 2; valid && i < len; ++i) valid = (p[i] & 0xC0) == 0x80;
        if (!valid) {
            out += "\xEF\xBF\xBD";
            ++p;
            continue;
        }
        out.append(reinterpret_cast<const char*>(p), len);
        p += len;
    }
    out.push_back('"');
}

}  // namespace

nlohmann::json Fields::to_json() const {
    nlohmann::json j = nlohmann::json::object();
    for (const auto& [k, v] : *this) j[std::string(k)] = v;
    return j;
}

// Written directly rather than built as a JSON tree and dumped: a line per saga step is
// thousands a second under load. ts, level, service and msg come first; then the call's own
// fields, then each scope's from the innermost out, a key only the first time it appears.
std::string format_line(std::string_view service, spdlog::level::level_enum level,
                        std::string_view msg, const nlohmann::json* fields,
                        spdlog::log_clock::time_point when) {
    std::string out;
    out.reserve(256);
    out += "{\"ts\":\"";
    out += format_rfc3339(std::chrono::time_point_cast<std::chrono::system_clock::duration>(when));
    out += "\",\"level\":";
    const auto lv = spdlog::level::to_string_view(level);
    append_string(out, std::string_view(lv.data(), lv.size()));
    out += ",\"service\":";
    append_string(out, service);
    out += ",\"msg\":";
    append_string(out, msg);
    std::array<std::string_view, 24> seen{"ts", "level", "service", "msg"};
    std::size_t n_seen = 4;
    const auto first_time = [&](std::string_view key) {
        for (std::size_t i = 0; i < n_seen; ++i)
            if (seen[i] == key) return false;
        if (n_seen < seen.size()) seen[n_seen++] = key;
        return true;
    };
    const auto field = [&](std::string_view key) {
        out.push_back(',');
        append_string(out, key);
        out.push_back(':');
    };
    const auto merge = [&](const nlohmann::json& more) {
        if (!more.is_object()) return;
        for (const auto& [k, v] : more.items()) {
            if (!first_time(k)) continue;
            field(k);
            if (v.is_string()) {
                append_string(out, v.get_ref<const std::string&>());
            } else {
                out += v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
            }
        }
    };
    if (fields != nullptr) merge(*fields);
    for (const Scope* s = tls_scope; s != nullptr; s = s->outer_) {
        merge(s->fields_);
        for (const auto& [k, v] : s->views_) {
            if (!first_time(k)) continue;
            field(k);
            append_string(out, v);
        }
    }
    out.push_back('}');
    return out;
}

Scope::Scope(nlohmann::json fields) : fields_(std::move(fields)), outer_(tls_scope) {
    tls_scope = this;
}

Scope::Scope(const Fields& fields) : views_(fields), outer_(tls_scope) { tls_scope = this; }

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
