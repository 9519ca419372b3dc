#pragma once
// Raw reading of whole topics for orderpipe-check, on librdkafka's C API directly: the checker
// shares no code with the services it checks (docs/RELIABILITY.md), so a bug there cannot hide
// itself here.

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace orderpipe::check {

struct Record {
    std::string topic;
    std::int32_t partition = 0;
    std::int64_t offset = 0;
    std::optional<std::string> key;
    std::optional<std::string> value;  ///< nullopt: a tombstone
    std::vector<std::pair<std::string, std::string>> headers;

    /// The first header of that name, if any.
    std::optional<std::string> header(std::string_view name) const;
};

enum class Isolation { kCommitted, kUncommitted };

/// Every record of `topic`, partition by partition in offset order, from the beginning to the
/// end it had when the call started. With kCommitted the end is reached only once no
/// transaction is open there, so a partition held by an open transaction is waited for. Throws
/// std::runtime_error naming the topic (and the partitions not read to their end) when it cannot
/// read it within `deadline`, or when the topic does not exist.
std::vector<Record> read_topic(const std::string& bootstrap, const std::string& topic,
                               Isolation isolation,
                               std::chrono::milliseconds deadline = std::chrono::seconds(120));

/// The committed records of a cluster's topics, each read once and kept until refresh().
/// Topics are named as in the contract ("orders.events"); `prefix` is prepended (TOPIC_PREFIX).
class TopicSet {
  public:
    TopicSet(std::string bootstrap, std::string prefix)
        : bootstrap_(std::move(bootstrap)), prefix_(std::move(prefix)) {}
    const std::string& bootstrap() const { return bootstrap_; }
    std::string full(const std::string& name) const { return prefix_ + name; }
    const std::vector<Record>& committed(const std::string& name) {
        return committed_full(full(name));
    }
    const std::vector<Record>& committed_full(const std::string& full_name);
    /// Read again (not cached): also the records of aborted transactions.
    std::vector<Record> uncommitted(const std::string& name) const;
    void refresh() { cache_.clear(); }

  private:
    std::string bootstrap_;
    std::string prefix_;
    std::map<std::string, std::vector<Record>> cache_;
};

/// Milliseconds since the epoch of an RFC 3339 time ("2026-12-01T17:00:00.123Z", an offset
/// instead of Z allowed); nullopt when it is not one.
std::optional<long long> rfc3339_ms(const std::string& text);

}  // namespace orderpipe::check
