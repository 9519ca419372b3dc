#include "saga_processor.hpp"

#include "orderpipe/common/faults.hpp"
#include "orderpipe/common/ids.hpp"
#include "orderpipe/common/logging.hpp"
#include "orderpipe/common/time.hpp"
#include "orderpipe/kafka/event_record.hpp"
#include "orderpipe/kafka/producer.hpp"

#include <algorithm>

namespace orderpipe::order {

using Clock = std::chrono::steady_clock;
using contract::OrderStatus;

namespace {
constexpr std::size_t kMaxQueuedCancels = 10000;
constexpr std::size_t kTimeoutScanLimit = 500;
}  // namespace

SagaProcessor::SagaProcessor(OrderStore& store, SagaTopics topics,
                             std::chrono::milliseconds order_timeout, OnChange on_change,
                             CaughtUp caught_up)
    : store_(store),
      topics_(std::move(topics)),
      order_timeout_(order_timeout),
      on_change_(std::move(on_change)),
      caught_up_(std::move(caught_up)),
      cancels_(kMaxQueuedCancels, [](Cancel&& c) {
          // Still queued at its deadline: it never entered a transaction.
          c.done(CancelOutcome::kNotCommitted,
                 "the cancellation could not be processed in time; nothing was changed");
      }) {}

void SagaProcessor::scale_out(std::function<std::optional<int>()> responses_partitions) {
    responses_partitions_ = std::move(responses_partitions);
}

bool SagaProcessor::owns(const std::string& order_id, std::optional<int> partitions) const {
    if (!responses_partitions_) return true;
    return partitions && owned_.contains(kafka::partition_for_key(order_id, *partitions));
}

bool SagaProcessor::partitions_assigned(const std::vector<kafka::TopicPartition>& partitions) {
    if (!responses_partitions_) return false;
    for (const auto& tp : partitions) {
        if (tp.topic == topics_.inventory_responses) owned_.insert(tp.partition);
    }
    // Their previous owner's decisions must be in the read model before this one decides.
    return true;
}

void SagaProcessor::partitions_revoked(const std::vector<kafka::TopicPartition>& partitions) {
    for (const auto& tp : partitions) {
        if (tp.topic == topics_.inventory_responses) owned_.erase(tp.partition);
    }
}

void SagaProcessor::routed_cancel(const kafka::Incoming& in, kafka::BatchOutput& out) {
    CancelCommand command;
    try {
        command = CancelCommand::read(in.event);
    } catch (const contract::ContractError& e) {
        out.dead_letter(*in.record, contract::DlqReason::kPoisonMessage, e.what());
        return;
    }
    log::Scope about(log::Fields().add("order_id", command.order_id));
    if (unix_now_ms() > command.expires_at_ms) {
        // The instance that took it has answered 503 ("nothing was changed") by now.
        log::warn("customer cancel dropped: it expired before it was decided",
                  {{"expired_ms_ago", unix_now_ms() - command.expires_at_ms}});
        return;
    }
    auto order = current(command.order_id);
    if (!order || order->status == OrderStatus::kCancelled) {
        // The instance that took it answers 404 or 409 from the read model.
        log::info("customer cancel not needed", {{"found", order.has_value()}});
        return;
    }
    auto step = on_customer_cancel(*order, topics_, command.cancelled_id);
    apply(step, *order, false, out);
    log::info("customer cancel (taken by another instance)",
              {{"was", contract::to_string(order->status)}});
}

bool SagaProcessor::request_cancel(const std::string& order_id, CancelDone done,
                                   Clock::time_point deadline) {
    return cancels_.push(Cancel{order_id, std::move(done), deadline, {}}, deadline) ==
           runtime::DeadlineQueue<Cancel>::Push::kQueued;
}

std::optional<OrderRecord> SagaProcessor::current(const std::string& order_id) {
    if (auto it = overlay_.find(order_id); it != overlay_.end()) return it->second;
    if (auto it = read_.find(order_id); it != read_.end()) return it->second;
    return store_.get(order_id, /*with_history=*/false);
}

void SagaProcessor::prefetch(std::vector<std::string> order_ids) {
    read_.clear();
    std::erase_if(order_ids, [&](const std::string& id) { return overlay_.contains(id); });
    if (order_ids.empty()) return;
    auto found = store_.get_many(order_ids);
    // An id can come more than once (a result and a customer cancel of one order in one batch):
    // each record is taken from `found` once, never a moved-from one for the repeat.
    for (const auto& id : order_ids) read_.try_emplace(id, std::nullopt);
    for (auto& [id, record] : found) read_[id] = std::move(record);
}

void SagaProcessor::apply(const SagaStep& step, const OrderRecord& base, bool base_is_new,
                          kafka::BatchOutput& out) {
    if (step.emit.empty()) return;
    OrderRecord next = base;
    for (const auto& [topic, event] : step.emit) {
        out.produce(kafka::to_record(topic, base.order_id, event));
        if (topic != topics_.orders) continue;
        // The state change is the read model's rule applied to what we emit.
        if (auto t = transition_for(event)) {
            apply_transition(next, event.id, *t);
            changes_.applied.push_back({event.id, std::move(*t)});
            decisions_.push_back(event);
        }
    }
    if (step.requests_release) {
        next.release_requested = true;
        changes_.releases.push_back(base.order_id);
    }
    if (base_is_new && !overlay_.contains(base.order_id)) {
        changes_.created.push_back({base, base.order_id + ":created"});
    }
    overlay_[base.order_id] = std::move(next);
}

void SagaProcessor::process(std::vector<kafka::Incoming>& batch, kafka::BatchOutput& out) {
    std::vector<std::string> ids;  // a result's and a command's subject is its order's id
    ids.reserve(batch.size());
    for (const auto& in : batch) ids.push_back(in.event.subject);
    prefetch(std::move(ids));
    for (const auto& in : batch) {
        log::Scope about(contract::log_fields(in.event));
        if (!topics_.commands.empty() && in.record->topic == topics_.commands) {
            routed_cancel(in, out);
            continue;
        }
        if (contract::type_of(in.event) != contract::EventType::kInventoryReserveResult) {
            out.dead_letter(*in.record, contract::DlqReason::kPoisonMessage,
                            "unexpected event type " + in.event.type + " on " + in.record->topic);
            continue;
        }
        try {
            const auto result = contract::InventoryReserveResult::read(in.event.data);
            auto order = current(result.order_id);
            const bool is_new = !order;
            // The read model may not have seen ORDER_CREATED yet: the result carries the order.
            if (!order) order = record_from_result(in.event, result);
            apply(on_reserve_result(*order, in.event, result, topics_), *order, is_new, out);
            log::debug("reservation answered", {{"status", contract::to_string(result.status)}});
        } catch (const contract::ContractError& e) {
            out.dead_letter(*in.record, contract::DlqReason::kPoisonMessage, e.what());
        }
    }
    read_.clear();
}

bool SagaProcessor::has_idle_work() {
    return cancels_.size() > 0 || Clock::now() >= next_timeout_scan_;
}

void SagaProcessor::idle(kafka::BatchOutput& out) {
    struct Done {
        std::map<std::string, std::optional<OrderRecord>>& read;
        ~Done() { read.clear(); }
    } done{read_};
    auto cancels = cancels_.take(kMaxQueuedCancels, std::chrono::milliseconds(0),
                                 std::chrono::milliseconds(0));
    if (!cancels.empty()) {
        std::vector<std::string> ids;
        ids.reserve(cancels.size());
        for (const auto& c : cancels) ids.push_back(c.order_id);
        prefetch(std::move(ids));
    }
    for (auto& c : cancels) {
        auto order = current(c.order_id);
        if (!order) {
            c.done(CancelOutcome::kNotFound, "no order with id " + c.order_id);
            continue;
        }
        if (order->status == OrderStatus::kCancelled) {
            c.done(CancelOutcome::kAlreadyCancelled,
                   "order " + c.order_id + " is already cancelled (" +
                       std::string(order->reason ? to_string(*order->reason) : "") + ")");
            continue;
        }
        auto step = on_customer_cancel(*order, topics_);
        c.event_id = step.emit.front().second.id;  // the ORDER_CANCELLED
        apply(step, *order, false, out);
        log::Scope about(contract::log_fields(step.emit.front().second));
        log::info("customer cancel", {{"was", contract::to_string(order->status)}});
        accepted_.push_back(std::move(c));
    }

    const auto now = Clock::now();
    if (now < next_timeout_scan_) return;
    next_timeout_scan_ =
        now + std::min<std::chrono::milliseconds>(
                  std::chrono::seconds(1), order_timeout_ / 4 + std::chrono::milliseconds(1));
    const auto cutoff = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch() - order_timeout_)
                            .count();
    const auto partitions = responses_partitions_ ? responses_partitions_() : std::optional<int>();
    auto expired = store_.pending_before(cutoff, kTimeoutScanLimit);
    std::erase_if(expired, [&](const std::string& id) { return !owns(id, partitions); });
    prefetch(expired);
    for (const auto& order_id : expired) {
        auto order = current(order_id);
        if (!order || order->status != OrderStatus::kPending) continue;
        try {
            auto step = on_timeout(*order, topics_);
            apply(step, *order, false, out);
            if (!step.emit.empty()) {
                log::Scope about(contract::log_fields(step.emit.front().second));
                log::warn("order timed out");
            }
        } catch (const contract::ContractError& e) {
            // Only well-formed orders enter the read model; this cannot be decided.
            log::error("cannot time out an order", {{"order_id", order_id}, {"error", e.what()}});
        }
    }
}

void SagaProcessor::committed() {
    // The transaction is committed: its cancels are accepted, whatever happens below.
    for (auto& c : accepted_) c.done(CancelOutcome::kAccepted, "cancellation accepted");
    accepted_.clear();
    auto changes = std::move(changes_);
    auto decisions = std::move(decisions_);
    forget();
    if (changes.empty()) return;
    if (faults::hit("order-decisions", "after-commit-fails")) {
        throw faults::InjectedFault(
            "injected failure of the read model write (after-commit-fails)");
    }
    // If this throws, the loop resyncs (waits for the projection) before the next decision.
    store_.write(changes);
    if (written_ != nullptr) written_->add(changes);
    for (std::size_t i = 0; i < decisions.size(); ++i) {
        const auto& t = changes.applied[i].t;
        log::Scope about(contract::log_fields(decisions[i]));
        log::info(t.status == OrderStatus::kConfirmed ? "order confirmed" : "order cancelled",
                  {{"event_id", decisions[i].id}});
        on_change_(t.order_id, t.status);
    }
}

void SagaProcessor::forget() {
    overlay_.clear();
    changes_.clear();
    decisions_.clear();
    read_.clear();
}

void SagaProcessor::retry_or_fail(Cancel&& c) {
    if (Clock::now() >= c.deadline) {
        c.done(CancelOutcome::kNotCommitted,
               "the cancellation could not be committed to Kafka; nothing was changed, retry");
        return;
    }
    c.event_id.clear();
    auto deadline = c.deadline;
    if (cancels_.push(std::move(c), deadline) != runtime::DeadlineQueue<Cancel>::Push::kQueued) {
        // Only when stopping or full; `c` was not moved from then.
        c.done(CancelOutcome::kNotCommitted, "the service is shutting down; retry");
    }
}

void SagaProcessor::aborted() {
    // Nothing of the transaction is visible: decide the cancels again (within their deadline).
    for (auto& c : accepted_) retry_or_fail(std::move(c));
    accepted_.clear();
    forget();
}

void SagaProcessor::outcome_unknown() {
    for (auto& c : accepted_) in_doubt_.push_back(std::move(c));
    accepted_.clear();
    forget();
}

bool SagaProcessor::resync(std::chrono::milliseconds budget,
                           const kafka::PartitionOffsets& acknowledged) {
    // Past every decision this loop's producer wrote, committed or not (acknowledged): a
    // listed end alone can be stale right after a leader moved.
    if (!caught_up_(budget, acknowledged)) return false;
    // The read model now holds every decision that committed: answer the cancels in doubt.
    for (auto& c : in_doubt_) {
        if (store_.has_event(c.event_id)) {
            c.done(CancelOutcome::kAccepted, "cancellation accepted");
        } else {
            retry_or_fail(std::move(c));
        }
    }
    in_doubt_.clear();
    log::info("decisions resynchronised with orders.events");
    return true;
}

CloudEvent CancelCommand::to_event(const OrderRecord& order) const {
    return CloudEvent::make(
        std::string(kType), std::string(contract::source::kOrderService), order_id,
        order.correlation_id, order.last_event_id, next_hop(order.traceparent),
        {{"order_id", order_id}, {"cancelled_id", cancelled_id}, {"expires_at_ms", expires_at_ms}});
}

CancelCommand CancelCommand::read(const CloudEvent& event) {
    if (event.type != kType) {
        throw contract::ContractError("unexpected command type " + event.type);
    }
    const auto& d = event.data;
    if (!d.is_object() || !d.contains("order_id") || !d["order_id"].is_string() ||
        !d.contains("cancelled_id") || !d["cancelled_id"].is_string() ||
        !d.contains("expires_at_ms") || !d["expires_at_ms"].is_number_integer()) {
        throw contract::ContractError(
            "a cancel command needs order_id, cancelled_id (strings) and expires_at_ms");
    }
    CancelCommand c;
    c.order_id = d["order_id"].get<std::string>();
    c.cancelled_id = d["cancelled_id"].get<std::string>();
    c.expires_at_ms = d["expires_at_ms"].get<std::int64_t>();
    if (c.order_id.empty() || c.cancelled_id.empty() || c.order_id != event.subject) {
        throw contract::ContractError("a cancel command's order_id must be its subject");
    }
    return c;
}

}  // namespace orderpipe::order
