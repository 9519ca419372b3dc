#include "inventory_state.hpp"

#include "orderpipe/common/json.hpp"

#include <fstream>
#include <sstream>

namespace orderpipe::inventory {

const char* state_name(ReservationState s) {
    switch (s) {
        case ReservationState::kReserved:
            return "RESERVED";
        case ReservationState::kRejected:
            return "REJECTED";
        case ReservationState::kReleased:
            return "RELEASED";
    }
    return "?";
}

ReservationState parse_reservation_state(std::string_view name) {
    return name == "RESERVED"   ? ReservationState::kReserved
           : name == "RELEASED" ? ReservationState::kReleased
                                : ReservationState::kRejected;
}

std::string lines_to_json(const std::vector<RequestedLine>& lines) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& l : lines) out.push_back({{"sku", l.sku}, {"quantity", l.quantity}});
    return out.dump();
}

std::vector<RequestedLine> lines_from_json(std::string_view json) {
    std::vector<RequestedLine> out;
    for (const auto& l : nlohmann::json::parse(json)) {
        out.push_back({l.at("sku").get<std::string>(), l.at("quantity").get<std::int64_t>()});
    }
    return out;
}

nlohmann::json CatalogItem::to_json() const {
    return {
        {"sku", sku},           {"name", name},           {"unit_price", unit_price.to_string()},
        {"currency", currency}, {"available", available}, {"reserved", reserved}};
}

std::vector<CatalogItem> default_catalog() {
    auto price = [](const char* p) { return *Money::parse(p); };
    return {
        {"LAPTOP-001", "Laptop 14\"", price("999.99"), 50, 0},
        {"MOUSE-001", "Wireless mouse", price("29.99"), 200, 0},
        {"KEYBOARD-001", "Mechanical keyboard", price("79.99"), 100, 0},
        {"MONITOR-001", "27\" monitor", price("249.99"), 30, 0},
        {"HEADSET-001", "Headset", price("59.99"), 80, 0},
    };
}

std::vector<CatalogItem> load_catalog(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw std::runtime_error("INVENTORY_SEED: cannot read " + path);
    std::stringstream ss;
    ss << in.rdbuf();
    auto parsed = parse_untrusted_json(ss.str());
    if (auto* err = std::get_if<JsonParseError>(&parsed)) {
        throw std::runtime_error("INVENTORY_SEED " + path + ": " + err->message);
    }
    const auto& j = std::get<nlohmann::json>(parsed);
    if (!j.is_array())
        throw std::runtime_error("INVENTORY_SEED " + path + ": expected a JSON array");
    std::vector<CatalogItem> out;
    for (std::size_t i = 0; i < j.size(); ++i) {
        const auto& e = j[i];
        const std::string at = "INVENTORY_SEED " + path + " entry " + std::to_string(i) + ": ";
        if (!e.is_object() || !e.contains("sku") || !e["sku"].is_string() ||
            e["sku"].get<std::string>().empty()) {
            throw std::runtime_error(at + "needs a non-empty string \"sku\"");
        }
        if (!e.contains("stock") || !e["stock"].is_number_integer() ||
            e["stock"].get<std::int64_t>() < 0) {
            throw std::runtime_error(at + "needs \"stock\", an integer >= 0");
        }
        std::optional<Money> p;
        if (e.contains("unit_price") && (e["unit_price"].is_string()))
            p = Money::parse(e["unit_price"].get<std::string>());
        if (e.contains("unit_price") && e["unit_price"].is_number_integer())
            p = Money::parse(e["unit_price"].dump());
        if (!p) throw std::runtime_error(at + "needs \"unit_price\", a decimal like \"999.99\"");
        const std::string currency = string_field(e, "currency", "USD");
        if (!is_currency_code(currency)) {
            throw std::runtime_error(at + "\"currency\" must be an ISO 4217 code, not \"" +
                                     currency + "\"");
        }
        out.push_back({e["sku"].get<std::string>(),
                       string_field(e, "name", e["sku"].get<std::string>()), *p,
                       e["stock"].get<std::int64_t>(), 0, currency});
    }
    return out;
}

}  // namespace orderpipe::inventory
