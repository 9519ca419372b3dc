#pragma once
/// Cluster administration: topic metadata (readiness), consumer group descriptions (the
/// single-instance check) and topic creation (the topic tool, tests).
///
/// Thread-safety: one AdminClient may be used from several threads (librdkafka's admin and
/// metadata calls are thread-safe), but each call blocks up to its timeout.

#include "orderpipe/kafka/error.hpp"
#include "orderpipe/kafka/types.hpp"

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace orderpipe::kafka {

struct NewTopic {
    std::string name;
    int partitions = 3;
    int replication_factor = 1;
    std::map<std::string, std::string> config;  ///< e.g. {"cleanup.policy", "compact"}
};

struct GroupMember {
    std::string client_id;
    std::string group_instance_id;  ///< empty for a dynamic member
    std::string host;
};

struct GroupDescription {
    std::string state;  ///< e.g. "Stable", "Empty", "Dead"
    std::vector<GroupMember> members;
};

class AdminClient {
  public:
    /// Creates the client. Does not contact the broker. @throws ConfigurationError
    explicit AdminClient(const ClientConfig& config);
    ~AdminClient();
    AdminClient(const AdminClient&) = delete;
    AdminClient& operator=(const AdminClient&) = delete;

    /// Every topic of the cluster with its partition count (one metadata request).
    /// @throws KafkaException (retriable) when no broker answered within `timeout`.
    std::map<std::string, int> topics(std::chrono::milliseconds timeout);
    /// Whether this client may see `topic`: false when the broker answers
    /// TOPIC_AUTHORIZATION_FAILED for it (an ACL is missing; the listing of topics() leaves such
    /// topics out, as if they did not exist). A metadata request of its own.
    /// @throws KafkaException when no broker answered within `timeout`.
    bool authorized(const std::string& topic, std::chrono::milliseconds timeout);

    /// The consumer group `group` as its coordinator describes it.
    /// @throws KafkaException when it cannot be described within `timeout`.
    GroupDescription describe_group(const std::string& group, std::chrono::milliseconds timeout);

    /// Creates the topics; ones that already exist are left alone.
    /// @throws KafkaException naming the first topic that could not be created.
    void create_topics(const std::vector<NewTopic>& topics, std::chrono::milliseconds timeout);

    /// Grows `topic` to `total` partitions. @throws KafkaException
    void create_partitions(const std::string& topic, int total, std::chrono::milliseconds timeout);

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

/// Checks every property of `config` without creating a client (no broker contact).
/// @throws ConfigurationError naming the first refused property.
void check_client_config(const ClientConfig& config);

/// Creates the topics with a short-lived client (tests and tools).
void create_topics(const ClientConfig& config, const std::vector<NewTopic>& topics,
                   std::chrono::milliseconds timeout = std::chrono::seconds(30));

}  // namespace orderpipe::kafka
