#pragma once
/// A read model fed from Kafka topics (read_committed) into a store, exactly once without any
/// Kafka commit: the position of every partition lives in the same store and is written in the
/// same unit of work as the changes it produced. Used by the order read model. The store is a
/// port (ProjectionStore); sqlite_projection_store.hpp is its SQLite adapter.
///
///   poll a batch → begin → handler.apply(record) for each → handler.flush() → positions
///                → commit → handler.committed()
///
/// - A record the handler refuses (it throws contract::ContractError, having written nothing
///   of it: a handler checks a record before it writes, or gathers the batch's changes and
///   writes them in flush()) is skipped alone and counted; a projection writes nothing to
///   Kafka, so it has no DLQ of its own.
/// - Any other exception rolls the batch back; the projection rewinds to the stored positions
///   and retries after a growing backoff, and says so in status().
/// - Partitions added to a topic later are picked up (the partition count is re-read).
/// - wait_caught_up() answers "has everything committed up to now been applied?": it asks the
///   broker for the last stable offset of every partition, then waits until the projection has
///   applied (or, past control records, reached) each of them, and each offset the caller's own
///   producer had acknowledged (a listed end can be stale for a moment after a leader moves).
///
/// Thread-safety: catch_up() before start() on the caller's thread; after start() the
/// projection has its own thread, and wait_caught_up()/status() may be called from any thread.

#include "orderpipe/kafka/types.hpp"

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace prometheus {
class Registry;
}

namespace orderpipe::runtime {

/// Where a projection keeps its positions, in the same unit of work as the handler's changes.
/// Used only on the projection's thread.
class ProjectionStore {
  public:
    using Positions = std::map<kafka::TopicPartition, std::int64_t>;
    virtual ~ProjectionStore() = default;
    /// The next offset to apply of each partition projection `name` has applied.
    virtual Positions positions(const std::string& name) = 0;
    /// Opens the unit of work of one batch.
    virtual void begin() = 0;
    /// Stores `next` as the positions of projection `name` (never moving one back).
    virtual void advance(const std::string& name, const Positions& next) = 0;
    virtual void commit() = 0;
    /// Undoes the open unit of work, if any. Never throws.
    virtual void rollback() noexcept = 0;
};

class ProjectionHandler {
  public:
    virtual ~ProjectionHandler() = default;
    /// The store the handler writes to, which keeps the positions too.
    virtual ProjectionStore& store() = 0;
    /// Applies one record inside the open unit of work (or notes what to write in flush()).
    /// Throw contract::ContractError, before writing anything of it, to skip a record that does
    /// not follow the contract.
    virtual void apply(const kafka::ConsumedRecord& record) = 0;
    /// Every record of the batch was applied: write what apply() noted, in the unit of work.
    virtual void flush() {}
    /// The batch is committed to the store (e.g. wake long-polls).
    virtual void committed() {}
    /// The batch was rolled back: forget what apply() noted.
    virtual void rolled_back() {}
};

struct ProjectionOptions {
    std::string name;  ///< for logs, metrics and the positions table, e.g. "orders"
    std::vector<std::string> topics;
    kafka::ClientConfig client;
    std::size_t batch_max = 2000;
    std::chrono::milliseconds poll{100};
    /// Whose positions these are in the store, when not `name`: instances that share one store
    /// (a database) each apply every record (idempotently) and keep their own positions, so
    /// each knows what it has applied (e.g. "orders@<instance>").
    std::string positions_name{};
};

class Projection {
  public:
    /// Does not contact Kafka.
    Projection(ProjectionOptions options, ProjectionHandler& handler,
               prometheus::Registry& registry);
    ~Projection();  ///< stop()
    Projection(const Projection&) = delete;
    Projection& operator=(const Projection&) = delete;

    /// Applies everything committed so far, on the calling thread (before start()).
    /// @returns false when `deadline` passed first (e.g. Kafka unreachable).
    bool catch_up(std::chrono::milliseconds deadline);
    /// Keeps applying in the background.
    void start();
    void stop();

    /// Waits until everything committed to the topics before this call has been applied, and
    /// every partition of `at_least` (others are ignored) is passed up to its offset: a
    /// writer's acknowledged offsets (TransactionalProducer::acknowledged()), which bound what
    /// it committed even when the listed end does not (a new leader can list a stale end).
    /// @returns false when `deadline` passed first. Thread-safe; needs start() (or runs the
    ///          projection on the calling thread before it).
    bool wait_caught_up(std::chrono::milliseconds deadline,
                        const kafka::PartitionOffsets& at_least = {});

    /// nullopt while it keeps up; otherwise why not (a failing batch). Thread-safe.
    std::optional<std::string> problem() const;

  private:
    class Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace orderpipe::runtime
