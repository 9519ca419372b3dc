#pragma once
/// Inventory domain (pure): the all-or-nothing reservation decision for one order.

#include "orderpipe/common/money.hpp"
#include "orderpipe/contract/names.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace orderpipe::inventory {

/// A SKU's stock and its catalog price, the price authority (docs/CONTRACT.md "The saga").
struct StockLevel {
    std::int64_t available = 0;
    std::int64_t reserved = 0;
    Money unit_price;
    std::string currency = "USD";
};

struct RequestedLine {
    std::string sku;
    std::int64_t quantity = 0;
    /// The price per unit the order was placed at, in `currency`; nullopt where the line is only
    /// a quantity (a stored reservation).
    std::optional<Money> unit_price = std::nullopt;
    std::string currency = {};
};

using contract::ReserveStatus;

struct LineOutcome {
    std::string sku;
    std::int64_t requested = 0;
    std::int64_t available = 0;  ///< before this reservation (0 for an unknown SKU)
};

struct ReserveDecision {
    ReserveStatus status = ReserveStatus::kReserved;
    std::string reason;  ///< human-readable, e.g. "LAPTOP-001: requested 100, available 50"
    std::vector<LineOutcome> lines;
};

/// All lines or none: RESERVED only if every SKU exists, is priced as the catalog prices it (the
/// same unit price in the same currency) and has enough available. An unknown SKU wins over a
/// price mismatch, which wins over a shortage. `stock` returns nullopt for an unknown SKU.
template <typename StockLookup>
ReserveDecision decide_reservation(const std::vector<RequestedLine>& lines, StockLookup&& stock) {
    ReserveDecision d;
    std::string unknown;
    std::string mispriced;
    std::string short_of;
    for (const auto& l : lines) {
        std::optional<StockLevel> level = stock(l.sku);
        d.lines.push_back({l.sku, l.quantity, level ? level->available : 0});
        if (!level) {
            unknown += (unknown.empty() ? "" : ", ") + l.sku;
        } else if (l.unit_price &&
                   (*l.unit_price != level->unit_price || l.currency != level->currency)) {
            mispriced += (mispriced.empty() ? "" : "; ") + l.sku + ": ordered at " +
                         l.unit_price->to_string() + " " + l.currency + ", the catalog says " +
                         level->unit_price.to_string() + " " + level->currency;
        } else if (level->available < l.quantity) {
            short_of += (short_of.empty() ? "" : "; ") + l.sku + ": requested " +
                        std::to_string(l.quantity) + ", available " +
                        std::to_string(level->available);
        }
    }
    if (!unknown.empty()) {
        d.status = ReserveStatus::kUnknownSku;
        d.reason = "unknown SKU: " + unknown;
    } else if (!mispriced.empty()) {
        d.status = ReserveStatus::kPriceMismatch;
        d.reason = "price differs from the catalog: " + mispriced;
    } else if (!short_of.empty()) {
        d.status = ReserveStatus::kInsufficientStock;
        d.reason = "not enough stock: " + short_of;
    }
    return d;
}

}  // namespace orderpipe::inventory
