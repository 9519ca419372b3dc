#include "orderpipe/contract/topics.hpp"

namespace orderpipe::contract {

std::string dlq_topic_for(std::string_view t) {
    // The notification service's dead letters (failed sends as well as poison) have their own
    // well-known topic, which dlqctl and analytics read.
    if (t == topic::kNotificationsRequests) return std::string(topic::kNotificationsDlq);
    return std::string(t) + std::string(kDlqSuffix);
}

bool is_dlq_topic(std::string_view t) {
    return t == topic::kNotificationsDlq ||
           (t.size() > kDlqSuffix.size() && t.substr(t.size() - kDlqSuffix.size()) == kDlqSuffix);
}

const std::vector<std::string>& main_topics() {
    static const std::vector<std::string> topics = {
        std::string(topic::kOrdersEvents),          std::string(topic::kInventoryRequests),
        std::string(topic::kInventoryResponses),    std::string(topic::kInventoryEvents),
        std::string(topic::kNotificationsRequests), std::string(topic::kNotificationsEvents)};
    return topics;
}

const std::vector<TopicSpec>& all_topics() {
    static const std::vector<TopicSpec> topics = [] {
        std::vector<TopicSpec> out;
        for (const auto& t : main_topics()) out.push_back({t, TopicKind::kEvents});
        out.push_back({std::string(topic::kNotificationsDlq), TopicKind::kDeadLetters});
        out.push_back({std::string(topic::kDlqResolutions), TopicKind::kLedger});
        out.push_back({std::string(topic::kOrdersCommands), TopicKind::kCommands});
        // Poison records of every topic a transactional consumer reads, except
        // notifications.requests (its DLQ is notifications.dlq) and the DLQs themselves (analytics
        // counts whatever lands in a DLQ; it never dead-letters a dead letter).
        for (std::string_view consumed :
             {topic::kOrdersEvents, topic::kInventoryRequests, topic::kInventoryResponses,
              topic::kInventoryEvents, topic::kNotificationsEvents, topic::kDlqResolutions,
              topic::kOrdersCommands}) {
            out.push_back({dlq_topic_for(consumed), TopicKind::kDeadLetters});
        }
        return out;
    }();
    return topics;
}

std::vector<std::string> dlq_topics() {
    std::vector<std::string> out;
    for (const auto& t : all_topics()) {
        if (t.kind == TopicKind::kDeadLetters) out.push_back(t.name);
    }
    return out;
}

}  // namespace orderpipe::contract
