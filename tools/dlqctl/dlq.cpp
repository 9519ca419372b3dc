#include "dlq.hpp"

#include "orderpipe/common/time.hpp"
#include "orderpipe/contract/events.hpp"

#include <charconv>
#include <stdexcept>

namespace orderpipe::dlqctl {

namespace dlqh = contract::dlq_header;

const char* to_string(Status s) {
    switch (s) {
        case Status::kPending:
            return "pending";
        case Status::kReplayed:
            return "replayed";
        case Status::kDiscarded:
            return "discarded";
    }
    return "?";
}

std::optional<Status> parse_status(const std::string& s) {
    if (s == "pending") return Status::kPending;
    if (s == "replayed") return Status::kReplayed;
    if (s == "discarded") return Status::kDiscarded;
    return std::nullopt;
}

namespace {

template <typename T>
std::optional<T> number(const std::optional<std::string>& text) {
    if (!text) return std::nullopt;
    T v{};
    auto [p, ec] = std::from_chars(text->data(), text->data() + text->size(), v);
    if (ec != std::errc{} || p != text->data() + text->size()) return std::nullopt;
    return v;
}

}  // namespace

std::string Entry::key() const {
    return contract::dlq_record_key(record.topic, record.partition, record.offset);
}

Entry make_entry(kafka::ConsumedRecord record, const std::map<std::string, std::string>& ledger) {
    Entry e;
    e.original_topic = record.header(dlqh::kOriginalTopic).value_or("");
    e.original_partition = number<std::int32_t>(record.header(dlqh::kOriginalPartition));
    e.original_offset = number<std::int64_t>(record.header(dlqh::kOriginalOffset));
    e.reason = record.header(dlqh::kReason).value_or("");
    e.last_error = record.header(dlqh::kLastError).value_or("");
    e.retry_count = number<int>(record.header(dlqh::kRetryCount)).value_or(0);
    e.replay_count = number<int>(record.header(dlqh::kReplayCount)).value_or(0);
    if (auto t = record.header(dlqh::kFailureTimestamp)) e.failed_at = parse_rfc3339(*t);
    if (!e.failed_at && record.timestamp_ms > 0) {
        e.failed_at = SystemTime(std::chrono::milliseconds(record.timestamp_ms));
    }
    e.record = std::move(record);
    if (auto it = ledger.find(e.key()); it != ledger.end()) {
        e.resolution = it->second;
        try {
            auto r = contract::DlqResolution::read(nlohmann::json::parse(it->second));
            e.status =
                r.action == contract::DlqAction::kReplayed ? Status::kReplayed : Status::kDiscarded;
        } catch (const std::exception&) {
            // A ledger entry that is not ours to read: the record stays pending.
        }
    }
    return e;
}

bool Filters::accepts(const Entry& e) const {
    if (since && (!e.failed_at || *e.failed_at < *since)) return false;
    if (until && (!e.failed_at || *e.failed_at > *until)) return false;
    if (!order_id.empty() && e.record.key.value_or("") != order_id) return false;
    if (!reason.empty() && e.reason != reason) return false;
    if (!error_contains.empty() && e.last_error.find(error_contains) == std::string::npos) {
        return false;
    }
    if (partition && e.record.partition != *partition) return false;
    if (offset && e.record.offset != *offset) return false;
    if (status && e.status != *status) return false;
    return true;
}

Filters parse_filters(const FilterText& t, SystemTime now, const std::string& prefix) {
    const auto bad = [&](const char* name, const std::string& value, const char* expected) {
        return std::invalid_argument(prefix + name + " \"" + value + "\": expected " + expected);
    };
    Filters f;
    if (!t.since.empty()) {
        f.since = parse_when(t.since, now);
        if (!f.since) throw bad("since", t.since, "RFC 3339 or 30m/1h/2d");
    }
    if (!t.until.empty()) {
        f.until = parse_when(t.until, now);
        if (!f.until) throw bad("until", t.until, "RFC 3339 or 30m/1h/2d");
    }
    if (!t.status.empty()) {
        f.status = parse_status(t.status);
        if (!f.status) throw bad("status", t.status, "pending, replayed or discarded");
    }
    if (!t.reason.empty() && !contract::parse_dlq_reason(t.reason)) {
        throw bad("reason", t.reason, "MAX_RETRIES, PERMANENT_ERROR or POISON_MESSAGE");
    }
    f.order_id = t.order_id;
    f.reason = t.reason;
    f.error_contains = t.error_contains;
    f.partition = t.partition;
    f.offset = t.offset;
    return f;
}

std::vector<const Entry*> select(const std::vector<Entry>& entries, const Filters& f) {
    std::vector<const Entry*> out;
    for (const auto& e : entries) {
        if (f.accepts(e)) out.push_back(&e);
    }
    return out;
}

Plan plan_replay(const std::vector<const Entry*>& chosen, const ReplayRules& rules) {
    Plan plan;
    for (const auto* e : chosen) {
        if (e->status != Status::kPending) {  // resolved once, whatever `force` says
            ++plan.skipped_resolved;
        } else if (e->replay_count >= rules.max_replays && !rules.force) {
            ++plan.skipped_replay_limit;
        } else if (e->original_topic.empty() && rules.to.empty()) {
            ++plan.skipped_no_original_topic;
        } else {
            plan.steps.push_back({e, rules.to.empty() ? e->original_topic : rules.to});
        }
    }
    return plan;
}

Plan plan_discard(const std::vector<const Entry*>& chosen) {
    Plan plan;
    for (const auto* e : chosen) {
        if (e->status != Status::kPending) {
            ++plan.skipped_resolved;
        } else {
            plan.steps.push_back({e, ""});
        }
    }
    return plan;
}

kafka::OutgoingRecord replay_record(const Entry& e, const std::string& to_topic) {
    kafka::OutgoingRecord out;
    out.topic = to_topic;
    out.key = e.record.key;
    out.value = e.record.value;
    for (const auto& [name, value] : e.record.headers) {
        if (name.rfind(dlqh::kPrefix, 0) == 0) continue;  // this failure's story stays behind
        out.headers.emplace_back(name, value);
    }
    out.headers.emplace_back(std::string(dlqh::kReplayCount), std::to_string(e.replay_count + 1));
    out.headers.emplace_back(std::string(dlqh::kReplayOf), e.key());
    return out;
}

std::string short_age(std::chrono::seconds age) {
    const auto s = age.count();
    if (s < 60) return std::to_string(std::max<std::int64_t>(s, 0)) + "s";
    if (s < 3600) return std::to_string(s / 60) + "m";
    if (s < 86400) return std::to_string(s / 3600) + "h";
    return std::to_string(s / 86400) + "d";
}

}  // namespace orderpipe::dlqctl
