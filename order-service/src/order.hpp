#pragma once
/// Order domain: validation of `POST /orders` bodies and the events of an accepted order.
/// Pure code: no I/O, no Kafka, no clocks except where a timestamp is passed in.

#include "orderpipe/common/cloudevent.hpp"
#include "orderpipe/common/money.hpp"
#include "orderpipe/contract/events.hpp"

#include <nlohmann/json.hpp>

#include <string>
#include <variant>
#include <vector>

namespace orderpipe::order {

inline constexpr std::int64_t kMaxQuantity = 1000;
inline constexpr std::size_t kMaxLines = 100;

struct OrderLine {
    std::string sku;
    std::int64_t quantity = 0;
    Money unit_price;
};

/// A validated order request.
struct OrderRequest {
    std::string customer_id;
    std::string customer_email;
    std::string currency;
    std::vector<OrderLine> items;
    Money total;
};

/// One reason a request is invalid; becomes an entry of the 422 problem's `errors`.
struct FieldError {
    std::string field;    ///< JSON pointer-ish path, e.g. "items[1].quantity"
    std::string message;  ///< what is wrong and what is accepted
};

/// Validates a parsed body (float literals already kept as text, see parse_untrusted_json).
/// Collects every error rather than stopping at the first.
std::variant<OrderRequest, std::vector<FieldError>> validate_order(const nlohmann::json& body);

/// An order accepted for intake: the request plus the ids and times the service assigned.
struct AcceptedOrder {
    contract::OrderCreated created;  ///< ORDER_CREATED's data
    std::string correlation_id;      ///< the saga id
    std::string traceparent;         ///< continues the HTTP request's trace
    std::string created_event_id;    ///< ce_id of its ORDER_CREATED (fixed at acceptance)
    std::string reserve_event_id;    ///< ce_id of its INVENTORY_RESERVE_REQUESTED

    const std::string& order_id() const { return created.order_id; }
};

/// Assigns the order id, event ids, saga id and creation time; continues `traceparent` (the
/// request's header, if valid) or starts a new trace.
AcceptedOrder accept(OrderRequest request, const std::optional<std::string>& traceparent);

/// `ORDER_CREATED` (to orders.events) and the `INVENTORY_RESERVE_REQUESTED` it causes
/// (to inventory.requests), in that order.
std::pair<CloudEvent, CloudEvent> intake_events(const AcceptedOrder& order);

/// The 201 body: {"order_id","status":"PENDING","total","currency","created_at"}.
nlohmann::json created_response(const contract::OrderCreated& order);

}  // namespace orderpipe::order
