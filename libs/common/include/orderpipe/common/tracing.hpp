#pragma once
/// Optional span export (OTLP/HTTP, JSON encoding) of each hop of a saga: one span per event a
/// service commits, named by its type, its span id the event's `traceparent` span, its parent
/// the span the event continues (the event that caused it, or the caller of POST /orders).
/// A tracing backend (Jaeger, Tempo, any OpenTelemetry collector) then shows an order's saga
/// as one trace across the services.
///
/// Off unless configured (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
/// docs/CONFIGURATION.md); then spans are queued without blocking and posted by a background
/// thread every second. A collector that is down costs dropped spans (one warning), never a
/// stall.
///
/// Thread-safe.

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace orderpipe::tracing {

/// Starts the exporter posting to `traces_url` (e.g. http://collector:4318/v1/traces) as
/// service `service`. An empty URL leaves tracing off. Call once, at start.
void configure(const std::string& traces_url, std::string service);
/// True once configured: callers skip the work of building spans otherwise.
bool enabled() noexcept;

/// A hop begins now: span `span_id` continues `parent_span_id` (empty: it starts the trace).
/// Remembered (the last 20,000) until the event that carries it is committed.
void begin(const std::string& span_id, const std::string& parent_span_id);

/// The event with this `traceparent` was committed: its span ends now and is exported, if its
/// hop began in this process (a re-emitted or replayed event is not a new hop).
void committed(const std::string& traceparent, std::string_view name,
               std::vector<std::pair<std::string, std::string>> attributes);

/// Posts what is queued (at exit). Bounded by about three seconds.
void flush();

}  // namespace orderpipe::tracing
