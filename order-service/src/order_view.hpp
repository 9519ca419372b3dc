#pragma once
/// What GET /orders/{id} answers for an order (docs/CONTRACT.md "HTTP APIs").

#include "order_record.hpp"

#include <nlohmann/json.hpp>

namespace orderpipe::order {

/// The GET /orders/{id} body.
nlohmann::json order_view(const OrderRecord& r);

}  // namespace orderpipe::order
