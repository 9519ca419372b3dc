#include "inventory_processor.hpp"

#include "orderpipe/common/faults.hpp"
#include "orderpipe/common/logging.hpp"
#include "orderpipe/contract/events.hpp"
#include "orderpipe/kafka/event_record.hpp"

#include <algorithm>

namespace orderpipe::inventory {
namespace {

using contract::EventType;
using nlohmann::json;

std::vector<RequestedLine> to_lines(const std::vector<contract::StockLine>& lines) {
    std::vector<RequestedLine> out;
    out.reserve(lines.size());
    for (const auto& l : lines) out.push_back({l.sku, l.quantity});
    return out;
}

/// The request's lines with the prices the order was placed at (its ORDER_CREATED data, copied
/// into the request), to be checked against the catalog.
std::vector<RequestedLine> priced_lines(const contract::InventoryReserveRequested& request) {
    const auto order = contract::OrderCreated::read(request.order);
    std::vector<RequestedLine> out = to_lines(request.items);
    for (auto& l : out) {
        auto it = std::find_if(order.items.begin(), order.items.end(),
                               [&](const contract::OrderItem& i) { return i.sku == l.sku; });
        if (it == order.items.end()) {
            throw contract::ContractError("line " + l.sku + " is not in the request's order");
        }
        l.unit_price = it->unit_price;
        l.currency = order.currency;
    }
    return out;
}

std::vector<contract::StockLine> to_stock_lines(const std::vector<RequestedLine>& lines) {
    std::vector<contract::StockLine> out;
    out.reserve(lines.size());
    for (const auto& l : lines) out.push_back({l.sku, l.quantity});
    return out;
}

}  // namespace

InventoryProcessor::InventoryProcessor(InventoryState& state, InventoryTopics topics, bool shared)
    : state_(state),
      topics_(std::move(topics)),
      shared_(shared),
      restocks_(1000, [](Restock&& r) { r.done(RestockOutcome::kNotApplied, std::nullopt); }) {}

bool InventoryProcessor::restock(std::string sku, std::int64_t available, RestockDone done,
                                 std::chrono::steady_clock::time_point deadline) {
    return restocks_.push(Restock{std::move(sku), available, std::move(done)}, deadline) ==
           runtime::DeadlineQueue<Restock>::Push::kQueued;
}

void InventoryProcessor::process(std::vector<kafka::Incoming>& batch, kafka::BatchOutput& out) {
    auto work = state_.begin();
    {
        // What the batch will look up, at once (a database adapter reads it in two round trips).
        std::vector<std::string> event_ids, order_ids;
        for (const auto& in : batch) {
            event_ids.push_back(in.event.id);
            if (in.event.data.is_object()) {
                if (auto it = in.event.data.find("order_id");
                    it != in.event.data.end() && it->is_string()) {
                    order_ids.push_back(it->get<std::string>());
                }
            }
        }
        work->expect(event_ids, order_ids);
    }
    // Every SKU the batch may change, held at once and in SKU order before any is changed: two
    // instances' batches never wait on each other in a circle (docs/ARCHITECTURE.md "Storage").
    work->hold_stock(skus_of(batch, *work));
    for (const auto& in : batch) {
        log::Scope about(contract::log_fields(in.event));
        if (auto stored = work->produced_by(in.event.id)) {
            // Delivered again (the Kafka transaction of the first delivery aborted or the
            // process died after the SQLite commit): re-emit exactly what was decided.
            out.note_duplicate();
            for (const auto& r : json::parse(*stored)) out.produce(kafka::record_from_json(r));
            continue;
        }
        std::vector<kafka::OutgoingRecord> records;
        try {
            work->step([&] {
                records = decide(*work, in);
                json stored = json::array();
                for (const auto& r : records) stored.push_back(kafka::record_to_json(r));
                work->record_processed(in.event.id, stored.dump());
            });
        } catch (const contract::ContractError& e) {
            // The step undid whatever the record changed.
            out.dead_letter(*in.record, contract::DlqReason::kPoisonMessage, e.what());
            continue;
        }
        for (auto& r : records) out.produce(std::move(r));
    }
    // How far this state goes, in the same unit of work: a start compares it with the group's
    // committed offsets (a state restored from an older backup is refused).
    for (const auto& [tp, next] : out.consumed()) work->advance(tp.first, tp.second, next);
    work->commit();  // before the Kafka commit: see the class comment
}

std::vector<std::string> InventoryProcessor::skus_of(const std::vector<kafka::Incoming>& batch,
                                                     InventoryWork& work) {
    std::vector<std::string> skus;
    for (const auto& in : batch) {
        try {
            switch (contract::type_of(in.event).value_or(EventType::kOrderCreated)) {
                case EventType::kInventoryReserveRequested:
                    for (const auto& l :
                         contract::InventoryReserveRequested::read(in.event.data).items) {
                        skus.push_back(l.sku);
                    }
                    break;
                case EventType::kInventoryReleaseRequested:
                    if (auto r = work.reservation(
                            contract::InventoryReleaseRequested::read(in.event.data).order_id)) {
                        for (const auto& l : r->lines) skus.push_back(l.sku);
                    }
                    break;
                default:
                    break;
            }
        } catch (const contract::ContractError&) {  // NOLINT(bugprone-empty-catch)
            // Poison: its own step dead-letters it.
        }
    }
    return skus;
}

std::vector<kafka::OutgoingRecord> InventoryProcessor::decide(InventoryWork& work,
                                                              const kafka::Incoming& in) {
    switch (contract::type_of(in.event).value_or(EventType::kOrderCreated)) {
        case EventType::kInventoryReserveRequested:
            return reserve(work, in);
        case EventType::kInventoryReleaseRequested:
            return release(work, in);
        default:
            throw contract::ContractError("unexpected event type " + in.event.type + " on " +
                                          in.record->topic);
    }
}

std::vector<kafka::OutgoingRecord> InventoryProcessor::reserve(InventoryWork& work,
                                                               const kafka::Incoming& in) {
    const auto request = contract::InventoryReserveRequested::read(in.event.data);
    const std::string& order_id = request.order_id;
    if (work.reservation(order_id)) {
        // A second reserve request for the same order (a new ce_id): never reserve twice.
        throw contract::ContractError("order " + order_id + " already has a reservation");
    }
    const auto lines = priced_lines(request);
    std::vector<std::string> skus;
    for (const auto& l : lines) skus.push_back(l.sku);
    const auto stock = work.hold_stock(std::move(skus));
    auto decision = decide_reservation(lines, [&](const std::string& sku) {
        auto it = stock.find(sku);
        return it == stock.end() ? std::nullopt : std::optional<StockLevel>(it->second);
    });
    const bool reserved = decision.status == ReserveStatus::kReserved;
    if (reserved) {
        for (const auto& l : lines) work.move_stock(l.sku, -l.quantity, l.quantity);
    }
    work.put_reservation(
        order_id, {reserved ? ReservationState::kReserved : ReservationState::kRejected, lines});
    contract::InventoryReserveResult result;
    result.order_id = order_id;
    result.status = decision.status;
    result.reason = decision.reason;
    for (const auto& l : decision.lines) result.lines.push_back({l.sku, l.requested, l.available});
    result.order = request.order;
    contract::InventoryChanged changed{order_id, request.items,
                                       reserved ? "" : std::string(to_string(decision.status))};
    auto result_event =
        contract::event_caused_by(in.event, EventType::kInventoryReserveResult,
                                  contract::source::kInventoryService, result.to_json());
    auto inventory_event = contract::event_caused_by(
        in.event, reserved ? EventType::kInventoryReserved : EventType::kInventoryRejected,
        contract::source::kInventoryService, changed.to_json());
    log::info("reservation decided", {{"status", to_string(decision.status)}});
    return {kafka::to_record(topics_.responses, order_id, result_event),
            kafka::to_record(topics_.events, order_id, inventory_event)};
}

std::vector<kafka::OutgoingRecord> InventoryProcessor::release(InventoryWork& work,
                                                               const kafka::Incoming& in) {
    const auto request = contract::InventoryReleaseRequested::read(in.event.data);
    const std::string& order_id = request.order_id;
    auto existing = work.reservation(order_id);
    if (!existing || existing->state != ReservationState::kReserved) {
        // Nothing reserved (rejected, already released, or the reserve request was never
        // seen): releasing is a no-op, recorded so a redelivery stays one.
        return {};
    }
    std::vector<std::string> skus;
    for (const auto& l : existing->lines) skus.push_back(l.sku);
    work.hold_stock(std::move(skus));
    for (const auto& l : existing->lines) work.move_stock(l.sku, l.quantity, -l.quantity);
    work.put_reservation(order_id, {ReservationState::kReleased, existing->lines});
    contract::InventoryChanged changed{order_id, to_stock_lines(existing->lines), request.reason};
    auto released =
        contract::event_caused_by(in.event, EventType::kInventoryReleased,
                                  contract::source::kInventoryService, changed.to_json());
    log::info("reservation released");
    return {kafka::to_record(topics_.events, order_id, released)};
}

bool InventoryProcessor::has_idle_work() {
    // Shared: another look at the outbox now and then, so entries an instance wrote and did
    // not live to produce are taken over once its claim lapses.
    if (shared_ && std::chrono::steady_clock::now() - last_outbox_look_ > kOutboxLook) {
        outbox_pending_ = true;
    }
    return outbox_pending_ || restocks_.size() > 0;
}

void InventoryProcessor::idle(kafka::BatchOutput& out) {
    for (auto& r :
         restocks_.take(1000, std::chrono::milliseconds(0), std::chrono::milliseconds(0))) {
        std::optional<CatalogItem> item;
        try {
            if (faults::hit("inventory-requests", "restock-fails")) {
                throw faults::InjectedFault("injected failure of the restock's write");
            }
            // The stock change and its STOCK_ADJUSTED (outbox) commit together.
            auto work = state_.begin();
            work->hold_stock({r.sku});
            item = work->set_available(r.sku, r.available);
            if (item) {
                work->add_outbox(
                    kafka::record_to_json(stock_adjusted_record(topics_.events, *item)).dump());
            }
            work->commit();
        } catch (const std::exception& e) {
            // A full disk, a database away, ...: nothing was changed, and the caller is told so
            // (503 + Retry-After), never left without an answer.
            log::error("restock not applied", {{"sku", r.sku}, {"error", e.what()}});
            r.done(RestockOutcome::kNotApplied, std::nullopt);
            continue;
        }
        if (item) {
            outbox_pending_ = true;
            log::info("stock adjusted", {{"sku", r.sku}, {"available", item->available}});
        }
        r.done(item ? RestockOutcome::kAdjusted : RestockOutcome::kUnknownSku, item);
    }
    if (outbox_pending_) {
        outbox_pending_ = false;
        last_outbox_look_ = std::chrono::steady_clock::now();
        for (const auto& e : state_.outbox(1000)) {
            out.produce(kafka::record_from_json(json::parse(e.record)));
            outbox_sent_.push_back(e.id);
        }
    }
    if (std::chrono::steady_clock::now() - last_purge_ > std::chrono::hours(1)) {
        last_purge_ = std::chrono::steady_clock::now();
        if (auto n = state_.purge_processed(); n > 0)
            log::info("purged processed events", {{"count", n}});
    }
}

void InventoryProcessor::committed() {
    if (!outbox_sent_.empty()) {
        // A crash before this delete re-sends the same STOCK_ADJUSTED (same ce_id): a snapshot,
        // harmless to see twice. Removed by id: ids need not be in commit order.
        state_.remove_outbox(outbox_sent_);
        outbox_sent_.clear();
        outbox_pending_ = true;  // more may wait; the next idle turn looks (a peek would claim)
    }
}

void InventoryProcessor::aborted() {
    if (!outbox_sent_.empty()) outbox_pending_ = true;  // send them again
    outbox_sent_.clear();
}

kafka::OutgoingRecord stock_adjusted_record(const std::string& topic, const CatalogItem& item) {
    contract::StockAdjusted data{item.sku, item.available, item.reserved};
    auto event =
        contract::new_event(EventType::kStockAdjusted, contract::source::kInventoryService,
                            item.sku, new_uuid_v7(), std::nullopt, next_hop(""), data.to_json());
    return kafka::to_record(topic, item.sku, event);
}

}  // namespace orderpipe::inventory
