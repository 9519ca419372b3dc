#pragma once
// The dead letters on Kafka: reading a DLQ topic with its ledger (dlq.resolutions), and the one
// writer of its resolutions. Shared by dlqctl and the console, so a replay or a discard from
// either goes through the same ledger and the same fencing (docs/CONTRACT.md "dlqctl").

#include "dlq.hpp"

#include "orderpipe/kafka/producer.hpp"
#include "orderpipe/kafka/types.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace orderpipe::dlqctl {

/// Where the topics are and how to reach them.
struct Connection {
    std::string bootstrap;
    std::string prefix;  ///< TOPIC_PREFIX
    std::map<std::string, std::string> kafka_properties;
    std::chrono::milliseconds timeout{5000};
    std::string client_id = "dlqctl";  ///< each client's client.id is `<this>-<role>`
};

kafka::ClientConfig client(const Connection& c, const std::string& role);

/// Every committed record of `topic` (read_committed, from the beginning to its end).
/// @throws std::runtime_error when its end is not reached within 60 s
std::vector<kafka::ConsumedRecord> read_all(const Connection& c, const std::string& topic,
                                            int partitions);

/// `topic` is not a dead-letter topic: the caller's mistake.
struct NotADeadLetterTopic : std::invalid_argument {
    using std::invalid_argument::invalid_argument;
};

struct Dlq {
    std::string topic;  ///< full name
    std::vector<Entry> entries;
    std::size_t ledger_records = 0;  ///< dlq.resolutions records read
};

/// Reads the DLQ `topic` (its name without the prefix) and the ledger.
/// @throws NotADeadLetterTopic; std::runtime_error on an unreachable broker or a missing topic
Dlq load(const Connection& c, const std::string& topic);

/// Everything about one dead letter, as `dlqctl list --json` shows it.
nlohmann::json entry_json(const Entry& e);

/// The ledger record of `e`'s resolution: keyed by its place, naming its order.
kafka::OutgoingRecord ledger_record(const Connection& c, const Entry& e, contract::DlqAction action,
                                    const std::string& user, const std::string& note,
                                    const std::string& replayed_to);

/// What carries out `plan`, a unit per step: its replay (for kReplayed) and its ledger record.
std::vector<std::vector<kafka::OutgoingRecord>> plan_records(const Connection& c, const Plan& plan,
                                                             contract::DlqAction action,
                                                             const std::string& user,
                                                             const std::string& note);

/// The one writer of a DLQ's resolutions. Every writer that replays or discards the dead letters
/// of a topic uses the same transactional.id, `dlqctl-<that topic>`: registering it
/// (init_transactions) fences any other one writing there, aborting what it had not committed
/// and waiting for what it was committing. Read the ledger (load) only after constructing it: it
/// then holds every resolution any other writer committed, and whatever this one then writes is
/// either committed before another one reads, or fenced and never written. Whoever runs it,
/// however many at once, a dead letter is resolved once.
class LedgerWriter {
  public:
    /// @throws std::runtime_error when the writer cannot be registered
    LedgerWriter(const Connection& c, const std::string& dlq_topic);
    kafka::TransactionalProducer& producer() { return *producer_; }
    const std::string& topic() const { return topic_; }

  private:
    std::string topic_;
    std::unique_ptr<kafka::TransactionalProducer> producer_;
};

/// Writes `units` (the records of one dead letter's resolution each) in transactions of up to
/// 100 units, at `rate` units/s at most (0: as fast as it goes), telling `say` of failures and,
/// when it takes longer than a second, of its progress. Stops at once if another writer took
/// over. @returns how many units committed.
std::size_t write_transactions(LedgerWriter& writer, const std::string& what,
                               const std::vector<std::vector<kafka::OutgoingRecord>>& units,
                               double rate, const std::function<void(const std::string&)>& say);

}  // namespace orderpipe::dlqctl
