#include "inventory_processor.hpp"

#include "orderpipe/common/json.hpp"

#include "orderpipe/common/logging.hpp"
#include "orderpipe/kafka/event_record.hpp"

namespace orderpipe::inventory {
namespace {

using nlohmann::json;

/// Parses `items` of a request; empty optional + `poison` set when malformed.
std::optional<std::vector<RequestedLine>> parse_lines(const json& data, std::string& poison) {
    auto items = data.find("items");
    if (items == data.end() || !items->is_array() || items->empty()) {
        poison = "items must be a non-empty array";
        return std::nullopt;
    }
    std::vector<RequestedLine> lines;
    for (const auto& it : *items) {
        if (!it.is_object() || !it.contains("sku") || !it["sku"].is_string() ||
            !it.contains("quantity") || !it["quantity"].is_number_integer() ||
            it["quantity"].get<std::int64_t>() <= 0) {
            poison = "each item needs a string sku and a positive integer quantity";
            return std::nullopt;
        }
        const std::string sku = it["sku"].get<std::string>();
        for (const auto& l : lines) {
            if (l.sku == sku) {
                // The decision checks each line against the same stock: one line per SKU.
                poison = "SKU " + sku + " appears on more than one line";
                return std::nullopt;
            }
        }
        lines.push_back({sku, it["quantity"].get<std::int64_t>()});
    }
    return lines;
}

/// The request's order_id; empty with `poison` set when missing or not a non-empty string.
std::string required_order_id(const json& data, std::string& poison) {
    auto it = data.find("order_id");
    if (it == data.end() || !it->is_string() || it->get<std::string>().empty()) {
        poison = "order_id is missing or not a string";
        return {};
    }
    return it->get<std::string>();
}

json lines_json(const std::vector<RequestedLine>& lines) {
    json out = json::array();
    for (const auto& l : lines) out.push_back({{"sku", l.sku}, {"quantity", l.quantity}});
    return out;
}

}  // namespace

InventoryProcessor::InventoryProcessor(InventoryStore& store, InventoryTopics topics,
                                       std::chrono::hours processed_retention,
                                       prometheus::Counter& replayed)
    : store_(store),
      topics_(std::move(topics)),
      processed_(store.db(), processed_retention),
      replayed_(replayed) {}

void InventoryProcessor::process(std::vector<kafka::Incoming>& batch, kafka::BatchOutput& out) {
    sqlite::Transaction tx(store_.db());
    std::vector<kafka::OutgoingRecord> produced;
    for (const auto& in : batch) {
        if (auto stored = processed_.find(kConsumer, in.event.id)) {
            // Delivered again (the Kafka transaction of the first delivery aborted or the
            // process died after the SQLite commit): re-emit exactly what was decided.
            replayed_.Increment();
            for (const auto& r : json::parse(*stored)) out.produce(kafka::record_from_json(r));
            continue;
        }
        std::string poison;
        std::vector<kafka::OutgoingRecord> records;
        if (in.event.type == "INVENTORY_RESERVE_REQUESTED") {
            records = reserve(in, poison);
        } else if (in.event.type == "INVENTORY_RELEASE_REQUESTED") {
            records = release(in, poison);
        } else {
            poison = "unknown event type " + in.event.type + " on " + in.record->topic;
        }
        if (!poison.empty()) {
            out.dead_letter(*in.record, kafka::kPoisonMessage, poison);
            continue;
        }
        json stored = json::array();
        for (const auto& r : records) stored.push_back(kafka::record_to_json(r));
        processed_.record(kConsumer, in.event.id, stored.dump());
        for (auto& r : records) out.produce(std::move(r));
    }
    tx.commit();  // before the Kafka commit: see the class comment
}

std::vector<kafka::OutgoingRecord> InventoryProcessor::reserve(const kafka::Incoming& in,
                                                               std::string& poison) {
    const json& data = in.event.data;
    const std::string order_id = required_order_id(data, poison);
    if (order_id.empty()) return {};
    auto lines = parse_lines(data, poison);
    if (!lines) return {};
    if (auto existing = store_.reservation(order_id)) {
        // A second reserve request for the same order (a new ce_id): never reserve twice.
        poison = "order " + order_id + " already has a reservation";
        return {};
    }
    auto decision =
        decide_reservation(*lines, [&](const std::string& sku) { return store_.stock(sku); });
    const bool reserved = decision.status == ReserveStatus::kReserved;
    if (reserved) {
        for (const auto& l : *lines) store_.add_to_stock(l.sku, -l.quantity, l.quantity);
    }
    store_.put_reservation(
        order_id, {reserved ? ReservationState::kReserved : ReservationState::kRejected, *lines});
    json outcome_lines = json::array();
    for (const auto& l : decision.lines) {
        outcome_lines.push_back(
            {{"sku", l.sku}, {"requested", l.requested}, {"available", l.available}});
    }
    json result = {{"order_id", order_id},
                   {"status", to_string(decision.status)},
                   {"reason", decision.reason},
                   {"lines", std::move(outcome_lines)},
                   {"order", data.value("order", json::object())}};
    json event = {{"order_id", order_id}, {"lines", lines_json(*lines)}};
    if (!reserved) event["reason"] = to_string(decision.status);
    auto result_event =
        CloudEvent::caused_by(in.event, "INVENTORY_RESERVE_RESULT", kSource, result);
    auto inventory_event = CloudEvent::caused_by(
        in.event, reserved ? "INVENTORY_RESERVED" : "INVENTORY_REJECTED", kSource, event);
    log::debug("reservation decided", {{"order_id", order_id},
                                       {"correlation_id", in.event.correlation_id},
                                       {"status", to_string(decision.status)}});
    return {kafka::to_record(topics_.responses, order_id, result_event),
            kafka::to_record(topics_.events, order_id, inventory_event)};
}

std::vector<kafka::OutgoingRecord> InventoryProcessor::release(const kafka::Incoming& in,
                                                               std::string& poison) {
    const json& data = in.event.data;
    const std::string order_id = required_order_id(data, poison);
    if (order_id.empty()) return {};
    auto existing = store_.reservation(order_id);
    if (!existing || existing->state != ReservationState::kReserved) {
        // Nothing reserved (rejected, already released, or the reserve request was never
        // seen): releasing is a no-op, recorded so a redelivery stays one.
        return {};
    }
    for (const auto& l : existing->lines) store_.add_to_stock(l.sku, l.quantity, -l.quantity);
    store_.put_reservation(order_id, {ReservationState::kReleased, existing->lines});
    json event = {{"order_id", order_id},
                  {"lines", lines_json(existing->lines)},
                  {"reason", string_field(data, "reason")}};
    auto released = CloudEvent::caused_by(in.event, "INVENTORY_RELEASED", kSource, event);
    log::info("reservation released",
              {{"order_id", order_id}, {"correlation_id", in.event.correlation_id}});
    return {kafka::to_record(topics_.events, order_id, released)};
}

void InventoryProcessor::idle(kafka::BatchOutput& out) {
    if (!outbox_pending_) return;
    outbox_pending_ = false;
    for (const auto& e : store_.outbox(1000)) {
        out.produce(kafka::record_from_json(json::parse(e.record)));
        outbox_sent_up_to_ = e.id;
    }
    if (std::chrono::steady_clock::now() - last_purge_ > std::chrono::hours(1)) {
        last_purge_ = std::chrono::steady_clock::now();
        if (auto n = processed_.purge_expired(); n > 0)
            log::info("purged processed events", {{"count", n}});
    }
}

void InventoryProcessor::committed() {
    if (outbox_sent_up_to_ > 0) {
        // A crash before this delete re-sends the same STOCK_ADJUSTED (same ce_id): a snapshot,
        // harmless to see twice.
        store_.remove_outbox(outbox_sent_up_to_);
        outbox_sent_up_to_ = 0;
        outbox_pending_ = !store_.outbox(1).empty();
    }
}

kafka::OutgoingRecord stock_adjusted_record(const std::string& topic, const CatalogItem& item) {
    const std::string saga = new_uuid_v7();
    auto event = CloudEvent::make(
        "STOCK_ADJUSTED", InventoryProcessor::kSource, item.sku, saga, std::nullopt,
        TraceContext::fresh().header(),
        {{"sku", item.sku}, {"available", item.available}, {"reserved", item.reserved}});
    return kafka::to_record(topic, item.sku, event);
}

}  // namespace orderpipe::inventory
