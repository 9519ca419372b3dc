#include "projection.hpp"

#include "orderpipe/common/json.hpp"

#include "orderpipe/common/logging.hpp"
#include "orderpipe/common/time.hpp"
#include "orderpipe/kafka/consumer.hpp"
#include "orderpipe/kafka/event_record.hpp"

#include <set>

namespace orderpipe::order {

struct OrderProjection::ConsumerHolder {
    ConsumerHolder(const kafka::ClientConfig& c, const kafka::ConsumerOptions& o)
        : consumer(c, o) {}
    kafka::Consumer consumer;
};

OrderProjection::OrderProjection(kafka::ClientConfig config, std::string topic, std::string db_path,
                                 OnChange on_change)
    : config_(std::move(config)),
      topic_(std::move(topic)),
      store_(db_path),
      on_change_(std::move(on_change)) {
    kafka::ConsumerOptions co;
    co.group_id = config_.client_id + "-projection";  // never commits: offsets are in SQLite
    co.partition_eof = true;
    consumer_ = std::make_unique<ConsumerHolder>(config_, co);
}

OrderProjection::~OrderProjection() { stop(); }

void OrderProjection::assign() {
    std::map<int, std::int64_t> stored;
    for (const auto& [p, next] : store_.offsets(topic_)) stored[p] = next;
    std::vector<kafka::TopicPartitionOffset> assignment;
    for (int p = 0; p < partitions_; ++p) {
        auto it = stored.find(p);
        assignment.push_back(
            {topic_, p, it == stored.end() ? kafka::Consumer::kBeginning : it->second});
    }
    consumer_->consumer.assign(assignment);
}

void OrderProjection::catch_up(std::chrono::milliseconds deadline) {
    const auto until = std::chrono::steady_clock::now() + deadline;
    while (partitions_ == 0) {
        try {
            partitions_ = consumer_->consumer.partition_count(topic_, std::chrono::seconds(2));
        } catch (const kafka::KafkaException& e) {
            log::warn("waiting for topic metadata", {{"topic", topic_}, {"error", e.what()}});
        }
        if (partitions_ == 0 && std::chrono::steady_clock::now() > until) {
            throw std::runtime_error("cannot read " + topic_ +
                                     ": topic missing or Kafka unreachable");
        }
    }
    assign();
    std::set<int> open;
    for (int p = 0; p < partitions_; ++p) open.insert(p);
    while (!open.empty()) {
        if (std::chrono::steady_clock::now() > until) {
            throw std::runtime_error("catching up on " + topic_ + " did not finish in time");
        }
        for (int p : step(std::chrono::milliseconds(200))) open.erase(p);
    }
    log::info("read model caught up", {{"topic", topic_}});
}

std::vector<int> OrderProjection::step(std::chrono::milliseconds wait) {
    auto polled = consumer_->consumer.poll_batch(2000, wait);
    std::vector<int> ended;
    for (const auto& tp : polled.reached_end) ended.push_back(tp.partition);
    if (polled.records.empty()) return ended;
    std::vector<std::pair<std::string, std::string>> changed;
    {
        sqlite::Transaction tx(store_.db());
        std::map<int, std::int64_t> next;
        for (const auto& rec : polled.records) {
            next[rec.partition] = rec.offset + 1;
            auto decoded = kafka::from_record(rec);
            auto* e = std::get_if<CloudEvent>(&decoded);
            if (e == nullptr) {
                // The read model only skips it; the transactional consumers of this topic
                // (analytics) dead-letter it to orders.events.dlq.
                log::warn("skipping a poison record on orders.events",
                          {{"partition", rec.partition}, {"offset", rec.offset}});
                continue;
            }
            const std::string order_id = string_field(e->data, "order_id", e->subject);
            if (e->type == "ORDER_CREATED") {
                // Only a well-formed order may enter the read model: the saga and the timeout
                // scan build events from it.
                const bool well_formed = !order_id.empty() &&
                                         parse_rfc3339(string_field(e->data, "created_at")) &&
                                         e->data.contains("items") && e->data["items"].is_array() &&
                                         !string_field(e->data, "total").empty() &&
                                         !string_field(e->data, "currency").empty();
                if (!well_formed) {
                    log::warn("skipping a malformed ORDER_CREATED",
                              {{"partition", rec.partition}, {"offset", rec.offset}});
                    continue;
                }
                store_.apply_created(e->id, e->correlation_id, e->traceparent, e->data);
                changed.emplace_back(order_id, "PENDING");
            } else if (e->type == "ORDER_CONFIRMED") {
                store_.apply_change({order_id, e->id, "CONFIRMED", e->time, "", "", true, false});
                changed.emplace_back(order_id, "CONFIRMED");
            } else if (e->type == "ORDER_CANCELLED") {
                const std::string reason = string_field(e->data, "reason");
                store_.apply_change({order_id, e->id, "CANCELLED", e->time, reason,
                                     string_field(e->data, "detail"), reason != "CUSTOMER_REQUEST",
                                     reason == "CUSTOMER_REQUEST" || reason == "TIMEOUT"});
                changed.emplace_back(order_id, "CANCELLED");
            }
        }
        for (const auto& [p, n] : next) store_.set_offset(topic_, p, n);
        tx.commit();
    }
    for (const auto& [id, status] : changed) on_change_(id, status);
    return ended;
}

void OrderProjection::start() {
    thread_ = std::thread([this] {
        while (!stopping_) {
            try {
                step(std::chrono::milliseconds(100));
            } catch (const std::exception& e) {
                log::error("projection step failed; retrying", {{"error", e.what()}});
                std::this_thread::sleep_for(std::chrono::milliseconds(500));  // backoff
                try {
                    assign();                      // rewind to what SQLite holds
                } catch (const std::exception&) {  // NOLINT(bugprone-empty-catch): retried
                }
            }
        }
    });
}

void OrderProjection::stop() {
    if (stopping_.exchange(true)) return;
    consumer_->consumer.wake();
    if (thread_.joinable()) thread_.join();
    consumer_->consumer.close();
}

}  // namespace orderpipe::order
