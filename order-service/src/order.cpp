#include "order.hpp"

#include "orderpipe/common/time.hpp"

#include <algorithm>
#include <set>

namespace orderpipe::order {
namespace {

using nlohmann::json;

bool valid_email(const std::string& e) {
    // Deliberately simple (RFC 5322 is not what users type): one '@', non-empty local part,
    // a dotted domain, no spaces or control characters, at most 254 bytes.
    if (e.size() < 3 || e.size() > 254) return false;
    const auto at = e.find('@');
    if (at == std::string::npos || at == 0 || e.find('@', at + 1) != std::string::npos)
        return false;
    const std::string domain = e.substr(at + 1);
    const auto dot = domain.find('.');
    if (domain.empty() || dot == std::string::npos || dot == 0 || domain.back() == '.')
        return false;
    return std::none_of(e.begin(), e.end(), [](unsigned char c) { return c <= ' ' || c == 0x7f; });
}

bool valid_token(const std::string& s, std::size_t max_len) {
    if (s.empty() || s.size() > max_len) return false;
    return std::all_of(s.begin(), s.end(), [](unsigned char c) {
        return std::isalnum(c) != 0 || c == '-' || c == '_' || c == '.' || c == ':';
    });
}

std::string type_name(const json& v) { return v.type_name(); }

}  // namespace

std::variant<OrderRequest, std::vector<FieldError>> validate_order(const json& body) {
    std::vector<FieldError> errors;
    OrderRequest req;
    if (!body.is_object()) {
        errors.push_back({"", "the body must be a JSON object, got " + type_name(body)});
        return errors;
    }
    auto text_field = [&](const char* name, std::string& out) -> bool {
        auto it = body.find(name);
        if (it == body.end()) {
            errors.push_back({name, "is required"});
            return false;
        }
        if (!it->is_string()) {
            errors.push_back({name, "must be a string, got " + type_name(*it)});
            return false;
        }
        out = it->get<std::string>();
        return true;
    };
    if (text_field("customer_id", req.customer_id) && !valid_token(req.customer_id, 128)) {
        errors.push_back(
            {"customer_id", "must be 1 to 128 characters of letters, digits, '-', '_', '.', ':'"});
    }
    if (text_field("customer_email", req.customer_email) && !valid_email(req.customer_email)) {
        errors.push_back({"customer_email", "is not a valid email address"});
    }
    if (text_field("currency", req.currency) && !is_currency_code(req.currency)) {
        errors.push_back({"currency", "must be a current ISO 4217 currency code, like USD or EUR"});
    }

    auto items = body.find("items");
    if (items == body.end()) {
        errors.push_back({"items", "is required"});
    } else if (!items->is_array()) {
        errors.push_back({"items", "must be an array, got " + type_name(*items)});
    } else if (items->empty()) {
        errors.push_back({"items", "must have at least one line"});
    } else if (items->size() > kMaxLines) {
        errors.push_back({"items", "must have at most " + std::to_string(kMaxLines) +
                                       " lines, got " + std::to_string(items->size())});
    } else {
        std::set<std::string> skus;
        Money total;
        bool total_ok = true;
        for (std::size_t i = 0; i < items->size(); ++i) {
            const json& item = (*items)[i];
            const std::string at = "items[" + std::to_string(i) + "]";
            if (!item.is_object()) {
                errors.push_back({at, "must be an object, got " + type_name(item)});
                total_ok = false;
                continue;
            }
            OrderLine line;
            bool ok = true;
            auto sku = item.find("sku");
            if (sku == item.end() || !sku->is_string() ||
                !valid_token(sku->get<std::string>(), 64)) {
                errors.push_back({at + ".sku",
                                  "is required: 1 to 64 characters of letters, digits, "
                                  "'-', '_', '.', ':'"});
                ok = false;
            } else {
                line.sku = sku->get<std::string>();
                if (!skus.insert(line.sku).second) {
                    errors.push_back({at + ".sku", "repeats " + line.sku + ": one line per SKU"});
                    ok = false;
                }
            }
            auto qty = item.find("quantity");
            if (qty == item.end() || !qty->is_number_integer()) {
                errors.push_back({at + ".quantity", "is required: an integer from 1 to " +
                                                        std::to_string(kMaxQuantity)});
                ok = false;
            } else {
                // is_number_integer covers unsigned too; compare without overflowing.
                const bool in_range =
                    qty->is_number_unsigned()
                        ? qty->get<std::uint64_t>() <= static_cast<std::uint64_t>(kMaxQuantity) &&
                              qty->get<std::uint64_t>() >= 1
                        : qty->get<std::int64_t>() >= 1 && qty->get<std::int64_t>() <= kMaxQuantity;
                if (!in_range) {
                    errors.push_back(
                        {at + ".quantity", "must be from 1 to " + std::to_string(kMaxQuantity)});
                    ok = false;
                } else {
                    line.quantity = qty->get<std::int64_t>();
                }
            }
            auto price = item.find("unit_price");
            std::optional<Money> parsed;
            if (price != item.end() && price->is_string()) {
                parsed = Money::parse(price->get<std::string>());  // float literals arrive as text
            } else if (price != item.end() && price->is_number_integer()) {
                parsed = Money::parse(price->dump());
            }
            if (!parsed || parsed->minor_units() <= 0) {
                errors.push_back({at + ".unit_price",
                                  "is required: a positive decimal with at most two fraction "
                                  "digits, as a string (\"999.99\") or a number"});
                ok = false;
            } else {
                line.unit_price = *parsed;
            }
            if (ok && total_ok) {
                auto line_total = line.unit_price.times(line.quantity);
                auto sum = line_total ? total.plus(*line_total) : std::nullopt;
                if (!sum) {
                    errors.push_back({"items", "the order total is too large"});
                    total_ok = false;
                } else {
                    total = *sum;
                }
            }
            if (ok) req.items.push_back(std::move(line));
        }
        req.total = total;
    }
    if (!errors.empty()) return errors;
    return req;
}

AcceptedOrder accept(OrderRequest request, const std::optional<std::string>& traceparent) {
    AcceptedOrder o;
    auto& c = o.created;
    c.order_id = new_uuid_v7();
    c.customer_id = std::move(request.customer_id);
    c.customer_email = std::move(request.customer_email);
    for (auto& l : request.items) c.items.push_back({std::move(l.sku), l.quantity, l.unit_price});
    c.total = request.total;
    c.currency = std::move(request.currency);
    c.created_at = now_rfc3339();
    o.correlation_id = new_uuid_v7();
    o.created_event_id = new_uuid_v7();
    o.reserve_event_id = new_uuid_v7();
    // The intake's hop: from the request to the commit of ORDER_CREATED, under the caller's
    // span (a new trace without a valid traceparent).
    o.traceparent = next_hop(traceparent.value_or(""));
    return o;
}

namespace {

CloudEvent created_event(const AcceptedOrder& o) {
    CloudEvent e = contract::new_event(
        contract::EventType::kOrderCreated, contract::source::kOrderService, o.order_id(),
        o.correlation_id, std::nullopt, o.traceparent, o.created.to_json());
    e.time = o.created.created_at;
    e.id = o.created_event_id;
    return e;
}

}  // namespace

std::pair<CloudEvent, CloudEvent> intake_events(const AcceptedOrder& o) {
    using contract::EventType;
    CloudEvent first = created_event(o);
    contract::InventoryReserveRequested reserve{o.order_id(), o.created.stock_lines(), first.data};
    CloudEvent second =
        contract::event_caused_by(first, EventType::kInventoryReserveRequested,
                                  contract::source::kOrderService, reserve.to_json());
    second.id = o.reserve_event_id;
    return {std::move(first), std::move(second)};
}

json created_response(const contract::OrderCreated& o) {
    return {{"order_id", o.order_id},
            {"status", contract::to_string(contract::OrderStatus::kPending)},
            {"total", o.total.to_string()},
            {"currency", o.currency},
            {"created_at", o.created_at}};
}

}  // namespace orderpipe::order
