#include "analytics_processor.hpp"

#include "orderpipe/common/json.hpp"
#include "orderpipe/common/logging.hpp"
#include "orderpipe/common/time.hpp"
#include "orderpipe/contract/events.hpp"
#include "orderpipe/kafka/event_record.hpp"

#include <algorithm>
#include <charconv>

namespace orderpipe::analytics {

using contract::EventType;

namespace {

std::int64_t unix_us(SystemTime t) {
    return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
}

std::int64_t minute_of(std::int64_t us) {
    constexpr std::int64_t kMinuteUs = 60'000'000;
    return us >= 0 ? us / kMinuteUs : (us - kMinuteUs + 1) / kMinuteUs;
}

bool is_number(std::string_view s) {
    std::int64_t n = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
    return ec == std::errc{} && p == s.data() + s.size() && n >= 0;
}

/// The DLQ topic of a dlq.resolutions key `<topic>/<partition>/<offset>`; nullopt when the key
/// is not one.
std::optional<std::string> topic_of_key(const std::string& key) {
    const auto last = key.rfind('/');
    if (last == std::string::npos || last == 0) return std::nullopt;
    const auto middle = key.rfind('/', last - 1);
    if (middle == std::string::npos || middle == 0) return std::nullopt;
    if (!is_number(std::string_view(key).substr(middle + 1, last - middle - 1)) ||
        !is_number(std::string_view(key).substr(last + 1))) {
        return std::nullopt;
    }
    return key.substr(0, middle);
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

}  // namespace

std::vector<std::string> AnalyticsTopics::all() const {
    std::vector<std::string> out{orders_events, inventory_events, notifications_events,
                                 dlq_resolutions};
    out.insert(out.end(), dead_letters.begin(), dead_letters.end());
    out.insert(out.end(), indexed.begin(), indexed.end());
    return out;
}

AnalyticsProcessor::AnalyticsProcessor(AnalyticsState& state, AnalyticsTopics topics,
                                       AnalyticsMetrics& metrics, bool shared)
    : state_(state), topics_(std::move(topics)), metrics_(metrics), shared_(shared) {
    inputs_[topics_.orders_events] = Input::kOrders;
    inputs_[topics_.inventory_events] = Input::kInventory;
    inputs_[topics_.notifications_events] = Input::kNotifications;
    inputs_[topics_.dlq_resolutions] = Input::kResolutions;
    for (const auto& t : topics_.dead_letters) inputs_[t] = Input::kDeadLetters;
    for (const auto& t : topics_.indexed) inputs_[t] = Input::kIndexed;
}

void AnalyticsProcessor::reload() {
    positions_ = state_.positions();
    marks_ = state_.rebuild_marks();
}

bool AnalyticsProcessor::resync(std::chrono::milliseconds /*budget*/,
                                const kafka::PartitionOffsets& /*acknowledged*/) {
    // The state never depends on a Kafka outcome: what it committed stands. Reload in case a
    // batch failed between its commit and the update of the cached positions.
    reload();
    return true;
}

void AnalyticsProcessor::process(std::vector<kafka::Incoming>& batch, kafka::BatchOutput& out) {
    BatchChanges changes;
    std::map<kafka::TopicPartition, std::int64_t> advanced;
    auto work = state_.begin();
    work_ = work.get();
    struct Clear {
        AnalyticsWork*& w;
        ~Clear() { w = nullptr; }
    } clear{work_};
    // Where each partition of the batch was counted up to, held until the commit: with a
    // shared state another instance may have counted it since this one last did (the partition
    // moved there and back).
    std::vector<kafka::TopicPartition> partitions;
    for (const auto& in : batch) {
        kafka::TopicPartition tp{in.record->topic, in.record->partition};
        if (partitions.empty() || !(partitions.back() == tp)) partitions.push_back(tp);
    }
    std::sort(partitions.begin(), partitions.end());
    partitions.erase(std::unique(partitions.begin(), partitions.end()), partitions.end());
    const Offsets held = work->hold_positions(partitions);
    for (const auto& in : batch) {
        const kafka::ConsumedRecord& r = *in.record;
        const kafka::TopicPartition tp{r.topic, r.partition};
        const auto position = held.find(tp);
        const bool count = position == held.end() || r.offset >= position->second;
        const auto input = inputs_.find(r.topic);
        std::optional<std::string> poison =
            input == inputs_.end() ? std::optional<std::string>("not a topic analytics reads")
                                   : take(input->second, r, count, changes);
        if (count) {
            advanced[tp] = r.offset + 1;
            // Poison too: it is a record of the order on that topic (its DLQ copy is another).
            if (input != inputs_.end() && input->second != Input::kResolutions) index(r);
        } else if (!poison) {
            out.note_duplicate();
        }
        if (!poison) continue;
        const auto mark = marks_.find(tp);
        if (mark != marks_.end() && r.offset < mark->second) {
            continue;  // dead-lettered before this file was rebuilt
        }
        log::Scope about(contract::log_fields(r.key, r.headers));
        log::warn("poison record sent to the DLQ", {{"topic", r.topic},
                                                    {"partition", r.partition},
                                                    {"offset", r.offset},
                                                    {"error", *poison}});
        out.dead_letter(r, contract::DlqReason::kPoisonMessage, *poison);
    }
    // Keep 24 hours of per-minute figures (and the minute before, for a window that starts
    // mid-minute).
    const std::int64_t keep_from =
        minute_of(unix_us(std::chrono::system_clock::now())) - 24 * 60 - 1;
    if (keep_from > pruned_before_) {
        work->prune_series(keep_from);
        pruned_before_ = keep_from;
    }
    work->finish(changes, advanced);
    std::optional<std::map<std::string, std::int64_t>> pending;
    if (changes.dead_letters_changed && !shared_) pending = work->dead_letters_pending();
    work->commit();
    for (const auto& [tp, next] : held) positions_[tp] = next;
    for (const auto& [tp, next] : advanced) positions_[tp] = next;
    // Shared: the metrics follow the whole state (AnalyticsMetrics::refresh), not this share.
    if (!shared_) metrics_.apply(changes, pending);
}

namespace {

/// Longer keys are not order ids (those are UUIDs); the index does not keep them.
constexpr std::size_t kMaxOrderIdBytes = 128;

}  // namespace

void AnalyticsProcessor::index(const kafka::ConsumedRecord& r) {
    if (!r.key || r.key->empty() || r.key->size() > kMaxOrderIdBytes) return;
    const auto type = r.header("ce_type");
    if (type && *type == contract::to_string(EventType::kStockAdjusted)) return;
    work_->order_record(*r.key, {.topic = r.topic,
                                 .partition = r.partition,
                                 .offset = r.offset,
                                 .type = type ? std::string(*type) : std::string(),
                                 .time_ms = r.timestamp_ms});
}

std::optional<std::string> AnalyticsProcessor::take(Input input, const kafka::ConsumedRecord& r,
                                                    bool count, BatchChanges& changes) {
    switch (input) {
        case Input::kIndexed:
            return std::nullopt;  // another service's input: it judges it
        case Input::kDeadLetters:
            // Whatever is in a DLQ counts as a dead letter, poison included; never poison itself.
            if (count) {
                work_->dead_letter_seen(
                    changes, contract::dlq_record_key(r.topic, r.partition, r.offset), r.topic);
            }
            return std::nullopt;
        case Input::kResolutions:
            return take_resolution(r, count, changes);
        default:
            return take_event(input, r, count, changes);
    }
}

std::optional<std::string> AnalyticsProcessor::take_event(Input input,
                                                          const kafka::ConsumedRecord& r,
                                                          bool count, BatchChanges& changes) {
    auto decoded = kafka::from_record(r);
    if (auto* err = std::get_if<EnvelopeError>(&decoded)) return err->message;
    const auto& e = std::get<CloudEvent>(decoded);
    const auto when = parse_rfc3339(e.time);
    if (!when) return "ce_time \"" + e.time + "\" is not an RFC 3339 time";
    const std::int64_t at_us = unix_us(*when);
    const std::int64_t minute = minute_of(at_us);
    const auto type = contract::type_of(e);
    const auto unexpected = [&] {
        return std::optional<std::string>("unexpected event type " + e.type + " on " + r.topic);
    };
    if (!type) return unexpected();
    // Each case reads the whole event first (a contract error makes it poison, nothing counted),
    // then counts it.
    try {
        switch (input) {
            case Input::kOrders:
                switch (*type) {
                    case EventType::kOrderCreated: {
                        const auto d = contract::OrderCreated::read(e.data);
                        std::string email = d.customer_email;
                        for (auto& ch : email) {
                            if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
                        }
                        work_->order_customer({.order_id = d.order_id,
                                               .customer_id = d.customer_id,
                                               .email = std::move(email),
                                               .time_ms = r.timestamp_ms});
                        if (!count) return std::nullopt;
                        changes.count(figure::kOrdersCreated, 1, minute);
                        work_->order_created(changes, d.order_id, at_us);
                        return std::nullopt;
                    }
                    case EventType::kOrderConfirmed: {
                        const auto d = contract::OrderConfirmed::read(e.data);
                        if (!count) return std::nullopt;
                        changes.count(figure::kOrdersConfirmed, 1, minute);
                        changes.count(figure::kRevenueConfirmedPrefix + d.currency,
                                      d.total.minor_units(), minute);
                        work_->order_decided(changes, d.order_id, at_us);
                        return std::nullopt;
                    }
                    case EventType::kOrderCancelled: {
                        const auto d = contract::OrderCancelled::read(e.data);
                        if (!count) return std::nullopt;
                        changes.count(figure::kOrdersCancelled, 1, minute);
                        changes.count(figure::kCancellationReasonPrefix +
                                          std::string(contract::to_string(d.reason)),
                                      1, minute);
                        changes.count(figure::kRevenueLostPrefix + d.currency,
                                      d.total.minor_units(), minute);
                        // A customer's cancel is not the saga's decision (it may come after it).
                        if (contract::is_decision(d.reason)) {
                            work_->order_decided(changes, d.order_id, at_us);
                        }
                        return std::nullopt;
                    }
                    default:
                        return unexpected();
                }
            case Input::kInventory:
                switch (*type) {
                    case EventType::kInventoryReserved:
                    case EventType::kInventoryRejected:
                    case EventType::kInventoryReleased:
                        (void)contract::InventoryChanged::read(e.data);
                        break;
                    case EventType::kStockAdjusted:
                        (void)contract::StockAdjusted::read(e.data);
                        break;
                    default:
                        return unexpected();
                }
                if (count) {
                    // "INVENTORY_RESERVED" → "inventory.reserved", "STOCK_ADJUSTED" →
                    // "inventory.stock_adjusted"
                    std::string_view t = e.type;
                    if (t.rfind("INVENTORY_", 0) == 0) t.remove_prefix(10);
                    changes.count(figure::kInventoryPrefix + lower(t), 1, minute);
                }
                return std::nullopt;
            case Input::kNotifications:
                switch (*type) {
                    case EventType::kNotificationSent:
                        (void)contract::NotificationSent::read(e.data);
                        if (count) changes.count(figure::kNotificationsSent, 1, minute);
                        return std::nullopt;
                    case EventType::kNotificationFailed:
                        (void)contract::NotificationFailed::read(e.data);
                        if (count) changes.count(figure::kNotificationsFailed, 1, minute);
                        return std::nullopt;
                    default:
                        return unexpected();
                }
            default:
                return unexpected();
        }
    } catch (const contract::ContractError& err) {
        return std::string(err.what());
    }
}

std::optional<std::string> AnalyticsProcessor::take_resolution(const kafka::ConsumedRecord& r,
                                                               bool count, BatchChanges& changes) {
    if (!r.key) return std::string("a dlq.resolutions record without a key");
    const auto topic = topic_of_key(*r.key);
    if (!topic) {
        return std::string("the key is not <topic>/<partition>/<offset>");
    }
    bool resolved = false;  // a tombstone: the resolution was withdrawn
    if (r.value) {
        auto parsed = parse_untrusted_json(*r.value, 64);
        if (auto* err = std::get_if<JsonParseError>(&parsed)) {
            return "value is not JSON: " + err->message;
        }
        const auto& data = std::get<nlohmann::json>(parsed);
        if (!data.is_object()) return std::string("value is not a JSON object");
        contract::DlqResolution resolution;
        try {
            resolution = contract::DlqResolution::read(data);
        } catch (const contract::ContractError& err) {
            return std::string(err.what());
        }
        resolved = true;  // REPLAYED or DISCARDED: both take it out of the pending figures
        // A resolution written before it named its order is not in the order's index.
        if (count && !resolution.order_id.empty() &&
            resolution.order_id.size() <= kMaxOrderIdBytes) {
            work_->order_record(resolution.order_id,
                                {.topic = r.topic,
                                 .partition = r.partition,
                                 .offset = r.offset,
                                 .type = std::string(contract::to_string(resolution.action)),
                                 .time_ms = r.timestamp_ms});
        }
    }
    if (count) work_->resolution(changes, *r.key, *topic, resolved);
    return std::nullopt;
}

}  // namespace orderpipe::analytics
