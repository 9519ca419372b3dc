#pragma once
/// CloudEvents ↔ Kafka records (binary mode, SPEC §4).

#include "orderpipe/common/cloudevent.hpp"
#include "orderpipe/kafka/types.hpp"

namespace orderpipe::kafka {

/// The record for `event` on `topic`, keyed by `key` (the order id, or the SKU).
inline OutgoingRecord to_record(std::string topic, std::string key, const CloudEvent& event) {
    OutgoingRecord r;
    r.topic = std::move(topic);
    r.key = std::move(key);
    r.value = event.value();
    for (auto& [name, value] : event.headers()) r.headers.emplace_back(std::move(name), std::move(value));
    return r;
}

/// Decodes a consumed record; see decode_event.
inline std::variant<CloudEvent, EnvelopeError> from_record(const ConsumedRecord& r) {
    return decode_event(r.headers, r.value ? std::optional<std::string_view>(*r.value) : std::nullopt);
}

}  // namespace orderpipe::kafka
