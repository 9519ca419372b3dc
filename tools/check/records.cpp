#include "records.hpp"

#include <librdkafka/rdkafka.h>

#include <unistd.h>
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <map>
#include <memory>
#include <random>
#include <stdexcept>
#include <thread>

namespace orderpipe::check {

std::optional<std::string> Record::header(std::string_view name) const {
    for (const auto& [n, v] : headers) {
        if (n == name) return v;
    }
    return std::nullopt;
}

namespace {

struct HandleDeleter {
    void operator()(rd_kafka_t* rk) const {
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
    }
};
using Handle = std::unique_ptr<rd_kafka_t, HandleDeleter>;

void set(rd_kafka_conf_t* conf, const char* name, const std::string& value) {
    char err[512];
    if (rd_kafka_conf_set(conf, name, value.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        throw std::runtime_error(std::string("librdkafka configuration ") + name + ": " + err);
    }
}

Handle consumer(const std::string& bootstrap, Isolation isolation) {
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    static std::mt19937_64 rng{std::random_device{}()};
    set(conf, "bootstrap.servers", bootstrap);
    // Never joined nor committed: partitions are assigned by hand. librdkafka still wants one.
    set(conf, "group.id", "orderpipe-check-" + std::to_string(rng()));
    set(conf, "enable.auto.commit", "false");
    set(conf, "enable.auto.offset.store", "false");
    set(conf, "enable.partition.eof", "true");
    set(conf, "isolation.level",
        isolation == Isolation::kCommitted ? "read_committed" : "read_uncommitted");
    set(conf, "log_level", "3");
    // A secured cluster: the security settings the services take from the environment
    // (KAFKA_SECURITY_PROTOCOL → security.protocol, KAFKA_SASL_*, KAFKA_SSL_*).
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
        const std::string entry(*e);
        const auto eq = entry.find('=');
        if (eq == std::string::npos) continue;
        std::string name = entry.substr(0, eq);
        if (name.rfind("KAFKA_SECURITY_", 0) != 0 && name.rfind("KAFKA_SASL_", 0) != 0 &&
            name.rfind("KAFKA_SSL_", 0) != 0) {
            continue;
        }
        std::string key = name.substr(6);
        for (auto& c : key) {
            c = c == '_' ? '.' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        }
        set(conf, key.c_str(), entry.substr(eq + 1));
    }
    char err[512];
    rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (rk == nullptr) {
        rd_kafka_conf_destroy(conf);
        throw std::runtime_error(std::string("cannot create a Kafka consumer: ") + err);
    }
    return Handle(rk);
}

int partition_count(rd_kafka_t* rk, const std::string& topic, std::chrono::milliseconds timeout) {
    rd_kafka_topic_t* t = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
    const rd_kafka_metadata_t* md = nullptr;
    const rd_kafka_resp_err_t err =
        rd_kafka_metadata(rk, 0, t, &md, static_cast<int>(timeout.count()));
    rd_kafka_topic_destroy(t);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        throw std::runtime_error("metadata of " + topic + ": " + rd_kafka_err2str(err));
    }
    int n = 0;
    rd_kafka_resp_err_t topic_err = RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
    if (md->topic_cnt == 1) {
        n = md->topics[0].partition_cnt;
        topic_err = md->topics[0].err;
    }
    rd_kafka_metadata_destroy(md);
    if (topic_err != RD_KAFKA_RESP_ERR_NO_ERROR || n == 0) {
        throw std::runtime_error("topic " + topic + ": " + rd_kafka_err2str(topic_err));
    }
    return n;
}

}  // namespace

std::vector<Record> read_topic(const std::string& bootstrap, const std::string& topic,
                               Isolation isolation, std::chrono::milliseconds deadline) {
    using Clock = std::chrono::steady_clock;
    const auto until = Clock::now() + deadline;
    Handle rk = consumer(bootstrap, isolation);
    const int partitions = partition_count(rk.get(), topic, deadline);

    // The end to reach: each partition's high watermark now, asked of a read_uncommitted handle
    // (a read_committed one answers with the last stable offset, which stops before a transaction
    // whose commit returned but whose markers are not written yet). Under read_committed the end
    // of fetch (EOF) is the last stable offset, which reaches it once no transaction up to it is
    // open.
    Handle log_view = consumer(bootstrap, Isolation::kUncommitted);
    std::map<std::int32_t, std::int64_t> end;
    std::map<std::int32_t, std::int64_t> at;  // where each unfinished partition's EOF was
    rd_kafka_topic_partition_list_t* assignment = rd_kafka_topic_partition_list_new(partitions);
    for (std::int32_t p = 0; p < partitions; ++p) {
        std::int64_t low = 0;
        std::int64_t high = 0;
        // A leader that is moving (a broker restarted, a preferred-leader election) answers
        // NOT_LEADER at once; retried with the metadata refresh that triggers, until the deadline.
        rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
        for (auto backoff = std::chrono::milliseconds(20);;
             backoff = std::min(backoff * 2, std::chrono::milliseconds(500))) {
            const auto left =
                std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
            err = rd_kafka_query_watermark_offsets(
                log_view.get(), topic.c_str(), p, &low, &high,
                static_cast<int>(std::max<std::int64_t>(1, left.count())));
            const bool retriable = err == RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION ||
                                   err == RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE ||
                                   err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
                                   err == RD_KAFKA_RESP_ERR__TRANSPORT;
            if (!retriable || Clock::now() + backoff >= until) break;
            std::this_thread::sleep_for(backoff);  // NOLINT: a retry backoff
        }
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            rd_kafka_topic_partition_list_destroy(assignment);
            throw std::runtime_error("watermarks of " + topic + "[" + std::to_string(p) +
                                     "]: " + rd_kafka_err2str(err));
        }
        if (high <= low) continue;  // empty
        end[p] = high;
        at[p] = -1;
        rd_kafka_topic_partition_list_add(assignment, topic.c_str(), p)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
    }
    rd_kafka_assign(rk.get(), assignment);
    rd_kafka_topic_partition_list_destroy(assignment);

    std::vector<Record> out;
    while (!end.empty()) {
        if (Clock::now() > until) {
            std::string stuck;
            for (const auto& [p, e] : end) {
                stuck += " [" + std::to_string(p) + "] at " + std::to_string(at[p]) + " of " +
                         std::to_string(e);
            }
            throw std::runtime_error("could not read " + topic +
                                     " to its end (an open transaction?):" + stuck);
        }
        rd_kafka_message_t* m = rd_kafka_consumer_poll(rk.get(), 200);
        if (m == nullptr) continue;
        std::unique_ptr<rd_kafka_message_t, void (*)(rd_kafka_message_t*)> guard(
            m, rd_kafka_message_destroy);
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            at[m->partition] = m->offset;
            if (m->offset >= end[m->partition]) end.erase(m->partition);
            continue;
        }
        if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            if (m->err == RD_KAFKA_RESP_ERR__FATAL) {
                throw std::runtime_error("reading " + topic + ": " + rd_kafka_message_errstr(m));
            }
            continue;  // transient (broker restarting): librdkafka retries
        }
        const auto e = end.find(m->partition);
        if (e == end.end() || m->offset >= e->second) continue;  // past the end we aim for
        Record r;
        r.topic = topic;
        r.partition = m->partition;
        r.offset = m->offset;
        if (m->key != nullptr) r.key.emplace(static_cast<const char*>(m->key), m->key_len);
        if (m->payload != nullptr) {
            r.value.emplace(static_cast<const char*>(m->payload), m->len);
        }
        rd_kafka_headers_t* hdrs = nullptr;
        if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
            const char* name = nullptr;
            const void* value = nullptr;
            std::size_t size = 0;
            for (std::size_t i = 0; rd_kafka_header_get_all(hdrs, i, &name, &value, &size) ==
                                    RD_KAFKA_RESP_ERR_NO_ERROR;
                 ++i) {
                r.headers.emplace_back(
                    name,
                    value == nullptr ? "" : std::string(static_cast<const char*>(value), size));
            }
        }
        out.push_back(std::move(r));
        if (m->offset + 1 >= e->second) end.erase(e);
    }
    return out;
}

const std::vector<Record>& TopicSet::committed_full(const std::string& full_name) {
    auto it = cache_.find(full_name);
    if (it == cache_.end()) {
        it = cache_.emplace(full_name, read_topic(bootstrap_, full_name, Isolation::kCommitted))
                 .first;
    }
    return it->second;
}

std::vector<Record> TopicSet::uncommitted(const std::string& name) const {
    return read_topic(bootstrap_, full(name), Isolation::kUncommitted);
}

std::optional<long long> rfc3339_ms(const std::string& text) {
    std::tm tm{};
    int consumed = 0;
    if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                    &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &consumed) != 6 ||
        consumed != 19) {
        return std::nullopt;
    }
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    long long ms = static_cast<long long>(timegm(&tm)) * 1000;
    std::size_t i = 19;
    if (i < text.size() && text[i] == '.') {
        long long scale = 100;
        for (++i; i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])); ++i) {
            ms += (text[i] - '0') * scale;
            scale /= 10;
        }
    }
    if (i + 1 == text.size() && (text[i] == 'Z' || text[i] == 'z')) return ms;
    int oh = 0;
    int om = 0;
    if (i + 6 == text.size() && (text[i] == '+' || text[i] == '-') &&
        std::sscanf(text.c_str() + i + 1, "%2d:%2d", &oh, &om) == 2) {
        const long long offset = (oh * 60LL + om) * 60'000;
        return text[i] == '+' ? ms - offset : ms + offset;
    }
    return std::nullopt;
}

}  // namespace orderpipe::check
