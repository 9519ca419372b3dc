#pragma once
/// The service runtime: what every daemon has in common, so that a service is its domain, its
/// processors and its handlers plus a short `main` (docs/ARCHITECTURE.md "Writing a service on the
/// runtime").
///
/// It owns the metrics registry, the HTTP server with /livez, /readyz and /metrics, the data
/// directory (locked: one process per directory), the processing loops, and the order in which
/// things start and stop:
///
///   start():  bind HTTP (answering at once, /readyz 503 "starting")          ← on the caller
///             then, in the background: wait for the broker and every topic the service
///             reads and writes → with DATABASE_URL, wait for the database and migrate its
///             schema → refuse a second instance / lost state → the service's startup steps
///             (fencing, seeding, catching up a read model...) → start the loops
///   stop():   draining (/readyz 503 at once) → stop hooks (e.g. intake answers what it holds)
///             → loops finish their transaction and leave → after-loop hooks → HTTP drains
///
/// Readiness is kept as state (a health thread asks the broker every second; loops report their
/// own state), so /readyz never blocks an io thread.
///
/// Exit codes (docs/CONTRACT.md "Exit codes"): 0 stopped by a signal; 1 a runtime failure
/// (e.g. fenced by a newer instance); 2 a setting or deployment an operator must fix (bad
/// variable, port in use, unwritable DATA_DIR, refused KAFKA_* property, second instance, local
/// state lost, DATABASE_URL refused or its schema newer than this release).
///
/// Thread-safety: configure and control from one thread (main); request_exit(), draining() and
/// the readiness are thread-safe.

#include "orderpipe/http/server.hpp"
#include "orderpipe/kafka/processing_loop.hpp"
#include "orderpipe/pg/pg.hpp"
#include "orderpipe/runtime/settings.hpp"

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace prometheus {
class Registry;
}

namespace orderpipe::runtime {

/// A setting or deployment problem found while starting: the process exits with code 2.
class StartupError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitConfiguration = 2;

struct LoopSpec {
    std::string name{};                 ///< e.g. "order-decisions"
    std::vector<std::string> topics{};  ///< full names (ServiceSettings::topic)
    kafka::BatchProcessor* processor = nullptr;
    /// Consumer group; default: the service name with GROUP_PREFIX.
    std::string group_id{};
    /// transactional.id is `<service>-<instance>` plus `-<suffix>` when set.
    std::string transactional_suffix{};
    /// Single-instance services keep static membership; a service that scales out turns it off.
    bool static_membership = true;
    /// kafka::LoopOptions::fence_idle_work.
    bool fence_idle_work = false;
    /// kafka::ConsumerOptions::prefetch_kbytes.
    int prefetch_kbytes = 16384;
};

/// A startup step: runs on the startup thread, returns true when done, false to be called again
/// after a backoff (it should say why through a readiness check). `stop` is set when the
/// service is stopping.
using StartupStep = std::function<bool(const std::atomic<bool>& stop)>;

class Runtime {
  public:
    explicit Runtime(ServiceSettings settings);
    ~Runtime();  ///< stop()
    Runtime(const Runtime&) = delete;
    Runtime& operator=(const Runtime&) = delete;

    const ServiceSettings& settings() const { return settings_; }
    prometheus::Registry& registry();

    // --- configuration (before start) ------------------------------------------------------

    /// Creates DATA_DIR, checks that it is writable and locks it (a second process with the
    /// same DATA_DIR is refused), and returns the path of the service's SQLite file in it.
    /// Remembers whether that file held a verified state (for state_is_not_rebuildable()).
    /// @throws StartupError (also when DATABASE_URL is set: a service that calls this keeps its
    /// state in DATA_DIR, and says so rather than ignore the variable)
    std::string open_state(const std::string& file_name);

    /// With DATABASE_URL (ServiceSettings::shared_database()): the service's state lives in that
    /// PostgreSQL database, shared by all its instances, instead of DATA_DIR. @returns the pool
    /// (connections are opened on demand); the start waits for the database and brings
    /// `component`'s schema to the last of `migrations` (under an advisory lock, so N instances
    /// may start at once) before the instance checks and the startup steps, and exits (2) when
    /// DATABASE_URL is refused or the schema is newer than this release knows. /readyz gains a
    /// "database" check. With a shared database, "no state" (state_is_not_rebuildable) means no
    /// stored positions. Called again with another component (a service whose state has
    /// several parts), it returns the same pool and migrates that schema too.
    std::shared_ptr<pg::Pool> database(std::string component,
                                       std::span<const pg::Migration> migrations);

    /// How many partitions `topic` had at the last health check (every few seconds), nullopt
    /// before the first or when it is missing. Thread-safe.
    std::optional<int> partition_count(const std::string& topic) const;

    /// Topics the service reads or writes besides its loops' (readiness checks them all).
    void reads(const std::vector<std::string>& topics);
    void writes(const std::vector<std::string>& topics);

    void route(std::string method, std::string pattern, http::Handler handler);
    /// A readiness check of the service's own: nullopt = fine, else why not ready. Called on
    /// io threads: it must only read state.
    void add_check(std::string name, std::function<std::optional<std::string>()> check);
    /// Information shown in /readyz's checks that never makes the service not ready (e.g. the
    /// state of a circuit breaker). Called on io threads: it must only read state.
    void add_detail(std::string name, std::function<std::string()> detail);
    /// Runs after the broker and topics are there and the instance checks passed, before the
    /// loops start; steps run in the order added.
    void add_startup_step(std::string name, StartupStep step);
    /// Adds a processing loop, started after the startup steps. Its topics count as read, and
    /// their DLQs as written.
    kafka::ProcessingLoop& add_loop(LoopSpec spec);
    /// Refuses to run next to another instance: if a member of a group of this service's loops
    /// has a group.instance.id that is not this instance's, the service exits with code 2.
    void single_instance() { single_instance_ = true; }
    /// The service's state lives only in DATA_DIR: refuse to start when open_state() found it
    /// empty while the loops' group has committed offsets (the state was lost; exit code 2
    /// with how to recover). `consequence`: what starting from nothing would do, for the
    /// message (e.g. "sell stock twice").
    void state_is_not_rebuildable(std::string consequence) {
        state_required_ = true;
        state_loss_consequence_ = std::move(consequence);
    }

    /// How far the state in DATA_DIR has processed each partition of the loops' topics (next
    /// offsets, stored in the same transactions as the state). With state_is_not_rebuildable(),
    /// a start refuses (exit 2) a state behind the group's committed offsets: restored from a
    /// backup older than what was processed, it would act again on what came after it. Any
    /// start refuses (exit 2) a state ahead of a partition's end: the topic was recreated or
    /// truncated since. Called on the start-up thread before the loops start.
    using Positions = std::map<std::pair<std::string, std::int32_t>, std::int64_t>;
    /// `seed`, if given, stores positions into a state that has none yet (written by a
    /// version that did not record them): the group's committed offsets are taken as the
    /// state's, once, so a partition that has no traffic later is not taken for one the state
    /// is behind on.
    void state_positions(std::function<Positions()> positions,
                         std::function<void(const Positions&)> seed = {}) {
        state_positions_ = std::move(positions);
        seed_positions_ = std::move(seed);
    }

    enum class StopPhase { kBeforeLoops, kAfterLoops };
    /// Hooks run in the order added within their phase, after draining() turned true.
    void on_stop(std::string name, std::function<void()> hook,
                 StopPhase phase = StopPhase::kBeforeLoops);

    // --- running -----------------------------------------------------------------------------

    /// Binds and starts HTTP, then the Kafka phase in the background.
    /// @throws StartupError (port in use) or kafka::ConfigurationError.
    void start();
    /// Asks the process to stop and exit with `code` (the first request wins). Thread-safe.
    void request_exit(int code, const std::string& why);
    /// Blocks until request_exit(). @returns the exit code.
    int wait_for_exit();
    /// Graceful stop, as in the file comment. Idempotent.
    void stop();

    bool draining() const { return draining_.load(); }
    /// A handler answered a request 503 because the service is draining. Counted for the
    /// drain-hold fault (orderpipe/common/faults.hpp), which holds the stop until one was.
    void refused_while_draining() { drain_refusals_.fetch_add(1); }
    /// True once the startup steps are done and the loops started.
    bool started() const { return started_.load(); }
    std::uint16_t http_port() const;

    /// A Kafka client configuration for this service (client.id `<service>-<instance>-<role>`).
    kafka::ClientConfig kafka_client(std::string_view role) const;

  private:
    class Impl;
    ServiceSettings settings_;
    bool state_was_empty_ = false;
    std::shared_ptr<pg::Pool> database_;
    /// Each component's schema, migrated in the order database() was called.
    std::vector<std::pair<std::string, std::span<const pg::Migration>>> schemas_;
    bool single_instance_ = false;
    bool state_required_ = false;
    std::string state_loss_consequence_;
    std::function<Positions()> state_positions_;
    std::function<void(const Positions&)> seed_positions_;
    std::atomic<bool> draining_{false};
    std::atomic<bool> started_{false};
    std::atomic<long> drain_refusals_{0};
    std::unique_ptr<Impl> impl_;
};

}  // namespace orderpipe::runtime
