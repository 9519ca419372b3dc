#pragma once
// Shared helpers for integration tests (*_kafkatest.cpp): they run against a real broker.

#include "orderpipe/kafka/types.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace orderpipe::testing {

/// The broker under test: $ORDERPIPE_TEST_BOOTSTRAP, else the one the ctest fixture started.
std::string bootstrap();
kafka::ClientConfig client_config(const std::string& client_id = "orderpipe-test");

/// A name nobody else uses: "<prefix>-<random>".
std::string unique_name(const std::string& prefix);

/// Creates `<prefix>.<name>` topics (`<name>` with an empty prefix) with 3 partitions; returns
/// name → full topic name.
std::map<std::string, std::string> create_test_topics(
    const std::string& prefix, const std::vector<std::string>& names,
    const std::string& bootstrap_servers = bootstrap());
/// Every topic of the contract (libs/contract), prefixed as above.
std::map<std::string, std::string> create_contract_topics(
    const std::string& prefix, const std::string& bootstrap_servers = bootstrap());

/// A fresh temporary directory, removed by the destructor.
class TempDir {
  public:
    TempDir();
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::string& path() const { return path_; }

  private:
    std::string path_;
};

/// Every committed record of `topic` (read_committed, from the beginning to the end of the log
/// as it was when the call began: a transaction that had written to it by then is waited for
/// until it is committed or aborted, up to 90 s, then the call throws naming the partition).
/// Callers that expect records the pipeline has yet to write pass `at_least`: the read is
/// repeated until that many are visible (or 30 s pass).
std::vector<kafka::ConsumedRecord> read_committed(
    const std::string& topic, const std::string& bootstrap_servers = bootstrap(),
    std::size_t at_least = 0);
inline std::vector<kafka::ConsumedRecord> read_committed(const std::string& topic,
                                                         std::size_t at_least) {
    return read_committed(topic, bootstrap(), at_least);
}
/// Same, read_uncommitted: also shows records of aborted or open transactions.
std::vector<kafka::ConsumedRecord> read_uncommitted(
    const std::string& topic, const std::string& bootstrap_servers = bootstrap());

struct HttpResponse {
    long status = 0;
    std::map<std::string, std::string> headers;  ///< lower-case names
    std::string body;
    nlohmann::json json() const;
};

/// A blocking HTTP request (libcurl). Throws on a transport error.
HttpResponse http_request(const std::string& method, const std::string& url,
                          const std::string& body = {},
                          const std::vector<std::string>& headers = {},
                          std::chrono::milliseconds timeout = std::chrono::seconds(60));

/// Polls `condition` until it holds or `deadline` passes. @returns whether it held.
bool eventually(const std::function<bool()>& condition,
                std::chrono::milliseconds deadline = std::chrono::seconds(30));

/// Runs a command through /bin/sh; returns its exit status and stdout.
std::pair<int, std::string> run_command(const std::string& command);

/// The repository root (for scripts/).
std::string source_dir();

/// A free TCP port on 127.0.0.1 (bound and released; good enough for a test).
std::uint16_t free_port();

/// A service binary run as a child process, for tests that SIGKILL it.
class ChildProcess {
  public:
    /// Starts `path` with the current environment plus `env`; output goes to `log_path`.
    ChildProcess(const std::string& path, const std::map<std::string, std::string>& env,
                 const std::string& log_path);
    ~ChildProcess();  ///< SIGKILL if still running
    ChildProcess(const ChildProcess&) = delete;
    ChildProcess& operator=(const ChildProcess&) = delete;

    void kill_hard();  ///< SIGKILL and reap
    /// SIGTERM and wait. @returns the exit status (-1 if it had to be killed).
    int terminate(std::chrono::milliseconds deadline = std::chrono::seconds(20));
    bool running();
    /// Waits for the process to exit by itself. @returns its exit code (128 + signal when
    /// killed by one), or nullopt if it still runs at the deadline.
    std::optional<int> wait_exit(std::chrono::milliseconds deadline);
    int pid() const { return pid_; }

  private:
    int pid_ = -1;
    int exit_status_ = -1;
};

}  // namespace orderpipe::testing
