#pragma once
// The per-order index checked from outside: every record of an order, found by scanning every
// topic the analytics-service reads (what `kcat -C -t <topic> -f '%k'` would show for its key),
// to compare with what the index (GET /api/orders/{id}/records) and the console's timeline say.

#include "pipeline.hpp"

#include "orderpipe/contract/topics.hpp"

#include <map>
#include <set>
#include <string>
#include <tuple>
#include <vector>

namespace orderpipe::testing {

/// One record of an order: topic (full name), partition, offset, type (ce_type or a
/// resolution's action), Kafka timestamp.
using Indexed = std::tuple<std::string, int, long long, std::string, long long>;

/// Every record of each of `orders` on every topic (keyed by order id; a resolution names its
/// order in its value).
inline std::map<std::string, std::set<Indexed>> scanned(const Pipeline& p,
                                                        const std::vector<std::string>& orders) {
    std::map<std::string, std::set<Indexed>> out;
    for (const auto& id : orders) out[id];
    std::vector<std::string> topics{
        "orders.events",          "inventory.requests",   "inventory.responses", "inventory.events",
        "notifications.requests", "notifications.events", "orders.commands"};
    for (const auto& t : contract::dlq_topics()) topics.emplace_back(t);
    for (const auto& t : topics) {
        for (const auto& r : read_committed(p.topic(t))) {
            if (!r.key || !out.contains(*r.key)) continue;
            out[*r.key].insert(
                {r.topic, r.partition, r.offset, r.header("ce_type").value_or(""), r.timestamp_ms});
        }
    }
    for (const auto& r : read_committed(p.topic("dlq.resolutions"))) {
        if (!r.value) continue;
        const auto v = nlohmann::json::parse(*r.value);
        const auto id = v.value("order_id", "");
        if (!out.contains(id)) continue;
        out[id].insert(
            {r.topic, r.partition, r.offset, v["action"].get<std::string>(), r.timestamp_ms});
    }
    return out;
}

/// The Indexed of each entry of a JSON list with topic, partition, offset, type, timestamp_ms.
inline std::set<Indexed> indexed_of(const nlohmann::json& list) {
    std::set<Indexed> out;
    for (const auto& e : list) {
        out.insert({e["topic"].get<std::string>(), e["partition"].get<int>(),
                    e["offset"].get<long long>(), e["type"].get<std::string>(),
                    e["timestamp_ms"].get<long long>()});
    }
    return out;
}

}  // namespace orderpipe::testing
