#include "notification_processor.hpp"

#include "orderpipe/common/logging.hpp"
#include "orderpipe/common/storage_error.hpp"
#include "orderpipe/kafka/event_record.hpp"

#include <prometheus/registry.h>

#include <algorithm>

namespace orderpipe::notification {

using contract::DlqReason;
using contract::EventType;
using nlohmann::json;

namespace {

/// A replayed request is a new unit of work: its outcome's key carries the replay count.
std::string outcome_key(const kafka::ConsumedRecord& r, const CloudEvent& e) {
    if (auto replays = r.header(contract::dlq_header::kReplayCount); replays && !replays->empty()) {
        return e.id + "#replay-" + *replays;
    }
    return e.id;
}

json records_json(const std::vector<kafka::OutgoingRecord>& records) {
    json out = json::array();
    for (const auto& r : records) out.push_back(kafka::record_to_json(r));
    return out;
}

/// Where a request was read: its outcome is stored with it, to tell the same record delivered
/// again from a copy of it at another offset.
std::string position_of(const kafka::ConsumedRecord& r) {
    return contract::dlq_record_key(r.topic, r.partition, r.offset);
}

}  // namespace

FinishedRequest NotificationProcessor::finished_request(const Work& w) {
    FinishedRequest f;
    f.key = w.outcome_key;
    f.outcome = json{{"at", position_of(w.record)}, {"records", records_json(w.outcome)}}.dump();
    if (w.delivered) f.sent = w.request.notification_id;
    f.attempts = w.attempts;
    return f;
}

void NotificationProcessor::take_stored(Work& w, const std::string& stored) const {
    const json s = json::parse(stored);
    // {"at": position, "records": [...]}; a bare array from before positions were kept.
    const bool same_record = !s.is_object() || s.value("at", "") == position_of(w.record);
    w.stored = true;
    w.state = State::kDone;
    w.outcome.clear();
    w.delivered = false;
    if (same_record) {
        // Finished before, but its outcome was never committed (its offset was not: see
        // idle()): the same records again, in their turn, never a second send.
        for (const auto& r : s.is_object() ? s.at("records") : s) {
            w.outcome.push_back(kafka::record_from_json(r));
        }
        w.delivered = !w.outcome.empty() && w.outcome.back().topic == options_.events_topic &&
                      w.outcome.size() == 1;
    } else {
        // A copy of a request finished at another offset (one dead letter replayed twice): its
        // outcome is committed there. Nothing is sent, nothing written.
        log::info(
            "a copy of a request already finished; nothing sent or written",
            {{"notification_id", w.request.notification_id}, {"finished_at", s.value("at", "")}});
    }
}

std::optional<std::string> NotificationProcessor::stored_outcome(const std::string& key) {
    if (auto it = unstored_.find(key); it != unstored_.end()) return it->second.outcome;
    return store_.outcome(key);
}

bool NotificationProcessor::was_sent(const std::string& notification_id) {
    for (const auto& [key, f] : unstored_) {
        if (f.sent == notification_id) return true;
    }
    return store_.sent(notification_id);
}

NotificationProcessor::NotificationProcessor(OutcomeStore& store, NotificationOptions options,
                                             std::function<void(EmailClient::Request)> send,
                                             std::function<void()> wake,
                                             prometheus::Registry& registry)
    : store_(store),
      options_(std::move(options)),
      send_(std::move(send)),
      wake_(std::move(wake)),
      breaker_(options_.breaker_failures, options_.breaker_open) {
    attempts_total_ = &prometheus::BuildCounter()
                           .Name("notification_send_attempts_total")
                           .Help("Attempts to send an email, by how the provider answered")
                           .Register(registry);
    outcomes_total_ = &prometheus::BuildCounter()
                           .Name("notification_outcomes_total")
                           .Help("Notifications finished, by outcome (written with the offsets)")
                           .Register(registry);
    send_seconds_ = &prometheus::BuildHistogram()
                         .Name("notification_send_duration_seconds")
                         .Help("Time from starting an attempt to the provider's answer")
                         .Register(registry)
                         .Add({}, prometheus::Histogram::BucketBoundaries{
                                      0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10});
    held_ = &prometheus::BuildGauge()
                 .Name("notification_requests_held")
                 .Help("Requests consumed and not yet finished (bounded by NOTIFY_MAX_IN_FLIGHT)")
                 .Register(registry)
                 .Add({});
    sending_ = &prometheus::BuildGauge()
                    .Name("notification_sends_in_flight")
                    .Help("Attempts sent to the provider and not answered yet")
                    .Register(registry)
                    .Add({});
    breaker_gauge_ = &prometheus::BuildGauge()
                          .Name("notification_breaker_state")
                          .Help(
                              "Circuit breaker over the email provider: 0 closed, 1 half-open, "
                              "2 open")
                          .Register(registry)
                          .Add({});
}

void NotificationProcessor::answered(std::uint64_t attempt_id, SendResult result) {
    {
        std::lock_guard lock(answers_mu_);
        answers_.emplace_back(attempt_id, std::move(result));
    }
    answers_cv_.notify_all();
    wake_();
}

void NotificationProcessor::process(std::vector<kafka::Incoming>& batch, kafka::BatchOutput& out) {
    for (auto& in : batch) {
        const Position pos{{in.record->topic, in.record->partition}, in.record->offset};
        if (works_.contains(pos)) continue;  // delivered again after an abort: we hold it
        log::Scope about(contract::log_fields(in.event));
        if (contract::type_of(in.event) != EventType::kNotificationRequested) {
            out.dead_letter(*in.record, DlqReason::kPoisonMessage,
                            "unexpected event type " + in.event.type + " on " + in.record->topic);
            continue;
        }
        contract::NotificationRequested request;
        try {
            request = contract::NotificationRequested::read(in.event.data);
        } catch (const contract::ContractError& e) {
            out.dead_letter(*in.record, DlqReason::kPoisonMessage, e.what());
            continue;
        }
        if (adopt_orphan(pos, in.event.id)) continue;
        const std::string key = outcome_key(*in.record, in.event);
        Work w;
        w.record = *in.record;
        w.event = in.event;
        w.request = std::move(request);
        w.outcome_key = key;
        if (auto u = orphan_unanswered_.extract(key)) w.unanswered = u.mapped();
        if (auto stored = stored_outcome(key)) {
            out.note_duplicate();
            take_stored(w, *stored);
            works_.emplace(pos, std::move(w));
            finished_.push_back(pos);
            emittable_ = true;
            continue;
        }
        auto [it, inserted] = works_.emplace(pos, std::move(w));
        if (was_sent(it->second.request.notification_id)) {
            // A replay of a notification that was sent meanwhile: not again, and its
            // NOTIFICATION_SENT is not written again either (the request that sent it wrote it).
            log::info("notification already sent; not sent again",
                      {{"notification_id", it->second.request.notification_id}});
            out.note_duplicate();
            it->second.state = State::kDone;
            finished_.push_back(pos);
            emittable_ = true;
        }
    }
    dispatch(Clock::now());
    update_gauges();
}

void NotificationProcessor::tick() {
    dispatch(Clock::now());
    update_gauges();
}

void NotificationProcessor::dispatch(Clock::time_point now) {
    std::set<std::string_view> blocked;  // orders with an earlier unfinished request
    for (auto& [pos, w] : works_) {
        if (w.state == State::kDone || w.state == State::kWriting) continue;
        const std::string_view order = w.request.order_id;
        if (!blocked.insert(order).second) continue;  // waits for the earlier one
        if (w.state == State::kSending || w.due > now) continue;
        if (attempts_.size() + orphans_.size() >= window_) break;
        if (!breaker_.allow(now)) break;  // open: no attempt is spent
        w.probe = breaker_.probing();
        w.attempt_id = ++next_attempt_;
        attempts_[w.attempt_id] = pos;
        w.state = State::kSending;
        w.sent_at = now;
        json body = {{"to", w.request.to},
                     {"subject", w.request.subject},
                     {"text", w.request.text},
                     {"order_id", w.request.order_id},
                     {"notification_id", w.request.notification_id}};
        send_({w.attempt_id, body.dump(), w.request.notification_id, w.event.traceparent,
               w.unanswered});
    }
}

void NotificationProcessor::on_answer(const Position& pos, Work& w, const SendResult& result,
                                      Clock::time_point now) {
    attempts_.erase(w.attempt_id);
    w.attempt_id = 0;
    send_seconds_->Observe(std::chrono::duration<double>(now - w.sent_at).count());
    const bool probe = std::exchange(w.probe, false);
    if (result.status == 0) ++w.unanswered;  // a timeout: the provider may have taken it
    log::Scope about(contract::log_fields(w.event));
    switch (classify(result)) {
        case Verdict::kSent:
            attempts_total_->Add({{"result", "sent"}}).Increment();
            breaker_.on_answer();
            window_ = std::min(window_ * 2, options_.max_in_flight);
            ++w.attempts;
            log::info("notification sent",
                      {{"notification_id", w.request.notification_id}, {"attempts", w.attempts}});
            finish(pos, w, /*delivered=*/true);
            return;
        case Verdict::kPermanent:
            attempts_total_->Add({{"result", "permanent_error"}}).Increment();
            breaker_.on_answer();
            ++w.attempts;
            w.last_error = describe(result);
            log::warn("notification failed for good; dead-lettered",
                      {{"notification_id", w.request.notification_id},
                       {"attempts", w.attempts},
                       {"error", w.last_error}});
            w.outcome = failed_outcome(w, DlqReason::kPermanentError);
            finish(pos, w, /*delivered=*/false);
            return;
        case Verdict::kTransient:
            attempts_total_->Add({{"result", "transient_error"}}).Increment();
            w.last_error = describe(result);
            window_ = 1;
            if (breaker_.on_transient_failure(now)) {
                log::warn("email provider failing: circuit breaker open",
                          {{"failures", options_.breaker_failures},
                           {"open_ms", options_.breaker_open.count()},
                           {"last_error", w.last_error}});
            }
            w.state = State::kWaiting;
            if (probe) {
                w.due = now;  // the breaker's probe: not one of the request's attempts
                return;
            }
            if (result.retry_after && *result.retry_after > options_.max_wait) {
                // Waiting that long would hold every outcome behind it in its partition.
                ++w.attempts;
                w.last_error += "; the provider asked to retry in " +
                                std::to_string(result.retry_after->count() / 1000) +
                                " s (Retry-After), more than NOTIFY_MAX_WAIT_MS (" +
                                std::to_string(options_.max_wait.count()) +
                                " ms): dead-lettered so the requests behind it are not held; "
                                "replay it with dlqctl";
                log::warn("notification put off for too long by the provider; dead-lettered",
                          {{"notification_id", w.request.notification_id},
                           {"attempts", w.attempts},
                           {"error", w.last_error}});
                w.outcome = failed_outcome(w, DlqReason::kMaxRetries);
                finish(pos, w, /*delivered=*/false);
                return;
            }
            if (++w.attempts >= options_.max_attempts) {
                log::warn("notification failed after its last attempt; dead-lettered",
                          {{"notification_id", w.request.notification_id},
                           {"attempts", w.attempts},
                           {"error", w.last_error}});
                w.outcome = failed_outcome(w, DlqReason::kMaxRetries);
                finish(pos, w, /*delivered=*/false);
                return;
            }
            w.due = now + retry_delay(w.attempts, options_.backoff, result.retry_after,
                                      std::uniform_real_distribution<double>(0, 1)(rng_),
                                      options_.max_wait);
            log::info("notification send failed; retrying",
                      {{"notification_id", w.request.notification_id},
                       {"attempts", w.attempts},
                       {"retry_in_ms",
                        std::chrono::duration_cast<std::chrono::milliseconds>(w.due - now).count()},
                       {"error", w.last_error}});
            return;
    }
}

std::vector<kafka::OutgoingRecord> NotificationProcessor::sent_outcome(const Work& w) const {
    contract::NotificationSent sent{w.request.notification_id, w.request.order_id, w.attempts};
    auto e = contract::event_caused_by(w.event, EventType::kNotificationSent,
                                       contract::source::kNotificationService, sent.to_json());
    return {kafka::to_record(options_.events_topic, w.request.order_id, e)};
}

std::vector<kafka::OutgoingRecord> NotificationProcessor::failed_outcome(const Work& w,
                                                                         DlqReason reason) const {
    contract::NotificationFailed failed{w.request.notification_id, w.request.order_id, w.attempts,
                                        reason, w.last_error};
    auto e = contract::event_caused_by(w.event, EventType::kNotificationFailed,
                                       contract::source::kNotificationService, failed.to_json());
    return {kafka::dead_letter_record(w.record, options_.dlq_topic, options_.group_id, reason,
                                      w.last_error, w.attempts),
            kafka::to_record(options_.events_topic, w.request.order_id, e)};
}

void NotificationProcessor::finish(const Position& pos, Work& w, bool delivered) {
    w.delivered = delivered;
    if (delivered) w.outcome = sent_outcome(w);
    w.state = State::kDone;
    finished_.push_back(pos);
    emittable_ = true;
}

void NotificationProcessor::take_answers(Clock::time_point now) {
    std::vector<std::pair<std::uint64_t, SendResult>> answers;
    {
        std::lock_guard lock(answers_mu_);
        answers.swap(answers_);
    }
    for (auto& [id, result] : answers) {
        auto it = attempts_.find(id);
        if (it == attempts_.end()) {
            if (auto o = orphans_.find(id); o != orphans_.end()) {
                Work orphan = std::move(o->second);
                orphans_.erase(o);
                on_orphan_answer(orphan, result);
            }
            continue;
        }
        auto w = works_.find(it->second);
        if (w == works_.end()) continue;
        on_answer(w->first, w->second, result, now);
    }
}

bool NotificationProcessor::store_finished(Clock::time_point now) {
    // Stored before the Kafka commit: if that commit is lost, the redelivered request finds its
    // outcome here and is not sent again. A store that fails (the database away) is tried again
    // later with everything finished meanwhile; nothing finished is forgotten: until stored, an
    // outcome is kept here (in unstored_ once its work was dropped).
    std::vector<FinishedRequest> finished;
    for (const auto& pos : finished_) {
        const auto& w = works_.at(pos);
        if (!w.stored) finished.push_back(finished_request(w));
    }
    for (const auto& [key, f] : unstored_) finished.push_back(f);
    if (finished.empty()) return true;
    std::map<std::string, std::string> theirs;
    try {
        theirs = store_.store(finished);
    } catch (const StorageError& e) {
        if (!e.transient()) throw;
        store_backoff_ = std::clamp(store_backoff_ * 2, std::chrono::milliseconds(100),
                                    std::chrono::milliseconds(5000));
        store_retry_at_ = now + store_backoff_;
        log::warn("could not store finished notifications; trying again",
                  {{"count", finished.size()},
                   {"retry_in_ms", store_backoff_.count()},
                   {"error", e.what()}});
        return false;
    }
    store_backoff_ = std::chrono::milliseconds(0);
    unstored_.clear();
    for (const auto& pos : finished_) {
        auto& w = works_.at(pos);
        if (w.stored) continue;
        w.stored = true;
        // Another instance finished it first (its partition moved while both held it): its
        // outcome is the one, and ours is not written.
        if (auto t = theirs.find(w.outcome_key); t != theirs.end()) take_stored(w, t->second);
    }
    return true;
}

void NotificationProcessor::idle(kafka::BatchOutput& out) {
    const auto now = Clock::now();
    take_answers(now);
    if ((!finished_.empty() || !unstored_.empty()) && now >= store_retry_at_) {
        if (!store_finished(now)) {
            dispatch(now);
            update_gauges();
            return;
        }
        // Written in offset order per partition, never past an unfinished request: the
        // transaction that writes an outcome then also commits its request's offset (the loop
        // commits up to the first unfinished work), so a request delivered again after a crash
        // or a rebalance is always one whose outcome was not committed. (Writing outcomes out of
        // order committed them while the offset stayed behind an earlier request still retrying;
        // after a restart they were written a second time: found by the chaos run.)
        std::set<kafka::TopicPartition> held;
        std::vector<Position> later;
        for (auto& [pos, w] : works_) {
            if (w.state == State::kWaiting || w.state == State::kSending) {
                held.insert(pos.first);
            } else if (w.state == State::kDone) {
                if (held.contains(pos.first)) {
                    later.push_back(pos);
                    continue;
                }
                for (const auto& r : w.outcome) out.produce(r);
                w.state = State::kWriting;
                writing_.insert(pos);
            }
        }
        finished_ = std::move(later);
        emittable_ = false;
    }
    if (now - last_purge_ > std::chrono::hours(1)) {
        last_purge_ = now;
        if (auto n = store_.purge_expired(); n > 0) {
            log::info("purged processed notifications", {{"count", n}});
        }
    }
    dispatch(now);
    update_gauges();
}

bool NotificationProcessor::has_idle_work() {
    std::lock_guard lock(answers_mu_);
    if (!answers_.empty()) return true;
    return ((emittable_ && !finished_.empty()) || !unstored_.empty()) &&
           Clock::now() >= store_retry_at_;
}

void NotificationProcessor::committed() {
    for (const auto& pos : writing_) {
        auto it = works_.find(pos);
        if (it == works_.end()) continue;
        if (!it->second.outcome.empty()) {  // not a copy of a finished request
            outcomes_total_->Add({{"outcome", it->second.delivered ? "sent" : "failed"}})
                .Increment();
        }
        works_.erase(it);
    }
    writing_.clear();
    update_gauges();
}

void NotificationProcessor::aborted() {
    // The loop rewinds to the committed offsets, so every request not committed comes again.
    // Start over, as after an unknown outcome: finished ones find their stored outcome and emit
    // it once, in the transaction that also commits their offsets. (Keeping them to write in the
    // next transaction wrote them without their offsets, and the redelivered requests wrote them
    // a second time: the same NOTIFICATION_SENT twice, found by the chaos run.)
    outcome_unknown();
}

void NotificationProcessor::outcome_unknown() {
    // Which outcomes were written is unknown: start over from the committed offsets. Stored
    // outcomes are emitted again without a send; attempts still out become orphans, whose
    // answers are stored when they come (never a second send of an accepted request).
    drop_works([](const Position&) { return true; });
}

void NotificationProcessor::drop_works(const std::function<bool(const Position&)>& dropped) {
    abandon_probe_among(dropped);
    for (auto it = works_.begin(); it != works_.end();) {
        if (!dropped(it->first)) {
            ++it;
            continue;
        }
        Work& w = it->second;
        if (w.state == State::kDone && !w.stored) {
            // Finished (sent, perhaps) but not stored yet: kept until it is, so the request,
            // delivered again, finds it and is not sent again.
            unstored_.insert_or_assign(w.outcome_key, finished_request(w));
        }
        if (w.state == State::kSending && w.attempt_id != 0) {
            attempts_.erase(w.attempt_id);
            w.probe = false;
            const auto id = w.attempt_id;
            orphans_.emplace(id, std::move(w));
        }
        it = works_.erase(it);
    }
    std::erase_if(attempts_, [&](const auto& entry) { return dropped(entry.second); });
    std::erase_if(writing_, dropped);
    std::erase_if(finished_, dropped);
    update_gauges();
}

bool NotificationProcessor::adopt_orphan(const Position& pos, const std::string& event_id) {
    for (auto it = orphans_.begin(); it != orphans_.end(); ++it) {
        const auto& r = it->second.record;
        if (r.topic != pos.first.topic || r.partition != pos.first.partition ||
            r.offset != pos.second || it->second.event.id != event_id) {
            continue;
        }
        attempts_[it->first] = pos;
        works_.emplace(pos, std::move(it->second));
        orphans_.erase(it);
        return true;
    }
    return false;
}

void NotificationProcessor::on_orphan_answer(Work& w, const SendResult& result) {
    const Verdict verdict = classify(result);
    if (verdict == Verdict::kTransient) {
        // Not sent, as far as we know: the request, delivered again, retries — saying how many
        // of its attempts went unanswered (the provider may have taken those).
        const int unanswered = w.unanswered + (result.status == 0 ? 1 : 0);
        if (unanswered > 0) orphan_unanswered_[w.outcome_key] += unanswered;
        return;
    }
    ++w.attempts;
    log::Scope about(contract::log_fields(w.event));
    if (verdict == Verdict::kSent) {
        attempts_total_->Add({{"result", "sent"}}).Increment();
        w.outcome = sent_outcome(w);
    } else {
        attempts_total_->Add({{"result", "permanent_error"}}).Increment();
        w.last_error = describe(result);
        w.outcome = failed_outcome(w, DlqReason::kPermanentError);
    }
    log::info(
        "answer to an attempt whose request was dropped (abort, rebalance); stored for it",
        {{"notification_id", w.request.notification_id}, {"sent", verdict == Verdict::kSent}});
    auto finished = finished_request(w);
    if (verdict == Verdict::kSent) finished.sent = w.request.notification_id;
    // Stored with the next batch (idle()); meanwhile the request, delivered again, finds it here.
    if (!unstored_.contains(finished.key)) unstored_.emplace(finished.key, std::move(finished));
}

void NotificationProcessor::abandon_probe_among(
    const std::function<bool(const Position&)>& dropped) {
    for (const auto& [pos, w] : works_) {
        if (w.probe && dropped(pos)) breaker_.abandon_probe();
    }
}

std::map<kafka::TopicPartition, std::int64_t> NotificationProcessor::unfinished() {
    std::map<kafka::TopicPartition, std::int64_t> out;
    for (const auto& [pos, w] : works_) {
        if (w.state == State::kWriting) continue;
        out.try_emplace(pos.first, pos.second);  // the map is in offset order: the first wins
    }
    return out;
}

std::size_t NotificationProcessor::room() {
    // While the breaker is not closed, take no more requests — but one, when none is held: the
    // probe needs a request to go out with. (Without it, a rebalance that dropped every held
    // request while the breaker was open left nothing to probe with and nothing consumed: the
    // notifications stopped for good. Found by the chaos run.)
    if (breaker_.state(Clock::now()) != CircuitBreaker::State::kClosed) {
        return works_.empty() ? 1 : 0;
    }
    return works_.size() < options_.max_in_flight ? options_.max_in_flight - works_.size() : 0;
}

void NotificationProcessor::partitions_revoked(const std::vector<kafka::TopicPartition>& ps) {
    const std::set<kafka::TopicPartition> gone(ps.begin(), ps.end());
    const auto revoked = [&](const Position& p) { return gone.contains(p.first); };
    hand_over(revoked, Clock::now() + options_.handover_wait);
    drop_works(revoked);
}

void NotificationProcessor::hand_over(const std::function<bool(const Position&)>& revoked,
                                      Clock::time_point deadline) {
    // The partitions' next owner may be another instance, which reads the requests from the
    // committed offsets: a request whose attempt is out here would be sent there a second time.
    // So the revoke (which holds up the rebalance) waits for those answers — each comes within
    // NOTIFY_TIMEOUT_MS — and stores every finished outcome before the partitions go: the next
    // owner finds them. Only a crash, a store that fails, or an answer later than the deadline
    // leaves an attempt out (an orphan, stored here when it is answered).
    const auto out_here = [&] {
        for (const auto& [pos, w] : works_) {
            if (w.state == State::kSending && w.attempt_id != 0 && revoked(pos)) return true;
        }
        for (const auto& [id, w] : orphans_) {
            if (revoked({{w.record.topic, w.record.partition}, w.record.offset})) return true;
        }
        return false;
    };
    bool waited = false;
    while (out_here()) {
        waited = true;
        std::unique_lock lock(answers_mu_);
        if (!answers_cv_.wait_until(lock, deadline, [&] { return !answers_.empty(); })) break;
        lock.unlock();
        take_answers(Clock::now());
    }
    if (waited && out_here()) {
        log::warn(
            "partitions revoked with attempts still out; their answers are stored when "
            "they come, and another instance may send them again meanwhile",
            {});
    }
    if (!finished_.empty() || !unstored_.empty()) store_finished(Clock::now());
}

std::string NotificationProcessor::breaker_state() const {
    return to_string(breaker_.state(Clock::now()));
}

void NotificationProcessor::update_gauges() {
    held_->Set(static_cast<double>(works_.size()));
    sending_->Set(static_cast<double>(attempts_.size() + orphans_.size()));
    switch (breaker_.state(Clock::now())) {
        case CircuitBreaker::State::kClosed:
            breaker_gauge_->Set(0);
            break;
        case CircuitBreaker::State::kHalfOpen:
            breaker_gauge_->Set(1);
            break;
        case CircuitBreaker::State::kOpen:
            breaker_gauge_->Set(2);
            break;
    }
}

}  // namespace orderpipe::notification
