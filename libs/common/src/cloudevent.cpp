#include "orderpipe/common/cloudevent.hpp"

#include "orderpipe/common/json.hpp"
#include "orderpipe/common/time.hpp"
#include "orderpipe/common/tracing.hpp"

#include <chrono>
#include <cstdint>

namespace orderpipe {
namespace {

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

std::string next_hop(std::string_view traceparent) {
    const auto parent = TraceContext::parse(traceparent);
    const auto hop = parent ? parent->child() : TraceContext::fresh();
    if (tracing::enabled()) tracing::begin(hop.span_id, parent ? parent->span_id : std::string());
    return hop.header();
}

CloudEvent CloudEvent::caused_by(const CloudEvent& cause, std::string type, std::string source,
                                 nlohmann::json data) {
    return make(std::move(type), std::move(source), cause.subject, cause.correlation_id, cause.id,
                next_hop(cause.traceparent), std::move(data));
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
    // Readers order and time events by it (saga latency, per-minute figures).
    if (!parse_rfc3339(e.time)) {
        return EnvelopeError{"ce_time \"" + e.time + "\" is not an RFC 3339 time"};
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
