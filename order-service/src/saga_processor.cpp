#include "saga_processor.hpp"

#include "orderpipe/common/json.hpp"

#include "orderpipe/common/logging.hpp"
#include "orderpipe/kafka/event_record.hpp"

namespace orderpipe::order {

SagaProcessor::SagaProcessor(OrderStore& store, SagaTopics topics,
                             std::chrono::milliseconds order_timeout, OnChange on_change)
    : store_(store),
      topics_(std::move(topics)),
      order_timeout_(order_timeout),
      on_change_(std::move(on_change)) {}

void SagaProcessor::request_cancel(const std::string& order_id, CancelDone done) {
    std::lock_guard lock(queue_mu_);
    cancels_.emplace_back(order_id, std::move(done));
}

std::optional<OrderRecord> SagaProcessor::current(const std::string& order_id) {
    if (auto it = overlay_.find(order_id); it != overlay_.end()) return it->second;
    return store_.get(order_id, /*with_history=*/false);
}

void SagaProcessor::apply(const SagaStep& step, const OrderRecord& base, kafka::BatchOutput& out) {
    for (const auto& [topic, event] : step.emit) {
        out.produce(kafka::to_record(topic, base.order_id, event));
    }
    if (step.change) {
        OrderRecord next = base;
        next.status = step.change->status;
        next.reason = step.change->reason;
        next.detail = step.change->detail;
        next.decided = next.decided || step.change->decided;
        next.release_requested = next.release_requested || step.change->release_requested;
        if (step.change->add_history) next.last_event_id = step.change->event_id;
        overlay_[base.order_id] = std::move(next);
        changes_.push_back(*step.change);
    }
}

void SagaProcessor::process(std::vector<kafka::Incoming>& batch, kafka::BatchOutput& out) {
    for (const auto& in : batch) {
        if (in.event.type != "INVENTORY_RESERVE_RESULT") {
            out.dead_letter(*in.record, kafka::kPoisonMessage,
                            "unknown event type " + in.event.type + " on " + in.record->topic);
            continue;
        }
        const std::string order_id = string_field(in.event.data, "order_id");
        auto order = order_id.empty() ? std::nullopt : current(order_id);
        std::string why;
        auto step = on_reserve_result(order, in.event, topics_, why);
        if (!step) {
            out.dead_letter(*in.record, kafka::kPoisonMessage, why);
            continue;
        }
        // The read model may not have seen ORDER_CREATED yet: the result carries the order.
        if (!order) order = record_from_result(in.event);
        apply(*step, *order, out);
        log::debug("reservation answered", {{"order_id", order_id},
                                            {"correlation_id", in.event.correlation_id},
                                            {"status", string_field(in.event.data, "status")}});
    }
}

bool SagaProcessor::has_idle_work() {
    {
        std::lock_guard lock(queue_mu_);
        if (!cancels_.empty()) return true;
    }
    return std::chrono::steady_clock::now() >= next_timeout_scan_;
}

void SagaProcessor::idle(kafka::BatchOutput& out) {
    std::deque<std::pair<std::string, CancelDone>> cancels;
    {
        std::lock_guard lock(queue_mu_);
        cancels.swap(cancels_);
    }
    for (auto& [order_id, done] : cancels) {
        auto order = current(order_id);
        if (!order) {
            done({404, "no order with id " + order_id});
            continue;
        }
        if (order->status == "CANCELLED") {
            done({409, "order " + order_id + " is already cancelled (" + order->reason + ")"});
            continue;
        }
        apply(on_customer_cancel(*order, topics_), *order, out);
        accepted_cancels_.push_back(std::move(done));
        log::info("customer cancel", {{"order_id", order_id},
                                      {"correlation_id", order->correlation_id},
                                      {"was", order->status}});
    }

    const auto now = std::chrono::steady_clock::now();
    if (now < next_timeout_scan_) return;
    next_timeout_scan_ =
        now + std::min<std::chrono::milliseconds>(
                  std::chrono::seconds(1), order_timeout_ / 4 + std::chrono::milliseconds(1));
    const auto cutoff = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch() - order_timeout_)
                            .count();
    for (const auto& order_id : store_.pending_before(cutoff, 500)) {
        auto order = current(order_id);
        if (!order || order->status != "PENDING") continue;
        apply(on_timeout(*order, topics_), *order, out);
        log::warn("order timed out",
                  {{"order_id", order_id}, {"correlation_id", order->correlation_id}});
    }
}

void SagaProcessor::committed() {
    if (!changes_.empty()) {
        {
            sqlite::Transaction tx(store_.db());
            for (const auto& [order_id, record] : overlay_) {
                // Orders first seen in a reserve result get their row now.
                if (!store_.get(order_id, false)) {
                    store_.apply_created(record.last_event_id + "-created", record.correlation_id,
                                         record.traceparent, record.doc);
                }
            }
            for (const auto& c : changes_) store_.apply_change(c);
            tx.commit();
        }
        for (const auto& c : changes_) {
            if (c.add_history) on_change_(c.order_id, c.status);
        }
    }
    for (auto& done : accepted_cancels_) done({202, "cancellation accepted"});
    overlay_.clear();
    changes_.clear();
    accepted_cancels_.clear();
}

void SagaProcessor::aborted() {
    for (auto& done : accepted_cancels_) {
        done({503, "the cancellation could not be committed to Kafka; retry"});
    }
    overlay_.clear();
    changes_.clear();
    accepted_cancels_.clear();
}

}  // namespace orderpipe::order
