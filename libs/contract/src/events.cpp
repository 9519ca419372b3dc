#include "orderpipe/contract/events.hpp"

#include "orderpipe/common/time.hpp"

#include <string>

namespace orderpipe::contract {
namespace {

using nlohmann::json;

const json& field(const json& data, const char* key) {
    if (!data.is_object()) throw ContractError("the event data is not a JSON object");
    auto it = data.find(key);
    if (it == data.end() || it->is_null()) throw ContractError(std::string(key) + " is missing");
    return *it;
}

std::string text(const json& data, const char* key, bool allow_empty = false) {
    const json& v = field(data, key);
    if (!v.is_string()) throw ContractError(std::string(key) + " must be a string");
    auto s = v.get<std::string>();
    if (s.empty() && !allow_empty) throw ContractError(std::string(key) + " is empty");
    return s;
}

/// Like text(), but an absent field reads as "".
std::string optional_text(const json& data, const char* key) {
    if (!data.is_object()) throw ContractError("the event data is not a JSON object");
    auto it = data.find(key);
    if (it == data.end() || it->is_null()) return {};
    if (!it->is_string()) throw ContractError(std::string(key) + " must be a string");
    return it->get<std::string>();
}

std::int64_t integer(const json& data, const char* key, std::int64_t min) {
    const json& v = field(data, key);
    if (!v.is_number_integer()) throw ContractError(std::string(key) + " must be an integer");
    const auto n = v.get<std::int64_t>();
    if (n < min) throw ContractError(std::string(key) + " must be at least " + std::to_string(min));
    return n;
}

Money money(const json& data, const char* key) {
    const std::string s = text(data, key);
    auto m = Money::parse(s);
    if (!m) throw ContractError(std::string(key) + " must be a decimal amount, not \"" + s + "\"");
    return *m;
}

std::string currency(const json& data) {
    std::string c = text(data, "currency");
    if (!is_currency_code(c)) throw ContractError("currency must be an ISO 4217 code");
    return c;
}

std::string timestamp(const json& data, const char* key) {
    std::string t = text(data, key);
    if (!parse_rfc3339(t)) throw ContractError(std::string(key) + " must be an RFC 3339 time");
    return t;
}

template <typename Enum, typename Parse>
Enum enumerated(const json& data, const char* key, Parse parse) {
    const std::string s = text(data, key);
    auto v = parse(s);
    if (!v) throw ContractError(std::string(key) + " has an unknown value \"" + s + "\"");
    return *v;
}

const json& array(const json& data, const char* key, bool allow_empty = false) {
    const json& v = field(data, key);
    if (!v.is_array()) throw ContractError(std::string(key) + " must be an array");
    if (v.empty() && !allow_empty) throw ContractError(std::string(key) + " is empty");
    return v;
}

std::vector<StockLine> stock_lines(const json& data, const char* key, bool allow_empty = false) {
    std::vector<StockLine> out;
    for (const auto& line : array(data, key, allow_empty)) {
        StockLine l{text(line, "sku"), integer(line, "quantity", 1)};
        for (const auto& seen : out) {
            // One line per SKU: an order's lines are checked against the same stock.
            if (seen.sku == l.sku)
                throw ContractError("SKU " + l.sku + " appears on more than one line");
        }
        out.push_back(std::move(l));
    }
    return out;
}

json stock_lines_json(const std::vector<StockLine>& lines) {
    json out = json::array();
    for (const auto& l : lines) out.push_back({{"sku", l.sku}, {"quantity", l.quantity}});
    return out;
}

const json& object(const json& data, const char* key) {
    const json& v = field(data, key);
    if (!v.is_object()) throw ContractError(std::string(key) + " must be an object");
    return v;
}

}  // namespace

// --- ORDER_CREATED ------------------------------------------------------------------------------

json OrderCreated::to_json() const {
    json lines = json::array();
    for (const auto& i : items) {
        lines.push_back(
            {{"sku", i.sku}, {"quantity", i.quantity}, {"unit_price", i.unit_price.to_string()}});
    }
    return {{"order_id", order_id},
            {"customer_id", customer_id},
            {"customer_email", customer_email},
            {"items", std::move(lines)},
            {"total", total.to_string()},
            {"currency", currency},
            {"status", to_string(OrderStatus::kPending)},
            {"created_at", created_at}};
}

OrderCreated OrderCreated::read(const json& data) {
    OrderCreated o;
    o.order_id = text(data, "order_id");
    o.customer_id = text(data, "customer_id");
    o.customer_email = text(data, "customer_email");
    for (const auto& line : array(data, "items")) {
        o.items.push_back(
            {text(line, "sku"), integer(line, "quantity", 1), money(line, "unit_price")});
    }
    o.total = money(data, "total");
    o.currency = contract::currency(data);
    o.created_at = timestamp(data, "created_at");
    return o;
}

std::vector<StockLine> OrderCreated::stock_lines() const {
    std::vector<StockLine> out;
    out.reserve(items.size());
    for (const auto& i : items) out.push_back({i.sku, i.quantity});
    return out;
}

// --- inventory ----------------------------------------------------------------------------------

json InventoryReserveRequested::to_json() const {
    return {{"order_id", order_id}, {"items", stock_lines_json(items)}, {"order", order}};
}

InventoryReserveRequested InventoryReserveRequested::read(const json& data) {
    return {text(data, "order_id"), stock_lines(data, "items"), object(data, "order")};
}

json InventoryReleaseRequested::to_json() const {
    return {{"order_id", order_id}, {"items", stock_lines_json(items)}, {"reason", reason}};
}

InventoryReleaseRequested InventoryReleaseRequested::read(const json& data) {
    // The inventory releases what it reserved; the items are informative and may be empty.
    return {text(data, "order_id"), stock_lines(data, "items", /*allow_empty=*/true),
            optional_text(data, "reason")};
}

json InventoryReserveResult::to_json() const {
    json out_lines = json::array();
    for (const auto& l : lines) {
        out_lines.push_back(
            {{"sku", l.sku}, {"requested", l.requested}, {"available", l.available}});
    }
    return {{"order_id", order_id},
            {"status", to_string(status)},
            {"reason", reason},
            {"lines", std::move(out_lines)},
            {"order", order}};
}

InventoryReserveResult InventoryReserveResult::read(const json& data) {
    InventoryReserveResult r;
    r.order_id = text(data, "order_id");
    r.status = enumerated<ReserveStatus>(data, "status", parse_reserve_status);
    r.reason = optional_text(data, "reason");
    for (const auto& l : array(data, "lines", /*allow_empty=*/true)) {
        r.lines.push_back({text(l, "sku"), integer(l, "requested", 0), integer(l, "available", 0)});
    }
    r.order = object(data, "order");
    return r;
}

json InventoryChanged::to_json() const {
    json out = {{"order_id", order_id}, {"lines", stock_lines_json(lines)}};
    if (!reason.empty()) out["reason"] = reason;
    return out;
}

InventoryChanged InventoryChanged::read(const json& data) {
    return {text(data, "order_id"), stock_lines(data, "lines"), optional_text(data, "reason")};
}

json StockAdjusted::to_json() const {
    return {{"sku", sku}, {"available", available}, {"reserved", reserved}};
}

StockAdjusted StockAdjusted::read(const json& data) {
    return {text(data, "sku"), integer(data, "available", 0), integer(data, "reserved", 0)};
}

// --- decisions ----------------------------------------------------------------------------------

json OrderConfirmed::to_json() const {
    return {{"order_id", order_id},
            {"total", total.to_string()},
            {"currency", currency},
            {"confirmed_at", confirmed_at}};
}

OrderConfirmed OrderConfirmed::read(const json& data) {
    return {text(data, "order_id"), money(data, "total"), contract::currency(data),
            timestamp(data, "confirmed_at")};
}

json OrderCancelled::to_json() const {
    return {{"order_id", order_id}, {"total", total.to_string()},
            {"currency", currency}, {"reason", to_string(reason)},
            {"detail", detail},     {"cancelled_at", cancelled_at}};
}

OrderCancelled OrderCancelled::read(const json& data) {
    OrderCancelled c;
    c.order_id = text(data, "order_id");
    c.total = money(data, "total");
    c.currency = contract::currency(data);
    c.reason = enumerated<CancelReason>(data, "reason", parse_cancel_reason);
    c.detail = optional_text(data, "detail");
    c.cancelled_at = optional_text(data, "cancelled_at");  // an addition to the contract: optional
    return c;
}

// --- notifications ------------------------------------------------------------------------------

json NotificationRequested::to_json() const {
    return {{"notification_id", notification_id},
            {"order_id", order_id},
            {"kind", to_string(kind)},
            {"channel", channel},
            {"to", to},
            {"subject", subject},
            {"text", text}};
}

NotificationRequested NotificationRequested::read(const json& data) {
    NotificationRequested n;
    n.notification_id = contract::text(data, "notification_id");
    n.order_id = contract::text(data, "order_id");
    n.kind = enumerated<NotificationKind>(data, "kind", parse_notification_kind);
    n.channel = contract::text(data, "channel");
    if (n.channel != "email") throw ContractError("channel \"" + n.channel + "\" is not email");
    n.to = contract::text(data, "to");
    n.subject = contract::text(data, "subject");
    n.text = contract::text(data, "text", /*allow_empty=*/true);
    return n;
}

json NotificationSent::to_json() const {
    return {{"notification_id", notification_id}, {"order_id", order_id}, {"attempts", attempts}};
}

NotificationSent NotificationSent::read(const json& data) {
    return {text(data, "notification_id"), text(data, "order_id"),
            static_cast<int>(integer(data, "attempts", 0))};
}

json NotificationFailed::to_json() const {
    return {{"notification_id", notification_id},
            {"order_id", order_id},
            {"attempts", attempts},
            {"reason", to_string(reason)},
            {"last_error", last_error}};
}

NotificationFailed NotificationFailed::read(const json& data) {
    return {text(data, "notification_id"), text(data, "order_id"),
            static_cast<int>(integer(data, "attempts", 0)),
            enumerated<DlqReason>(data, "reason", parse_dlq_reason),
            optional_text(data, "last_error")};
}

// --- dlq.resolutions ----------------------------------------------------------------------------

json DlqResolution::to_json() const {
    json out = {{"action", to_string(action)}, {"at", at}, {"note", note}, {"user", user}};
    if (!replayed_to.empty()) out["replayed_to"] = replayed_to;
    if (!order_id.empty()) out["order_id"] = order_id;
    return out;
}

DlqResolution DlqResolution::read(const json& data) {
    return {enumerated<DlqAction>(data, "action", parse_dlq_action),
            timestamp(data, "at"),
            optional_text(data, "note"),
            optional_text(data, "user"),
            optional_text(data, "replayed_to"),
            optional_text(data, "order_id")};
}

CloudEvent new_event(EventType type, std::string_view source, std::string subject,
                     std::string correlation_id, std::optional<std::string> causation_id,
                     std::string traceparent, json data) {
    return CloudEvent::make(std::string(to_string(type)), std::string(source), std::move(subject),
                            std::move(correlation_id), std::move(causation_id),
                            std::move(traceparent), std::move(data));
}

CloudEvent event_caused_by(const CloudEvent& cause, EventType type, std::string_view source,
                           json data) {
    return CloudEvent::caused_by(cause, std::string(to_string(type)), std::string(source),
                                 std::move(data));
}

std::optional<EventType> type_of(const CloudEvent& event) { return parse_event_type(event.type); }

std::string dlq_record_key(std::string_view topic, std::int32_t partition, std::int64_t offset) {
    return std::string(topic) + "/" + std::to_string(partition) + "/" + std::to_string(offset);
}

namespace {
/// The log field of an event's subject (its key): the order, or the SKU of a STOCK_ADJUSTED.
const char* subject_field(std::string_view type) {
    return type == to_string(EventType::kStockAdjusted) ? "sku" : "order_id";
}
}  // namespace

log::Fields log_fields(const CloudEvent& event) {
    log::Fields f;
    f.add(subject_field(event.type), event.subject);
    f.add("correlation_id", event.correlation_id);
    f.add("traceparent", event.traceparent);
    return f;
}

log::Fields log_fields(
    const std::optional<std::string>& key,
    const std::vector<std::pair<std::string, std::optional<std::string>>>& headers) {
    std::string_view correlation, traceparent, type;
    for (const auto& [name, value] : headers) {
        if (!value) continue;
        if (name == "ce_correlationid") correlation = *value;
        if (name == "traceparent") traceparent = *value;
        if (name == "ce_type") type = *value;
    }
    log::Fields f;
    if (key) f.add(subject_field(type), *key);
    f.add("correlation_id", correlation);
    f.add("traceparent", traceparent);
    return f;
}

}  // namespace orderpipe::contract
