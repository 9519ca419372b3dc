#include "orderpipe/runtime/projection.hpp"

#include "orderpipe/common/faults.hpp"
#include "orderpipe/common/logging.hpp"
#include "orderpipe/contract/events.hpp"
#include "orderpipe/kafka/consumer.hpp"

#include <prometheus/counter.h>
#include <prometheus/registry.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

namespace orderpipe::runtime {

using Clock = std::chrono::steady_clock;

namespace {

constexpr auto kMinBackoff = std::chrono::milliseconds(100);
constexpr auto kMaxBackoff = std::chrono::milliseconds(5000);
constexpr auto kPartitionRecheck = std::chrono::seconds(10);

std::chrono::milliseconds left(Clock::time_point until) {
    return std::max(std::chrono::milliseconds(1),
                    std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()));
}

}  // namespace

class Projection::Impl {
  public:
    Impl(ProjectionOptions options, ProjectionHandler& handler, prometheus::Registry& registry)
        : options_(std::move(options)), handler_(handler) {
        if (options_.positions_name.empty()) options_.positions_name = options_.name;
        auto& records = prometheus::BuildCounter()
                            .Name("projection_records_total")
                            .Help("Records applied to a read model, by result")
                            .Register(registry);
        applied_ = &records.Add({{"projection", options_.name}, {"result", "applied"}});
        skipped_ = &records.Add({{"projection", options_.name}, {"result", "skipped"}});
        failures_ = &prometheus::BuildCounter()
                         .Name("projection_failures_total")
                         .Help("Batches rolled back and retried (SQLite or Kafka failures)")
                         .Register(registry)
                         .Add({{"projection", options_.name}});
        kafka::ConsumerOptions co;
        co.partition_eof = true;  // to know where the end is, also past control records
        // Never commits to Kafka: positions are in SQLite. A group id is still required.
        co.group_id = options_.client.client_id + "-" + options_.name + "-projection";
        kafka::ClientConfig client = options_.client;
        // librdkafka 2.0.2 bounds query_watermark_offsets only by the socket timeout (#4460):
        // keep it short so wait_caught_up() cannot hang for a minute with the broker away.
        client.properties.try_emplace("socket.timeout.ms", "10000");
        consumer_ = std::make_unique<kafka::Consumer>(client, co);
    }

    ~Impl() { stop(); }

    bool catch_up(std::chrono::milliseconds deadline) {
        const auto until = Clock::now() + deadline;
        // The assignment reads the stored positions: not while a waiter drives a batch.
        const auto refresh = [this] {
            std::lock_guard drive(drive_mu_);
            return refresh_partitions();
        };
        while (!refresh()) {
            if (Clock::now() >= until || stopping_) return false;
            std::this_thread::sleep_for(std::chrono::milliseconds(200));  // metadata retry
        }
        if (wait_caught_up(left(until), {})) {
            log::info("read model caught up", {{"projection", options_.name}});
            return true;
        }
        return false;
    }

    void start() {
        started_ = true;
        thread_ = std::thread([this] { run(); });
    }

    void stop() {
        if (stopping_.exchange(true)) return;
        consumer_->wake();
        if (thread_.joinable()) thread_.join();
        consumer_->close();
        cv_.notify_all();
    }

    bool wait_caught_up(std::chrono::milliseconds deadline,
                        const kafka::PartitionOffsets& at_least) {
        const auto until = Clock::now() + deadline;
        // The end of every partition now (the last stable offset: read_committed).
        std::map<kafka::TopicPartition, std::int64_t> ends;
        std::map<std::string, int> counts;
        {
            std::lock_guard lock(mu_);
            counts = partitions_;
        }
        if (counts.empty()) return false;  // catch_up() has not read the partitions yet
        try {
            for (const auto& [topic, n] : counts) {
                for (int p = 0; p < n; ++p) {
                    ends[{topic, p}] =
                        consumer_
                            ->watermarks(topic, p,
                                         std::min(left(until), std::chrono::milliseconds(5000)))
                            .second;
                }
            }
        } catch (const std::exception& e) {
            log::warn("cannot read the end offsets",
                      {{"projection", options_.name}, {"error", e.what()}});
            return false;
        }
        if (faults::hit(options_.name, "stale-end")) {
            std::lock_guard lock(mu_);
            for (auto& [tp, end] : ends) {
                auto it = reached_.find(tp);
                end = std::min(end, it == reached_.end() ? 0 : it->second);
            }
        }
        for (const auto& [tp, offset] : at_least) {
            auto it = ends.find(tp);
            if (it != ends.end() && it->second < offset) {
                // The end listed is older than a record acknowledged before this call: the
                // partition's leader moved and the new one does not know its end yet.
                log::info("a listed end is behind an acknowledged record; waiting for the record",
                          {{"projection", options_.name},
                           {"topic", tp.topic},
                           {"partition", tp.partition},
                           {"listed_end", it->second},
                           {"acknowledged", offset}});
                it->second = offset;
            }
        }
        auto reached = [&] {
            for (const auto& [tp, end] : ends) {
                auto it = reached_.find(tp);
                if ((it == reached_.end() ? 0 : it->second) < end) return false;
            }
            return true;
        };
        if (!started_) {
            // Before start(): the waiting threads drive the projection, one at a time (the
            // start-up's catch-up and the intake resolving unknown keys both wait here; driving
            // it from both at once applied batches into one store concurrently: a SIGSEGV).
            // The others, and a driver once start() was called, wait for progress.
            while (!stopping_) {
                {
                    std::lock_guard lock(mu_);
                    if (reached()) return true;
                }
                if (Clock::now() >= until) return false;
                std::unique_lock drive(drive_mu_, std::try_to_lock);
                if (drive.owns_lock() && !started_) {
                    step(std::chrono::milliseconds(100));
                    continue;
                }
                drive = {};
                std::unique_lock lock(mu_);
                cv_.wait_until(lock, std::min(until, Clock::now() + std::chrono::milliseconds(100)),
                               [&] { return reached() || stopping_; });
            }
            return false;
        }
        std::unique_lock lock(mu_);
        return cv_.wait_until(lock, until, [&] { return reached() || stopping_; }) && !stopping_;
    }

    std::optional<std::string> problem() const {
        std::lock_guard lock(mu_);
        return problem_;
    }

  private:
    void run() {
        auto last_check = Clock::now();
        while (!stopping_) {
            std::lock_guard drive(drive_mu_);  // a waiter may still be in its last step
            if (Clock::now() - last_check > kPartitionRecheck) {
                last_check = Clock::now();
                refresh_partitions();
            }
            step(options_.poll);
        }
    }

    /// Reads the partition counts; re-assigns when they changed. @returns false on failure.
    bool refresh_partitions() {
        std::map<std::string, int> counts;
        try {
            for (const auto& t : options_.topics) {
                const int n = consumer_->partition_count(t, std::chrono::seconds(5));
                if (n == 0) {
                    set_problem("topic " + t + " is missing");
                    return false;
                }
                counts[t] = n;
            }
        } catch (const std::exception& e) {
            set_problem(std::string("cannot read topic metadata: ") + e.what());
            return false;
        }
        bool changed = false;
        {
            std::lock_guard lock(mu_);
            changed = counts != partitions_;
            if (changed) {
                if (!partitions_.empty()) {
                    log::info("partition count changed; assigning the new partitions",
                              {{"projection", options_.name}});
                }
                partitions_ = counts;
            }
        }
        if (changed && !assign()) return false;
        if (!failing_) set_problem(std::nullopt);
        return true;
    }

    /// Every partition at its stored position (or the beginning).
    std::vector<kafka::TopicPartitionOffset> stored_positions() {
        const auto stored = handler_.store().positions(options_.positions_name);
        std::map<std::string, int> counts;
        {
            std::lock_guard lock(mu_);
            counts = partitions_;
            for (const auto& [tp, next] : stored) reached_[tp] = std::max(reached_[tp], next);
        }
        std::vector<kafka::TopicPartitionOffset> out;
        for (const auto& [topic, n] : counts) {
            for (int p = 0; p < n; ++p) {
                auto it = stored.find({topic, p});
                out.push_back(
                    {topic, p, it == stored.end() ? kafka::Consumer::kBeginning : it->second});
            }
        }
        return out;
    }

    /// Assigns every partition at its stored position. Only when the partitions change:
    /// librdkafka 2.0.2 can trip over an assignment replaced while it still stops the last one.
    bool assign() {
        try {
            consumer_->assign(stored_positions());
        } catch (const std::exception& e) {
            set_problem(std::string("cannot assign partitions: ") + e.what());
            return false;
        }
        return true;
    }

    /// Back to the stored positions after a rolled-back batch. Until that succeeds nothing
    /// more is polled: the consumer is past the batch that was not applied, and applying the
    /// next one would store positions beyond it (the batch lost from the read model). Seen with
    /// the database down: its positions could not be read for the rewind.
    /// @returns whether it is rewound.
    bool rewind() {
        try {
            consumer_->seek(stored_positions());
            needs_rewind_ = false;
            return true;
        } catch (const std::exception& e) {
            needs_rewind_ = true;
            log::warn("cannot rewind the projection yet",
                      {{"projection", options_.name}, {"error", e.what()}});
            return false;
        }
    }

    void set_problem(std::optional<std::string> p) {
        std::lock_guard lock(mu_);
        problem_ = std::move(p);
    }

    void step(std::chrono::milliseconds wait) {
        if (needs_rewind_ && !rewind()) {
            back_off();
            return;
        }
        kafka::PollResult polled;
        try {
            polled = consumer_->poll_batch(options_.batch_max, wait);
        } catch (const std::exception& e) {
            set_problem(std::string("the consumer failed: ") + e.what());
            back_off();
            return;
        }
        if (!polled.records.empty() && !apply(polled.records)) return;
        std::lock_guard lock(mu_);
        for (const auto& rec : polled.records) {
            auto& r = reached_[{rec.topic, rec.partition}];
            r = std::max(r, rec.offset + 1);
        }
        for (const auto& end : polled.reached_end) {
            auto& r = reached_[{end.topic, end.partition}];
            r = std::max(r, end.offset);
        }
        if (!polled.records.empty() || !polled.reached_end.empty()) cv_.notify_all();
    }

    /// One unit of work of the store for the batch. @returns false if it was rolled back.
    bool apply(const std::vector<kafka::ConsumedRecord>& records) {
        if (faults::hit(options_.name, "projection-stall")) {
            // A read model that lags (a slow disk): whoever waits for it must wait.
            std::this_thread::sleep_for(std::chrono::milliseconds(1500));
        }
        std::size_t skipped = 0;
        try {
            ProjectionStore& store = handler_.store();
            struct Unit {
                ProjectionStore& store;
                bool open = true;
                ~Unit() {
                    if (open) store.rollback();
                }
            };
            store.begin();
            Unit unit{store};
            std::map<kafka::TopicPartition, std::int64_t> next;
            // Applied in key order (each key's records keep their order: one key, one
            // partition), so writers sharing a database lock rows in one order and never
            // deadlock each other (the order-service's intake and projections did).
            std::vector<const kafka::ConsumedRecord*> in_order;
            in_order.reserve(records.size());
            for (const auto& rec : records) in_order.push_back(&rec);
            std::stable_sort(in_order.begin(), in_order.end(), [](const auto* a, const auto* b) {
                return a->key.value_or("") < b->key.value_or("");
            });
            for (const auto* record : in_order) {
                const auto& rec = *record;
                auto& n = next[{rec.topic, rec.partition}];
                n = std::max(n, rec.offset + 1);
                try {
                    handler_.apply(rec);
                } catch (const contract::ContractError& e) {
                    ++skipped;  // it wrote nothing (ProjectionHandler::apply)
                    log::Scope about(contract::log_fields(rec.key, rec.headers));
                    log::warn("record skipped by the read model", {{"projection", options_.name},
                                                                   {"topic", rec.topic},
                                                                   {"partition", rec.partition},
                                                                   {"offset", rec.offset},
                                                                   {"error", e.what()}});
                }
            }
            handler_.flush();
            store.advance(options_.positions_name, next);
            store.commit();
            unit.open = false;
        } catch (const std::exception& e) {
            handler_.rolled_back();
            failures_->Increment();
            failing_ = true;
            set_problem(std::string("applying a batch failed (retrying): ") + e.what());
            log::error("projection batch failed; rewinding and retrying",
                       {{"projection", options_.name}, {"error", e.what()}});
            back_off();
            rewind();
            return false;
        }
        applied_->Increment(static_cast<double>(records.size() - skipped));
        skipped_->Increment(static_cast<double>(skipped));
        handler_.committed();
        if (failing_) {
            failing_ = false;
            backoff_ = kMinBackoff;
            set_problem(std::nullopt);
        }
        return true;
    }

    void back_off() {
        const auto until = Clock::now() + backoff_;
        while (!stopping_ && Clock::now() < until) {
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        backoff_ = std::min(backoff_ * 2, kMaxBackoff);
    }

    ProjectionOptions options_;
    ProjectionHandler& handler_;
    std::unique_ptr<kafka::Consumer> consumer_;
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::mutex drive_mu_;  ///< held by whichever thread runs step(): one at a time
    std::map<std::string, int> partitions_;                  // guarded by mu_
    std::map<kafka::TopicPartition, std::int64_t> reached_;  // guarded by mu_
    std::optional<std::string> problem_;                     // guarded by mu_
    bool failing_ = false;
    bool needs_rewind_ = false;  ///< a rolled-back batch whose rewind has not succeeded yet
    std::chrono::milliseconds backoff_ = kMinBackoff;
    std::atomic<bool> started_{false};
    std::atomic<bool> stopping_{false};
    prometheus::Counter* applied_;
    prometheus::Counter* skipped_;
    prometheus::Counter* failures_;
    std::thread thread_;  // last
};

Projection::Projection(ProjectionOptions options, ProjectionHandler& handler,
                       prometheus::Registry& registry)
    : impl_(std::make_unique<Impl>(std::move(options), handler, registry)) {}
Projection::~Projection() = default;
bool Projection::catch_up(std::chrono::milliseconds deadline) { return impl_->catch_up(deadline); }
void Projection::start() { impl_->start(); }
void Projection::stop() { impl_->stop(); }
bool Projection::wait_caught_up(std::chrono::milliseconds deadline,
                                const kafka::PartitionOffsets& at_least) {
    return impl_->wait_caught_up(deadline, at_least);
}
std::optional<std::string> Projection::problem() const { return impl_->problem(); }

}  // namespace orderpipe::runtime
