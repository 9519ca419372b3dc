#include "orderpipe/kafka/admin.hpp"

#include "holders.hpp"

namespace orderpipe::kafka {

void create_topics(const ClientConfig& config, const std::vector<NewTopic>& topics,
                   std::chrono::milliseconds timeout) {
    auto rk = impl::make_handle(RD_KAFKA_PRODUCER, impl::make_conf(config, {}));
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
    rd_kafka_queue_t* queue = rd_kafka_queue_new(rk.get());
    rd_kafka_AdminOptions_t* options =
        rd_kafka_AdminOptions_new(rk.get(), RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_operation_timeout(options, static_cast<int>(timeout.count()), err,
                                                sizeof err);
    rd_kafka_CreateTopics(rk.get(), raw.data(), raw.size(), options, queue);
    rd_kafka_event_t* ev = rd_kafka_queue_poll(queue, static_cast<int>(timeout.count()) + 5000);
    rd_kafka_AdminOptions_destroy(options);
    std::string failure;
    rd_kafka_resp_err_t failure_code = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (ev == nullptr) {
        failure = "no answer from the broker";
        failure_code = RD_KAFKA_RESP_ERR__TIMED_OUT;
    } else if (rd_kafka_event_error(ev) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        failure = rd_kafka_event_error_string(ev);
        failure_code = rd_kafka_event_error(ev);
    } else {
        size_t n = 0;
        const rd_kafka_topic_result_t** results =
            rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
        for (size_t i = 0; i < n && failure.empty(); ++i) {
            auto code = rd_kafka_topic_result_error(results[i]);
            if (code != RD_KAFKA_RESP_ERR_NO_ERROR &&
                code != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
                failure = std::string(rd_kafka_topic_result_name(results[i])) + ": " +
                          rd_kafka_topic_result_error_string(results[i]);
                failure_code = code;
            }
        }
    }
    if (ev != nullptr) rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(queue);
    if (!failure.empty())
        throw KafkaException(impl::classify(failure_code, "create topics: " + failure));
}

}  // namespace orderpipe::kafka
