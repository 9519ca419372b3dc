#include "analytics_metrics.hpp"

#include <algorithm>

#include "orderpipe/common/logging.hpp"
#include "orderpipe/contract/names.hpp"

#include <prometheus/registry.h>

namespace orderpipe::analytics {
namespace {

bool starts_with(const std::string& s, std::string_view prefix) {
    return s.size() > prefix.size() && s.compare(0, prefix.size(), prefix) == 0;
}

std::vector<double> seconds(const std::vector<std::int64_t>& us) {
    std::vector<double> out;
    for (auto b : us) out.push_back(static_cast<double>(b) / 1e6);
    return out;
}

}  // namespace

const std::vector<std::int64_t>& AnalyticsMetrics::latency_bounds_us() {
    // 10 ms to 2 min: a saga decided in a few milliseconds up to ORDER_TIMEOUT cancels.
    static const std::vector<std::int64_t> bounds{
        10'000,    25'000,    50'000,     100'000,    250'000,    500'000,    1'000'000,
        2'500'000, 5'000'000, 10'000'000, 30'000'000, 60'000'000, 120'000'000};
    return bounds;
}

AnalyticsMetrics::AnalyticsMetrics(prometheus::Registry& registry,
                                   const std::vector<std::string>& dead_letter_topics)
    : created_(prometheus::BuildCounter()
                   .Name("orders_created_total")
                   .Help("ORDER_CREATED events on orders.events")
                   .Register(registry)
                   .Add({})),
      confirmed_(prometheus::BuildCounter()
                     .Name("orders_confirmed_total")
                     .Help("ORDER_CONFIRMED events on orders.events")
                     .Register(registry)
                     .Add({})),
      cancelled_(prometheus::BuildCounter()
                     .Name("orders_cancelled_total")
                     .Help("ORDER_CANCELLED events on orders.events, by reason")
                     .Register(registry)),
      revenue_confirmed_(prometheus::BuildCounter()
                             .Name("revenue_confirmed_total")
                             .Help("Sum of the totals of ORDER_CONFIRMED events, in currency units")
                             .Register(registry)),
      revenue_lost_(prometheus::BuildCounter()
                        .Name("revenue_lost_total")
                        .Help("Sum of the totals of ORDER_CANCELLED events, in currency units")
                        .Register(registry)),
      sent_(prometheus::BuildCounter()
                .Name("notifications_sent_total")
                .Help("NOTIFICATION_SENT events on notifications.events")
                .Register(registry)
                .Add({})),
      failed_(prometheus::BuildCounter()
                  .Name("notifications_failed_total")
                  .Help("NOTIFICATION_FAILED events on notifications.events")
                  .Register(registry)
                  .Add({})),
      pending_(prometheus::BuildGauge()
                   .Name("dlq_pending_messages")
                   .Help("Dead letters not yet REPLAYED or DISCARDED in dlq.resolutions, by DLQ "
                         "topic")
                   .Register(registry)),
      saga_(prometheus::BuildHistogram()
                .Name("order_saga_duration_seconds")
                .Help("Time from ORDER_CREATED to the order's decision (ORDER_CONFIRMED, or "
                      "ORDER_CANCELLED other than by the customer), from the events' ce_time")
                .Register(registry)
                .Add({}, seconds(latency_bounds_us()))),
      dead_letter_topics_(dead_letter_topics) {
    for (const auto reason : contract::kCancelReasons) {
        cancelled_.Add({{"reason", std::string(contract::to_string(reason))}});
    }
    set_pending({});
}

void AnalyticsMetrics::load(AnalyticsState& state) { refresh(state); }

void AnalyticsMetrics::refresh(AnalyticsState& state) {
    // Counters only go up: each moves by what the state gained since the last look.
    for (const auto& [name, value] : state.counters()) {
        auto& seen = seen_counters_[name];
        if (value > seen) add_counter(name, value - seen);
        seen = std::max(seen, value);
    }
    set_pending(state.dead_letters_pending());
    auto [buckets, sum_us] = state.latency_histogram(latency_bounds_us());
    if (seen_buckets_.size() != buckets.size()) seen_buckets_.assign(buckets.size(), 0);
    std::vector<double> increments(buckets.size());
    bool any = false;
    for (std::size_t i = 0; i < buckets.size(); ++i) {
        const auto gained = std::max<std::int64_t>(0, buckets[i] - seen_buckets_[i]);
        increments[i] = static_cast<double>(gained);
        any = any || gained > 0;
        seen_buckets_[i] = std::max(seen_buckets_[i], buckets[i]);
    }
    if (any) {
        saga_.ObserveMultiple(
            increments,
            static_cast<double>(std::max<std::int64_t>(0, sum_us - seen_sum_us_)) / 1e6);
        seen_sum_us_ = std::max(seen_sum_us_, sum_us);
    }
}

void AnalyticsMetrics::apply(
    const BatchChanges& changes,
    const std::optional<std::map<std::string, std::int64_t>>& pending) noexcept {
    try {
        for (const auto& [name, delta] : changes.counters) {
            add_counter(name, delta);
            seen_counters_[name] += delta;
        }
        for (auto us : changes.latencies_us) saga_.Observe(static_cast<double>(us) / 1e6);
        if (pending) set_pending(*pending);
    } catch (const std::exception& e) {  // only std::bad_alloc: metrics never stop the loop
        log::error("cannot update the business metrics", {{"error", e.what()}});
    }
}

void AnalyticsMetrics::add_counter(const std::string& name, std::int64_t delta) {
    auto money = [&](prometheus::Family<prometheus::Counter>& family, std::string_view prefix) {
        // Kept exact in cents; the counter follows the exact total (never an accumulation of
        // rounded increments).
        auto& cents = revenue_cents_[name];
        cents += delta;
        auto& c = family.Add({{"currency", name.substr(prefix.size())}});
        const double target = static_cast<double>(cents) / 100.0;
        if (target > c.Value()) c.Increment(target - c.Value());
    };
    if (name == figure::kOrdersCreated) {
        created_.Increment(static_cast<double>(delta));
    } else if (name == figure::kOrdersConfirmed) {
        confirmed_.Increment(static_cast<double>(delta));
    } else if (name == figure::kNotificationsSent) {
        sent_.Increment(static_cast<double>(delta));
    } else if (name == figure::kNotificationsFailed) {
        failed_.Increment(static_cast<double>(delta));
    } else if (starts_with(name, figure::kCancellationReasonPrefix)) {
        cancelled_
            .Add({{"reason",
                   name.substr(std::string_view(figure::kCancellationReasonPrefix).size())}})
            .Increment(static_cast<double>(delta));
    } else if (starts_with(name, figure::kRevenueConfirmedPrefix)) {
        money(revenue_confirmed_, figure::kRevenueConfirmedPrefix);
    } else if (starts_with(name, figure::kRevenueLostPrefix)) {
        money(revenue_lost_, figure::kRevenueLostPrefix);
    }
    // orders.cancelled is the sum of orders_cancelled_total over its reasons; inventory.* is
    // only in the JSON.
}

void AnalyticsMetrics::set_pending(const std::map<std::string, std::int64_t>& pending) {
    for (const auto& topic : dead_letter_topics_) {
        const auto it = pending.find(topic);
        pending_.Add({{"topic", topic}})
            .Set(it == pending.end() ? 0.0 : static_cast<double>(it->second));
    }
}

}  // namespace orderpipe::analytics
