#include "figures.hpp"

#include "orderpipe/common/money.hpp"
#include "orderpipe/contract/names.hpp"

#include <set>

namespace orderpipe::analytics {

using nlohmann::json;

namespace {

std::int64_t value_of(const std::map<std::string, std::int64_t>& counters,
                      const std::string& name) {
    const auto it = counters.find(name);
    return it == counters.end() ? 0 : it->second;
}

std::string money(std::int64_t cents) { return Money::from_minor_units(cents).to_string(); }

/// The currencies that have revenue figures in `counters`.
std::set<std::string> currencies_in(const std::map<std::string, std::int64_t>& counters) {
    std::set<std::string> out;
    for (const auto& [name, value] : counters) {
        for (const std::string prefix :
             {figure::kRevenueConfirmedPrefix, figure::kRevenueLostPrefix}) {
            if (name.rfind(prefix, 0) == 0) out.insert(name.substr(prefix.size()));
        }
    }
    return out;
}

/// Adds the revenue figures of `currencies`: "revenue.by_currency" always; "revenue.confirmed"
/// and "revenue.lost" too when there is at most one currency (a sum over currencies means
/// nothing).
void add_revenue(const std::map<std::string, std::int64_t>& counters,
                 const std::set<std::string>& currencies, json& out) {
    const std::string confirmed = figure::kRevenueConfirmedPrefix;
    const std::string lost = figure::kRevenueLostPrefix;
    json by_currency = json::object();
    for (const auto& c : currencies) {
        by_currency[c] = {{"confirmed", money(value_of(counters, confirmed + c))},
                          {"lost", money(value_of(counters, lost + c))}};
    }
    if (currencies.size() <= 1) {
        const std::string c = currencies.empty() ? std::string() : *currencies.begin();
        out["revenue.confirmed"] =
            money(currencies.empty() ? 0 : value_of(counters, confirmed + c));
        out["revenue.lost"] = money(currencies.empty() ? 0 : value_of(counters, lost + c));
    }
    out["revenue.by_currency"] = std::move(by_currency);
}

json percentile(const std::optional<double>& ms) { return ms ? json(*ms) : json(nullptr); }

}  // namespace

json figures_json(const Figures& f) {
    const auto& c = f.counters;
    json out = json::object();
    out[figure::kOrdersCreated] = value_of(c, figure::kOrdersCreated);
    out[figure::kOrdersConfirmed] = value_of(c, figure::kOrdersConfirmed);
    out[figure::kOrdersCancelled] = value_of(c, figure::kOrdersCancelled);
    add_revenue(c, currencies_in(c), out);
    json reasons = json::object();
    for (const auto reason : contract::kCancelReasons) {
        const std::string r(contract::to_string(reason));
        reasons[r] = value_of(c, figure::kCancellationReasonPrefix + r);
    }
    out["cancellation_reasons"] = std::move(reasons);
    out[figure::kNotificationsSent] = value_of(c, figure::kNotificationsSent);
    out[figure::kNotificationsFailed] = value_of(c, figure::kNotificationsFailed);
    std::int64_t pending = 0;
    json by_topic = json::object();
    for (const auto& [topic, n] : f.dead_letters_pending) {
        pending += n;
        by_topic[topic] = n;
    }
    out["dlq.pending"] = pending;
    out["dlq.pending_by_topic"] = std::move(by_topic);
    out["saga_latency_ms"] = {{"p50", percentile(f.latency.p50)},
                              {"p90", percentile(f.latency.p90)},
                              {"p99", percentile(f.latency.p99)},
                              {"count", f.latency.count}};
    for (const char* what : {"reserved", "rejected", "released", "stock_adjusted"}) {
        const std::string name = figure::kInventoryPrefix + std::string(what);
        out[name] = value_of(c, name);
    }
    return out;
}

json series_json(const std::map<std::int64_t, std::map<std::string, std::int64_t>>& rows,
                 std::int64_t from_minute, std::int64_t to_minute) {
    static const std::map<std::string, std::int64_t> kNone;
    std::set<std::string> currencies;
    for (const auto& [minute, c] : rows) currencies.merge(currencies_in(c));
    json minutes = json::array();
    for (std::int64_t m = from_minute; m <= to_minute; ++m) {
        const auto it = rows.find(m);
        const auto& c = it == rows.end() ? kNone : it->second;
        json entry = {{"at", format_rfc3339(SystemTime(std::chrono::minutes(m)))}};
        for (const char* name :
             {figure::kOrdersCreated, figure::kOrdersConfirmed, figure::kOrdersCancelled,
              figure::kNotificationsSent, figure::kNotificationsFailed}) {
            entry[name] = value_of(c, name);
        }
        add_revenue(c, currencies, entry);
        minutes.push_back(std::move(entry));
    }
    return {{"step_seconds", 60},
            {"since", format_rfc3339(SystemTime(std::chrono::minutes(from_minute)))},
            {"until", format_rfc3339(SystemTime(std::chrono::minutes(to_minute + 1)))},
            {"minutes", std::move(minutes)}};
}

}  // namespace orderpipe::analytics
