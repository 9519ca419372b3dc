#include "order_view.hpp"

#include "orderpipe/common/json.hpp"

namespace orderpipe::order {

using nlohmann::json;

json order_view(const OrderRecord& r) {
    json v = {{"order_id", r.order_id},
              {"status", contract::to_string(r.status)},
              {"customer_id", string_field(r.doc, "customer_id")},
              {"items", r.doc.value("items", json::array())},
              {"total", string_field(r.doc, "total")},
              {"currency", string_field(r.doc, "currency")},
              {"created_at", string_field(r.doc, "created_at")},
              {"history", r.history}};
    if (r.reason) v["reason"] = contract::to_string(*r.reason);
    if (!r.detail.empty()) v["detail"] = r.detail;
    return v;
}

}  // namespace orderpipe::order
