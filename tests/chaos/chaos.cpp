// orderpipe-chaos: the whole pipeline under a seeded schedule of faults, then the invariant
// checker (docs/RELIABILITY.md).
//
// It starts its own Kafka broker (scripts/kafka.sh, on a free port, data in the work dir) and
// every service as a child process (two notification-service instances sharing their group),
// places orders at a fixed rate the way a careful client does (an Idempotency-Key per order,
// retried with the same key while the answer is 409/429/5xx or none; a few customer cancels),
// journals every final answer, and meanwhile runs the schedule: SIGKILL and restart each
// service, SIGSTOP one for longer than its session (it wakes as a zombie and must be fenced),
// SIGKILL and restart the broker, make the email provider fail, hang and refuse. With --brokers 3
// it runs a 3-node KRaft cluster instead (scripts/kafka-cluster.sh: RF 3, min.insync.replicas 2)
// and, in place of the broker restarts, SIGKILLs and restarts the node leading most partitions and
// the node coordinating the intake's transactions, and stops and starts every node in turn,
// reporting what the clients and /readyz saw meanwhile (broker-faults.json). With --postgres
// every service runs as two instances sharing one PostgreSQL database per service
// (scripts/postgres.sh, DATABASE_URL), the clients send each attempt to the other order-service
// instance than the last, every instance is SIGKILLed and restarted, and PostgreSQL itself is
// SIGKILLed and restarted; the checker then runs once against each instance's HTTP APIs. Then it
// lets the pipeline settle, runs orderpipe-check, replays the notification DLQ with dlqctl, and
// runs orderpipe-check again. Every run prints its seed; the same seed replays the same schedule
// and the same orders (the moments a fault strikes within a request are up to the machine).
//
// Exit status: 0 every invariant held, 1 a violation (or a stage that did not settle), 2 bad
// usage. The work dir (logs, journal, reports) is kept when the run fails or with --keep.

#include <curl/curl.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <iomanip>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

Clock::time_point g_start = Clock::now();

/// Now, in UTC RFC 3339 with milliseconds (the provider's format: compared as text).
std::string utc_now(std::chrono::milliseconds later = std::chrono::milliseconds(0)) {
    const auto now = std::chrono::system_clock::now() + later;
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch());
    const std::time_t secs = static_cast<std::time_t>(ms.count() / 1000);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[96];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                  static_cast<int>(ms.count() % 1000));
    return buf;
}

void say(const std::string& what) {
    static std::mutex mu;
    const double t = std::chrono::duration<double>(Clock::now() - g_start).count();
    std::lock_guard lock(mu);
    std::cout << "chaos: [" << std::fixed << std::setprecision(1) << std::setw(6) << t << "s] "
              << what << std::endl;
}

// --- Processes --------------------------------------------------------------------------------

/// A child process with its own environment; output appended to its log.
class Process {
  public:
    Process(std::string name, std::string binary, std::map<std::string, std::string> env,
            std::string log)
        : name_(std::move(name)),
          binary_(std::move(binary)),
          env_(std::move(env)),
          log_(std::move(log)),
          cores_(fs::absolute(fs::path(log_).parent_path() / "cores" / name_).string()) {
        fs::create_directories(cores_);
    }

    const std::string& name() const { return name_; }
    const std::string& log() const { return log_; }
    /// Its working directory, where a crash leaves its core (when the system writes cores to
    /// the working directory, as Debian's default `core_pattern` does).
    const std::string& cores() const { return cores_; }

    /// Starts it with its environment plus `more` (for this start only).
    void start(const std::map<std::string, std::string>& more = {}) {
        auto env = env_;
        for (const auto& [k, v] : more) env[k] = v;
        std::vector<std::string> vars;
        for (char** e = environ; *e != nullptr; ++e) {
            const std::string v = *e;
            if (!env.contains(v.substr(0, v.find('=')))) vars.push_back(v);
        }
        for (const auto& [k, v] : env) vars.push_back(k + "=" + v);
        std::vector<char*> envp;
        for (auto& v : vars) envp.push_back(v.data());
        envp.push_back(nullptr);
        const pid_t pid = fork();
        if (pid < 0) throw std::runtime_error("fork: " + std::string(strerror(errno)));
        if (pid == 0) {
            const int fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
            if (fd >= 0) {
                dup2(fd, 1);
                dup2(fd, 2);
            }
            sigset_t none;
            sigemptyset(&none);
            sigprocmask(SIG_SETMASK, &none, nullptr);
            const rlimit cores{RLIM_INFINITY, RLIM_INFINITY};
            setrlimit(RLIMIT_CORE, &cores);
            if (chdir(cores_.c_str()) != 0) _exit(126);
            char* argv[] = {binary_.data(), nullptr};
            execve(binary_.c_str(), argv, envp.data());
            _exit(127);
        }
        std::lock_guard lock(mu_);
        pid_ = pid;
        started_at_ = utc_now();
        armed_ = more.contains("FAULT_INJECT");
    }
    /// Started with a FAULT_INJECT that may not have struck yet (it exits when it does).
    bool armed() {
        std::lock_guard lock(mu_);
        return armed_ && pid_ > 0;
    }
    /// When it was last started (UTC, RFC 3339).
    std::string started_at() {
        std::lock_guard lock(mu_);
        return started_at_;
    }
    /// SIGKILL and reap.
    void kill_hard() {
        std::lock_guard lock(mu_);
        if (pid_ <= 0) return;
        ::kill(pid_, SIGCONT);
        ::kill(pid_, SIGKILL);
        waitpid(pid_, nullptr, 0);
        pid_ = -1;
    }
    void pause() {
        std::lock_guard lock(mu_);
        if (pid_ > 0) ::kill(pid_, SIGSTOP);
    }
    void resume() {
        std::lock_guard lock(mu_);
        if (pid_ > 0) ::kill(pid_, SIGCONT);
    }
    /// SIGTERM, then SIGKILL after `grace`. @returns the exit code (-1 if killed).
    int terminate(std::chrono::milliseconds grace) {
        std::lock_guard lock(mu_);
        if (pid_ <= 0) return 0;
        ::kill(pid_, SIGCONT);
        ::kill(pid_, SIGTERM);
        const auto until = Clock::now() + grace;
        int status = 0;
        while (Clock::now() < until) {
            if (waitpid(pid_, &status, WNOHANG) == pid_) {
                pid_ = -1;
                return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
            }
            std::this_thread::sleep_for(50ms);
        }
        ::kill(pid_, SIGKILL);
        waitpid(pid_, nullptr, 0);
        pid_ = -1;
        return -1;
    }
    /// If it exited by itself: its exit code (128 + signal), and it is no longer running.
    std::optional<int> reap() {
        std::lock_guard lock(mu_);
        if (pid_ <= 0) return std::nullopt;
        int status = 0;
        if (waitpid(pid_, &status, WNOHANG) != pid_) return std::nullopt;
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    bool running() {
        std::lock_guard lock(mu_);
        return pid_ > 0;
    }

  private:
    std::string name_, binary_;
    std::map<std::string, std::string> env_;
    std::string log_;
    std::string cores_;
    std::mutex mu_;
    pid_t pid_ = -1;
    std::string started_at_;
    bool armed_ = false;
};

int shell(const std::string& command) {
    const int rc = std::system(command.c_str());
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/// A command's standard output (empty when it cannot be run).
std::string capture(const std::string& command) {
    std::string out;
    FILE* p = popen(command.c_str(), "r");
    if (p == nullptr) return out;
    char buf[8192];
    std::size_t n = 0;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    pclose(p);
    return out;
}

double since_start() { return std::chrono::duration<double>(Clock::now() - g_start).count(); }

/// Java's String.hashCode of an ASCII string: the broker places a transactional.id in
/// __transaction_state partition abs(hashCode) % partitions (Kafka's Utils.abs: MIN_VALUE is 0).
int transaction_state_partition(const std::string& transactional_id, int partitions) {
    std::uint32_t h = 0;
    for (unsigned char c : transactional_id) h = 31 * h + c;
    const auto signed_h = static_cast<std::int32_t>(h);
    const std::int64_t abs_h =
        signed_h == INT32_MIN ? 0 : std::abs(static_cast<std::int64_t>(signed_h));
    return static_cast<int>(abs_h % partitions);
}

std::string shell_quote(const std::string& s) {
    std::string out = "'";
    for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

// --- HTTP -------------------------------------------------------------------------------------

struct Answer {
    long status = 0;  ///< 0: no answer (connection refused, reset, timed out)
    std::string body;
};

class Http {
  public:
    Http() : curl_(curl_easy_init(), curl_easy_cleanup) {}
    Answer request(const std::string& method, const std::string& url, const std::string& body = "",
                   const std::vector<std::string>& headers = {},
                   std::chrono::milliseconds timeout = 30s) {
        Answer a;
        CURL* c = curl_.get();
        curl_easy_reset(c);
        curl_easy_setopt(c, CURLOPT_URL, url.c_str());
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method.c_str());
        if (method == "POST" || !body.empty()) {
            curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.c_str());
            curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
        }
        curl_slist* list = nullptr;
        for (const auto& h : headers) list = curl_slist_append(list, h.c_str());
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(
            c, CURLOPT_WRITEFUNCTION, +[](char* p, size_t s, size_t n, void* out) {
                static_cast<std::string*>(out)->append(p, s * n);
                return s * n;
            });
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &a.body);
        if (curl_easy_perform(c) == CURLE_OK)
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &a.status);
        curl_slist_free_all(list);
        return a;
    }

  private:
    std::unique_ptr<CURL, void (*)(CURL*)> curl_;
};

bool ready(Http& http, std::uint16_t port, const char* probe = "/readyz") {
    return http.request("GET", "http://127.0.0.1:" + std::to_string(port) + probe, "", {}, 2s)
               .status == 200;
}

std::uint16_t free_port() {
    // Bind port 0, read the port, release it (good enough: nothing else races here).
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    ::close(fd);
    return ntohs(a.sin_port);
}

// --- The plan ---------------------------------------------------------------------------------

struct Mode {
    std::string name;  ///< short or long
    long orders;
    double rate;
    int kills_each;
    int crashes_each;  ///< restarts with FAULT_INJECT: it kills itself inside a transaction
    int broker_restarts;
    int short_pauses;
    int provider_outages;  ///< each: one failing window, one hanging window, one refusing window
    // With --brokers 3 (a KRaft cluster, RF 3, min.insync.replicas 2) instead of broker_restarts:
    int leader_kills = 0;       ///< SIGKILL the node leading most partitions, restart it
    int coordinator_kills = 0;  ///< SIGKILL the node coordinating the intake's transactions
    int rolling_restarts = 0;   ///< stop and start every node in turn, a full ISR between them
    int postgres_restarts = 0;  ///< with --postgres: SIGKILL the database server, restart it
};

struct Fault {
    double at_s = 0;  ///< planned start, seconds after the load starts
    /// kill, crash, pause, zombie, broker, leader-kill, coordinator-kill, rolling, postgres,
    /// provider-fail, provider-hang, provider-refuse
    std::string kind;
    std::string target;  ///< a service name (kill, pause, zombie)
    double hold_s = 0;   ///< down / paused / failing for this long
    int nth = 0;         ///< crash: at the nth commit after its restart
    std::string describe() const {
        std::ostringstream o;
        o << std::fixed << std::setprecision(1) << "t+" << at_s << "s " << kind;
        if (!target.empty()) o << " " << target;
        if (kind == "crash") {
            o << " (restarted with FAULT_INJECT *:kill-before-commit:" << nth << ")";
        } else if (kind == "rolling") {
            o << " (every node stopped and started in turn, a full ISR before the next)";
        } else {
            o << " (" << hold_s << " s)";
        }
        return o.str();
    }
};

/// NOTIFY_MAX_IN_FLIGHT of the notification-services: what one may have out when it is lost.
constexpr long kNotifyMaxInFlight = 200;
/// Their NOTIFY_TIMEOUT_MS: how long a send they have out may take.
constexpr std::chrono::milliseconds kNotifyTimeout{1000};

/// The service instances a run starts (and strikes): one of each, two notification-services
/// sharing their group; with --postgres, `n` of every service (2 by default).
std::vector<std::string> service_instances(bool postgres, int n) {
    if (!postgres) {
        return {"inventory-service", "order-service", "notification-service-1",
                "notification-service-2", "analytics-service"};
    }
    std::vector<std::string> out;
    for (const char* s :
         {"inventory-service", "order-service", "notification-service", "analytics-service"}) {
        for (int i = 1; i <= n; ++i) out.push_back(std::string(s) + "-" + std::to_string(i));
    }
    return out;
}

std::vector<Fault> plan(const Mode& m, const std::vector<std::string>& services,
                        std::mt19937_64& rng, double load_s) {
    std::vector<Fault> faults;
    auto uniform = [&](double lo, double hi) {
        return std::uniform_real_distribution<>(lo, hi)(rng);
    };
    for (const auto& s : services) {
        for (int k = 0; k < m.kills_each; ++k) faults.push_back({0, "kill", s, uniform(0.2, 3.0)});
        for (int k = 0; k < m.crashes_each; ++k) {
            faults.push_back({0, "crash", s, 0, std::uniform_int_distribution<>(2, 10)(rng)});
        }
    }
    for (int k = 0; k < m.broker_restarts; ++k)
        faults.push_back({0, "broker", "", uniform(1.0, 4.0)});
    for (int k = 0; k < m.leader_kills; ++k)
        faults.push_back({0, "leader-kill", "", uniform(1.0, 4.0)});
    for (int k = 0; k < m.coordinator_kills; ++k)
        faults.push_back({0, "coordinator-kill", "", uniform(1.0, 4.0)});
    for (int k = 0; k < m.rolling_restarts; ++k) faults.push_back({0, "rolling", "", 0});
    for (int k = 0; k < m.postgres_restarts; ++k)
        faults.push_back({0, "postgres", "", uniform(1.0, 4.0)});
    // Longer than the session timeout (10 s): its partitions go to the other instance, and when it
    // wakes its transaction must be refused.
    const int zombie = std::uniform_int_distribution<>(1, 2)(rng);
    faults.push_back({0, "zombie", "notification-service-" + std::to_string(zombie), 14.0});
    for (int k = 0; k < m.short_pauses; ++k) {
        const auto& s =
            services[std::uniform_int_distribution<std::size_t>(0, services.size() - 1)(rng)];
        faults.push_back({0, "pause", s, uniform(1.0, 4.0)});
    }
    for (int k = 0; k < m.provider_outages; ++k) {
        faults.push_back({0, "provider-fail", "", uniform(3.0, 6.0)});
        faults.push_back({0, "provider-hang", "", uniform(3.0, 6.0)});
        faults.push_back({0, "provider-refuse", "", uniform(6.0, 10.0)});
    }
    std::shuffle(faults.begin(), faults.end(), rng);
    // One after the other, within the load: each takes about its hold (a broker restart also
    // ~15 s to come back, a cluster node ~20 s to rejoin the ISR, a rolling restart three times
    // that); what is left of 85 % of the load is spread between them.
    auto takes = [](const Fault& f) {
        if (f.kind == "broker") return f.hold_s + 15;
        if (f.kind == "leader-kill" || f.kind == "coordinator-kill") return f.hold_s + 20;
        if (f.kind == "rolling") return 60.0;
        if (f.kind == "postgres") return f.hold_s + 5;
        return f.kind == "crash" ? 1.0 : f.hold_s + 0.3;
    };
    double busy = 0;
    for (const auto& f : faults) busy += takes(f);
    const double gap = std::max(0.5, (load_s * 0.85 - busy) / static_cast<double>(faults.size()));
    if (load_s * 0.85 < busy) {
        say("warning: the faults (~" + std::to_string(static_cast<long>(busy)) +
            " s) do not fit in the load (" + std::to_string(static_cast<long>(load_s)) +
            " s): more orders or a lower rate keep the load on while they strike");
    }
    double cursor = 0;
    for (auto& f : faults) {
        f.at_s = cursor + gap * uniform(0.5, 1.5);
        cursor = f.at_s + takes(f);
    }
    return faults;
}

// --- The run ----------------------------------------------------------------------------------

struct Catalog {
    std::string sku;
    std::string price;
    long stock;
};

class Chaos {
  public:
    Chaos(std::uint64_t seed, Mode mode, int brokers, bool postgres, int instances, std::string dir,
          bool keep)
        : seed_(seed),
          mode_(mode),
          brokers_(brokers),
          postgres_(postgres),
          instances_(postgres ? instances : 1),
          services_(service_instances(postgres, instances)),
          dir_(fs::absolute(dir).string()),
          keep_(keep),
          rng_(seed) {}

    int run() {
        fs::create_directories(dir_);
        say("seed " + std::to_string(seed_) + " (replay: orderpipe-chaos --mode " + mode_.name +
            " --brokers " + std::to_string(brokers_) +
            (postgres_ ? " --postgres --instances " + std::to_string(instances_) : "") +
            " --seed " + std::to_string(seed_) + " --orders " + std::to_string(mode_.orders) +
            " --rate " + std::to_string(static_cast<long>(mode_.rate)) + "); work dir " + dir_);
        const double load_s = static_cast<double>(mode_.orders) / mode_.rate;
        faults_ = plan(mode_, services_, rng_, load_s);
        for (const auto& f : faults_) say("plan: " + f.describe());
        int rc = 1;
        try {
            start_broker();
            if (postgres_) start_postgres();
            start_services();
            rc = drive(load_s);
        } catch (const std::exception& e) {
            say(std::string("error: ") + e.what());
            rc = 1;
        }
        stop_all();
        if (rc == 0 && !keep_) {
            fs::remove_all(dir_);
        } else {
            say("logs, journal and reports kept in " + dir_);
        }
        return rc;
    }

  private:
    // Broker ---------------------------------------------------------------------------------
    // One broker (scripts/kafka.sh) or a KRaft cluster of --brokers nodes
    // (scripts/kafka-cluster.sh: RF 3, min.insync.replicas 2), its data in the work dir.
    std::string kafka_dir() const { return dir_ + "/kafka"; }
    bool clustered() const { return brokers_ > 1; }
    std::string kafka_log() const { return dir_ + "/kafka.sh.log"; }
    void start_broker() {
        const std::string cmd =
            clustered()
                ? shell_quote(std::string(ORDERPIPE_SOURCE_DIR) + "/scripts/kafka-cluster.sh") +
                      " start --nodes " + std::to_string(brokers_)
                : shell_quote(std::string(ORDERPIPE_SOURCE_DIR) + "/scripts/kafka.sh") +
                      " start --port auto";
        if (shell(cmd + " --data-dir " + shell_quote(kafka_dir()) + " --bootstrap-file " +
                  shell_quote(dir_ + "/bootstrap") + " >>" + shell_quote(kafka_log()) + " 2>&1") !=
            0)
            throw std::runtime_error("the broker did not start; see " + kafka_log());
        std::ifstream(dir_ + "/bootstrap") >> bootstrap_;
        if (bootstrap_.empty()) throw std::runtime_error("no bootstrap written by kafka.sh");
    }
    /// scripts/kafka-cluster.sh <args> on this run's cluster; throws when it fails.
    void cluster(const std::string& args) {
        if (shell(shell_quote(std::string(ORDERPIPE_SOURCE_DIR) + "/scripts/kafka-cluster.sh") +
                  " " + args + " --data-dir " + shell_quote(kafka_dir()) + " >>" +
                  shell_quote(kafka_log()) + " 2>&1") != 0)
            throw std::runtime_error("kafka-cluster.sh " + args + " failed; see " + kafka_log());
    }

    struct Partition {
        std::string topic;
        int partition = 0;
        int leader = -1;
        std::size_t replicas = 0, isr = 0;
    };
    /// The cluster's metadata as one live node answers it (kcat -L -J), internal topics too.
    std::vector<Partition> metadata() const {
        const json m =
            json::parse(capture("kcat -L -J -m 10 -b " + shell_quote(bootstrap_) + " 2>/dev/null"),
                        nullptr, false);
        if (!m.is_object() || !m.contains("topics") || !m["topics"].is_array())
            throw std::runtime_error("kcat -L gave no metadata for " + bootstrap_);
        std::vector<Partition> out;
        for (const auto& t : m["topics"]) {
            for (const auto& p : t.value("partitions", json::array())) {
                out.push_back({t.value("topic", ""), p.value("partition", 0), p.value("leader", -1),
                               p.value("replicas", json::array()).size(),
                               p.value("isrs", json::array()).size()});
            }
        }
        return out;
    }
    /// The node leading most partitions of the pipeline's topics (ties: the leader of
    /// orders.events partition 0), and why.
    std::pair<int, std::string> busiest_leader() const {
        std::map<int, int> led;
        int tie = -1, total = 0;
        for (const auto& p : metadata()) {
            if (p.topic.starts_with("__") || p.leader < 0) continue;
            ++led[p.leader];
            ++total;
            if (p.topic == "orders.events" && p.partition == 0) tie = p.leader;
        }
        if (led.empty()) throw std::runtime_error("no partition has a leader");
        auto best = led.begin();
        for (auto it = led.begin(); it != led.end(); ++it) {
            if (it->second > best->second || (it->second == best->second && it->first == tie))
                best = it;
        }
        return {best->first, "leads " + std::to_string(best->second) + " of " +
                                 std::to_string(total) + " partitions of the pipeline's topics"};
    }
    /// The node coordinating the order intake's transactions (the leader of its
    /// __transaction_state partition), and why.
    std::pair<int, std::string> coordinator_of(const std::string& transactional_id) const {
        const auto parts = metadata();
        int count = 0;
        for (const auto& p : parts) count += p.topic == "__transaction_state" ? 1 : 0;
        if (count == 0) throw std::runtime_error("no __transaction_state in the metadata");
        const int wanted = transaction_state_partition(transactional_id, count);
        for (const auto& p : parts) {
            if (p.topic == "__transaction_state" && p.partition == wanted && p.leader >= 0)
                return {p.leader, "coordinates transactional.id " + transactional_id +
                                      " (__transaction_state partition " + std::to_string(wanted) +
                                      ")"};
        }
        throw std::runtime_error("__transaction_state partition " + std::to_string(wanted) +
                                 " has no leader");
    }
    /// Waits until every partition has a leader and its whole replica set in sync; @returns
    /// the seconds it took.
    double wait_full_isr(std::chrono::seconds deadline) const {
        const auto t0 = Clock::now();
        for (;;) {
            std::string missing;
            try {
                for (const auto& p : metadata()) {
                    if (p.leader < 0 || p.isr < p.replicas) {
                        missing = p.topic + "[" + std::to_string(p.partition) + "] has " +
                                  std::to_string(p.isr) + " of " + std::to_string(p.replicas) +
                                  " replicas in sync, leader " + std::to_string(p.leader);
                        break;
                    }
                }
            } catch (const std::exception& e) {
                missing = e.what();
            }
            if (missing.empty()) return std::chrono::duration<double>(Clock::now() - t0).count();
            if (Clock::now() - t0 > deadline)
                throw std::runtime_error("the cluster did not heal within " +
                                         std::to_string(deadline.count()) + " s: " + missing);
            std::this_thread::sleep_for(250ms);
        }
    }
    void kill_broker() {
        std::string pid;
        std::ifstream(kafka_dir() + "/kafka.pid") >> pid;
        if (pid.empty()) throw std::runtime_error("no kafka.pid in " + kafka_dir());
        shell("kill -KILL " + pid + " 2>/dev/null; while kill -0 " + pid +
              " 2>/dev/null; do sleep 0.1; done");
    }

    // PostgreSQL (--postgres) ---------------------------------------------------------------
    // One server (scripts/postgres.sh, data in the work dir), one database per service.
    std::string pg_dir() const { return dir_ + "/postgres"; }
    int postgres(const std::string& args) const {
        return shell(shell_quote(std::string(ORDERPIPE_SOURCE_DIR) + "/scripts/postgres.sh") + " " +
                     args + " --data-dir " + shell_quote(pg_dir()) + " >>" +
                     shell_quote(dir_ + "/postgres.log") + " 2>&1");
    }
    void start_postgres() {
        std::string args = "start --url-file " + shell_quote(dir_ + "/database-url");
        for (const auto& db : {"orders", "inventory", "notification", "analytics"})
            args += std::string(" --database ") + db;
        if (postgres(args) != 0)
            throw std::runtime_error("PostgreSQL did not start; see " + dir_ + "/postgres.log");
        std::string url;
        std::ifstream(dir_ + "/database-url") >> url;
        database_base_ = url.substr(0, url.rfind('/') + 1);
        if (database_base_.empty()) throw std::runtime_error("no URL written by postgres.sh");
    }
    /// A service's DATABASE_URL (one database per service).
    std::string database_url(const std::string& service) const {
        if (service.starts_with("order-service")) return database_base_ + "orders";
        if (service.starts_with("inventory-service")) return database_base_ + "inventory";
        if (service.starts_with("notification-service")) return database_base_ + "notification";
        return database_base_ + "analytics";
    }

    // Services -------------------------------------------------------------------------------
    std::uint16_t port_of(const std::string& name) const { return ports_.at(name); }
    /// The order-service instance a client's next attempt goes to: with two, each attempt
    /// to the other one than the last (a retry reaches the instance that did not answer).
    std::string order_instance() {
        if (!postgres_) return "order-service";
        return "order-service-" +
               std::to_string(1 + (next_order_instance_++ % static_cast<unsigned>(instances_)));
    }
    /// The i-th instance (1, 2) of `service` (the only one without --postgres).
    std::string instance(const std::string& service, int i) const {
        return postgres_ ? service + "-" + std::to_string(i) : service;
    }
    std::string url(const std::string& name) const {
        return "http://127.0.0.1:" + std::to_string(port_of(name));
    }

    void start_services() {
        const std::string topics_cmd =
            "BUILD_DIR=" + shell_quote(ORDERPIPE_BINARY_DIR) + " " +
            shell_quote(std::string(ORDERPIPE_SOURCE_DIR) + "/scripts/create-topics.sh") +
            " --bootstrap " + bootstrap_ +
            (clustered() ? " --replication-factor " + std::to_string(std::min(brokers_, 3)) : "") +
            " >>" + shell_quote(kafka_log()) + " 2>&1";
        if (shell(topics_cmd) != 0) throw std::runtime_error("creating the topics failed");

        catalog_ = {{"LAPTOP-001", "999.99", 400},
                    {"MOUSE-001", "29.99", 2000},
                    {"KEYBOARD-001", "79.99", 800},
                    {"MONITOR-001", "249.00", 150},
                    {"HEADSET-001", "59.50", 600}};
        // Stock runs short for the scarce SKUs at the long run's size too: some orders are
        // cancelled for stock, and many race for the last units.
        const double scale = std::max(1.0, static_cast<double>(mode_.orders) / 3000.0);
        json seed = json::array();
        for (auto& c : catalog_) {
            c.stock = static_cast<long>(static_cast<double>(c.stock) * scale);
            seed.push_back(
                {{"sku", c.sku}, {"name", c.sku}, {"unit_price", c.price}, {"stock", c.stock}});
        }
        std::ofstream(dir_ + "/catalog.json") << seed.dump(2);

        ports_["fake-email-provider"] = free_port();
        for (const auto& n : services_) ports_[n] = free_port();
        const std::map<std::string, std::string> common{
            {"KAFKA_BOOTSTRAP_SERVERS", bootstrap_},
            {"LOG_LEVEL", "info"},
            {"INVENTORY_SEED", dir_ + "/catalog.json"},
            {"ORDER_TIMEOUT", "15s"},
            {"COMMIT_TIMEOUT", "5s"},
            {"SHUTDOWN_TIMEOUT", "10s"},
            {"NOTIFY_EMAIL_URL", url("fake-email-provider") + "/send"},
            {"NOTIFY_TIMEOUT_MS", std::to_string(kNotifyTimeout.count())},
            {"NOTIFY_BACKOFF_MS", "200"},
            {"NOTIFY_BREAKER_OPEN_MS", "1000"},
            {"NOTIFY_MAX_IN_FLIGHT", std::to_string(kNotifyMaxInFlight)}};
        auto add = [&](const std::string& name, const char* binary,
                       std::map<std::string, std::string> more) {
            auto env = common;
            env["HTTP_PORT"] = std::to_string(port_of(name));
            env["DATA_DIR"] = dir_ + "/" + name;
            for (auto& [k, v] : more) env[k] = v;
            procs_[name] = std::make_unique<Process>(name, binary, env, dir_ + "/" + name + ".log");
        };
        // Like many real email APIs, it does not honour Idempotency-Key: a notification sent
        // twice is two emails, and the checker bounds how often that may happen.
        add("fake-email-provider", FAKE_EMAIL_PROVIDER_BIN,
            {{"LOG_LEVEL", "warn"}, {"PROVIDER_DEDUPE", "off"}});
        for (const auto& name : services_) {
            const char* binary = name.starts_with("order-service")       ? ORDER_SERVICE_BIN
                                 : name.starts_with("inventory-service") ? INVENTORY_SERVICE_BIN
                                 : name.starts_with("notification")      ? NOTIFICATION_SERVICE_BIN
                                                                         : ANALYTICS_SERVICE_BIN;
            std::map<std::string, std::string> more;
            // INSTANCE_ID: the instance's number (the default 0 when it is the only one).
            if (const auto dash = name.find_last_of('-');
                std::isdigit(static_cast<unsigned char>(name[dash + 1])))
                more["INSTANCE_ID"] = name.substr(dash + 1);
            if (postgres_) more["DATABASE_URL"] = database_url(name);
            add(name, binary, more);
        }
        for (auto& [name, p] : procs_) p->start();
        wait_all_ready(120s);
        say("pipeline ready: order-service on " + url(instance("order-service", 1)) + ", broker " +
            bootstrap_ + (postgres_ ? ", PostgreSQL " + database_base_ : ""));
    }

    void wait_all_ready(std::chrono::seconds deadline) {
        Http http;
        const auto until = Clock::now() + deadline;
        for (auto& [name, p] : procs_) {
            const char* probe = name == "fake-email-provider" ? "/sent" : "/readyz";
            while (!ready(http, port_of(name), probe)) {
                if (Clock::now() > until)
                    throw std::runtime_error(name + " is not ready; see " + p->log());
                std::this_thread::sleep_for(200ms);
            }
        }
    }

    /// Restarts a service that exited by itself (a supervisor's job: systemd, Kubernetes).
    void supervise() {
        std::lock_guard lock(faults_mu_);
        for (auto& [name, p] : procs_) {
            if (auto code = p->reap()) {
                ++self_exits_;
                lost(name, p->started_at(), utc_now());  // died some time since its start
                say(name + " exited by itself with code " + std::to_string(*code) +
                    "; restarting it");
                // The injected crashes are SIGKILLs and the services' own exits are codes:
                // dying of a fault signal is a defect, whatever the invariants say after it.
                const int sig = *code - 128;
                if (sig == SIGSEGV || sig == SIGBUS || sig == SIGFPE || sig == SIGILL ||
                    sig == SIGABRT) {
                    crash_reports_.push_back(name + " died of signal " + std::to_string(sig) +
                                             " at " + utc_now() + ": its crash report is in " +
                                             p->log() + ", a core (if the system wrote one) in " +
                                             p->cores());
                    say("FAILED: " + crash_reports_.back());
                }
                p->start();
            }
        }
    }

    void stop_all() {
        for (auto& [name, p] : procs_) p->terminate(15s);
        if (postgres_) postgres("stop");
        if (!bootstrap_.empty()) {
            shell(shell_quote(std::string(ORDERPIPE_SOURCE_DIR) +
                              (clustered() ? "/scripts/kafka-cluster.sh" : "/scripts/kafka.sh")) +
                  " stop --data-dir " + shell_quote(kafka_dir()) + " >>" +
                  shell_quote(kafka_log()) + " 2>&1");
        }
    }

    // Faults ---------------------------------------------------------------------------------
    void provider_rule(const json& rule) {
        Http http;
        const auto a = http.request("POST", url("fake-email-provider") + "/admin/rules",
                                    rule.dump(), {"Content-Type: application/json"});
        if (a.status != 201) {
            throw std::runtime_error("the provider refused the rule " + rule.dump() + ": " +
                                     std::to_string(a.status) + " " + a.body);
        }
    }
    /// Back to accepting every request; says how many requests the rules struck.
    void provider_heal() {
        Http http;
        const auto rules = http.request("GET", url("fake-email-provider") + "/admin/rules");
        const json list = json::parse(rules.body, nullptr, false);
        if (list.is_array() && !list.empty()) {
            long struck = 0;
            for (const auto& r : list) struck += r.value("applied", 0L);
            say("provider healed; its failure rules struck " + std::to_string(struck) +
                " requests");
        }
        http.request("DELETE", url("fake-email-provider") + "/admin/rules");
    }

    void strike(const Fault& f) {
        const auto hold = std::chrono::milliseconds(static_cast<long>(f.hold_s * 1000));
        say("fault: " + f.describe());
        if (f.kind == "crash") {
            // It dies by itself at its nth commit with records produced: an open transaction
            // the next instance must abort. The supervisor restarts it (without the fault).
            std::lock_guard lock(faults_mu_);
            const auto from = utc_now();
            procs_.at(f.target)->kill_hard();
            lost(f.target, from, utc_now());
            procs_.at(f.target)->start(
                {{"FAULT_INJECT", "*:kill-before-commit:" + std::to_string(f.nth)}});
            ++crashes_;
        } else if (f.kind == "kill") {
            const auto from = utc_now();
            {
                std::lock_guard lock(faults_mu_);
                procs_.at(f.target)->kill_hard();
            }
            std::this_thread::sleep_for(hold);  // down for a while: the fault's length
            std::lock_guard lock(faults_mu_);
            procs_.at(f.target)->start();
            lost(f.target, from, utc_now());
            ++kills_;
        } else if (f.kind == "pause" || f.kind == "zombie") {
            // Stopped longer than its session, its partitions move on with its sends out. Once
            // it wakes, a send it had out may still reach the provider (within its
            // NOTIFY_TIMEOUT_MS) before it learns that its partitions moved: lost until then.
            const auto from = utc_now();
            procs_.at(f.target)->pause();
            std::this_thread::sleep_for(hold);
            procs_.at(f.target)->resume();
            lost(f.target, from, utc_now(kNotifyTimeout + 500ms));
            ++pauses_;
        } else if (f.kind == "broker") {
            kill_broker();
            std::this_thread::sleep_for(hold);
            start_broker();
            ++broker_restarts_;
        } else if (f.kind == "leader-kill" || f.kind == "coordinator-kill") {
            const auto [node, why] =
                f.kind == "leader-kill"
                    ? busiest_leader()
                    : coordinator_of(postgres_ ? "order-service-1" : "order-service-0");
            const std::string n = std::to_string(node);
            say("  node " + n + " " + why);
            BrokerFault w{f.kind + " node " + n, since_start()};
            cluster("kill " + n);
            std::this_thread::sleep_for(hold);
            cluster("start-node " + n);
            w.back_s = since_start() - w.start_s;
            w.isr_s = w.back_s + wait_full_isr(180s);
            w.end_s = since_start();
            record(w);
            ++node_faults_;
        } else if (f.kind == "rolling") {
            for (int node = 1; node <= brokers_; ++node) {
                const std::string n = std::to_string(node);
                BrokerFault w{"rolling: node " + n + " stopped and started", since_start()};
                cluster("stop-node " + n);
                cluster("start-node " + n);
                w.back_s = since_start() - w.start_s;
                w.isr_s = w.back_s + wait_full_isr(180s);
                w.end_s = since_start();
                record(w);
            }
            ++node_faults_;
        } else if (f.kind == "postgres") {
            // Every instance loses its database at once: loops back off, /readyz says so,
            // intakes answer 503; nothing may be lost or doubled when it is back.
            postgres("kill");
            std::this_thread::sleep_for(hold);
            if (postgres("start") != 0) throw std::runtime_error("PostgreSQL did not come back");
            ++postgres_restarts_;
        } else if (f.kind == "provider-fail") {
            provider_rule({{"answer", "503"}});
            std::this_thread::sleep_for(hold);
            provider_heal();
            ++provider_outages_;
        } else if (f.kind == "provider-hang") {
            provider_rule({{"answer", "timeout"}});
            std::this_thread::sleep_for(hold);
            provider_heal();
            ++provider_outages_;
        } else if (f.kind == "provider-refuse") {
            // Permanent errors for a share of requests: those go to the DLQ at once.
            provider_rule({{"answer", "400"}, {"rate", 0.2}});
            std::this_thread::sleep_for(hold);
            provider_heal();
            ++provider_outages_;
        }
    }

    // What clients and probes saw while a broker node was away ---------------------------------
    struct BrokerFault {
        std::string what;
        double start_s = 0;  ///< since the driver started
        double back_s = 0;   ///< the node answered again, after the start
        double isr_s = 0;    ///< every partition fully in sync again, after the start
        double end_s = 0;
    };
    struct Attempt {
        double sent_s, took_s;  ///< since the driver started; how long the answer took
        long status;            ///< 0: none
    };
    void record(const BrokerFault& w) {
        std::lock_guard lock(observed_mu_);
        broker_faults_.push_back(w);
    }

    /// Polls every service's /readyz 4 times a second and keeps the changes.
    void watch_readiness(const std::atomic<bool>& stop) {
        Http http;
        std::map<std::string, bool> last;
        while (!stop) {
            for (const auto& name : services_) {
                const bool r = http.request("GET", url(name) + "/readyz", "", {}, 1s).status == 200;
                if (auto it = last.find(name); it == last.end() || it->second != r) {
                    last[name] = r;
                    std::lock_guard lock(observed_mu_);
                    readiness_.push_back({since_start(), name, r});
                }
            }
            std::this_thread::sleep_for(250ms);
        }
    }
    struct ReadinessChange {
        double at_s;
        std::string service;
        bool ready;
    };

    /// One line and one JSON object per node fault: the intake's answers from the fault until 5 s
    /// after the cluster healed, its longest stretch without a 201, its slowest answer, and how
    /// long each service said "not ready".
    void report_broker_faults() {
        std::lock_guard lock(observed_mu_);
        json all = json::array();
        for (const auto& w : broker_faults_) {
            const double from = w.start_s, to = w.end_s + 5;
            std::map<long, long> by_status;
            double slowest = 0, last_201 = from, gap = 0;
            std::vector<double> done_201;
            for (const auto& a : attempts_) {
                if (a.sent_s < from || a.sent_s > to) continue;
                ++by_status[a.status];
                slowest = std::max(slowest, a.took_s);
                if (a.status == 201) done_201.push_back(a.sent_s + a.took_s);
            }
            std::sort(done_201.begin(), done_201.end());
            for (double t : done_201) {
                gap = std::max(gap, t - last_201);
                last_201 = t;
            }
            gap = std::max(gap, to - last_201);
            json not_ready = json::object();
            for (const auto& name : services_) {
                // Ready at `from` unless the last change before it says otherwise.
                bool ready = true;
                double since = from, down = 0;
                for (const auto& c : readiness_) {
                    if (c.service != name) continue;
                    if (c.at_s <= from) {
                        ready = c.ready;
                        continue;
                    }
                    if (c.at_s > to) break;
                    if (!ready) down += c.at_s - since;
                    ready = c.ready;
                    since = c.at_s;
                }
                if (!ready) down += to - since;
                not_ready[name] = std::round(down * 10) / 10;
            }
            json statuses = json::object();
            std::string tally;
            for (const auto& [st, n] : by_status) {
                statuses[st == 0 ? "none" : std::to_string(st)] = n;
                tally += " " + (st == 0 ? std::string("none") : std::to_string(st)) + ":" +
                         std::to_string(n);
            }
            std::ostringstream o;
            o << std::fixed << std::setprecision(1) << w.what << ": node back after " << w.back_s
              << " s, full ISR after " << w.isr_s << " s; intake attempts" << tally
              << "; longest without a 201 " << gap << " s; slowest answer " << slowest
              << " s; not ready:";
            for (const auto& [name, d] : not_ready.items()) {
                if (d.get<double>() > 0) o << " " << name << " " << d.get<double>() << " s";
            }
            if (std::all_of(not_ready.begin(), not_ready.end(),
                            [](const json& d) { return d.get<double>() == 0; }))
                o << " none";
            say(o.str());
            all.push_back({{"fault", w.what},
                           {"node_back_s", w.back_s},
                           {"full_isr_s", w.isr_s},
                           {"intake_attempts", statuses},
                           {"longest_without_201_s", gap},
                           {"slowest_answer_s", slowest},
                           {"not_ready_s", not_ready}});
        }
        if (!broker_faults_.empty()) std::ofstream(dir_ + "/broker-faults.json") << all.dump(2);
    }

    // Load -----------------------------------------------------------------------------------
    void journal(const json& line) {
        std::lock_guard lock(journal_mu_);
        journal_ << line.dump() << "\n";
        if (line["op"] == "place") ++answers_[line["status"].get<long>()];
    }
    /// A notification-service instance lost between `from` and `until` with its sends out: the
    /// checker allows notifications the provider had accepted to reach it again only across
    /// such a loss, at most NOTIFY_MAX_IN_FLIGHT per loss.
    void lost(const std::string& service, const std::string& from, const std::string& until) {
        if (service.rfind("notification-service", 0) != 0) return;
        journal({{"op", "lost"},
                 {"service", service},
                 {"from", from},
                 {"until", until},
                 {"max_in_flight", kNotifyMaxInFlight}});
    }

    /// POSTs until the answer is final (not 409/429/5xx/none) or `give_up` passes.
    Answer post_until_final(Http& http, const std::string& target, const std::string& body,
                            const std::vector<std::string>& headers) {
        auto backoff = 100ms;
        const auto give_up = Clock::now() + 120s;
        for (;;) {
            const double sent = since_start();
            Answer a = http.request("POST", url(order_instance()) + target, body, headers, 30s);
            if (target == "/orders") {
                std::lock_guard lock(observed_mu_);
                attempts_.push_back({sent, since_start() - sent, a.status});
            }
            const bool retry =
                a.status == 0 || a.status == 409 || a.status == 429 || a.status >= 500;
            if (!retry || Clock::now() > give_up) return a;
            // 409 on a cancel is final: the order is already cancelled.
            if (a.status == 409 && target.find("/cancel") != std::string::npos) return a;
            std::this_thread::sleep_for(backoff);
            backoff = std::min<std::chrono::milliseconds>(backoff * 2, 2s);
        }
    }

    void place(Http& http, long i, std::mt19937_64& rng) {
        const std::string customer = "chaos-" + std::to_string(seed_) + "-" + std::to_string(i);
        json items = json::array();
        const int lines = std::uniform_int_distribution<>(1, 2)(rng);
        for (int l = 0; l < lines; ++l) {
            const auto& c =
                catalog_[std::uniform_int_distribution<std::size_t>(0, catalog_.size() - 1)(rng)];
            items.push_back({{"sku", c.sku},
                             {"quantity", std::uniform_int_distribution<>(1, 3)(rng)},
                             {"unit_price", c.price}});
        }
        const int kind = std::uniform_int_distribution<>(0, 99)(rng);
        if (kind == 0) items[0]["sku"] = "GHOST-001";    // unknown: cancelled with UNKNOWN_SKU
        if (kind == 1) items[0]["quantity"] = 0;         // invalid: 422, nothing committed
        if (kind == 2) items[0]["unit_price"] = "0.01";  // not the catalog's: PRICE_MISMATCH
        const json body = {{"customer_id", customer},
                           {"customer_email", customer + "@example.com"},
                           {"currency", "USD"},
                           {"items", items}};
        const bool cancel = std::uniform_int_distribution<>(0, 99)(rng) < 5;
        const Answer a =
            post_until_final(http, "/orders", body.dump(),
                             {"Content-Type: application/json", "Idempotency-Key: " + customer});
        std::string order_id;
        if (a.status == 201) {
            const json v = json::parse(a.body, nullptr, false);
            if (v.is_object()) order_id = v.value("order_id", "");
        }
        journal({{"op", "place"},
                 {"customer_id", customer},
                 {"status", a.status},
                 {"order_id", order_id}});
        if (cancel && !order_id.empty()) {
            // Now, or once it is likely decided: a cancel of a PENDING order and of a CONFIRMED one
            // (its stock is released) are different paths.
            std::this_thread::sleep_for(
                std::chrono::milliseconds(std::uniform_int_distribution<>(0, 1)(rng) * 400));
            const Answer c = post_until_final(http, "/orders/" + order_id + "/cancel", "", {});
            journal({{"op", "cancel"}, {"order_id", order_id}, {"status", c.status}});
        }
    }

    int drive(double load_s) {
        journal_.open(dir_ + "/journal.jsonl");
        std::atomic<long> next{0};
        std::atomic<long> done{0};
        const auto t0 = Clock::now();
        const auto period = std::chrono::duration<double>(1.0 / mode_.rate);
        std::vector<std::thread> workers;
        for (int w = 0; w < 48; ++w) {
            workers.emplace_back([&] {
                Http http;
                for (;;) {
                    const long i = next++;
                    if (i >= mode_.orders) return;
                    std::this_thread::sleep_until(t0 + std::chrono::duration_cast<Clock::duration>(
                                                           period * static_cast<double>(i)));
                    std::mt19937_64 rng(seed_ * 1'000'003ULL + static_cast<std::uint64_t>(i));
                    place(http, i, rng);
                    ++done;
                }
            });
        }
        std::atomic<bool> faults_done{false};
        std::atomic<bool> load_done{false};
        std::thread readiness([&] { watch_readiness(load_done); });
        std::thread schedule([&] {
            for (const auto& f : faults_) {
                std::this_thread::sleep_until(t0 + std::chrono::duration_cast<Clock::duration>(
                                                       std::chrono::duration<double>(f.at_s)));
                try {
                    strike(f);
                } catch (const std::exception& e) {
                    say("fault " + f.describe() + " failed: " + e.what());
                    fault_errors_++;
                }
            }
            faults_done = true;
        });
        long last = -1;
        while (done < mode_.orders || !faults_done) {
            supervise();
            std::this_thread::sleep_for(500ms);
            const auto now = Clock::now();
            if (now - last_progress_ > 10s) {
                last_progress_ = now;
                if (done != last)
                    say("orders answered " + std::to_string(done.load()) + " of " +
                        std::to_string(mode_.orders));
                last = done;
            }
        }
        schedule.join();
        for (auto& w : workers) w.join();
        load_done = true;
        readiness.join();
        std::string tally;
        for (const auto& [status, n] : answers_) {
            tally += " " + std::to_string(status) + ":" + std::to_string(n);
        }
        say("load done in " +
            std::to_string(
                static_cast<long>(std::chrono::duration<double>(Clock::now() - t0).count())) +
            " s (planned " + std::to_string(static_cast<long>(load_s)) + " s); answers" + tally);
        say("faults struck: " + std::to_string(kills_) + " SIGKILLs, " + std::to_string(crashes_) +
            " restarts to crash inside a transaction, " + std::to_string(pauses_) + " SIGSTOPs, " +
            std::to_string(broker_restarts_) + " broker restarts, " + std::to_string(node_faults_) +
            " cluster node faults, " + std::to_string(postgres_restarts_) +
            " PostgreSQL restarts, " + std::to_string(provider_outages_) + " provider outages; " +
            std::to_string(self_exits_) + " exits by themselves (the injected crashes among them)");
        report_broker_faults();

        // Settle: everyone running and ready, the provider healthy, and no fault left to strike
        // later: a crash planned for the nth commit that the load did not reach is disarmed (a
        // graceful restart), or it would strike during the checks and the DLQ replay, where no
        // supervisor restarts it and no loss is journaled.
        provider_heal();
        for (auto& [name, p] : procs_) p->resume();
        supervise();
        for (auto& [name, p] : procs_) {
            std::lock_guard lock(faults_mu_);
            if (!p->armed()) continue;
            say(name +
                ": its injected crash did not strike during the load; restarting it "
                "without it");
            const auto from = utc_now();
            if (p->terminate(15s) != 0) lost(name, from, utc_now());  // not a clean stop
            p->start();
        }
        wait_all_ready(180s);
        {
            std::lock_guard lock(journal_mu_);
            journal_.close();
        }
        say("every service ready again; checking");

        // With two instances of each service, the checker asks each one in turn: every order
        // readable from every order-service, the same stock from every inventory, analytics
        // equal to the topics on every instance.
        const auto check_with = [&](int i) {
            return shell_quote(ORDERPIPE_CHECK_BIN) + " --bootstrap " + bootstrap_ +
                   " --order-url " + url(instance("order-service", i)) + " --inventory-url " +
                   url(instance("inventory-service", i)) + " --analytics-url " +
                   url(instance("analytics-service", i)) + " --provider-url " +
                   url("fake-email-provider") + " --journal " +
                   shell_quote(dir_ + "/journal.jsonl") + " --catalog " +
                   shell_quote(dir_ + "/catalog.json") + " --wait 180";
        };
        const std::string check = check_with(1);
        int first = shell(check + " --json " + shell_quote(dir_ + "/check-1.json"));
        for (int i = 2; i <= instances_; ++i) {
            const int other =
                shell(check_with(i) + " --json " +
                      shell_quote(dir_ + "/check-1-instances-" + std::to_string(i) + ".json"));
            say("check through the instances " + std::to_string(i) + ": " +
                (other == 0 ? "every invariant holds" : "FAILED"));
            if (first == 0) first = other;
        }
        say(std::string("check before the DLQ replay: ") +
            (first == 0 ? "every invariant holds" : "FAILED"));

        // Two operators replaying the DLQ at once: every dead letter must be replayed once
        // (one ledger entry, one new request, one outcome), whoever wins. The one that loses
        // the race is fenced before it reads the ledger (exit 1, "another dlqctl took over"),
        // or finds every dead letter resolved (exit 0, nothing replayed).
        const auto replay_cmd = [&](const std::string& log) {
            return shell_quote(DLQCTL_BIN) + " --bootstrap " + bootstrap_ +
                   " replay --yes --note chaos >" + shell_quote(dir_ + "/" + log) + " 2>&1";
        };
        auto other = std::async(std::launch::async,
                                [&] { return shell(replay_cmd("dlqctl-concurrent.log")); });
        const int mine = shell(replay_cmd("dlqctl.log"));
        const int theirs = other.get();
        const auto took_over = [&](const std::string& log) {
            std::ifstream in(dir_ + "/" + log);
            const std::string text((std::istreambuf_iterator<char>(in)), {});
            return text.find("another dlqctl took over") != std::string::npos;
        };
        const bool replay_ok =
            (mine == 0 || (mine == 1 && took_over("dlqctl.log"))) &&
            (theirs == 0 || (theirs == 1 && took_over("dlqctl-concurrent.log"))) &&
            (mine == 0 || theirs == 0);
        say("two dlqctl replay at once: exit " + std::to_string(mine) + " and " +
            std::to_string(theirs) + " (" + dir_ + "/dlqctl.log, dlqctl-concurrent.log)" +
            (replay_ok ? "" : ": FAILED"));
        int second = shell(check + " --json " + shell_quote(dir_ + "/check-2.json"));
        for (int i = 2; i <= instances_ && second == 0; ++i) {
            second = shell(check_with(i) + " --json " +
                           shell_quote(dir_ + "/check-2-instances-" + std::to_string(i) + ".json"));
        }
        say(std::string("check after the DLQ replay: ") +
            (second == 0 ? "every invariant holds" : "FAILED"));
        if (fault_errors_ > 0) say(std::to_string(fault_errors_) + " faults could not be applied");
        for (const auto& c : crash_reports_) say("FAILED: " + c);
        return first == 0 && second == 0 && replay_ok && fault_errors_ == 0 &&
                       crash_reports_.empty()
                   ? 0
                   : 1;
    }

    std::uint64_t seed_;
    Mode mode_;
    int brokers_;
    bool postgres_;
    int instances_;                      ///< of each service (--postgres; else 1)
    std::vector<std::string> services_;  ///< service_instances()
    std::string database_base_;          ///< PostgreSQL URL up to the database name
    std::atomic<unsigned> next_order_instance_{0};
    std::string dir_;
    bool keep_;
    std::mt19937_64 rng_;
    std::vector<Fault> faults_;
    std::string bootstrap_;
    std::vector<Catalog> catalog_;
    std::map<std::string, std::uint16_t> ports_;
    std::map<std::string, std::unique_ptr<Process>> procs_;
    std::mutex faults_mu_;  ///< kill/restart vs the supervisor
    std::mutex journal_mu_;
    std::ofstream journal_;
    std::map<long, long> answers_;  ///< final POST /orders answers by status (journal_mu_)
    std::atomic<int> kills_{0}, crashes_{0}, pauses_{0}, broker_restarts_{0}, node_faults_{0},
        postgres_restarts_{0}, provider_outages_{0}, self_exits_{0}, fault_errors_{0};
    std::mutex observed_mu_;
    std::vector<Attempt> attempts_;           ///< every POST /orders (observed_mu_)
    std::vector<ReadinessChange> readiness_;  ///< (observed_mu_)
    std::vector<BrokerFault> broker_faults_;  ///< (observed_mu_)
    std::vector<std::string> crash_reports_;  ///< deaths by a fault signal (faults_mu_)
    Clock::time_point last_progress_ = Clock::now();
};

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{
        "orderpipe-chaos: the pipeline under seeded faults, then orderpipe-check "
        "(docs/RELIABILITY.md)"};
    std::string mode_name = "short";
    std::uint64_t seed = std::random_device{}();
    if (const char* s = std::getenv("ORDERPIPE_CHAOS_SEED"); s != nullptr && *s != '\0') {
        try {
            seed = std::stoull(s);
        } catch (const std::exception&) {
            std::cerr << "orderpipe-chaos: ORDERPIPE_CHAOS_SEED=\"" << s
                      << "\": expected a non-negative integer\n";
            return 2;
        }
    }
    long orders = 0;
    double rate = 0;
    std::string dir;
    bool keep = false;
    int brokers = 1;
    bool postgres = false;
    int instances = 2;
    app.add_option("--mode", mode_name,
                   "short (CI: 3,000 orders at 30/s) or long (100,000 orders at 250/s)")
        ->check(CLI::IsMember({"short", "long"}));
    app.add_option("--brokers", brokers,
                   "1: one broker, SIGKILLed and restarted; 3: a KRaft cluster (RF 3, "
                   "min.insync.replicas 2) whose leader, transaction coordinator and every node "
                   "in turn are stopped")
        ->check(CLI::IsMember({1, 3}));
    app.add_option("--seed", seed, "the schedule's seed [ORDERPIPE_CHAOS_SEED; default random]");
    app.add_option("--orders", orders, "orders to place (default by mode)")
        ->check(CLI::PositiveNumber);
    app.add_option("--rate", rate, "orders per second (default by mode)")
        ->check(CLI::PositiveNumber);
    app.add_option("--work-dir", dir, "logs, journal and reports [a fresh dir under /tmp]");
    app.add_flag("--keep", keep, "keep the work dir when the run passes");
    app.add_flag("--postgres", postgres,
                 "two (--instances) of every service on PostgreSQL (one database per service, "
                 "DATABASE_URL), each SIGKILLed and restarted, and the database server too");
    app.add_option("--instances", instances, "with --postgres: instances of every service")
        ->check(CLI::Range(2, 3));
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        const int code = app.exit(e);
        return code == 0 ? 0 : 2;  // bad usage: exit code 2
    }

    Mode mode = mode_name == "long" ? Mode{"long", 100000, 250, 5, 2, 2, 4, 2}
                                    : Mode{"short", 3000, 30, 2, 1, 1, 2, 1};
    if (brokers > 1) {
        // The node faults take longer than a single broker's restart: fewer service faults in
        // the short run (it stays ~3 minutes), the same in the long one.
        mode = mode_name == "long" ? Mode{"long", 100000, 250, 5, 2, 0, 4, 2, 2, 2, 1}
                                   : Mode{"short", 3000, 20, 1, 1, 0, 1, 1, 1, 1, 1};
    }
    if (postgres) {
        // Twice the instances to strike: one SIGKILL and one crash each, and the database.
        mode.kills_each = 1;
        mode.crashes_each = 1;
        mode.postgres_restarts = mode_name == "long" ? 3 : 1;
    }
    if (orders > 0) mode.orders = orders;
    if (rate > 0) mode.rate = rate;
    if (dir.empty())
        dir = "/tmp/orderpipe-chaos-" + std::to_string(seed) + "-" + std::to_string(getpid());
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return Chaos(seed, mode, brokers, postgres, instances, dir, keep).run();
}
