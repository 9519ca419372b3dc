#include "orderpipe/common/cloudevent.hpp"

#include "orderpipe/common/json.hpp"
#include "orderpipe/common/time.hpp"

#include <array>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <random>

namespace orderpipe {
namespace {

constexpr char kHex[] = "0123456789abcdef";

std::mt19937_64& rng() {
    thread_local std::mt19937_64 gen{[] {
        std::random_device rd;
        std::seed_seq seq{rd(), rd(), rd(), rd(), rd(), rd(), rd(), rd()};
        return std::mt19937_64(seq);
    }()};
    return gen;
}

std::string random_hex(std::size_t digits) {
    std::string out;
    out.reserve(digits);
    while (out.size() < digits) {
        std::uint64_t r = rng()();
        for (int i = 0; i < 16 && out.size() < digits; ++i, r >>= 4) out.push_back(kHex[r & 0xF]);
    }
    return out;
}

bool is_hex(std::string_view s) {
    for (char c : s) {
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    }
    return true;
}

bool all_zero(std::string_view s) { return s.find_first_not_of('0') == std::string_view::npos; }

/// Strict UTF-8 (no overlongs, no surrogates, at most U+10FFFF).
bool is_utf8(std::string_view s) {
    std::size_t i = 0;
    while (i < s.size()) {
        const auto c = static_cast<unsigned char>(s[i]);
        std::size_t n = 0;
        std::uint32_t cp = 0;
        if (c < 0x80) {
            ++i;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            n = 1;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            n = 2;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        for (std::size_t k = 1; k <= n; ++k) {
            if (i + k >= s.size()) return false;
            const auto cc = static_cast<unsigned char>(s[i + k]);
            if ((cc & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (cc & 0x3F);
        }
        static constexpr std::uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
        if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        i += n + 1;
    }
    return true;
}

}  // namespace

std::string new_uuid_v7() {
    // RFC 9562 §5.7: 48-bit Unix ms timestamp, version 7, then random bits. Within one ms a
    // per-process counter in rand_a keeps ids from one process monotonic.
    static std::mutex mu;
    static std::uint64_t last_ms = 0;
    static std::uint16_t seq = 0;
    std::uint64_t ms =
        static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                       std::chrono::system_clock::now().time_since_epoch())
                                       .count());
    std::uint16_t rand_a = 0;
    {
        std::lock_guard lock(mu);
        if (ms <= last_ms) {
            ms = last_ms;
            if (++seq > 0x0FFF) {  // counter exhausted: borrow the next millisecond
                ++ms;
                seq = 0;
            }
        } else {
            seq = static_cast<std::uint16_t>(rng()() & 0x07FF);  // random start, room to count
        }
        last_ms = ms;
        rand_a = seq;
    }
    std::array<std::uint8_t, 16> b{};
    for (int i = 0; i < 6; ++i) b[i] = static_cast<std::uint8_t>(ms >> (40 - 8 * i));
    b[6] = static_cast<std::uint8_t>(0x70 | ((rand_a >> 8) & 0x0F));
    b[7] = static_cast<std::uint8_t>(rand_a & 0xFF);
    std::uint64_t r = rng()();
    for (int i = 8; i < 16; ++i, r >>= 8) b[i] = static_cast<std::uint8_t>(r);
    b[8] = static_cast<std::uint8_t>(0x80 | (b[8] & 0x3F));  // RFC 4122 variant
    std::string out;
    out.reserve(36);
    for (int i = 0; i < 16; ++i) {
        if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
        out.push_back(kHex[b[i] >> 4]);
        out.push_back(kHex[b[i] & 0xF]);
    }
    return out;
}

std::optional<TraceContext> TraceContext::parse(std::string_view tp) {
    if (tp.size() != 55 || tp[2] != '-' || tp[35] != '-' || tp[52] != '-') return std::nullopt;
    auto version = tp.substr(0, 2), trace = tp.substr(3, 32), span = tp.substr(36, 16),
         flags = tp.substr(53, 2);
    if (!is_hex(version) || version == "ff" || !is_hex(trace) || !is_hex(span) || !is_hex(flags) ||
        all_zero(trace) || all_zero(span)) {
        return std::nullopt;
    }
    return TraceContext{std::string(trace), std::string(span), std::string(flags)};
}

TraceContext TraceContext::fresh() { return TraceContext{random_hex(32), random_hex(16), "01"}; }

TraceContext TraceContext::child() const { return TraceContext{trace_id, random_hex(16), flags}; }

CloudEvent CloudEvent::make(std::string type, std::string source, std::string subject,
                            std::string correlation_id, std::optional<std::string> causation_id,
                            std::string traceparent, nlohmann::json data) {
    CloudEvent e;
    e.id = new_uuid_v7();
    e.type = std::move(type);
    e.source = std::move(source);
    e.time = now_rfc3339();
    e.subject = std::move(subject);
    e.correlation_id = std::move(correlation_id);
    e.causation_id = std::move(causation_id);
    e.traceparent = std::move(traceparent);
    e.data = std::move(data);
    return e;
}

CloudEvent CloudEvent::caused_by(const CloudEvent& cause, std::string type, std::string source,
                                 nlohmann::json data) {
    auto parent = TraceContext::parse(cause.traceparent).value_or(TraceContext::fresh());
    return make(std::move(type), std::move(source), cause.subject, cause.correlation_id, cause.id,
                parent.child().header(), std::move(data));
}

Headers CloudEvent::headers() const {
    Headers h;
    h.reserve(10);
    h.emplace_back("ce_specversion", "1.0");
    h.emplace_back("ce_id", id);
    h.emplace_back("ce_type", type);
    h.emplace_back("ce_source", source);
    h.emplace_back("ce_time", time);
    h.emplace_back("ce_subject", subject);
    h.emplace_back("ce_correlationid", correlation_id);
    if (causation_id) h.emplace_back("ce_causationid", *causation_id);
    h.emplace_back("traceparent", traceparent);
    h.emplace_back("content-type", "application/json");
    return h;
}

std::string CloudEvent::value() const { return data.dump(); }

std::variant<CloudEvent, EnvelopeError> decode_event(
    const std::vector<std::pair<std::string, std::optional<std::string>>>& headers,
    std::optional<std::string_view> value) {
    auto find = [&](std::string_view name) -> const std::optional<std::string>* {
        for (const auto& [k, v] : headers) {
            if (k == name) return &v;
        }
        return nullptr;
    };
    CloudEvent e;
    struct Required {
        const char* name;
        std::string* out;
    };
    const Required required[] = {
        {"ce_id", &e.id},     {"ce_type", &e.type},       {"ce_source", &e.source},
        {"ce_time", &e.time}, {"ce_subject", &e.subject}, {"ce_correlationid", &e.correlation_id}};
    const auto* spec = find("ce_specversion");
    if (spec == nullptr || !spec->has_value())
        return EnvelopeError{"missing header ce_specversion"};
    if (**spec != "1.0") return EnvelopeError{"unsupported ce_specversion \"" + **spec + "\""};
    for (const auto& r : required) {
        const auto* v = find(r.name);
        if (v == nullptr || !v->has_value() || (*v)->empty()) {
            return EnvelopeError{std::string("missing header ") + r.name};
        }
        *r.out = **v;
    }
    if (const auto* c = find("ce_causationid"); c != nullptr && c->has_value())
        e.causation_id = **c;
    if (const auto* t = find("traceparent"); t != nullptr && t->has_value()) e.traceparent = **t;
    // Header values are copied into the headers of the events this one causes, and stored as
    // JSON (ProcessedEvents): they must be text.
    for (const auto& [k, v] : headers) {
        if (v && (k.rfind("ce_", 0) == 0 || k == "traceparent") && !is_utf8(*v)) {
            return EnvelopeError{"header " + k + " is not UTF-8 text"};
        }
    }
    if (!value) return EnvelopeError{"record has no value"};
    auto parsed = parse_untrusted_json(*value, 64);
    if (auto* err = std::get_if<JsonParseError>(&parsed)) {
        return EnvelopeError{"value is not JSON: " + err->message};
    }
    e.data = std::move(std::get<nlohmann::json>(parsed));
    if (!e.data.is_object()) return EnvelopeError{"value is not a JSON object"};
    return e;
}

}  // namespace orderpipe
