#include "timeline.hpp"

#include <algorithm>
#include <array>
#include <map>
#include <tuple>

namespace orderpipe::console {

using nlohmann::json;

std::string trace_id_of(const std::string& traceparent) {
    // 2 + 1 + 32 + 1 + 16 + 1 + 2 characters
    if (traceparent.size() != 55 || traceparent[2] != '-' || traceparent[35] != '-') return "";
    return traceparent.substr(3, 32);
}

namespace {

std::string header_or_empty(const kafka::ConsumedRecord& r, std::string_view name) {
    return r.header(name).value_or("");
}

/// What a saga that is not over waits for, read from its records; "" when nothing.
std::string waiting_for(const json& state, const std::vector<std::string>& types,
                        bool dead_letter) {
    const auto has = [&](std::string_view t) {
        for (const auto& x : types) {
            if (x == t) return true;
        }
        return false;
    };
    const std::string status = state.is_object() ? state.value("status", "") : "";
    if (status == "PENDING") {
        if (!has("INVENTORY_RESERVE_RESULT")) {
            return "the inventory-service's answer to the reservation request";
        }
        return "the order-service's decision";
    }
    if (dead_letter && !has("REPLAYED") && !has("DISCARDED")) {
        return "an operator: a dead letter of this order is pending (replay or discard it)";
    }
    if (has("NOTIFICATION_REQUESTED") && !has("NOTIFICATION_SENT") && !has("NOTIFICATION_FAILED")) {
        return "the notification-service: the email is not sent yet";
    }
    return "";
}

/// Where a topic's records come in a saga, for records of one transaction (the same Kafka
/// timestamp): the order's event first, then what it asks of the inventory, its answers, the
/// email, dead letters and their resolutions.
int saga_rank(std::string_view topic) {
    if (topic.ends_with(".dlq")) return 7;
    constexpr std::array<std::string_view, 8> kOrder{
        "orders.events",    "orders.commands",        "inventory.requests",   "inventory.responses",
        "inventory.events", "notifications.requests", "notifications.events", "dlq.resolutions"};
    for (std::size_t i = 0; i < kOrder.size(); ++i) {
        if (topic.ends_with(kOrder[i])) return i == 7 ? 8 : static_cast<int>(i);
    }
    return 9;
}

}  // namespace

json timeline_json(const std::string& order_id, const json& index,
                   const std::vector<kafka::ConsumedRecord>& records, const json& state) {
    std::map<std::tuple<std::string, std::int32_t, std::int64_t>, const kafka::ConsumedRecord*>
        fetched;
    for (const auto& r : records) fetched[{r.topic, r.partition, r.offset}] = &r;
    json entries = json::array();
    std::vector<std::string> types;
    bool dead_letter = false;
    std::int64_t previous_ms = -1;
    // By Kafka timestamp, and the records of one transaction in the saga's order.
    std::vector<const json*> sorted;
    for (const auto& at : index) sorted.push_back(&at);
    std::stable_sort(sorted.begin(), sorted.end(), [](const json* a, const json* b) {
        return std::pair(a->value("timestamp_ms", std::int64_t{0}),
                         saga_rank(a->value("topic", ""))) <
               std::pair(b->value("timestamp_ms", std::int64_t{0}),
                         saga_rank(b->value("topic", "")));
    });
    for (const json* entry : sorted) {
        const json& at = *entry;
        json e = {{"topic", at.value("topic", "")},
                  {"partition", at.value("partition", 0)},
                  {"offset", at.value("offset", std::int64_t{0})},
                  {"type", at.value("type", "")},
                  {"timestamp_ms", at.value("timestamp_ms", std::int64_t{0})}};
        const std::int64_t ts = e["timestamp_ms"];
        e["gap_ms"] = previous_ms < 0 ? json(nullptr) : json(ts - previous_ms);
        previous_ms = ts;
        types.push_back(e["type"]);
        if (e["topic"].get<std::string>().ends_with(".dlq")) dead_letter = true;
        const auto it = fetched.find({e["topic"], e["partition"], e["offset"]});
        if (it == fetched.end()) {
            e["fetched"] = false;  // past retention, or not read in time
            entries.push_back(std::move(e));
            continue;
        }
        const auto& r = *it->second;
        e["fetched"] = true;
        e["time"] = header_or_empty(r, "ce_time");
        e["source"] = header_or_empty(r, "ce_source");
        e["id"] = header_or_empty(r, "ce_id");
        e["causation_id"] = header_or_empty(r, "ce_causationid");
        e["correlation_id"] = header_or_empty(r, "ce_correlationid");
        e["trace_id"] = trace_id_of(header_or_empty(r, "traceparent"));
        json headers = json::object();
        for (const auto& [name, value] : r.headers) headers[name] = value ? json(*value) : json();
        e["headers"] = std::move(headers);
        e["key"] = r.key ? json(*r.key) : json();
        if (!r.value) {
            e["value"] = nullptr;
        } else {
            auto parsed = json::parse(*r.value, nullptr, /*allow_exceptions=*/false);
            e["value"] = parsed.is_discarded() ? json(*r.value) : std::move(parsed);
        }
        entries.push_back(std::move(e));
    }
    json out = {{"order_id", order_id},
                {"state", state},
                {"records", std::move(entries)},
                {"waiting_for", waiting_for(state, types, dead_letter)}};
    return out;
}

}  // namespace orderpipe::console
