#include "holders.hpp"

#include "orderpipe/common/logging.hpp"

namespace orderpipe::kafka {

std::string KafkaError::describe() const {
    std::string s = name_ + ": " + message_;
    if (fatal_) s += " (fatal)";
    if (retriable_) s += " (retriable)";
    if (txn_requires_abort_) s += " (transaction must be aborted)";
    return s;
}

namespace impl {

KafkaError classify(ErrorHolder error) {
    rd_kafka_error_t* e = error.get();
    return KafkaError(rd_kafka_error_code(e), rd_kafka_error_name(e), rd_kafka_error_string(e),
                      rd_kafka_error_is_fatal(e) != 0, rd_kafka_error_is_retriable(e) != 0,
                      rd_kafka_error_txn_requires_abort(e) != 0);
}

KafkaError classify(rd_kafka_resp_err_t code, std::string context) {
    // Exhaustive where it matters: the transport-level conditions that go away by themselves.
    bool retriable = false;
    switch (code) {
        case RD_KAFKA_RESP_ERR__TRANSPORT:
        case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
        case RD_KAFKA_RESP_ERR__TIMED_OUT:
        case RD_KAFKA_RESP_ERR__QUEUE_FULL:
        case RD_KAFKA_RESP_ERR__RESOLVE:
        case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
        case RD_KAFKA_RESP_ERR_NOT_COORDINATOR:
        case RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE:
        case RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS:
        case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
        case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
        case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
        case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS:
        case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND:
            retriable = true;
            break;
        default:
            break;
    }
    std::string message = rd_kafka_err2str(code);
    if (!context.empty()) message = context + ": " + message;
    return KafkaError(code, rd_kafka_err2name(code), message, code == RD_KAFKA_RESP_ERR__FATAL,
                      retriable, false);
}

void set_conf(rd_kafka_conf_t* conf, const std::string& key, const std::string& value) {
    char err[512];
    if (rd_kafka_conf_set(conf, key.c_str(), value.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
        std::string env = "KAFKA_";
        for (char c : key) {
            env.push_back(
                c == '.' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
        }
        throw ConfigurationError("Kafka property " + key + "=\"" + value + "\" (from " + env +
                                 " if set there) was refused: " + err);
    }
}

ConfHolder make_conf(const ClientConfig& config,
                     const std::vector<std::pair<std::string, std::string>>& defaults) {
    ConfHolder conf(rd_kafka_conf_new());
    set_conf(conf.get(), "bootstrap.servers", config.bootstrap_servers);
    set_conf(conf.get(), "client.id", config.client_id);
    // librdkafka 2.0.2: Nagle adds up to 40 ms per small request (SPEC §2).
    set_conf(conf.get(), "socket.nagle.disable", "true");
    for (const auto& [k, v] : defaults) set_conf(conf.get(), k, v);
    for (const auto& [k, v] : config.properties) set_conf(conf.get(), k, v);
    install_log_callbacks(conf.get());
    return conf;
}

HandleHolder make_handle(rd_kafka_type_t type, ConfHolder conf) {
    char err[512];
    rd_kafka_t* rk = rd_kafka_new(type, conf.get(), err, sizeof err);
    if (rk == nullptr) {
        // rd_kafka_new only takes the conf on success; ours is still ours to free.
        throw ConfigurationError(std::string("cannot create Kafka client: ") + err);
    }
    (void)conf.release();
    return HandleHolder(rk);
}

PartitionListHolder to_list(const std::vector<TopicPartitionOffset>& offsets) {
    PartitionListHolder list(rd_kafka_topic_partition_list_new(static_cast<int>(offsets.size())));
    for (const auto& o : offsets) {
        rd_kafka_topic_partition_list_add(list.get(), o.topic.c_str(), o.partition)->offset =
            o.offset;
    }
    return list;
}

std::vector<TopicPartition> from_list(const rd_kafka_topic_partition_list_t* list) {
    std::vector<TopicPartition> out;
    if (list == nullptr) return out;
    out.reserve(static_cast<std::size_t>(list->cnt));
    for (int i = 0; i < list->cnt; ++i) {
        out.push_back({list->elems[i].topic, list->elems[i].partition});
    }
    return out;
}

namespace {

// C callbacks: never let an exception escape into librdkafka.
void log_cb(const rd_kafka_t* rk, int level, const char* fac, const char* buf) noexcept {
    try {
        const auto lvl = level <= 3   ? spdlog::level::err
                         : level <= 4 ? spdlog::level::warn
                         : level <= 6 ? spdlog::level::info
                                      : spdlog::level::debug;
        if (!spdlog::should_log(lvl)) return;
        orderpipe::log::write(
            lvl, buf,
            {{"component", "librdkafka"}, {"client", rd_kafka_name(rk)}, {"facility", fac}});
    } catch (...) {  // NOLINT(bugprone-empty-catch): logging must not throw into C
    }
}

void error_cb(rd_kafka_t* rk, int err, const char* reason, void* /*opaque*/) noexcept {
    try {
        // Transient transport errors are normal while a broker restarts; librdkafka retries.
        const auto code = static_cast<rd_kafka_resp_err_t>(err);
        const bool fatal = code == RD_KAFKA_RESP_ERR__FATAL;
        orderpipe::log::write(fatal ? spdlog::level::err : spdlog::level::warn,
                              "kafka client error",
                              {{"component", "librdkafka"},
                               {"client", rd_kafka_name(rk)},
                               {"error", rd_kafka_err2name(code)},
                               {"reason", reason}});
    } catch (...) {  // NOLINT(bugprone-empty-catch): logging must not throw into C
    }
}

}  // namespace

void install_log_callbacks(rd_kafka_conf_t* conf) {
    rd_kafka_conf_set_log_cb(conf, log_cb);
    rd_kafka_conf_set_error_cb(conf, error_cb);
}

}  // namespace impl
}  // namespace orderpipe::kafka
