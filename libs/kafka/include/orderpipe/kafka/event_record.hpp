#pragma once
/// CloudEvents ↔ Kafka records (binary mode, docs/CONTRACT.md "Events").

#include "orderpipe/common/cloudevent.hpp"
#include "orderpipe/common/tracing.hpp"
#include "orderpipe/kafka/types.hpp"

namespace orderpipe::kafka {

/// The record for `event` on `topic`, keyed by `key` (the order id, or the SKU).
inline OutgoingRecord to_record(std::string topic, std::string key, const CloudEvent& event) {
    OutgoingRecord r;
    r.topic = std::move(topic);
    r.key = std::move(key);
    r.value = event.value();
    for (auto& [name, value] : event.headers())
        r.headers.emplace_back(std::move(name), std::move(value));
    return r;
}

/// Decodes a consumed record; see decode_event.
inline std::variant<CloudEvent, EnvelopeError> from_record(const ConsumedRecord& r) {
    return decode_event(r.headers,
                        r.value ? std::optional<std::string_view>(*r.value) : std::nullopt);
}

/// These records were committed: each event among them ends its hop's span (common/tracing.hpp;
/// a no-op unless tracing is on).
inline void trace_committed(const std::vector<OutgoingRecord>& records) {
    for (const auto& r : records) {
        const std::string* traceparent = nullptr;
        const std::string* type = nullptr;
        for (const auto& [k, v] : r.headers) {
            if (!v) continue;
            if (k == "traceparent") traceparent = &*v;
            if (k == "ce_type") type = &*v;
        }
        if (traceparent == nullptr || type == nullptr) continue;
        tracing::committed(
            *traceparent, *type,
            {{"messaging.destination.name", r.topic}, {"orderpipe.key", r.key.value_or("")}});
    }
}

/// An outgoing record as JSON, to store a result for re-emission (ProcessedEvents, outbox).
/// Assumes UTF-8 text key, value and headers, as every orderpipe event has.
inline nlohmann::json record_to_json(const OutgoingRecord& r) {
    nlohmann::json headers = nlohmann::json::array();
    for (const auto& [k, v] : r.headers) {
        headers.push_back({k, v ? nlohmann::json(*v) : nlohmann::json(nullptr)});
    }
    return {{"topic", r.topic},
            {"key", r.key ? nlohmann::json(*r.key) : nlohmann::json(nullptr)},
            {"value", r.value ? nlohmann::json(*r.value) : nlohmann::json(nullptr)},
            {"headers", std::move(headers)}};
}

inline OutgoingRecord record_from_json(const nlohmann::json& j) {
    OutgoingRecord r;
    r.topic = j.at("topic").get<std::string>();
    if (!j.at("key").is_null()) r.key = j.at("key").get<std::string>();
    if (!j.at("value").is_null()) r.value = j.at("value").get<std::string>();
    for (const auto& h : j.at("headers")) {
        r.headers.emplace_back(h.at(0).get<std::string>(),
                               h.at(1).is_null()
                                   ? std::nullopt
                                   : std::optional<std::string>(h.at(1).get<std::string>()));
    }
    return r;
}

}  // namespace orderpipe::kafka
