#pragma once
// dlqctl's model of the dead letters: what is in a DLQ topic, what dlq.resolutions says was
// done with each record, and the filters of the command line. Pure (no Kafka): unit-tested.

#include "orderpipe/contract/names.hpp"
#include "orderpipe/kafka/types.hpp"

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace orderpipe::dlqctl {

using SystemTime = std::chrono::system_clock::time_point;

enum class Status { kPending, kReplayed, kDiscarded };
const char* to_string(Status s);
std::optional<Status> parse_status(const std::string& s);

/// One record of a DLQ topic, with its resolution.
struct Entry {
    kafka::ConsumedRecord record;
    std::string original_topic;
    std::optional<std::int32_t> original_partition;
    std::optional<std::int64_t> original_offset;
    std::string reason;      ///< dlq.reason
    std::string last_error;  ///< dlq.last_error
    int retry_count = 0;     ///< dlq.retry_count
    int replay_count = 0;    ///< dlq.replay_count carried by the record (times it was replayed)
    std::optional<SystemTime> failed_at;  ///< dlq.failure_timestamp (else the record's time)
    Status status = Status::kPending;
    std::string resolution;  ///< the ledger's JSON, when resolved

    std::string key() const;  ///< `<topic>/<partition>/<offset>`: its dlq.resolutions key
};

/// An entry from a DLQ record. `ledger`: dlq.resolutions, key → latest value (JSON text).
Entry make_entry(kafka::ConsumedRecord record, const std::map<std::string, std::string>& ledger);

struct Filters {
    std::optional<SystemTime> since;
    std::optional<SystemTime> until;
    std::string order_id;
    std::string reason;
    std::string error_contains;
    std::optional<std::int32_t> partition;
    std::optional<std::int64_t> offset;
    std::optional<Status> status;

    bool accepts(const Entry& e) const;
};

/// The filters as typed (dlqctl's flags, the console's query parameters), before parsing.
struct FilterText {
    std::string since, until, order_id, reason, error_contains, status;
    std::optional<std::int32_t> partition;
    std::optional<std::int64_t> offset;
};

/// Parses `text` (times relative to `now`).
/// @throws std::invalid_argument naming the filter as `<prefix><name>` ("--since", "since") and
/// what it expects
Filters parse_filters(const FilterText& text, SystemTime now, const std::string& prefix);

/// The entries `f` accepts, in the DLQ's order.
std::vector<const Entry*> select(const std::vector<Entry>& entries, const Filters& f);

/// What a replay or a discard of some dead letters will do, decided before anything is written,
/// by dlqctl and the console alike: a dead letter is resolved once (one whose replay failed again
/// is a new dead letter); a replay leaves out the ones replayed `max_replays` times already
/// (DLQ_MAX_REPLAYS, the loop guard) unless forced, and the ones with no dlq.original_topic when
/// no other topic is given.
struct Plan {
    struct Step {
        const Entry* entry = nullptr;
        std::string to;  ///< the full topic a replay writes to (empty for a discard)
    };
    std::vector<Step> steps;
    std::size_t skipped_resolved = 0;
    std::size_t skipped_replay_limit = 0;
    std::size_t skipped_no_original_topic = 0;
};

struct ReplayRules {
    int max_replays = 3;
    bool force = false;
    std::string to;  ///< a full topic name replacing each dlq.original_topic, or empty
};

Plan plan_replay(const std::vector<const Entry*>& chosen, const ReplayRules& rules);
Plan plan_discard(const std::vector<const Entry*>& chosen);

/// The record to write when replaying `e`: its original key and value, its headers without the
/// dlq.* ones, plus dlq.replay_count (one more) and dlq.replay_of (its ledger key).
kafka::OutgoingRecord replay_record(const Entry& e, const std::string& to_topic);

/// "3m", "2h", "5d": a short age for tables.
std::string short_age(std::chrono::seconds age);

}  // namespace orderpipe::dlqctl
