#include "orderpipe/runtime/runtime.hpp"

#include "orderpipe/common/faults.hpp"
#include "orderpipe/common/ids.hpp"
#include "orderpipe/common/json.hpp"
#include "orderpipe/common/logging.hpp"
#include "orderpipe/contract/topics.hpp"
#include "orderpipe/kafka/admin.hpp"
#include "orderpipe/kafka/consumer.hpp"

#include <curl/curl.h>
#include <prometheus/registry.h>
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <system_error>
#include <thread>

namespace orderpipe::runtime {

using Clock = std::chrono::steady_clock;

namespace {

constexpr auto kHealthInterval = std::chrono::seconds(1);
constexpr auto kMetadataTimeout = std::chrono::milliseconds(2000);
constexpr auto kTwinProbeTimeout = std::chrono::milliseconds(2000);

std::size_t append_body(char* data, std::size_t size, std::size_t n, void* out) {
    auto* body = static_cast<std::string*>(out);
    if (body->size() + size * n > 64 * 1024) return 0;  // more than a /livez answer: stop
    body->append(data, size * n);
    return size * n;
}

/// GET `url`: its JSON body when answered 200, else nullopt (refused, timed out, not JSON).
std::optional<nlohmann::json> http_get_json(const std::string& url,
                                            std::chrono::milliseconds timeout) {
    std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), curl_easy_cleanup);
    if (!curl) return std::nullopt;
    std::string body;
    curl_easy_setopt(curl.get(), CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl.get(), CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
    curl_easy_setopt(curl.get(), CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl.get(), CURLOPT_NOPROXY, "*");
    curl_easy_setopt(curl.get(), CURLOPT_WRITEFUNCTION, append_body);
    curl_easy_setopt(curl.get(), CURLOPT_WRITEDATA, &body);
    if (curl_easy_perform(curl.get()) != CURLE_OK) return std::nullopt;
    long status = 0;
    curl_easy_getinfo(curl.get(), CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) return std::nullopt;
    auto j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) return std::nullopt;
    return j;
}

std::string join(const std::vector<std::string>& items, const std::string& separator = ", ") {
    std::string out;
    for (const auto& i : items) out += (out.empty() ? "" : separator) + i;
    return out;
}

/// A stop flag with a timed wait that wakes at once on stop.
class Stopper {
  public:
    void stop() {
        {
            std::lock_guard lock(mu_);
            stopped_ = true;
        }
        flag_ = true;
        cv_.notify_all();
    }
    /// @returns false when stopped.
    bool sleep(std::chrono::milliseconds d) {
        std::unique_lock lock(mu_);
        return !cv_.wait_for(lock, d, [this] { return stopped_; });
    }
    const std::atomic<bool>& flag() const { return flag_; }

  private:
    std::mutex mu_;
    std::condition_variable cv_;
    bool stopped_ = false;
    std::atomic<bool> flag_{false};
};

}  // namespace

class Runtime::Impl {
  public:
    explicit Impl(Runtime& owner)
        : owner_(owner), registry_(std::make_shared<prometheus::Registry>()) {}

    Runtime& owner_;
    std::shared_ptr<prometheus::Registry> registry_;

    // configuration
    struct Route {
        std::string method;
        std::string pattern;
        http::Handler handler;
    };
    std::vector<Route> routes_;
    std::vector<std::pair<std::string, std::function<std::optional<std::string>()>>> checks_;
    std::vector<std::pair<std::string, std::function<std::string()>>> details_;
    std::vector<std::pair<std::string, StartupStep>> steps_;
    std::vector<std::pair<std::string, std::function<void()>>> stop_before_;
    std::vector<std::pair<std::string, std::function<void()>>> stop_after_;
    std::vector<LoopSpec> loop_specs_;
    std::vector<std::unique_ptr<kafka::ProcessingLoop>> loops_;
    std::set<std::string> topics_;  // every topic read or written

    // running
    std::unique_ptr<http::Server> http_;
    std::unique_ptr<kafka::AdminClient> admin_;
    Stopper stopper_;
    std::thread health_thread_;
    /// The database's probe, apart from Kafka's: a database that hangs never holds up /readyz's
    /// view of Kafka (nor Kafka's the database's).
    std::thread database_thread_;
    std::thread startup_thread_;
    int lock_fd_ = -1;
    /// This process among the incarnations of the instance: in /livez, to tell a live twin
    /// with the same INSTANCE_ID from this process when a dead predecessor's member points here.
    const std::string incarnation_ = new_uuid_v7();
    /// Markers of state files created by this start, removed once its checks passed.
    std::vector<std::string> unverified_;

    mutable std::mutex state_mu_;
    std::optional<std::string> kafka_problem_ = std::string("not checked yet");
    std::optional<std::string> database_problem_ = std::string("not checked yet");
    std::vector<std::string> missing_topics_;
    std::map<std::string, int> partition_counts_;  // guarded by state_mu_: the last listing
    std::vector<std::string> unauthorized_topics_;
    std::string startup_status_ = "not started";

    /// The longest a startup-hold or drain-hold fault holds.
    static constexpr std::chrono::milliseconds kFaultHold{10000};
    // /readyz answers given while starting and while draining (for the *-hold faults).
    std::atomic<long> readyz_starting_{0};
    std::atomic<long> readyz_draining_{0};

    /// Waits until `seen` holds, at most `limit` (or until the stop, with `stopper`): what the
    /// startup-hold and drain-hold faults do, so that a test sees those states whatever the
    /// machine's speed. @returns whether `seen` held.
    static bool hold_until(const std::function<bool()>& seen, std::chrono::milliseconds limit,
                           Stopper* stopper = nullptr) {
        const auto until = std::chrono::steady_clock::now() + limit;
        while (!seen()) {
            if (std::chrono::steady_clock::now() >= until) return false;
            const auto pause = std::chrono::milliseconds(5);  // polling interval
            if (stopper != nullptr) {
                if (!stopper->sleep(pause)) return false;
            } else {
                std::this_thread::sleep_for(pause);
            }
        }
        return true;
    }

    std::mutex exit_mu_;
    std::condition_variable exit_cv_;
    std::optional<int> exit_code_;

    void set_startup_status(std::string s) {
        std::lock_guard lock(state_mu_);
        startup_status_ = std::move(s);
    }

    http::Readiness readiness() {
        http::Readiness r;
        auto fail = [&](const std::string& key, const std::string& why) {
            r.checks[key] = why;
            if (r.ready) {
                r.ready = false;
                r.detail = key + ": " + why;
            }
        };
        if (owner_.draining_) {
            fail("lifecycle", "draining: the service is shutting down");
            readyz_draining_.fetch_add(1);
        } else {
            r.checks["lifecycle"] = "running";
        }
        {
            std::lock_guard lock(state_mu_);
            if (kafka_problem_) {
                fail("kafka", *kafka_problem_);
            } else {
                r.checks["kafka"] = "ok";
            }
            if (!unauthorized_topics_.empty()) {
                fail("topics",
                     "not authorized: " + join(unauthorized_topics_) +
                         " (this service's principal needs ACLs for them: "
                         "docs/SECURITY.md)" +
                         (missing_topics_.empty() ? std::string()
                                                  : "; missing: " + join(missing_topics_)));
            } else if (!missing_topics_.empty()) {
                fail("topics", "missing: " + join(missing_topics_) +
                                   " (create them with scripts/create-topics.sh)");
            } else if (!kafka_problem_) {
                r.checks["topics"] = "ok";
            }
            if (owner_.database_) {
                if (database_problem_) {
                    fail("database", *database_problem_);
                } else {
                    r.checks["database"] = "ok";
                }
            }
            if (!owner_.started_) {
                fail("startup", startup_status_);
                if (!owner_.draining_) readyz_starting_.fetch_add(1);
            } else {
                r.checks["startup"] = "done";
            }
        }
        for (std::size_t i = 0; i < loop_specs_.size(); ++i) {
            const std::string key = "loop " + loop_specs_[i].name;
            if (i >= loops_.size() || !owner_.started_) {
                r.checks[key] = "not started";
                continue;
            }
            auto status = loops_[i]->status();
            if (status.ready) {
                r.checks[key] = "ok";
            } else {
                fail(key, status.detail);
            }
        }
        for (const auto& [name, detail] : details_) {
            try {
                r.checks[name] = detail();
            } catch (const std::exception& e) {
                r.checks[name] = std::string("unknown: ") + e.what();
            }
        }
        for (const auto& [name, check] : checks_) {
            std::optional<std::string> why;
            try {
                why = check();
            } catch (const std::exception& e) {
                why = std::string("check failed: ") + e.what();
            }
            if (why) {
                fail(name, *why);
            } else {
                r.checks[name] = "ok";
            }
        }
        return r;
    }

    /// Asks the broker for the cluster's topics; updates the cached state.
    bool check_kafka() {
        std::map<std::string, int> present;
        try {
            present = admin_->topics(kMetadataTimeout);
        } catch (const std::exception& e) {
            std::lock_guard lock(state_mu_);
            if (!kafka_problem_ || kafka_problem_->rfind("unreachable", 0) != 0) {
                log::warn("Kafka unreachable",
                          {{"bootstrap", owner_.settings_.bootstrap_servers}, {"error", e.what()}});
            }
            kafka_problem_ =
                "unreachable at " + owner_.settings_.bootstrap_servers + ": " + e.what();
            return false;
        }
        std::vector<std::string> missing;
        for (const auto& t : topics_) {
            if (!present.contains(t)) missing.push_back(t);
        }
        // A topic this service has no ACL for is left out of the listing as if it did not
        // exist: ask for it by name to tell the two apart.
        std::vector<std::string> unauthorized;
        for (auto it = missing.begin(); it != missing.end();) {
            bool allowed = true;
            try {
                allowed = admin_->authorized(*it, kMetadataTimeout);
            } catch (const std::exception&) {
                // Unknown: keep calling it missing.
            }
            if (allowed) {
                ++it;
            } else {
                unauthorized.push_back(*it);
                it = missing.erase(it);
            }
        }
        std::lock_guard lock(state_mu_);
        partition_counts_ = present;
        if (kafka_problem_ && kafka_problem_->rfind("unreachable", 0) == 0) {
            log::info("Kafka reachable again", {{"bootstrap", owner_.settings_.bootstrap_servers}});
        }
        kafka_problem_.reset();
        if (missing != missing_topics_ && !missing.empty()) {
            log::warn("topics missing", {{"topics", join(missing)}});
        }
        if (unauthorized != unauthorized_topics_ && !unauthorized.empty()) {
            log::error(
                "not authorized to use topics: this service's principal lacks an ACL "
                "(docs/SECURITY.md)",
                {{"topics", join(unauthorized)}});
        }
        missing_topics_ = std::move(missing);
        unauthorized_topics_ = std::move(unauthorized);
        return missing_topics_.empty() && unauthorized_topics_.empty();
    }

    /// Where the state lives, for messages: "DATA_DIR ./data" or "the database postgresql://…".
    std::string state_where() const {
        const auto& s = owner_.settings_;
        return s.shared_database() ? "the database " + pg::describe(s.database_url)
                                   : "DATA_DIR " + s.data_dir;
    }

    /// Asks the database for a round trip; updates the cached state. @returns whether it
    /// answered.
    bool check_database() {
        std::optional<std::string> problem;
        try {
            auto c = owner_.database_->acquire(std::chrono::seconds(2));
            c->run("SELECT 1");
        } catch (const std::exception& e) {
            problem = std::string("unreachable: ") + e.what();
        }
        std::lock_guard lock(state_mu_);
        if (problem && !database_problem_) {
            log::warn("database unreachable", {{"error", *problem}});
        } else if (!problem && database_problem_ &&
                   database_problem_->rfind("unreachable", 0) == 0) {
            log::info("database reachable again", {});
        }
        database_problem_ = std::move(problem);
        return !database_problem_;
    }

    /// Brings the service's schema up to date. @returns false to be called again (the database
    /// is not there yet); exits (2) when DATABASE_URL is refused or the schema is too new.
    bool migrate_database() {
        try {
            auto c = owner_.database_->acquire(std::chrono::seconds(5));
            for (const auto& [component, migrations] : owner_.schemas_) {
                const int version = pg::migrate(*c, component, migrations);
                log::info("database schema up to date",
                          {{"component", component}, {"version", version}});
            }
            check_database();
            return true;
        } catch (const pg::Error& e) {
            if (e.kind() != pg::ErrorKind::kConfiguration) {
                std::lock_guard lock(state_mu_);
                database_problem_ = std::string("unreachable: ") + e.what();
                throw;
            }
            owner_.request_exit(kExitConfiguration,
                                std::string("DATABASE_URL: ") + e.what() +
                                    " (docs/CONFIGURATION.md, \"Scaling out\")");
            return false;
        }
    }

    void health_loop() {
        while (!stopper_.flag()) {
            check_kafka();
            if (!stopper_.sleep(kHealthInterval)) break;
        }
    }

    void database_loop() {
        while (!stopper_.flag()) {
            check_database();
            if (!stopper_.sleep(kHealthInterval)) break;
        }
    }

    /// The background part of start(). Each phase retries until done or stopped.
    void startup() {
        auto retry = [&](const std::string& status, const std::function<bool()>& step) {
            auto backoff = std::chrono::milliseconds(250);
            for (;;) {
                set_startup_status(status);
                bool ok = false;
                try {
                    ok = step();
                } catch (const std::exception& e) {
                    set_startup_status(status + ": " + e.what());
                    log::warn("startup step failed; retrying",
                              {{"step", status}, {"error", e.what()}});
                }
                if (ok) return true;
                if (!stopper_.sleep(backoff)) return false;
                backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
            }
        };
        if (!retry("waiting for Kafka and every topic", [&] { return check_kafka(); })) return;
        if (owner_.database_ && !retry("waiting for the database and migrating its schema",
                                       [&] { return migrate_database(); })) {
            return;
        }
        if (owner_.database_ && owner_.state_positions_ &&
            !retry("reading the state's positions", [&] {
                owner_.state_was_empty_ = owner_.state_positions_().empty();
                return true;
            })) {
            return;
        }
        if (owner_.single_instance_ &&
            !retry("checking that no other instance runs", [&] { return check_single(); })) {
            return;
        }
        if (owner_.state_required_ && (owner_.state_was_empty_ || owner_.state_positions_) &&
            !retry("checking the local state", [&] { return check_state(); })) {
            return;
        }
        if (!owner_.state_was_empty_ && owner_.state_positions_ &&
            !retry("checking the local state against the topics",
                   [&] { return check_topics_not_behind_state(); })) {
            return;
        }
        for (const auto& marker : unverified_) {
            std::error_code ec;
            std::filesystem::remove(marker, ec);
        }
        for (auto& [name, step] : steps_) {
            if (!retry(name, [&] { return step(stopper_.flag()); })) return;
        }
        if (faults::hit(owner_.settings_.service, "startup-hold")) {
            log::warn("FAULT_INJECT startup-hold: starting waits for a /readyz answer to say so");
            hold_until([this] { return readyz_starting_.load() > 0; }, kFaultHold, &stopper_);
        }
        if (stopper_.flag()) return;
        // Each loop's consumer tells, in its client.id, where this instance answers /livez, so
        // that a newcomer with the same INSTANCE_ID can ask whether it is alive (check_single).
        for (std::size_t i = 0; i < loops_.size(); ++i) {
            loops_[i]->set_client_id(owner_.kafka_client(loop_specs_[i].name).client_id + "@" +
                                     std::to_string(owner_.http_port()));
        }
        for (auto& loop : loops_) loop->start();
        owner_.started_ = true;
        set_startup_status("done");
        log::info("started", {{"service", owner_.settings_.service}});
    }

    std::set<std::string> groups() const {
        std::set<std::string> out;
        for (const auto& l : loop_specs_) out.insert(l.group_id);
        return out;
    }

    /// @returns true when no other instance is in our groups; exits (2) when one is.
    bool check_single() {
        std::set<std::string> ours;
        for (const auto& l : loop_specs_) {
            ours.insert(owner_.settings_.transactional_id(l.transactional_suffix));
        }
        // A short-lived client of its own: librdkafka 2.0.2 can abort the process when a group
        // admin request that timed out is still pending on a handle that lives on while a
        // broker goes and comes back (librdkafka #4605); destroying the handle settles it.
        kafka::AdminClient probe(owner_.kafka_client("instance-check"));
        for (const auto& group : groups()) {
            auto desc = probe.describe_group(group, std::chrono::seconds(10));
            for (const auto& m : desc.members) {
                if (ours.contains(m.group_instance_id)) {
                    // Our id: a dead predecessor (its member stays until the session times
                    // out), or a live twin started with the same INSTANCE_ID, which joining
                    // would fence (and whose Idempotency-Keys this one does not have).
                    if (auto twin = live_twin(m)) {
                        owner_.request_exit(
                            kExitConfiguration,
                            "another " + owner_.settings_.service + " with this INSTANCE_ID (" +
                                m.group_instance_id + ") is running: " + *twin +
                                ". Two processes with one INSTANCE_ID fence each other; stop "
                                "the other one first, or give this one its own INSTANCE_ID "
                                "(docs/CONFIGURATION.md, \"Instances\")");
                        return false;
                    }
                    continue;  // our previous incarnation
                }
                const std::string who = m.group_instance_id.empty()
                                            ? "client " + m.client_id
                                            : "instance " + m.group_instance_id;
                owner_.request_exit(
                    kExitConfiguration,
                    "another instance of " + owner_.settings_.service + " (" + who + " on " +
                        m.host + ") is running in consumer group " + group + ". " +
                        owner_.settings_.service +
                        " keeps its state in local SQLite files and runs as a single instance: "
                        "stop the other one first (docs/CONFIGURATION.md, \"Instances\")");
                return false;
            }
        }
        return true;
    }

    /// A member with our group.instance.id that is a live process other than this one: where it
    /// answers (its client.id ends with `@<http port>`, its host is the member's), or nullopt
    /// when nothing there says it is this instance (a dead predecessor; or this very process,
    /// restarted on the same port).
    std::optional<std::string> live_twin(const kafka::GroupMember& m) const {
        const auto at = m.client_id.rfind('@');
        if (at == std::string::npos) return std::nullopt;  // a version that did not advertise
        const std::string port = m.client_id.substr(at + 1);
        std::string host = m.host;
        if (!host.empty() && host.front() == '/') host.erase(0, 1);
        if (host.empty() || port.empty() ||
            port.find_first_not_of("0123456789") != std::string::npos) {
            return std::nullopt;
        }
        const std::string where =
            (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + port;
        const auto answer = http_get_json("http://" + where + "/livez", kTwinProbeTimeout);
        if (!answer) return std::nullopt;
        // Whatever answers there: read it without trusting its types.
        if (string_field(*answer, "instance", "") != owner_.settings_.transactional_id() ||
            string_field(*answer, "incarnation", "") == incarnation_) {
            return std::nullopt;
        }
        return "its /livez at " + where + " answers (pid " +
               std::to_string(int_field(*answer, "pid", -1)) + ")";
    }

    /// Why a state that has processed up to `stored` is older than the group's `committed`
    /// offsets, with the way out; nullopt when it is not.
    std::optional<std::string> stale_state(
        const std::vector<kafka::TopicPartitionOffset>& committed, const Runtime::Positions& stored,
        const std::string& group) const {
        std::vector<std::string> behind;
        std::vector<std::string> resets;
        std::int64_t records = 0;
        const auto& s = owner_.settings_;
        for (const auto& c : committed) {
            const auto it = stored.find({c.topic, c.partition});
            const std::int64_t at = it == stored.end() ? 0 : it->second;
            if (c.offset <= at) continue;
            records += c.offset - at;
            behind.push_back(c.topic + "[" + std::to_string(c.partition) + "] state " +
                             (it == stored.end() ? "none" : "@" + std::to_string(at)) +
                             ", group @" + std::to_string(c.offset));
            resets.push_back("scripts/bin/kafka-consumer-groups --bootstrap-server " +
                             s.bootstrap_servers + " --group " + group +
                             " --reset-offsets --execute --topic " + c.topic + ":" +
                             std::to_string(c.partition) + " --to-offset " + std::to_string(at));
        }
        if (behind.empty()) return std::nullopt;
        if (stored.empty()) {
            // A state written by a version that did not record positions: nothing to compare
            // it with. Taken as current; positions are recorded from now on.
            log::warn(
                "the local state records no positions yet (an earlier version wrote it): "
                "taken as current",
                {{"group", group}});
            return std::nullopt;
        }
        return "the state in " + state_where() + " is older than what " + s.service +
               " has processed (" + join(behind) + ": " + std::to_string(records) +
               " offset(s) consumed after it, transaction markers included; restored from an "
               "older backup?). Starting from it "
               "would " +
               owner_.state_loss_consequence_ +
               ". Restore a backup taken after the last stop (docs/CONFIGURATION.md, \"Backup and "
               "restore\"); or, to accept this state and decide those records again from it, "
               "with the service stopped move the group back to it: " +
               join(resets, "; ");
    }

    /// A state that has processed a partition further than the partition's end belongs to
    /// another life of the topic: it was deleted and created again (a broker's data wiped, a
    /// dev reset) or truncated. Started on it, a service that skips what it has seen by offset
    /// would skip the new records. Exits (2) naming the partitions; @returns true otherwise.
    bool check_topics_not_behind_state() {
        const auto stored = owner_.state_positions_();
        if (stored.empty()) return true;
        kafka::ConsumerOptions co;
        co.group_id = owner_.settings_.service + "-state-check";
        co.read_committed = false;  // the log's end, open transactions included
        kafka::Consumer probe(owner_.kafka_client("state-check"), co);
        std::vector<std::string> ahead;
        std::map<std::string, int> partitions;
        for (const auto& [tp, next] : stored) {
            if (!partitions.contains(tp.first)) {
                partitions[tp.first] = probe.partition_count(tp.first, kMetadataTimeout);
            }
            if (tp.second >= partitions[tp.first]) {  // fewer partitions than the state knows
                ahead.push_back(tp.first + "[" + std::to_string(tp.second) + "] state @" +
                                std::to_string(next) + ", the partition no longer exists");
                continue;
            }
            const auto [low, high] = probe.watermarks(tp.first, tp.second, kMetadataTimeout);
            if (next > high) {
                ahead.push_back(tp.first + "[" + std::to_string(tp.second) + "] state @" +
                                std::to_string(next) + ", topic ends @" + std::to_string(high));
            }
        }
        probe.close();
        if (ahead.empty()) return true;
        const auto& s = owner_.settings_;
        owner_.request_exit(
            kExitConfiguration,
            "the state in " + state_where() + " has processed topics further than they go (" +
                join(ahead) +
                "): they were deleted and created again, or truncated, after this state was "
                "written (a broker's data wiped? a dev reset?). This state belongs to their "
                "previous life. If the topics were reset on purpose, start " +
                s.service + " over: stop it, " +
                (s.shared_database() ? "drop its tables from the database"
                                     : "move DATA_DIR " + s.data_dir + " away") +
                ", and start it (docs/CONFIGURATION.md, \"Topics recreated\"); if not, "
                "find out what happened to the topics before going on");
        return false;
    }

    /// An empty state: @returns true when the groups have no committed offsets; exits (2) when
    /// they have. A state with positions: @returns true when no partition's committed offset is
    /// beyond the state's; exits (2) when one is.
    bool check_state() {
        std::map<std::string, int> counts = admin_->topics(kMetadataTimeout);
        for (const auto& spec : loop_specs_) {
            std::vector<kafka::TopicPartition> partitions;
            for (const auto& t : spec.topics) {
                for (int p = 0; p < counts[t]; ++p) partitions.push_back({t, p});
            }
            kafka::ConsumerOptions co;
            co.group_id = spec.group_id;
            // The offsets committed so far, not those a transaction still holds: a
            // read_committed consumer asks for stable offsets, which the broker refuses
            // (UNSTABLE_OFFSET_COMMIT) while a transaction of the group is open — and this
            // service's own, cut short by a crash, stays open until its producer starts again
            // after this check, or until the transaction timeout (the inventory waited 60 s
            // after a SIGKILL mid-commit). The open transaction is aborted by that start.
            co.read_committed = false;
            kafka::Consumer probe(owner_.kafka_client("state-check"), co);
            std::vector<std::string> committed;
            std::vector<kafka::TopicPartitionOffset> offsets;
            for (const auto& o : probe.committed(partitions, kMetadataTimeout * 5)) {
                if (o.offset != kafka::Consumer::kNoOffset) {
                    committed.push_back(o.topic + "[" + std::to_string(o.partition) + "]@" +
                                        std::to_string(o.offset));
                    offsets.push_back(o);
                }
            }
            probe.close();
            if (committed.empty()) continue;
            const auto& s = owner_.settings_;
            // The state's positions are read after the group's offsets: a live peer on a shared
            // database stores its positions before it commits the offsets, so positions read now
            // are never behind offsets read before (read the other way, a busy peer's progress
            // in between looks like a stale backup, or a lost state on a fresh one).
            bool empty = owner_.state_was_empty_;
            Runtime::Positions stored;
            if (owner_.state_positions_ && (!empty || s.shared_database())) {
                stored = owner_.state_positions_();
                if (s.shared_database()) empty = stored.empty();
            }
            if (!empty) {
                if (auto stale = stale_state(offsets, stored, spec.group_id)) {
                    owner_.request_exit(kExitConfiguration, *stale);
                    return false;
                }
                if (stored.empty() && owner_.seed_positions_ && !s.shared_database()) {
                    Runtime::Positions seeded;
                    for (const auto& o : offsets) seeded[{o.topic, o.partition}] = o.offset;
                    owner_.seed_positions_(seeded);
                }
                continue;
            }
            owner_.request_exit(
                kExitConfiguration,
                state_where() + " holds no state, but consumer group " + spec.group_id +
                    " has committed offsets (" + join(committed) + "): the state of " + s.service +
                    " was lost" +
                    (s.shared_database() ? " (or DATABASE_URL names another database)" : "") +
                    ", and starting from nothing would " + owner_.state_loss_consequence_ +
                    ". Restore " + (s.shared_database() ? "the database" : "DATA_DIR") +
                    " from a backup; or, to start over on "
                    "purpose, delete the group first: scripts/bin/kafka-consumer-groups "
                    "--bootstrap-server " +
                    s.bootstrap_servers + " --delete --group " + spec.group_id +
                    " (docs/CONFIGURATION.md, \"Local state\")");
            return false;
        }
        return true;
    }
};

Runtime::Runtime(ServiceSettings settings)
    : settings_(std::move(settings)), impl_(std::make_unique<Impl>(*this)) {}

Runtime::~Runtime() {
    stop();
    if (impl_->lock_fd_ >= 0) ::close(impl_->lock_fd_);
}

prometheus::Registry& Runtime::registry() { return *impl_->registry_; }

std::string Runtime::open_state(const std::string& file_name) {
    namespace fs = std::filesystem;
    if (settings_.shared_database()) {
        // Not silently: an operator who set it expects instances to share a state.
        throw StartupError(settings_.service + " keeps its state in " + file_name +
                           " in DATA_DIR and cannot use DATABASE_URL yet: unset DATABASE_URL "
                           "(docs/CONFIGURATION.md, \"Scaling out\")");
    }
    const fs::path dir(settings_.data_dir);
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) {
        throw StartupError("DATA_DIR \"" + settings_.data_dir +
                           "\" cannot be created: " + ec.message());
    }
    if (impl_->lock_fd_ < 0) {
        const std::string lock_path = (dir / ".lock").string();
        const int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0) {
            throw StartupError("DATA_DIR \"" + settings_.data_dir +
                               "\" is not writable: " + std::strerror(errno));
        }
        if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
            char pid[32] = {};
            const auto n = ::pread(fd, pid, sizeof pid - 1, 0);
            ::close(fd);
            throw StartupError(
                "DATA_DIR \"" + settings_.data_dir + "\" is in use by another process" +
                (n > 0 ? " (pid " + std::string(pid, static_cast<std::size_t>(n)) + ")"
                       : std::string()) +
                ": one process per data directory");
        }
        const std::string me = std::to_string(::getpid());
        if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, me.data(), me.size(), 0) < 0) {
            ::close(fd);
            throw StartupError("DATA_DIR \"" + settings_.data_dir +
                               "\" is not writable: " + std::strerror(errno));
        }
        impl_->lock_fd_ = fd;
    }
    // A state file is verified once the start-up checks have passed with it. Until then it is
    // marked: a start refused for lost state (after the file was created, e.g. the catalog
    // seeded) must be refused the same way next time, not taken for a state that was there.
    const fs::path file = dir / file_name;
    const fs::path marker = dir / ("." + file_name + ".unverified");
    const bool absent = !fs::exists(file) || fs::exists(marker);
    if (absent) {
        std::ofstream out(marker);
        out << "created by pid " << ::getpid() << "; not yet checked against the consumer group\n";
        if (!out) {
            throw StartupError("DATA_DIR \"" + settings_.data_dir +
                               "\" is not writable: cannot create " + marker.string());
        }
        impl_->unverified_.push_back(marker.string());
    }
    state_was_empty_ = absent;
    return file.string();
}

std::shared_ptr<pg::Pool> Runtime::database(std::string component,
                                            std::span<const pg::Migration> migrations) {
    if (!settings_.shared_database()) {
        throw StartupError("database(): DATABASE_URL is not set");
    }
    if (!database_) {
        pg::ConnectionOptions o;
        o.url = settings_.database_url;
        o.statement_timeout = settings_.database_statement_timeout;
        o.lock_timeout = std::min(o.lock_timeout, settings_.database_statement_timeout);
        o.application_name = settings_.transactional_id();
        database_ = std::make_shared<pg::Pool>(o, settings_.database_pool_size);
    }
    schemas_.emplace_back(std::move(component), migrations);
    return database_;
}

std::optional<int> Runtime::partition_count(const std::string& topic) const {
    std::lock_guard lock(impl_->state_mu_);
    auto it = impl_->partition_counts_.find(topic);
    if (it == impl_->partition_counts_.end()) return std::nullopt;
    return it->second;
}

void Runtime::reads(const std::vector<std::string>& topics) {
    impl_->topics_.insert(topics.begin(), topics.end());
}
void Runtime::writes(const std::vector<std::string>& topics) {
    impl_->topics_.insert(topics.begin(), topics.end());
}

void Runtime::route(std::string method, std::string pattern, http::Handler handler) {
    impl_->routes_.push_back({std::move(method), std::move(pattern), std::move(handler)});
}

void Runtime::add_check(std::string name, std::function<std::optional<std::string>()> check) {
    impl_->checks_.emplace_back(std::move(name), std::move(check));
}

void Runtime::add_detail(std::string name, std::function<std::string()> detail) {
    impl_->details_.emplace_back(std::move(name), std::move(detail));
}

void Runtime::add_startup_step(std::string name, StartupStep step) {
    impl_->steps_.emplace_back(std::move(name), std::move(step));
}

kafka::ProcessingLoop& Runtime::add_loop(LoopSpec spec) {
    if (spec.group_id.empty()) spec.group_id = settings_.group_id(settings_.service);
    kafka::LoopOptions lo;
    lo.name = spec.name;
    lo.group_id = spec.group_id;
    lo.topics = spec.topics;
    lo.transactional_id = settings_.transactional_id(spec.transactional_suffix);
    lo.static_membership = spec.static_membership;
    lo.fence_idle_work = spec.fence_idle_work;
    lo.prefetch_kbytes = spec.prefetch_kbytes;
    lo.batch_max = settings_.batch_max;
    lo.batch_linger = settings_.batch_linger;
    lo.operation_timeout = settings_.commit_timeout;
    lo.dlq_topic = [this](const std::string& consumed) { return settings_.dlq_topic(consumed); };
    lo.on_fatal = [this](const std::string& why) { request_exit(kExitFailure, why); };
    for (const auto& t : spec.topics) {
        impl_->topics_.insert(t);
        // A dead letter is never dead-lettered further: a DLQ has no DLQ.
        if (!contract::is_dlq_topic(settings_.contract_name(t))) {
            impl_->topics_.insert(settings_.dlq_topic(t));
        }
    }
    impl_->loops_.push_back(std::make_unique<kafka::ProcessingLoop>(
        kafka_client(spec.name), lo, *spec.processor, *impl_->registry_));
    impl_->loop_specs_.push_back(std::move(spec));
    return *impl_->loops_.back();
}

void Runtime::on_stop(std::string name, std::function<void()> hook, StopPhase phase) {
    (phase == StopPhase::kBeforeLoops ? impl_->stop_before_ : impl_->stop_after_)
        .emplace_back(std::move(name), std::move(hook));
}

void Runtime::start() {
    // Everything that can be wrong with the settings is found before any broker is contacted:
    // a misconfigured second instance must not fence the running one before failing.
    kafka::check_client_config(kafka_client("check"));
    http::ServerOptions so;
    so.port = settings_.http_port;
    so.threads = settings_.http_threads;
    so.service_name = settings_.service;
    so.liveness = {{"service", settings_.service},
                   {"instance", settings_.transactional_id()},
                   {"incarnation", impl_->incarnation_},
                   {"pid", static_cast<long>(::getpid())}};
    impl_->http_ = std::make_unique<http::Server>(so, impl_->registry_);
    for (auto& r : impl_->routes_) {
        impl_->http_->route(std::move(r.method), std::move(r.pattern), std::move(r.handler));
    }
    impl_->http_->set_readiness([this] { return impl_->readiness(); });
    try {
        impl_->http_->start();
    } catch (const std::system_error& e) {
        throw StartupError(e.what());
    }
    log::info("listening", {{"port", impl_->http_->port()},
                            {"bootstrap", settings_.bootstrap_servers},
                            {"transactional_id", settings_.transactional_id()},
                            {"librdkafka", kafka::librdkafka_version()}});
    impl_->admin_ = std::make_unique<kafka::AdminClient>(kafka_client("admin"));
    impl_->health_thread_ = std::thread([this] { impl_->health_loop(); });
    if (database_) impl_->database_thread_ = std::thread([this] { impl_->database_loop(); });
    impl_->startup_thread_ = std::thread([this] { impl_->startup(); });
}

void Runtime::request_exit(int code, const std::string& why) {
    {
        std::lock_guard lock(impl_->exit_mu_);
        if (impl_->exit_code_) return;
        impl_->exit_code_ = code;
    }
    if (code == kExitOk) {
        log::info("stopping", {{"why", why}});
    } else {
        log::error("stopping", {{"why", why}, {"exit_code", code}});
    }
    impl_->exit_cv_.notify_all();
}

int Runtime::wait_for_exit() {
    std::unique_lock lock(impl_->exit_mu_);
    impl_->exit_cv_.wait(lock, [this] { return impl_->exit_code_.has_value(); });
    return *impl_->exit_code_;
}

void Runtime::stop() {
    if (draining_.exchange(true)) return;
    if (faults::hit(settings_.service, "drain-stall")) {
        log::warn("FAULT_INJECT drain-stall: the graceful stop hangs");
        std::this_thread::sleep_for(std::chrono::seconds(60));
    }
    if (faults::hit(settings_.service, "drain-hold")) {
        log::warn(
            "FAULT_INJECT drain-hold: draining waits for a /readyz answer and a refused "
            "request to say so");
        Impl::hold_until(
            [this] { return impl_->readyz_draining_.load() > 0 && drain_refusals_.load() > 0; },
            Impl::kFaultHold);
    }
    impl_->stopper_.stop();
    if (impl_->startup_thread_.joinable()) impl_->startup_thread_.join();
    for (auto& [name, hook] : impl_->stop_before_) {
        try {
            hook();
        } catch (const std::exception& e) {
            log::error("stop hook failed", {{"hook", name}, {"error", e.what()}});
        }
    }
    for (auto it = impl_->loops_.rbegin(); it != impl_->loops_.rend(); ++it) (*it)->stop();
    for (auto& [name, hook] : impl_->stop_after_) {
        try {
            hook();
        } catch (const std::exception& e) {
            log::error("stop hook failed", {{"hook", name}, {"error", e.what()}});
        }
    }
    if (impl_->health_thread_.joinable()) impl_->health_thread_.join();
    if (impl_->database_thread_.joinable()) impl_->database_thread_.join();
    if (impl_->http_) impl_->http_->stop();
    log::info("stopped", {{"service", settings_.service}});
}

std::uint16_t Runtime::http_port() const { return impl_->http_ ? impl_->http_->port() : 0; }

kafka::ClientConfig Runtime::kafka_client(std::string_view role) const {
    return settings_.kafka_client(settings_.transactional_id(role));
}

}  // namespace orderpipe::runtime
