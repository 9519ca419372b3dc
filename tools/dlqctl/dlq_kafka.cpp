#include "dlq_kafka.hpp"

#include "orderpipe/common/time.hpp"
#include "orderpipe/contract/events.hpp"
#include "orderpipe/contract/topics.hpp"
#include "orderpipe/kafka/admin.hpp"
#include "orderpipe/kafka/consumer.hpp"

#include <algorithm>
#include <cstdio>
#include <set>
#include <thread>

namespace orderpipe::dlqctl {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

kafka::ClientConfig client(const Connection& o, const std::string& role) {
    return {o.bootstrap, o.client_id + "-" + role, o.kafka_properties};
}

std::vector<kafka::ConsumedRecord> read_all(const Connection& o, const std::string& topic,
                                            int partitions) {
    kafka::ConsumerOptions co;
    co.group_id = "dlqctl-reader";  // never joins, never commits
    co.partition_eof = true;
    kafka::Consumer consumer(client(o, "reader"), co);
    std::vector<kafka::TopicPartitionOffset> assignment;
    for (int p = 0; p < partitions; ++p)
        assignment.push_back({topic, p, kafka::Consumer::kBeginning});
    consumer.assign(assignment);
    std::set<int> open;
    for (int p = 0; p < partitions; ++p) open.insert(p);
    std::vector<kafka::ConsumedRecord> out;
    const auto until = Clock::now() + std::chrono::seconds(60);
    while (!open.empty()) {
        if (Clock::now() > until) {
            throw std::runtime_error("reading " + topic + " did not reach its end within 60 s");
        }
        auto polled = consumer.poll_batch(5000, std::chrono::milliseconds(200));
        for (auto& r : polled.records) out.push_back(std::move(r));
        for (const auto& end : polled.reached_end) open.erase(end.partition);
    }
    consumer.close();
    return out;
}

Dlq load(const Connection& o, const std::string& short_topic) {
    kafka::AdminClient admin(client(o, "admin"));
    std::map<std::string, int> topics;
    try {
        topics = admin.topics(o.timeout);
    } catch (const std::exception& e) {
        throw std::runtime_error("cannot reach Kafka at " + o.bootstrap + " within " +
                                 std::to_string(o.timeout.count() / 1000) + " s: " + e.what());
    }
    const std::string topic = o.prefix + short_topic;
    if (!contract::is_dlq_topic(short_topic)) {
        throw NotADeadLetterTopic(short_topic + " is not a dead-letter topic (" +
                                  std::string(contract::topic::kNotificationsDlq) +
                                  " or <topic>.dlq)");
    }
    if (!topics.contains(topic)) {
        std::string known;
        for (const auto& t : contract::dlq_topics()) known += " " + o.prefix + t;
        throw std::runtime_error("topic " + topic + " does not exist on " + o.bootstrap +
                                 " (dead-letter topics:" + known + ")");
    }
    const std::string ledger_topic = o.prefix + std::string(contract::topic::kDlqResolutions);
    std::map<std::string, std::string> ledger;
    std::size_t ledger_records = 0;
    if (topics.contains(ledger_topic)) {
        for (const auto& r : read_all(o, ledger_topic, topics[ledger_topic])) {
            ++ledger_records;
            if (!r.key) continue;
            if (r.value) {
                ledger[*r.key] = *r.value;
            } else {
                ledger.erase(*r.key);  // a tombstone
            }
        }
    }
    Dlq dlq{topic, {}, ledger_records};
    for (auto& r : read_all(o, topic, topics[topic])) {
        dlq.entries.push_back(make_entry(std::move(r), ledger));
    }
    return dlq;
}

json entry_json(const Entry& e) {
    json headers = json::object();
    for (const auto& [k, v] : e.record.headers) headers[k] = v ? json(*v) : json(nullptr);
    json j = {{"topic", e.record.topic},
              {"partition", e.record.partition},
              {"offset", e.record.offset},
              {"key", e.record.key ? json(*e.record.key) : json(nullptr)},
              {"original_topic", e.original_topic},
              {"reason", e.reason},
              {"last_error", e.last_error},
              {"retry_count", e.retry_count},
              {"replay_count", e.replay_count},
              {"failed_at", e.failed_at ? json(format_rfc3339(*e.failed_at)) : json(nullptr)},
              {"status", to_string(e.status)},
              {"headers", headers}};
    if (e.original_partition) j["original_partition"] = *e.original_partition;
    if (e.original_offset) j["original_offset"] = *e.original_offset;
    if (!e.resolution.empty()) {
        try {
            j["resolution"] = json::parse(e.resolution);
        } catch (const std::exception&) {
            j["resolution"] = e.resolution;
        }
    }
    return j;
}

kafka::OutgoingRecord ledger_record(const Connection& c, const Entry& e, contract::DlqAction action,
                                    const std::string& user, const std::string& note,
                                    const std::string& replayed_to) {
    contract::DlqResolution res{action, now_rfc3339(), note,
                                user,   replayed_to,   e.record.key.value_or("")};
    kafka::OutgoingRecord out;
    out.topic = c.prefix + std::string(contract::topic::kDlqResolutions);
    out.key = e.key();
    out.value = res.to_json().dump();
    return out;
}

std::vector<std::vector<kafka::OutgoingRecord>> plan_records(const Connection& c, const Plan& plan,
                                                             contract::DlqAction action,
                                                             const std::string& user,
                                                             const std::string& note) {
    std::vector<std::vector<kafka::OutgoingRecord>> units;
    for (const auto& step : plan.steps) {
        std::vector<kafka::OutgoingRecord> unit;
        if (action == contract::DlqAction::kReplayed) {
            unit.push_back(replay_record(*step.entry, step.to));
        }
        unit.push_back(ledger_record(c, *step.entry, action, user, note, step.to));
        units.push_back(std::move(unit));
    }
    return units;
}

LedgerWriter::LedgerWriter(const Connection& c, const std::string& dlq_topic) : topic_(dlq_topic) {
    kafka::ProducerOptions po;
    po.transactional_id = "dlqctl-" + dlq_topic;
    po.operation_timeout = std::chrono::seconds(10);
    po.fault_scope = "dlqctl";
    producer_ = std::make_unique<kafka::TransactionalProducer>(client(c, "writer"), po);
    try {
        producer_->init_transactions();
    } catch (const kafka::KafkaException& e) {
        throw std::runtime_error("cannot take the writer of " + dlq_topic + ": " + e.what());
    }
}

std::size_t write_transactions(LedgerWriter& writer, const std::string& what,
                               const std::vector<std::vector<kafka::OutgoingRecord>>& units,
                               double rate, const std::function<void(const std::string&)>& say) {
    auto& producer = writer.producer();
    const auto started = Clock::now();
    auto last_progress = started;
    std::size_t done = 0;
    std::size_t failed = 0;
    const std::size_t per_txn =
        rate > 0 ? std::max<std::size_t>(1, static_cast<std::size_t>(rate)) : 100;
    for (std::size_t i = 0; i < units.size(); i += per_txn) {
        const std::size_t n = std::min(per_txn, units.size() - i);
        bool ok = false;
        try {
            producer.begin();
            for (std::size_t k = i; k < i + n; ++k) {
                for (const auto& r : units[k]) producer.produce(r);
            }
            ok = producer.commit_or_abort() == kafka::TxnOutcome::kCommitted;
        } catch (const std::exception& e) {
            say(e.what());
            producer.abort();
        }
        if (!ok && producer.fenced()) {
            say("another dlqctl took over the dead letters of " + writer.topic() +
                ": nothing more was written by this one (" + std::to_string(units.size() - i) +
                " left); list them again and rerun if needed");
            break;
        }
        if (!ok && !producer.initialised()) {
            try {
                producer.init_transactions();  // settles an unknown outcome before going on
            } catch (const std::exception& e) {
                say(e.what());
            }
        }
        (ok ? done : failed) += n;
        if (!ok)
            say("a transaction of " + std::to_string(n) +
                " did not commit: nothing of it was written");
        const auto now = Clock::now();
        if (now - started > std::chrono::seconds(1) &&
            now - last_progress >= std::chrono::seconds(1)) {
            last_progress = now;
            const double secs = std::chrono::duration<double>(now - started).count();
            char speed[32];
            std::snprintf(speed, sizeof speed, "%.1f", static_cast<double>(done + failed) / secs);
            say(what + " " + std::to_string(done + failed) + "/" + std::to_string(units.size()) +
                " (" + speed + "/s)");
        }
        if (rate > 0 && i + n < units.size()) {
            // Pace: this many units should have taken (done + failed) / rate seconds (nothing to
            // wait for after the last one).
            const auto due = started + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>((done + failed) / rate));
            std::this_thread::sleep_until(due);
        }
    }
    return done;
}

}  // namespace orderpipe::dlqctl
