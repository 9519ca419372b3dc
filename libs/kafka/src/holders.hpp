#pragma once
// RAII owners for librdkafka handles (private to libs/kafka).

#include "orderpipe/kafka/error.hpp"
#include "orderpipe/kafka/types.hpp"

#include <librdkafka/rdkafka.h>

#include <memory>
#include <string>

namespace orderpipe::kafka::impl {

struct ConfDeleter {
    void operator()(rd_kafka_conf_t* c) const { rd_kafka_conf_destroy(c); }
};
struct HandleDeleter {
    void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
};
struct ErrorDeleter {
    void operator()(rd_kafka_error_t* e) const { rd_kafka_error_destroy(e); }
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

using ConfHolder = std::unique_ptr<rd_kafka_conf_t, ConfDeleter>;
using HandleHolder = std::unique_ptr<rd_kafka_t, HandleDeleter>;
using ErrorHolder = std::unique_ptr<rd_kafka_error_t, ErrorDeleter>;
using PartitionListHolder = std::unique_ptr<rd_kafka_topic_partition_list_t, PartitionListDeleter>;
using GroupMetadataHolder =
    std::unique_ptr<rd_kafka_consumer_group_metadata_t, GroupMetadataDeleter>;
using MessageHolder = std::unique_ptr<rd_kafka_message_t, MessageDeleter>;

/// Classifies an rd_kafka_error_t (transactional API); takes ownership.
KafkaError classify(ErrorHolder error);
/// Classifies a plain response code (no transactional flags available).
KafkaError classify(rd_kafka_resp_err_t code, std::string context = {});

/// Builds a conf: our defaults, then config.properties. Each refused property throws
/// ConfigurationError naming it.
ConfHolder make_conf(const ClientConfig& config,
                     const std::vector<std::pair<std::string, std::string>>& defaults);
void set_conf(rd_kafka_conf_t* conf, const std::string& key, const std::string& value);

/// rd_kafka_new; the handle takes ownership of the conf only on success.
HandleHolder make_handle(rd_kafka_type_t type, ConfHolder conf);

PartitionListHolder to_list(const std::vector<TopicPartitionOffset>& offsets);
std::vector<TopicPartition> from_list(const rd_kafka_topic_partition_list_t* list);

/// Logs librdkafka's own log lines and error callbacks through spdlog (JSON lines).
void install_log_callbacks(rd_kafka_conf_t* conf);

}  // namespace orderpipe::kafka::impl
