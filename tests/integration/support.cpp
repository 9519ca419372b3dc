#include "support.hpp"

#include "orderpipe/contract/topics.hpp"
#include "orderpipe/kafka/admin.hpp"
#include "orderpipe/kafka/consumer.hpp"

#include <curl/curl.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <set>
#include <stdexcept>
#include <thread>

namespace orderpipe::testing {

std::string source_dir() { return ORDERPIPE_SOURCE_DIR; }

std::string bootstrap() {
    if (const char* env = std::getenv("ORDERPIPE_TEST_BOOTSTRAP"); env != nullptr && *env != 0) {
        return env;
    }
    std::ifstream in(std::string(ORDERPIPE_TEST_STATE_DIR) + "/bootstrap");
    std::string b;
    if (!(in >> b)) {
        throw std::runtime_error(
            "no broker for integration tests: run them through ctest (the kafka_broker fixture "
            "starts one) or set ORDERPIPE_TEST_BOOTSTRAP=host:port");
    }
    return b;
}

kafka::ClientConfig client_config(const std::string& client_id) {
    return {bootstrap(), client_id, {}};
}

std::string unique_name(const std::string& prefix) {
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    static const char* hex = "0123456789abcdef";
    std::string s = prefix + "-";
    for (int i = 0; i < 10; ++i) s.push_back(hex[rng() % 16]);
    return s;
}

std::map<std::string, std::string> create_test_topics(const std::string& prefix,
                                                      const std::vector<std::string>& names,
                                                      const std::string& bootstrap_servers) {
    std::map<std::string, std::string> out;
    std::vector<kafka::NewTopic> topics;
    for (const auto& n : names) {
        out[n] = prefix.empty() ? n : prefix + "." + n;
        topics.push_back({out[n], 3, 1, {}});
    }
    kafka::create_topics({bootstrap_servers, "test-admin", {}}, topics);
    return out;
}

std::map<std::string, std::string> create_contract_topics(const std::string& prefix,
                                                          const std::string& bootstrap_servers) {
    std::vector<std::string> names;
    for (const auto& t : contract::all_topics()) names.push_back(t.name);
    return create_test_topics(prefix, names, bootstrap_servers);
}

TempDir::TempDir() {
    auto base = std::filesystem::temp_directory_path() / unique_name("orderpipe-test");
    std::filesystem::create_directories(base);
    path_ = base.string();
}

TempDir::~TempDir() {
    // ORDERPIPE_KEEP_TEST_DIRS=1: keep the services' logs and state to look at after a run.
    if (const char* keep = std::getenv("ORDERPIPE_KEEP_TEST_DIRS"); keep != nullptr && *keep) {
        std::cerr << "kept " << path_ << "\n";
        return;
    }
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
}

namespace {

/// Reads `topic` from the beginning to its end: each partition up to the high watermark it had
/// when the read began, taken from a read_uncommitted view (the end of the log, records of open
/// transactions included). A read_committed consumer's end of fetch is the last stable offset:
/// it stops before the first record of a transaction that has no commit or abort marker yet. A
/// transaction whose commit_transaction has returned can be in that state for a while (the
/// coordinator writes the markers asynchronously, and a restarted broker's coordinator completes
/// the commits it had prepared only after it has loaded its log), so the read waits until the
/// last stable offset has passed the high watermark it started from: what it returns is the
/// truth about every transaction that had written to the topic before the call.
std::vector<kafka::ConsumedRecord> read_all(const std::string& topic, const std::string& b,
                                            bool committed) {
    const auto make = [&](bool read_committed) {
        kafka::ConsumerOptions o;
        o.group_id = unique_name("test-reader");
        o.read_committed = read_committed;
        o.partition_eof = true;
        return std::make_unique<kafka::Consumer>(kafka::ClientConfig{b, "test-reader", {}}, o);
    };
    auto log_view = make(false);
    int partitions = 0;
    for (int i = 0; i < 20 && partitions == 0; ++i) {
        partitions = log_view->partition_count(topic, std::chrono::seconds(5));
    }
    if (partitions == 0) throw std::runtime_error("topic " + topic + " does not exist");
    std::map<int, std::int64_t> end;      // partition -> high watermark at the start
    std::map<int, std::int64_t> reached;  // partition -> where its last end of fetch was
    std::vector<kafka::TopicPartitionOffset> assignment;
    for (int p = 0; p < partitions; ++p) {
        end[p] = log_view->watermarks(topic, p, std::chrono::seconds(30)).second;
        reached[p] = -1;
        assignment.push_back({topic, p, kafka::Consumer::kBeginning});
    }
    log_view.reset();
    auto c = committed ? make(true) : make(false);
    c->assign(assignment);
    std::vector<kafka::ConsumedRecord> out;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(90);
    std::set<int> open;
    for (const auto& [p, e] : end) open.insert(p);
    while (!open.empty()) {
        if (std::chrono::steady_clock::now() > deadline) {
            std::string stuck;
            for (int p : open) {
                stuck += " [" + std::to_string(p) + "] ends at " + std::to_string(reached[p]) +
                         ", the log at " + std::to_string(end[p]) + ";";
            }
            throw std::runtime_error("reading " + topic +
                                     " did not reach the end of the log in 90 s:" + stuck +
                                     " a transaction there is neither committed nor aborted");
        }
        auto r = c->poll_batch(10000, std::chrono::milliseconds(200));
        for (auto& rec : r.records) out.push_back(std::move(rec));
        for (const auto& tp : r.reached_end) {
            reached[tp.partition] = tp.offset;
            if (tp.offset >= end[tp.partition]) open.erase(tp.partition);
        }
    }
    return out;
}

size_t write_body(char* ptr, size_t size, size_t n, void* userdata) {
    static_cast<std::string*>(userdata)->append(ptr, size * n);
    return size * n;
}

size_t write_header(char* ptr, size_t size, size_t n, void* userdata) {
    std::string line(ptr, size * n);
    auto colon = line.find(':');
    if (colon != std::string::npos) {
        std::string name = line.substr(0, colon);
        for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        std::string value = line.substr(colon + 1);
        while (!value.empty() && (value.front() == ' ')) value.erase(0, 1);
        while (!value.empty() && (value.back() == '\r' || value.back() == '\n')) value.pop_back();
        (*static_cast<std::map<std::string, std::string>*>(userdata))[name] = value;
    }
    return size * n;
}

}  // namespace

std::vector<kafka::ConsumedRecord> read_committed(const std::string& topic, const std::string& b,
                                                  std::size_t at_least) {
    std::vector<kafka::ConsumedRecord> out = read_all(topic, b, true);
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (out.size() < at_least && std::chrono::steady_clock::now() < until) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));  // polling interval
        out = read_all(topic, b, true);
    }
    return out;
}

std::vector<kafka::ConsumedRecord> read_uncommitted(const std::string& topic,
                                                    const std::string& b) {
    return read_all(topic, b, false);
}

nlohmann::json HttpResponse::json() const { return nlohmann::json::parse(body); }

HttpResponse http_request(const std::string& method, const std::string& url,
                          const std::string& body, const std::vector<std::string>& headers,
                          std::chrono::milliseconds timeout) {
    CURL* curl = curl_easy_init();
    if (curl == nullptr) throw std::runtime_error("curl_easy_init failed");
    HttpResponse r;
    curl_slist* list = nullptr;
    for (const auto& h : headers) list = curl_slist_append(list, h.c_str());
    list = curl_slist_append(list, "Expect:");  // no 100-continue round trip
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
    if (!body.empty() || method == "POST" || method == "PUT") {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data());
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    }
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, write_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &r.body);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, write_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &r.headers);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    const CURLcode rc = curl_easy_perform(curl);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r.status);
    curl_slist_free_all(list);
    curl_easy_cleanup(curl);
    if (rc != CURLE_OK) {
        throw std::runtime_error(method + " " + url + ": " + curl_easy_strerror(rc));
    }
    return r;
}

bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds deadline) {
    const auto until = std::chrono::steady_clock::now() + deadline;
    auto pause = std::chrono::milliseconds(10);
    while (std::chrono::steady_clock::now() < until) {
        if (condition()) return true;
        std::this_thread::sleep_for(pause);  // polling interval, not synchronisation
        pause = std::min(pause * 2, std::chrono::milliseconds(250));
    }
    return condition();
}

std::pair<int, std::string> run_command(const std::string& command) {
    std::string out;
    FILE* pipe = popen(command.c_str(), "r");
    if (pipe == nullptr) throw std::runtime_error("cannot run " + command);
    std::array<char, 4096> buf{};
    size_t n = 0;
    while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) out.append(buf.data(), n);
    const int status = pclose(pipe);
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

std::uint16_t free_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    socklen_t len = sizeof addr;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    ::close(fd);
    return ntohs(addr.sin_port);
}

ChildProcess::ChildProcess(const std::string& path, const std::map<std::string, std::string>& env,
                           const std::string& log_path) {
    std::vector<std::string> entries;
    for (char** e = environ; *e != nullptr; ++e) {
        std::string entry(*e);
        auto name = entry.substr(0, entry.find('='));
        if (env.count(name) == 0) entries.push_back(entry);
    }
    for (const auto& [k, v] : env) entries.push_back(k + "=" + v);
    std::vector<char*> envp;
    for (auto& e : entries) envp.push_back(e.data());
    envp.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
        int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            ::dup2(fd, 1);
            ::dup2(fd, 2);
        }
        char* argv[] = {const_cast<char*>(path.c_str()), nullptr};
        ::execve(path.c_str(), argv, envp.data());
        ::_exit(127);
    }
}

ChildProcess::~ChildProcess() {
    if (pid_ > 0) kill_hard();
}

bool ChildProcess::running() {
    if (pid_ <= 0) return false;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status)
                                         : (WIFSIGNALED(status) ? 128 + WTERMSIG(status) : -1);
        return false;
    }
    return true;
}

std::optional<int> ChildProcess::wait_exit(std::chrono::milliseconds deadline) {
    if (!eventually([&] { return !running(); }, deadline)) return std::nullopt;
    return exit_status_;
}

void ChildProcess::kill_hard() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
}

int ChildProcess::terminate(std::chrono::milliseconds deadline) {
    if (pid_ <= 0) return -1;
    ::kill(pid_, SIGTERM);
    const auto until = std::chrono::steady_clock::now() + deadline;
    int status = 0;
    while (std::chrono::steady_clock::now() < until) {
        if (::waitpid(pid_, &status, WNOHANG) == pid_) {
            pid_ = -1;
            exit_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
            return exit_status_;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));  // polling the child
    }
    kill_hard();
    return -1;
}

}  // namespace orderpipe::testing
