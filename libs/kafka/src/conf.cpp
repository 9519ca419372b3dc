#include "holders.hpp"

#include "orderpipe/common/logging.hpp"

#include <cctype>

namespace orderpipe::kafka::impl {

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
    // librdkafka 2.0.2: Nagle adds up to 40 ms per small request (docs/ARCHITECTURE.md "Kafka
    // client settings").
    set_conf(conf.get(), "socket.nagle.disable", "true");
    if (rd_kafka_version() >= 0x020500ff) {
        // Since 2.5 a client pushes its metrics to a broker that asks for them (KIP-714), and
        // rd_kafka_destroy waits for the last push: up to a second per client destroyed, paid
        // at every start (the short-lived probes) and stop. The metrics are on /metrics instead.
        set_conf(conf.get(), "enable.metrics.push", "false");
    }
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

}  // namespace orderpipe::kafka::impl

namespace orderpipe::kafka {

std::string librdkafka_version() { return rd_kafka_version_str(); }

}  // namespace orderpipe::kafka
