#pragma once
/// The notification service's processor on the shared loop (docs/ARCHITECTURE.md
/// "Notifications"): consumes notifications.requests and sends each request through the email
/// provider, outside the loop's transactions and many at a time, then writes its outcome —
/// NOTIFICATION_SENT, or NOTIFICATION_FAILED with the request, unchanged, in notifications.dlq —
/// in a transaction with the offsets.
///
/// - Other orders never wait for a failing one: each request is retried on its own schedule
///   (about 0 s, 2 s, 6 s with the defaults), and a later request of the same order (same key)
///   waits until the earlier one is finished.
/// - Offsets are committed only below the oldest unfinished request of each partition (the
///   loop asks unfinished()), so a crash redelivers what was unfinished and nothing else.
/// - At most `max_in_flight` requests are held; beyond it, and while the circuit breaker is
///   open, the loop pauses consumption.
/// - A send the provider accepted is recorded (OutcomeStore) before the Kafka commit, with the
///   records of its outcome, so a redelivered request is not sent again: its stored outcome is
///   emitted again (same ce_ids). An attempt still out when its request is dropped (an abort,
///   an unknown outcome, a revoke) is kept: its answer is stored when it comes, and the request
///   delivered again meanwhile waits for it. So only a crash (SIGKILL) sends again, and only
///   what was out at that moment. A replayed request (header dlq.replay_count) is a new unit of
///   work — sent, since it never succeeded — unless its notification was sent meanwhile.
///
/// Thread-safety: the BatchProcessor methods run on the loop thread; answers of the email
/// client are handed over through a locked queue.

#include "delivery.hpp"
#include "email_client.hpp"

#include "outcome_store.hpp"

#include "orderpipe/contract/events.hpp"
#include "orderpipe/kafka/processing_loop.hpp"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>

#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <vector>

namespace prometheus {
class Registry;
}

namespace orderpipe::notification {

struct NotificationOptions {
    std::string events_topic;  ///< notifications.events (with its prefix)
    std::string dlq_topic;     ///< notifications.dlq
    std::string group_id;      ///< the consumer group: for dlq.consumer_group
    int max_attempts = 3;
    std::chrono::milliseconds backoff{2000};
    /// The longest a request waits for its next attempt. Outcomes are written in offset order,
    /// so a waiting request holds the outcomes of its partition behind it: the backoff is capped
    /// at this, and a provider asking (Retry-After) for longer gets the request dead-lettered at
    /// once (MAX_RETRIES), to be replayed later, instead of holding the others.
    std::chrono::milliseconds max_wait{30000};
    /// How long a revoke waits for the answers to attempts out on the revoked partitions
    /// (NOTIFY_TIMEOUT_MS and a margin): see hand_over().
    std::chrono::milliseconds handover_wait{6000};
    std::size_t max_in_flight = 1000;
    int breaker_failures = 5;
    std::chrono::milliseconds breaker_open{10000};
    std::chrono::hours processed_retention{24 * 7};
};

class NotificationProcessor final : public kafka::BatchProcessor {
  public:
    /// `send` starts one attempt (the email client); `wake` wakes the loop when answers came.
    /// `store` is the loop thread's own.
    NotificationProcessor(OutcomeStore& store, NotificationOptions options,
                          std::function<void(EmailClient::Request)> send,
                          std::function<void()> wake, prometheus::Registry& registry);

    /// An answer of the email client (any thread).
    void answered(std::uint64_t attempt_id, SendResult result);

    void process(std::vector<kafka::Incoming>& batch, kafka::BatchOutput& out) override;
    void idle(kafka::BatchOutput& out) override;
    bool has_idle_work() override;
    void committed() override;
    void aborted() override;
    void outcome_unknown() override;
    std::map<kafka::TopicPartition, std::int64_t> unfinished() override;
    std::size_t room() override;
    void tick() override;
    void partitions_revoked(const std::vector<kafka::TopicPartition>& partitions) override;

    /// For /readyz details and metrics: the breaker's state ("closed", "open", "half-open").
    std::string breaker_state() const;

  private:
    enum class State {
        kWaiting,  ///< for its time, or for an earlier request of its order
        kSending,  ///< an attempt is out
        kDone,     ///< outcome decided and stored; to be written
        kWriting,  ///< outcome in the open transaction
    };
    struct Work {
        kafka::ConsumedRecord record;  ///< kept whole: a dead letter is the record byte for byte
        CloudEvent event;
        contract::NotificationRequested request;
        std::string outcome_key;  ///< ProcessedEvents key: ce_id, plus the replay count
        State state = State::kWaiting;
        int attempts = 0;
        int unanswered = 0;  ///< attempts (probes too) that got no HTTP answer: maybe accepted
        std::string last_error;
        Clock::time_point due{};
        std::uint64_t attempt_id = 0;  ///< of the attempt out, 0 if none
        bool probe = false;            ///< that attempt is the breaker's probe
        Clock::time_point sent_at{};
        std::vector<kafka::OutgoingRecord> outcome;
        bool stored = false;     ///< the outcome is in SQLite
        bool delivered = false;  ///< the outcome is NOTIFICATION_SENT
    };
    using Position = std::pair<kafka::TopicPartition, std::int64_t>;

    void dispatch(Clock::time_point now);
    void on_answer(const Position& pos, Work& w, const SendResult& result, Clock::time_point now);
    std::vector<kafka::OutgoingRecord> sent_outcome(const Work& w) const;
    std::vector<kafka::OutgoingRecord> failed_outcome(const Work& w,
                                                      contract::DlqReason reason) const;
    void finish(const Position& pos, Work& w, bool delivered);
    /// Before works are dropped (`dropped` says which): a probe among them is never answered.
    void abandon_probe_among(const std::function<bool(const Position&)>& dropped);
    /// Drops the works `dropped` says (an abort, an unknown outcome, a revoke); an attempt
    /// still out is kept as an orphan: its answer is stored all the same.
    void drop_works(const std::function<bool(const Position&)>& dropped);
    /// The answer to an orphan's attempt: an accepted send (or a refusal for good) is stored
    /// with its outcome now, so the request, delivered again, finds it and is not sent again.
    void on_orphan_answer(Work& w, const SendResult& result);
    /// A request delivered again while its attempt is still out takes that attempt over.
    bool adopt_orphan(const Position& pos, const std::string& event_id);
    void update_gauges();

    /// What the store keeps of a finished request (sent: when it was delivered).
    static FinishedRequest finished_request(const Work& w);
    /// Answers that came (from the email client's thread) applied to their works.
    void take_answers(Clock::time_point now);
    /// Stores what finished and is not stored yet. @returns false when the store failed
    /// (transient: tried again after a backoff).
    bool store_finished(Clock::time_point now);
    /// Before partitions go: waits (until `deadline`) for the answers to their attempts out,
    /// and stores every finished outcome, so their next owner does not send them again.
    void hand_over(const std::function<bool(const Position&)>& revoked, Clock::time_point deadline);
    /// `w` takes the outcome stored for it (done; to write if it is the same record).
    void take_stored(Work& w, const std::string& stored) const;
    /// The outcome of `key`, kept here until stored or in the store.
    std::optional<std::string> stored_outcome(const std::string& key);
    bool was_sent(const std::string& notification_id);

    OutcomeStore& store_;
    NotificationOptions options_;
    std::function<void(EmailClient::Request)> send_;
    std::function<void()> wake_;
    CircuitBreaker breaker_;
    std::mt19937_64 rng_{std::random_device{}()};

    std::map<Position, Work> works_;  // by partition, then offset: consumption order
    /// A work finished since idle() last wrote outcomes: some may be writable now.
    bool emittable_ = false;
    std::map<std::uint64_t, Position> attempts_;  // attempt id → its work
    /// Attempts out whose work was dropped (abort, unknown outcome, revoke), by attempt id.
    /// Forgetting them sent the request a second time once it came again, although the
    /// provider had accepted it: a duplicate email at a provider that does not deduplicate.
    std::map<std::uint64_t, Work> orphans_;
    /// Per outcome key, the unanswered attempts of orphans that ended without an outcome: the
    /// request, delivered again, carries them on (Work::unanswered).
    std::map<std::string, int> orphan_unanswered_;
    /// Attempts allowed in flight: 1 while the provider's health is unknown or failing, doubled
    /// by each success up to max_in_flight. So an outage costs a handful of attempts (then the
    /// breaker opens), not one per request held.
    std::size_t window_ = 1;
    std::uint64_t next_attempt_ = 0;
    std::set<Position> writing_;      // outcomes in the open transaction
    std::vector<Position> finished_;  // outcomes to store and write, in order of finishing
    /// Finished requests whose works were dropped (an abort, a revoke, an orphan's answer)
    /// before their outcome was stored: stored with the next batch, found here meanwhile.
    std::map<std::string, FinishedRequest> unstored_;
    Clock::time_point store_retry_at_{};
    std::chrono::milliseconds store_backoff_{0};

    mutable std::mutex answers_mu_;
    std::condition_variable answers_cv_;                         // an answer came
    std::vector<std::pair<std::uint64_t, SendResult>> answers_;  // guarded by answers_mu_

    prometheus::Family<prometheus::Counter>* attempts_total_;
    prometheus::Family<prometheus::Counter>* outcomes_total_;
    prometheus::Histogram* send_seconds_;
    prometheus::Gauge* held_;
    prometheus::Gauge* sending_;
    prometheus::Gauge* breaker_gauge_;
    Clock::time_point last_purge_{};
};

}  // namespace orderpipe::notification
