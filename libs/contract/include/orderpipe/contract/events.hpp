#pragma once
/// The data of every event (docs/CONTRACT.md "Events"), one struct each, with a builder
/// (`to_json`) and a reader (`read`). Readers check every field the contract names and throw
/// ContractError naming the first one that is wrong; fields beyond the contract are allowed and
/// ignored. Money is exact (Money, decimal strings on the wire), times are RFC 3339 text.

#include "orderpipe/common/cloudevent.hpp"
#include "orderpipe/common/logging.hpp"
#include "orderpipe/common/money.hpp"
#include "orderpipe/contract/names.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace orderpipe::contract {

/// An event's data does not follow the contract: the record is poison (dead-lettered with
/// reason POISON_MESSAGE), never retried.
class ContractError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

struct OrderItem {
    std::string sku;
    std::int64_t quantity = 0;
    Money unit_price;
};

/// A quantity of one SKU (reservation and release lines).
struct StockLine {
    std::string sku;
    std::int64_t quantity = 0;
};

/// ORDER_CREATED, on orders.events.
struct OrderCreated {
    std::string order_id;
    std::string customer_id;
    std::string customer_email;
    std::vector<OrderItem> items;
    Money total;
    std::string currency;
    std::string created_at;

    nlohmann::json to_json() const;  ///< with "status": "PENDING"
    static OrderCreated read(const nlohmann::json& data);
    std::vector<StockLine> stock_lines() const;
};

/// INVENTORY_RESERVE_REQUESTED, on inventory.requests.
struct InventoryReserveRequested {
    std::string order_id;
    std::vector<StockLine> items;
    nlohmann::json order;  ///< ORDER_CREATED's data, so later steps need no lookup

    nlohmann::json to_json() const;
    static InventoryReserveRequested read(const nlohmann::json& data);
};

/// INVENTORY_RELEASE_REQUESTED, on inventory.requests.
struct InventoryReleaseRequested {
    std::string order_id;
    std::vector<StockLine> items;
    std::string reason;

    nlohmann::json to_json() const;
    static InventoryReleaseRequested read(const nlohmann::json& data);
};

struct ReserveLine {
    std::string sku;
    std::int64_t requested = 0;
    std::int64_t available = 0;  ///< before this reservation (0 for an unknown SKU)
};

/// INVENTORY_RESERVE_RESULT, on inventory.responses.
struct InventoryReserveResult {
    std::string order_id;
    ReserveStatus status = ReserveStatus::kReserved;
    std::string reason;
    std::vector<ReserveLine> lines;
    nlohmann::json order;  ///< copied from the request

    nlohmann::json to_json() const;
    static InventoryReserveResult read(const nlohmann::json& data);
};

/// INVENTORY_RESERVED, INVENTORY_REJECTED (with reason) or INVENTORY_RELEASED, on
/// inventory.events.
struct InventoryChanged {
    std::string order_id;
    std::vector<StockLine> lines;
    std::string reason;  ///< empty: no reason field

    nlohmann::json to_json() const;
    static InventoryChanged read(const nlohmann::json& data);
};

/// STOCK_ADJUSTED, on inventory.events, keyed by SKU.
struct StockAdjusted {
    std::string sku;
    std::int64_t available = 0;
    std::int64_t reserved = 0;

    nlohmann::json to_json() const;
    static StockAdjusted read(const nlohmann::json& data);
};

/// ORDER_CONFIRMED, on orders.events.
struct OrderConfirmed {
    std::string order_id;
    Money total;
    std::string currency;
    std::string confirmed_at;

    nlohmann::json to_json() const;
    static OrderConfirmed read(const nlohmann::json& data);
};

/// ORDER_CANCELLED, on orders.events.
struct OrderCancelled {
    std::string order_id;
    Money total;
    std::string currency;
    CancelReason reason = CancelReason::kCustomerRequest;
    std::string detail;
    std::string cancelled_at;

    nlohmann::json to_json() const;
    static OrderCancelled read(const nlohmann::json& data);
};

/// NOTIFICATION_REQUESTED, on notifications.requests.
struct NotificationRequested {
    std::string notification_id;
    std::string order_id;
    NotificationKind kind = NotificationKind::kOrderConfirmed;
    std::string channel = "email";
    std::string to;
    std::string subject;
    std::string text;

    nlohmann::json to_json() const;
    static NotificationRequested read(const nlohmann::json& data);
};

/// NOTIFICATION_SENT, on notifications.events.
struct NotificationSent {
    std::string notification_id;
    std::string order_id;
    int attempts = 0;

    nlohmann::json to_json() const;
    static NotificationSent read(const nlohmann::json& data);
};

/// NOTIFICATION_FAILED, on notifications.events.
struct NotificationFailed {
    std::string notification_id;
    std::string order_id;
    int attempts = 0;
    DlqReason reason = DlqReason::kMaxRetries;
    std::string last_error;

    nlohmann::json to_json() const;
    static NotificationFailed read(const nlohmann::json& data);
};

/// A record of dlq.resolutions (key `<topic>/<partition>/<offset>`).
struct DlqResolution {
    DlqAction action = DlqAction::kReplayed;
    std::string at;  ///< RFC 3339
    std::string note;
    std::string user;
    std::string replayed_to;  ///< `<topic>` the record was replayed to; empty for a discard
    /// The dead letter's key: the order it concerns, so the order's history finds its
    /// resolution (docs/CONTRACT.md "dlq.resolutions"); empty when the record had no key.
    std::string order_id;

    nlohmann::json to_json() const;
    static DlqResolution read(const nlohmann::json& data);
};

/// A new event of `type` with a fresh id and the current time.
CloudEvent new_event(EventType type, std::string_view source, std::string subject,
                     std::string correlation_id, std::optional<std::string> causation_id,
                     std::string traceparent, nlohmann::json data);
/// A new event caused by `cause`: same subject and saga, causation = cause's id, trace
/// continued as a child span.
CloudEvent event_caused_by(const CloudEvent& cause, EventType type, std::string_view source,
                           nlohmann::json data);
/// The event's type, or nullopt when it is not one of the contract.
std::optional<EventType> type_of(const CloudEvent& event);

/// What every log line about `event` carries (docs/CONTRACT.md "Operations"): `order_id` (its
/// subject; `sku` for STOCK_ADJUSTED), `correlation_id` and `traceparent`. Use it with
/// log::Scope around the handling of the event. They refer to the event's strings (log::Fields).
log::Fields log_fields(const CloudEvent& event);
/// The same from a record's key and headers, for a record that may not decode.
log::Fields log_fields(
    const std::optional<std::string>& key,
    const std::vector<std::pair<std::string, std::optional<std::string>>>& headers);

/// The dlq.resolutions key of a dead letter.
std::string dlq_record_key(std::string_view topic, std::int32_t partition, std::int64_t offset);

}  // namespace orderpipe::contract
