#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace orderpipe::kafka {

/// Connection settings shared by producers and consumers.
struct ClientConfig {
    std::string bootstrap_servers = "localhost:9092";
    std::string client_id = "orderpipe";
    /// Any other librdkafka property; applied last, so it overrides our defaults.
    std::map<std::string, std::string> properties;

    /// From a service's settings (KAFKA_BOOTSTRAP_SERVERS and the KAFKA_* pass-through).
    template <typename Common>
    static ClientConfig from(const Common& common, std::string client_id) {
        return {common.bootstrap_servers, std::move(client_id), common.kafka_overrides};
    }
};

using RecordHeaders = std::vector<std::pair<std::string, std::optional<std::string>>>;

/// A record as consumed. Keys, values and header values may be null in Kafka.
struct ConsumedRecord {
    std::string topic;
    std::int32_t partition = 0;
    std::int64_t offset = 0;
    std::optional<std::string> key;
    std::optional<std::string> value;
    RecordHeaders headers;
    std::int64_t timestamp_ms = -1;

    std::optional<std::string> header(std::string_view name) const {
        for (auto it = headers.rbegin(); it != headers.rend(); ++it) {
            if (it->first == name) return it->second;
        }
        return std::nullopt;
    }
};

/// A record to produce.
struct OutgoingRecord {
    std::string topic;
    std::optional<std::string> key;
    std::optional<std::string> value;
    RecordHeaders headers;
    std::int32_t partition = -1;  ///< -1: the partitioner picks by key
};

struct TopicPartition {
    std::string topic;
    std::int32_t partition = 0;
    friend bool operator==(const TopicPartition&, const TopicPartition&) = default;
    friend auto operator<=>(const TopicPartition&, const TopicPartition&) = default;
};

/// `offset` is the NEXT offset to read (last processed + 1), as Kafka commits it.
struct TopicPartitionOffset {
    std::string topic;
    std::int32_t partition = 0;
    std::int64_t offset = 0;
};

/// An offset per partition (what its meaning is, each use says).
using PartitionOffsets = std::map<TopicPartition, std::int64_t>;

/// The version of the librdkafka this process runs with (rd_kafka_version_str(): the library
/// loaded, which the build chose — docs/BENCHMARKS.md "librdkafka").
std::string librdkafka_version();

}  // namespace orderpipe::kafka
