#pragma once
/// An order's saga as the console shows it: every record of the order on every topic (from the
/// analytics-service's per-order index, fetched from Kafka by offset), its current state from
/// the order read model, and what it is waiting for (docs/CONTRACT.md "orderpipe-console").
/// Pure: unit-tested without Kafka.

#include "orderpipe/kafka/types.hpp"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace orderpipe::console {

/// `index`: GET /api/orders/{id}/records's "records"; shown by Kafka timestamp, the records of
/// one transaction (one timestamp) in the saga's order of topics; `records`: the
/// records fetched at those positions (any order; a position not fetched shows as missing);
/// `state`: GET /orders/{id} of the order-service, or null when it does not know the order.
nlohmann::json timeline_json(const std::string& order_id, const nlohmann::json& index,
                             const std::vector<kafka::ConsumedRecord>& records,
                             const nlohmann::json& state);

/// The trace id of a W3C `traceparent` (`00-<trace id>-<span id>-<flags>`), or "".
std::string trace_id_of(const std::string& traceparent);

}  // namespace orderpipe::console
