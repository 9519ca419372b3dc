#include "ground_truth.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <set>
#include <vector>

namespace orderpipe::check {

using nlohmann::json;

namespace {

const std::vector<std::string>& dead_letter_topics() {
    static const std::vector<std::string> names{
        "notifications.dlq",       "orders.events.dlq",    "inventory.requests.dlq",
        "inventory.responses.dlq", "inventory.events.dlq", "notifications.events.dlq",
        "dlq.resolutions.dlq",     "orders.commands.dlq"};
    return names;
}

/// "1059.97" → 105997; nullopt unless a non-negative decimal with at most two fraction digits.
std::optional<long long> cents(const json& v) {
    if (!v.is_string()) return std::nullopt;
    const std::string s = v.get<std::string>();
    const auto dot = s.find('.');
    const std::string whole = s.substr(0, dot);
    const std::string frac = dot == std::string::npos ? "" : s.substr(dot + 1);
    auto digits = [](const std::string& d) {
        return std::all_of(d.begin(), d.end(), [](char c) { return c >= '0' && c <= '9'; });
    };
    if (whole.empty() || frac.size() > 2 || !digits(whole) || !digits(frac) ||
        (dot != std::string::npos && frac.empty())) {
        return std::nullopt;
    }
    return std::stoll(whole) * 100 +
           (frac.empty() ? 0 : std::stoll(frac + std::string(2 - frac.size(), '0')));
}

std::string money(long long c) {
    std::string frac = std::to_string(c % 100);
    if (frac.size() < 2) frac = "0" + frac;
    return std::to_string(c / 100) + "." + frac;
}

bool is_text(const json& data, const char* field) {
    return data.contains(field) && data[field].is_string() &&
           !data[field].get<std::string>().empty();
}

/// A record as an event: type, ce_time (ms) and data; nullopt when it is not a well-formed
/// CloudEvent (the service dead-letters those).
struct Event {
    std::string type;
    long long time_ms;
    json data;
};
std::optional<Event> event_of(const Record& r) {
    if (r.header("ce_specversion") != "1.0") return std::nullopt;
    for (const char* h :
         {"ce_id", "ce_type", "ce_source", "ce_time", "ce_subject", "ce_correlationid"}) {
        if (r.header(h).value_or("").empty()) return std::nullopt;
    }
    const auto time = rfc3339_ms(*r.header("ce_time"));
    if (!time || !r.value) return std::nullopt;
    json data = json::parse(*r.value, nullptr, /*allow_exceptions=*/false);
    if (!data.is_object()) return std::nullopt;
    return Event{*r.header("ce_type"), *time, std::move(data)};
}

json percentiles(std::vector<long long> latencies_ms) {
    std::sort(latencies_ms.begin(), latencies_ms.end());
    const auto n = static_cast<long long>(latencies_ms.size());
    auto at = [&](int p) -> json {
        if (n == 0) return nullptr;
        const long long rank = std::max(1LL, (n * p + 99) / 100);  // nearest rank
        return static_cast<double>(latencies_ms[static_cast<std::size_t>(rank - 1)]);
    };
    return {{"p50", at(50)}, {"p90", at(90)}, {"p99", at(99)}, {"count", n}};
}

}  // namespace

json recompute_figures(TopicSet& topics) {
    auto topic = [&](const std::string& name) { return topics.full(name); };
    auto read_committed = [&](const std::string& full) -> const std::vector<Record>& {
        return topics.committed_full(full);
    };
    long long created = 0, confirmed = 0, cancelled = 0, sent = 0, failed = 0;
    std::map<std::string, long long> reasons{{"INSUFFICIENT_STOCK", 0},
                                             {"UNKNOWN_SKU", 0},
                                             {"PRICE_MISMATCH", 0},
                                             {"CUSTOMER_REQUEST", 0},
                                             {"TIMEOUT", 0}};
    std::map<std::string, std::pair<long long, long long>> revenue;  // currency → confirmed, lost
    std::map<std::string, long long> created_at, decided_at;         // order → ce_time (ms)

    for (const auto& r : read_committed(topic("orders.events"))) {
        const auto e = event_of(r);
        if (!e || !is_text(e->data, "order_id") || !is_text(e->data, "currency")) continue;
        const auto total = cents(e->data.value("total", json()));
        if (!total) continue;
        const std::string order = e->data["order_id"];
        const std::string currency = e->data["currency"];
        if (e->type == "ORDER_CREATED") {
            if (!is_text(e->data, "customer_id") || !e->data.contains("items")) continue;
            ++created;
            created_at.try_emplace(order, e->time_ms);
        } else if (e->type == "ORDER_CONFIRMED") {
            ++confirmed;
            revenue[currency].first += *total;
            decided_at.try_emplace(order, e->time_ms);
        } else if (e->type == "ORDER_CANCELLED") {
            const std::string reason = e->data.value("reason", "");
            if (!reasons.contains(reason)) continue;
            ++cancelled;
            ++reasons[reason];
            revenue[currency].second += *total;
            if (reason != "CUSTOMER_REQUEST") decided_at.try_emplace(order, e->time_ms);
        }
    }
    for (const auto& r : read_committed(topic("notifications.events"))) {
        const auto e = event_of(r);
        if (!e || !is_text(e->data, "notification_id") || !is_text(e->data, "order_id")) continue;
        if (e->type == "NOTIFICATION_SENT") ++sent;
        if (e->type == "NOTIFICATION_FAILED") ++failed;
    }
    // A dead letter is pending until the latest dlq.resolutions record of its key says
    // otherwise (a tombstone withdraws a resolution).
    std::set<std::string> resolved;
    for (const auto& r : read_committed(topic("dlq.resolutions"))) {
        if (!r.key) continue;
        if (!r.value) {
            resolved.erase(*r.key);
            continue;
        }
        const json v = json::parse(*r.value, nullptr, false);
        if (v.is_object() &&
            (v.value("action", "") == "REPLAYED" || v.value("action", "") == "DISCARDED")) {
            resolved.insert(*r.key);
        }
    }
    long long pending = 0;
    json pending_by_topic = json::object();
    for (const auto& name : dead_letter_topics()) {
        const std::string full = topic(name);
        long long n = 0;
        for (const auto& r : read_committed(full)) {
            const std::string key =
                full + "/" + std::to_string(r.partition) + "/" + std::to_string(r.offset);
            n += resolved.contains(key) ? 0 : 1;
        }
        pending += n;
        pending_by_topic[full] = n;
    }
    std::vector<long long> latencies;
    for (const auto& [order, at] : decided_at) {
        const auto c = created_at.find(order);
        if (c != created_at.end()) latencies.push_back(std::max(0LL, at - c->second));
    }

    json by_currency = json::object();
    for (const auto& [currency, r] : revenue) {
        by_currency[currency] = {{"confirmed", money(r.first)}, {"lost", money(r.second)}};
    }
    return {{"orders.created", created},
            {"orders.confirmed", confirmed},
            {"orders.cancelled", cancelled},
            {"cancellation_reasons", reasons},
            {"revenue.by_currency", by_currency},
            {"notifications.sent", sent},
            {"notifications.failed", failed},
            {"dlq.pending", pending},
            {"dlq.pending_by_topic", pending_by_topic},
            {"saga_latency_ms", percentiles(latencies)}};
}

std::string figures_diff(const json& expected, const json& actual) {
    std::string out;
    for (const auto& [key, value] : expected.items()) {
        if (!actual.contains(key)) {
            out += key + ": missing (expected " + value.dump() + ")\n";
        } else if (actual[key] != value) {
            out += key + ": " + actual[key].dump() + " (expected " + value.dump() + ")\n";
        }
    }
    return out;
}

}  // namespace orderpipe::check
