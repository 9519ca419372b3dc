#pragma once
/// CloudEvents 1.0 binary-mode Kafka binding (docs/CONTRACT.md "Events"): the record value is the
/// event data as JSON, the attributes are UTF-8 text headers `ce_*` plus `traceparent` and
/// `content-type`.

#include "orderpipe/common/ids.hpp"

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace orderpipe {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct CloudEvent {
    std::string id;                           ///< ce_id: UUID, the ProcessedEvents key
    std::string type;                         ///< ce_type, e.g. ORDER_CREATED
    std::string source;                       ///< ce_source, e.g. /order-service
    std::string time;                         ///< ce_time, RFC 3339 UTC with milliseconds
    std::string subject;                      ///< ce_subject: the order id
    std::string correlation_id;               ///< ce_correlationid: the saga id
    std::optional<std::string> causation_id;  ///< ce_causationid: the cause's ce_id
    std::string traceparent;                  ///< W3C traceparent
    nlohmann::json data = nlohmann::json::object();

    /// A new event with a fresh id and the current time.
    static CloudEvent make(std::string type, std::string source, std::string subject,
                           std::string correlation_id, std::optional<std::string> causation_id,
                           std::string traceparent, nlohmann::json data);

    /// A new event caused by `cause`: same subject and correlation id, causation = cause.id,
    /// traceparent continued as a child span.
    static CloudEvent caused_by(const CloudEvent& cause, std::string type, std::string source,
                                nlohmann::json data);

    /// The Kafka headers, in a stable order.
    Headers headers() const;
    /// The Kafka value: compact JSON of `data`.
    std::string value() const;
};

/// The traceparent of the next hop after `traceparent`: the same trace with a new span id, or a
/// new trace when `traceparent` is not a valid one. With span export on, the hop begins here
/// (common/tracing.hpp). Every new traceparent of the pipeline is made by this function.
std::string next_hop(std::string_view traceparent);

struct EnvelopeError {
    std::string message;  ///< e.g. "missing header ce_type"; becomes dlq.last_error
};

/// Decodes a record into an event. Fails on missing/empty required headers, a wrong
/// ce_specversion, a value that is not a JSON object, or non-UTF-8 text.
/// `headers` may contain null values (pass std::nullopt) as Kafka allows.
std::variant<CloudEvent, EnvelopeError> decode_event(
    const std::vector<std::pair<std::string, std::optional<std::string>>>& headers,
    std::optional<std::string_view> value);

}  // namespace orderpipe
