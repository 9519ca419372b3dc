#include "orderpipe/contract/names.hpp"

#include <array>
#include <utility>

namespace orderpipe::contract {
namespace {

template <typename Enum, std::size_t N>
using Table = std::array<std::pair<Enum, std::string_view>, N>;

constexpr Table<EventType, 13> kEventTypes{{
    {EventType::kOrderCreated, "ORDER_CREATED"},
    {EventType::kOrderConfirmed, "ORDER_CONFIRMED"},
    {EventType::kOrderCancelled, "ORDER_CANCELLED"},
    {EventType::kInventoryReserveRequested, "INVENTORY_RESERVE_REQUESTED"},
    {EventType::kInventoryReleaseRequested, "INVENTORY_RELEASE_REQUESTED"},
    {EventType::kInventoryReserveResult, "INVENTORY_RESERVE_RESULT"},
    {EventType::kInventoryReserved, "INVENTORY_RESERVED"},
    {EventType::kInventoryRejected, "INVENTORY_REJECTED"},
    {EventType::kInventoryReleased, "INVENTORY_RELEASED"},
    {EventType::kStockAdjusted, "STOCK_ADJUSTED"},
    {EventType::kNotificationRequested, "NOTIFICATION_REQUESTED"},
    {EventType::kNotificationSent, "NOTIFICATION_SENT"},
    {EventType::kNotificationFailed, "NOTIFICATION_FAILED"},
}};
constexpr Table<OrderStatus, 3> kOrderStatuses{{
    {OrderStatus::kPending, "PENDING"},
    {OrderStatus::kConfirmed, "CONFIRMED"},
    {OrderStatus::kCancelled, "CANCELLED"},
}};
constexpr Table<CancelReason, 5> kCancelReasonNames{{
    {CancelReason::kInsufficientStock, "INSUFFICIENT_STOCK"},
    {CancelReason::kUnknownSku, "UNKNOWN_SKU"},
    {CancelReason::kPriceMismatch, "PRICE_MISMATCH"},
    {CancelReason::kCustomerRequest, "CUSTOMER_REQUEST"},
    {CancelReason::kTimeout, "TIMEOUT"},
}};
constexpr Table<ReserveStatus, 4> kReserveStatuses{{
    {ReserveStatus::kReserved, "RESERVED"},
    {ReserveStatus::kInsufficientStock, "INSUFFICIENT_STOCK"},
    {ReserveStatus::kUnknownSku, "UNKNOWN_SKU"},
    {ReserveStatus::kPriceMismatch, "PRICE_MISMATCH"},
}};
constexpr Table<NotificationKind, 2> kNotificationKinds{{
    {NotificationKind::kOrderConfirmed, "ORDER_CONFIRMED"},
    {NotificationKind::kOrderCancelled, "ORDER_CANCELLED"},
}};
constexpr Table<DlqReason, 3> kDlqReasons{{
    {DlqReason::kMaxRetries, "MAX_RETRIES"},
    {DlqReason::kPermanentError, "PERMANENT_ERROR"},
    {DlqReason::kPoisonMessage, "POISON_MESSAGE"},
}};
constexpr Table<DlqAction, 2> kDlqActions{{
    {DlqAction::kReplayed, "REPLAYED"},
    {DlqAction::kDiscarded, "DISCARDED"},
}};

template <typename Enum, std::size_t N>
std::string_view name_of(const Table<Enum, N>& table, Enum v) {
    for (const auto& [e, name] : table) {
        if (e == v) return name;
    }
    return "?";  // unreachable: every enumerator is in its table (names_test checks it)
}

template <typename Enum, std::size_t N>
std::optional<Enum> parse(const Table<Enum, N>& table, std::string_view s) {
    for (const auto& [e, name] : table) {
        if (name == s) return e;
    }
    return std::nullopt;
}

}  // namespace

std::string_view to_string(EventType v) { return name_of(kEventTypes, v); }
std::string_view to_string(OrderStatus v) { return name_of(kOrderStatuses, v); }
std::string_view to_string(CancelReason v) { return name_of(kCancelReasonNames, v); }
std::string_view to_string(ReserveStatus v) { return name_of(kReserveStatuses, v); }
std::string_view to_string(NotificationKind v) { return name_of(kNotificationKinds, v); }
std::string_view to_string(DlqReason v) { return name_of(kDlqReasons, v); }
std::string_view to_string(DlqAction v) { return name_of(kDlqActions, v); }

std::optional<EventType> parse_event_type(std::string_view s) { return parse(kEventTypes, s); }
std::optional<OrderStatus> parse_order_status(std::string_view s) {
    return parse(kOrderStatuses, s);
}
std::optional<CancelReason> parse_cancel_reason(std::string_view s) {
    return parse(kCancelReasonNames, s);
}
std::optional<ReserveStatus> parse_reserve_status(std::string_view s) {
    return parse(kReserveStatuses, s);
}
std::optional<NotificationKind> parse_notification_kind(std::string_view s) {
    return parse(kNotificationKinds, s);
}
std::optional<DlqReason> parse_dlq_reason(std::string_view s) { return parse(kDlqReasons, s); }
std::optional<DlqAction> parse_dlq_action(std::string_view s) { return parse(kDlqActions, s); }

}  // namespace orderpipe::contract
