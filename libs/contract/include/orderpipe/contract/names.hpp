#pragma once
/// The closed vocabularies of the contract (docs/CONTRACT.md "Events"): event types, order
/// statuses, cancel reasons, reservation statuses, notification kinds, dead-letter reasons and
/// the event sources. Each is an enum with its wire spelling; `parse_*` returns nullopt for a
/// spelling that is not in the contract (a consumer treats that record as poison).

#include <array>
#include <optional>
#include <string_view>

namespace orderpipe::contract {

enum class EventType {
    kOrderCreated,
    kOrderConfirmed,
    kOrderCancelled,
    kInventoryReserveRequested,
    kInventoryReleaseRequested,
    kInventoryReserveResult,
    kInventoryReserved,
    kInventoryRejected,
    kInventoryReleased,
    kStockAdjusted,
    kNotificationRequested,
    kNotificationSent,
    kNotificationFailed,
};

enum class OrderStatus { kPending, kConfirmed, kCancelled };

enum class CancelReason {
    kInsufficientStock,
    kUnknownSku,
    kPriceMismatch,
    kCustomerRequest,
    kTimeout
};

/// Every cancel reason, in the order figures list them.
inline constexpr std::array<CancelReason, 5> kCancelReasons = {
    CancelReason::kInsufficientStock, CancelReason::kUnknownSku, CancelReason::kPriceMismatch,
    CancelReason::kCustomerRequest, CancelReason::kTimeout};

/// The inventory's answer to a reservation request.
enum class ReserveStatus { kReserved, kInsufficientStock, kUnknownSku, kPriceMismatch };

/// What a NOTIFICATION_REQUESTED tells the customer.
enum class NotificationKind { kOrderConfirmed, kOrderCancelled };

/// Header `dlq.reason` of a dead letter.
enum class DlqReason { kMaxRetries, kPermanentError, kPoisonMessage };

/// Action recorded in dlq.resolutions.
enum class DlqAction { kReplayed, kDiscarded };

std::string_view to_string(EventType v);
std::string_view to_string(OrderStatus v);
std::string_view to_string(CancelReason v);
std::string_view to_string(ReserveStatus v);
std::string_view to_string(NotificationKind v);
std::string_view to_string(DlqReason v);
std::string_view to_string(DlqAction v);

std::optional<EventType> parse_event_type(std::string_view s);
std::optional<OrderStatus> parse_order_status(std::string_view s);
std::optional<CancelReason> parse_cancel_reason(std::string_view s);
std::optional<ReserveStatus> parse_reserve_status(std::string_view s);
std::optional<NotificationKind> parse_notification_kind(std::string_view s);
std::optional<DlqReason> parse_dlq_reason(std::string_view s);
std::optional<DlqAction> parse_dlq_action(std::string_view s);

/// A cancellation for lack of stock (or an unknown SKU, or a price that is not the catalog's)
/// is the order's decision, like a
/// confirmation; a timeout too. A customer cancel is not a decision (docs/CONTRACT.md, I1).
constexpr bool is_decision(CancelReason r) { return r != CancelReason::kCustomerRequest; }

/// The reason an order is cancelled when the inventory answered `s` (not kReserved).
constexpr CancelReason cancel_reason_for(ReserveStatus s) {
    switch (s) {
        case ReserveStatus::kUnknownSku: return CancelReason::kUnknownSku;
        case ReserveStatus::kPriceMismatch: return CancelReason::kPriceMismatch;
        case ReserveStatus::kReserved:
        case ReserveStatus::kInsufficientStock: break;
    }
    return CancelReason::kInsufficientStock;
}

/// `ce_source` of each service's events.
namespace source {
inline constexpr std::string_view kOrderService = "/order-service";
inline constexpr std::string_view kInventoryService = "/inventory-service";
inline constexpr std::string_view kNotificationService = "/notification-service";
inline constexpr std::string_view kDlqctl = "/dlqctl";
}  // namespace source

/// Text headers added to a dead letter (docs/CONTRACT.md "Dead letters"). The original key,
/// value and headers are kept byte for byte.
namespace dlq_header {
inline constexpr std::string_view kOriginalTopic = "dlq.original_topic";
inline constexpr std::string_view kOriginalPartition = "dlq.original_partition";
inline constexpr std::string_view kOriginalOffset = "dlq.original_offset";
inline constexpr std::string_view kConsumerGroup = "dlq.consumer_group";
inline constexpr std::string_view kFailureTimestamp = "dlq.failure_timestamp";
inline constexpr std::string_view kRetryCount = "dlq.retry_count";
inline constexpr std::string_view kReason = "dlq.reason";
inline constexpr std::string_view kLastError = "dlq.last_error";
/// On a replayed record: how many times it was replayed, and which dead letter it came from
/// (`<topic>/<partition>/<offset>`).
inline constexpr std::string_view kReplayCount = "dlq.replay_count";
inline constexpr std::string_view kReplayOf = "dlq.replay_of";
/// Every header name above starts with this.
inline constexpr std::string_view kPrefix = "dlq.";
}  // namespace dlq_header

}  // namespace orderpipe::contract
