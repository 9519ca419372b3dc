#pragma once
// RAII owners for librdkafka handles, and building a client's configuration (private to
// libs/kafka).

#include "classify.hpp"
#include "orderpipe/kafka/types.hpp"

#include <librdkafka/rdkafka.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace orderpipe::kafka::impl {

struct ConfDeleter {
    void operator()(rd_kafka_conf_t* c) const { rd_kafka_conf_destroy(c); }
};
struct HandleDeleter {
    void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
};
struct PartitionListDeleter {
    void operator()(rd_kafka_topic_partition_list_t* l) const {
        rd_kafka_topic_partition_list_destroy(l);
    }
};
struct GroupMetadataDeleter {
    void operator()(rd_kafka_consumer_group_metadata_t* m) const {
        rd_kafka_consumer_group_metadata_destroy(m);
    }
};
struct MessageDeleter {
    void operator()(rd_kafka_message_t* m) const { rd_kafka_message_destroy(m); }
};
struct EventDeleter {
    void operator()(rd_kafka_event_t* e) const { rd_kafka_event_destroy(e); }
};
struct QueueDeleter {
    void operator()(rd_kafka_queue_t* q) const { rd_kafka_queue_destroy(q); }
};
struct MetadataDeleter {
    void operator()(const rd_kafka_metadata_t* m) const { rd_kafka_metadata_destroy(m); }
};

using ConfHolder = std::unique_ptr<rd_kafka_conf_t, ConfDeleter>;
using HandleHolder = std::unique_ptr<rd_kafka_t, HandleDeleter>;
using PartitionListHolder = std::unique_ptr<rd_kafka_topic_partition_list_t, PartitionListDeleter>;
using GroupMetadataHolder =
    std::unique_ptr<rd_kafka_consumer_group_metadata_t, GroupMetadataDeleter>;
using MessageHolder = std::unique_ptr<rd_kafka_message_t, MessageDeleter>;
using EventHolder = std::unique_ptr<rd_kafka_event_t, EventDeleter>;
using QueueHolder = std::unique_ptr<rd_kafka_queue_t, QueueDeleter>;
using MetadataHolder = std::unique_ptr<const rd_kafka_metadata_t, MetadataDeleter>;

/// Builds a conf: our defaults, then config.properties (the KAFKA_* pass-through), so a user's
/// setting always wins. Each refused property throws ConfigurationError naming it.
ConfHolder make_conf(const ClientConfig& config,
                     const std::vector<std::pair<std::string, std::string>>& defaults);
void set_conf(rd_kafka_conf_t* conf, const std::string& key, const std::string& value);

/// rd_kafka_new; the handle takes ownership of the conf only on success.
HandleHolder make_handle(rd_kafka_type_t type, ConfHolder conf);

PartitionListHolder to_list(const std::vector<TopicPartitionOffset>& offsets);
std::vector<TopicPartition> from_list(const rd_kafka_topic_partition_list_t* list);

/// Routes librdkafka's own log lines and error callbacks into the JSON logs.
void install_log_callbacks(rd_kafka_conf_t* conf);

}  // namespace orderpipe::kafka::impl
