#pragma once
/// Fault injection for tests and chaos runs (FAULT_INJECT, docs/CONFIGURATION.md). Off unless
/// configured; then each named point of the code asks `hit(scope, point)` and acts out the fault
/// when the answer is yes.
///
/// Spec: comma-separated `scope:point:N` or `scope:point:N-M` entries: the N-th (to M-th)
/// occurrence of `point` in `scope` (a loop name such as `order-decisions`, or `*` for any)
/// strikes, counting from 1. Points used by the code:
///   kill-before-commit        SIGKILL after a transaction's records reached the broker
///   commit-unknown-committed  commit, then report the outcome as unknown
///   commit-unknown-aborted    do not commit, report the outcome as unknown (the next
///                             init_transactions aborts the transaction)
///   commit-abortable          the commit asks for an abort
///   abort-fails               that abort does not complete (the outcome is then unknown)
///   after-commit-fails        the local step after a commit throws
///   process-fails             processing throws an infrastructure error (like SQLITE_BUSY)
///   restock-fails             (scope inventory-requests) a restock's SQLite write throws (as
///                             on a full disk)
///   write-through-fails       (scope intake) writing new orders to the read model, or trying
///                             to again, throws (as on a full disk)
///   rewind-partition-error    a committed offset fetched for a rewind comes with an error
///   projection-stall          a read-model projection takes 1.5 s to apply a batch
///   stale-end                 (scope: the projection) a projection asked to catch up lists
///                             each partition's end as where it is now, as a new leader that
///                             does not know its high watermark yet can answer
///   query-stall               (scope analytics) a query of /api/metrics takes 6 s more
///   drain-stall               (scope: the service name) a graceful stop hangs for 60 s once
///                             draining, before it stops anything: for the tests of the
///                             SHUTDOWN_TIMEOUT watchdog and of a second SIGTERM
///   startup-hold              (scope: the service name) the start, its steps done, waits until
///                             a /readyz answer has said "starting" (at most 10 s)
///   drain-hold                (scope: the service name) a graceful stop, once draining, waits
///                             until a /readyz answer has said "draining" and a request was
///                             refused 503 for it (at most 10 s) before it stops anything: tests
///                             see both states whatever the machine's speed
///   write-hold                (scope: dlqctl) between reading the ledger and writing its
///                             resolutions, wait until another writer committed to
///                             dlq.resolutions (at most 30 s): two dlqctl at once, on purpose
///
/// Thread-safe.

#include <stdexcept>
#include <string_view>

namespace orderpipe::faults {

/// Replaces the plan. @throws std::invalid_argument naming the malformed entry.
void configure(std::string_view spec);
/// Checks `spec` without installing it. @returns an empty string, or what is wrong.
std::string validate(std::string_view spec);
/// Counts one occurrence of `point` in `scope`. @returns true if this occurrence must fail.
bool hit(std::string_view scope, std::string_view point);
/// True once any entry is configured (cheap).
bool enabled();
/// How many occurrences of `point` in `scope` the plan has counted so far (for tests that wait
/// until a fault has struck).
long hits(std::string_view scope, std::string_view point);

/// What `process-fails` throws: an infrastructure error, never poison.
class InjectedFault : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

}  // namespace orderpipe::faults
