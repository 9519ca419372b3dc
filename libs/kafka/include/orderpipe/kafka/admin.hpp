#pragma once
/// Topic administration (used by tests and tools; the services expect their topics to exist).

#include "orderpipe/kafka/error.hpp"
#include "orderpipe/kafka/types.hpp"

#include <chrono>
#include <map>
#include <string>
#include <vector>

namespace orderpipe::kafka {

struct NewTopic {
    std::string name;
    int partitions = 3;
    int replication_factor = 1;
    std::map<std::string, std::string> config;  ///< e.g. {"cleanup.policy", "compact"}
};

/// Creates the topics; ones that already exist are left alone.
/// @throws KafkaException naming the first topic that could not be created.
void create_topics(const ClientConfig& config, const std::vector<NewTopic>& topics,
                   std::chrono::milliseconds timeout = std::chrono::seconds(30));

}  // namespace orderpipe::kafka
