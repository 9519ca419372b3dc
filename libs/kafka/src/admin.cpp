#include "orderpipe/kafka/admin.hpp"

#include "holders.hpp"

namespace orderpipe::kafka {
namespace {

struct AdminOptionsDeleter {
    void operator()(rd_kafka_AdminOptions_t* o) const { rd_kafka_AdminOptions_destroy(o); }
};
using AdminOptionsHolder = std::unique_ptr<rd_kafka_AdminOptions_t, AdminOptionsDeleter>;

AdminOptionsHolder admin_options(rd_kafka_t* rk, rd_kafka_admin_op_t op,
                                 std::chrono::milliseconds timeout) {
    AdminOptionsHolder options(rd_kafka_AdminOptions_new(rk, op));
    char err[256];
    rd_kafka_AdminOptions_set_request_timeout(options.get(), static_cast<int>(timeout.count()), err,
                                              sizeof err);
    return options;
}

/// Waits for the result event of one admin call; throws on a request-level error.
impl::EventHolder await_result(rd_kafka_t* rk, rd_kafka_queue_t* queue,
                               std::chrono::milliseconds timeout, const std::string& what) {
    impl::EventHolder ev(rd_kafka_queue_poll(queue, static_cast<int>(timeout.count()) + 2000));
    if (!ev) {
        throw KafkaException(impl::classify(RD_KAFKA_RESP_ERR__TIMED_OUT, what, rk));
    }
    if (auto code = rd_kafka_event_error(ev.get()); code != RD_KAFKA_RESP_ERR_NO_ERROR) {
        throw KafkaException(
            impl::classify(code, what + ": " + rd_kafka_event_error_string(ev.get()), rk));
    }
    return ev;
}

}  // namespace

struct AdminClient::Impl {
    impl::HandleHolder rk;
};

AdminClient::AdminClient(const ClientConfig& config) : impl_(std::make_unique<Impl>()) {
    // Asking for a missing topic by name (authorized()) must never create it on a broker that
    // allows auto-creation.
    impl_->rk = impl::make_handle(RD_KAFKA_PRODUCER,
                                  impl::make_conf(config, {{"allow.auto.create.topics", "false"}}));
}

AdminClient::~AdminClient() = default;

std::map<std::string, int> AdminClient::topics(std::chrono::milliseconds timeout) {
    const rd_kafka_metadata_t* raw = nullptr;
    if (auto err = rd_kafka_metadata(impl_->rk.get(), /*all_topics=*/1, nullptr, &raw,
                                     static_cast<int>(timeout.count()))) {
        throw KafkaException(impl::classify(err, "cluster metadata", impl_->rk.get()));
    }
    impl::MetadataHolder md(raw);
    std::map<std::string, int> out;
    for (int i = 0; i < md->topic_cnt; ++i) {
        const auto& t = md->topics[i];
        if (t.err == RD_KAFKA_RESP_ERR_NO_ERROR && t.partition_cnt > 0) {
            out[t.topic] = t.partition_cnt;
        }
    }
    return out;
}

bool AdminClient::authorized(const std::string& topic, std::chrono::milliseconds timeout) {
    rd_kafka_topic_t* rkt = rd_kafka_topic_new(impl_->rk.get(), topic.c_str(), nullptr);
    const rd_kafka_metadata_t* raw = nullptr;
    const auto err = rd_kafka_metadata(impl_->rk.get(), /*all_topics=*/0, rkt, &raw,
                                       static_cast<int>(timeout.count()));
    rd_kafka_topic_destroy(rkt);
    if (err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED) return false;
    if (err) throw KafkaException(impl::classify(err, "metadata of " + topic, impl_->rk.get()));
    impl::MetadataHolder md(raw);
    for (int i = 0; i < md->topic_cnt; ++i) {
        if (md->topics[i].err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED) return false;
    }
    return true;
}

GroupDescription AdminClient::describe_group(const std::string& group,
                                             std::chrono::milliseconds timeout) {
    rd_kafka_t* rk = impl_->rk.get();
    impl::QueueHolder queue(rd_kafka_queue_new(rk));
    auto options = admin_options(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS, timeout);
    const char* groups[] = {group.c_str()};
    rd_kafka_DescribeConsumerGroups(rk, groups, 1, options.get(), queue.get());
    auto ev = await_result(rk, queue.get(), timeout, "describe group " + group);
    const auto* result = rd_kafka_event_DescribeConsumerGroups_result(ev.get());
    size_t n = 0;
    const auto** descs = rd_kafka_DescribeConsumerGroups_result_groups(result, &n);
    GroupDescription out;
    if (n == 0) return out;
    const auto* d = descs[0];
    if (const rd_kafka_error_t* e = rd_kafka_ConsumerGroupDescription_error(d)) {
        throw KafkaException(
            impl::classify(rd_kafka_error_code(e),
                           "describe group " + group + ": " + rd_kafka_error_string(e), rk));
    }
    out.state = rd_kafka_consumer_group_state_name(rd_kafka_ConsumerGroupDescription_state(d));
    const size_t members = rd_kafka_ConsumerGroupDescription_member_count(d);
    for (size_t i = 0; i < members; ++i) {
        const auto* m = rd_kafka_ConsumerGroupDescription_member(d, i);
        const char* instance = rd_kafka_MemberDescription_group_instance_id(m);
        out.members.push_back({rd_kafka_MemberDescription_client_id(m),
                               instance != nullptr ? instance : "",
                               rd_kafka_MemberDescription_host(m)});
    }
    return out;
}

void AdminClient::create_topics(const std::vector<NewTopic>& topics,
                                std::chrono::milliseconds timeout) {
    rd_kafka_t* rk = impl_->rk.get();
    char err[512];
    std::vector<rd_kafka_NewTopic_t*> raw;
    struct Cleanup {
        std::vector<rd_kafka_NewTopic_t*>& v;
        ~Cleanup() { rd_kafka_NewTopic_destroy_array(v.data(), v.size()); }
    } cleanup{raw};
    for (const auto& t : topics) {
        rd_kafka_NewTopic_t* nt = rd_kafka_NewTopic_new(t.name.c_str(), t.partitions,
                                                        t.replication_factor, err, sizeof err);
        if (nt == nullptr) throw ConfigurationError("topic " + t.name + ": " + err);
        raw.push_back(nt);
        for (const auto& [k, v] : t.config) rd_kafka_NewTopic_set_config(nt, k.c_str(), v.c_str());
    }
    impl::QueueHolder queue(rd_kafka_queue_new(rk));
    auto options = admin_options(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS, timeout);
    rd_kafka_AdminOptions_set_operation_timeout(options.get(), static_cast<int>(timeout.count()),
                                                err, sizeof err);
    rd_kafka_CreateTopics(rk, raw.data(), raw.size(), options.get(), queue.get());
    auto ev = await_result(rk, queue.get(), timeout, "create topics");
    size_t n = 0;
    const rd_kafka_topic_result_t** results =
        rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev.get()), &n);
    for (size_t i = 0; i < n; ++i) {
        auto code = rd_kafka_topic_result_error(results[i]);
        if (code != RD_KAFKA_RESP_ERR_NO_ERROR && code != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
            throw KafkaException(impl::classify(code,
                                                std::string("create topic ") +
                                                    rd_kafka_topic_result_name(results[i]) + ": " +
                                                    rd_kafka_topic_result_error_string(results[i]),
                                                rk));
        }
    }
}

void AdminClient::create_partitions(const std::string& topic, int total,
                                    std::chrono::milliseconds timeout) {
    rd_kafka_t* rk = impl_->rk.get();
    char err[512];
    rd_kafka_NewPartitions_t* np =
        rd_kafka_NewPartitions_new(topic.c_str(), static_cast<size_t>(total), err, sizeof err);
    if (np == nullptr) throw ConfigurationError("partitions of " + topic + ": " + err);
    struct Cleanup {
        rd_kafka_NewPartitions_t* p;
        ~Cleanup() { rd_kafka_NewPartitions_destroy(p); }
    } cleanup{np};
    impl::QueueHolder queue(rd_kafka_queue_new(rk));
    auto options = admin_options(rk, RD_KAFKA_ADMIN_OP_CREATEPARTITIONS, timeout);
    rd_kafka_CreatePartitions(rk, &np, 1, options.get(), queue.get());
    auto ev = await_result(rk, queue.get(), timeout, "create partitions");
    size_t n = 0;
    const rd_kafka_topic_result_t** results = rd_kafka_CreatePartitions_result_topics(
        rd_kafka_event_CreatePartitions_result(ev.get()), &n);
    for (size_t i = 0; i < n; ++i) {
        if (auto code = rd_kafka_topic_result_error(results[i])) {
            throw KafkaException(impl::classify(code,
                                                std::string("create partitions of ") + topic +
                                                    ": " +
                                                    rd_kafka_topic_result_error_string(results[i]),
                                                rk));
        }
    }
}

void check_client_config(const ClientConfig& config) { (void)impl::make_conf(config, {}); }

void create_topics(const ClientConfig& config, const std::vector<NewTopic>& topics,
                   std::chrono::milliseconds timeout) {
    AdminClient(config).create_topics(topics, timeout);
}

}  // namespace orderpipe::kafka
