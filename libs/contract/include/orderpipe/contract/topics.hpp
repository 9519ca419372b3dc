#pragma once
/// The topics of the pipeline (docs/CONTRACT.md "Topics"): their names, who writes and reads
/// them, and how each is configured. Every service, dlqctl, the topic tool and the tests take
/// topic names from here; nothing else spells them.

#include <string>
#include <string_view>
#include <vector>

namespace orderpipe::contract {

namespace topic {
inline constexpr std::string_view kOrdersEvents = "orders.events";
inline constexpr std::string_view kInventoryRequests = "inventory.requests";
inline constexpr std::string_view kInventoryResponses = "inventory.responses";
inline constexpr std::string_view kInventoryEvents = "inventory.events";
inline constexpr std::string_view kNotificationsRequests = "notifications.requests";
inline constexpr std::string_view kNotificationsEvents = "notifications.events";
/// The notification service's dead letters: failed sends and poison requests.
inline constexpr std::string_view kNotificationsDlq = "notifications.dlq";
/// Compacted ledger of what dlqctl did with each dead letter (key `<topic>/<partition>/<offset>`).
inline constexpr std::string_view kDlqResolutions = "dlq.resolutions";
/// The order-service's own commands between its instances (scaled out): a customer cancel
/// taken by one instance, decided by the one that owns the order. Keyed by order id, with as
/// many partitions as inventory.responses (co-partitioned). Internal: not part of the saga.
inline constexpr std::string_view kOrdersCommands = "orders.commands";
}  // namespace topic

/// Suffix of the dead-letter topic of a consumed topic: `<topic>.dlq`.
inline constexpr std::string_view kDlqSuffix = ".dlq";

/// Dead letters are kept 30 days.
inline constexpr long long kDlqRetentionMs = 30LL * 24 * 60 * 60 * 1000;

enum class TopicKind {
    kEvents,       ///< a main topic of the saga
    kDeadLetters,  ///< a DLQ: 30-day retention
    kLedger,       ///< dlq.resolutions: compacted
    kCommands,     ///< orders.commands: between the order-service's instances
};

struct TopicSpec {
    std::string name;  ///< without any TOPIC_PREFIX
    TopicKind kind;
};

/// The dead-letter topic for poison (or failed) records consumed from `topic`:
/// `notifications.dlq` for `notifications.requests`, `<topic>.dlq` for every other topic.
std::string dlq_topic_for(std::string_view topic);

/// True for a topic name (prefix already removed) that holds dead letters.
bool is_dlq_topic(std::string_view topic);

/// The main topics, in the order of the saga.
const std::vector<std::string>& main_topics();

/// Every topic the pipeline needs: the main topics, `notifications.dlq`, `dlq.resolutions`,
/// and the `<topic>.dlq` of every topic a transactional consumer other than the notification
/// service reads.
const std::vector<TopicSpec>& all_topics();

/// Every dead-letter topic of all_topics().
std::vector<std::string> dlq_topics();

}  // namespace orderpipe::contract
