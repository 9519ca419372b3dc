#pragma once
/// Identifiers: UUIDv7 event and order ids, and W3C trace context.

#include <optional>
#include <string>
#include <string_view>

namespace orderpipe {

/// A UUID version 7 (time-ordered), lower-case canonical text. Thread-safe.
std::string new_uuid_v7();

/// W3C trace context. `parse` accepts `00-<32 hex>-<16 hex>-<2 hex>` with non-zero ids.
struct TraceContext {
    std::string trace_id;  ///< 32 lower-case hex digits
    std::string span_id;   ///< 16 lower-case hex digits
    std::string flags = "01";

    static std::optional<TraceContext> parse(std::string_view traceparent);
    static TraceContext fresh();
    /// Same trace, new span id: the context for the next hop.
    TraceContext child() const;
    std::string header() const { return "00-" + trace_id + "-" + span_id + "-" + flags; }
};

}  // namespace orderpipe
