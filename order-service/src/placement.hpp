#pragma once
/// Order placement (docs/ARCHITECTURE.md "Intake"): the rules of POST /orders once the body is
/// valid — Idempotency-Key claim, one Kafka transaction for a whole batch of orders, and what
/// every outcome of that transaction means for each request and its key. The Kafka side and the
/// read model are interfaces, so the rules are unit-tested with fakes; HTTP handlers only map a
/// PlaceOutcome to a status.
///
///   claim keys (one SQLite transaction) ── replay / mismatch / in progress: answered now
///   commit the claimed orders and the keyless ones (one Kafka transaction)
///     committed → read model written, keys completed → 201
///     aborted   → keys released → 503 (nothing committed)
///     unknown   → wait (bounded) until the outcome is settled and the read model caught up,
///                 then 201 or 503 from the read model; if even that cannot tell: 504 with the
///                 order id, the key stays `unknown`, resolve_unknown_keys() settles it later.
///
/// Not thread-safe: the intake thread runs it.

#include "idempotency_store.hpp"
#include "order.hpp"

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace orderpipe::order {

using Clock = std::chrono::steady_clock;

/// What happened to one POST /orders.
enum class PlaceOutcome {
    kCreated,         ///< 201: the order is committed
    kReplayed,        ///< the key was answered before: its stored answer
    kKeyReused,       ///< 422: the key was used with another body
    kKeyInProgress,   ///< 409: the key's first request is in flight, or its outcome unknown
    kNotCommitted,    ///< 503: nothing of the order is committed
    kOutcomeUnknown,  ///< 504: the order may or may not exist; a retry will tell
};

struct PlaceResult {
    PlaceOutcome outcome = PlaceOutcome::kNotCommitted;
    std::string order_id;
    std::string body;  ///< the 201 body (kCreated, kReplayed)
    int status = 0;    ///< the stored status (kReplayed)
    std::string detail;
};

struct PlaceRequest {
    AcceptedOrder order;
    std::optional<std::string> key;  ///< Idempotency-Key
    std::string canonical_body;      ///< compared for a reused key
    std::string legacy_body;         ///< the same in the form keys stored before "v2:" had
    Clock::time_point deadline;      ///< answer by then (bounds a commit and its settling)
    std::function<void(const PlaceResult&)> done;  ///< called exactly once
};

/// The Kafka side (faked in unit tests).
class IntakeTransactions {
  public:
    enum class Outcome { kCommitted, kAborted, kUnknown };
    struct Result {
        Outcome outcome;
        std::string error;  ///< why, when not committed
    };
    virtual ~IntakeTransactions() = default;
    /// Writes ORDER_CREATED and INVENTORY_RESERVE_REQUESTED of every order in one transaction.
    /// Gives up by `deadline` (then the outcome is unknown). Never throws.
    virtual Result commit(const std::vector<const AcceptedOrder*>& orders,
                          Clock::time_point deadline) = 0;
    /// After kUnknown: settles the outcome (init_transactions) and waits until the read model
    /// has applied everything committed. @returns false if not done by `deadline`.
    virtual bool settle(Clock::time_point deadline) = 0;
    /// True when no unknown outcome is waiting to be settled.
    virtual bool settled() const = 0;
};

/// The read model, as placement needs it.
class OrderLookup {
  public:
    virtual ~OrderLookup() = default;
    /// The 201 body of a committed order, or nullopt if the read model does not know it.
    virtual std::optional<std::string> created_body(const std::string& order_id) = 0;
    /// Read-your-writes: the committed orders are visible to GET at once. May throw (the
    /// projection repairs it).
    virtual void write_through(const std::vector<const AcceptedOrder*>& orders) = 0;
    /// Waits until the read model has applied everything committed up to now, including every
    /// record the intake's producer had acknowledged.
    virtual bool caught_up(std::chrono::milliseconds deadline) = 0;
    /// False while orders answered 201 could not be written through yet (and still cannot):
    /// no more orders are taken then, or GET after 201 would find nothing.
    virtual bool writable() { return true; }
};

class Placement {
  public:
    /// `settle_budget`: how long an unknown outcome may take to settle before the answer is
    /// 504.
    Placement(IdempotencyStore& keys, IntakeTransactions& txns, OrderLookup& orders,
              std::chrono::milliseconds settle_budget);

    /// Places a batch and answers each request exactly once.
    void place(std::vector<PlaceRequest>& batch);

    /// Resolves `unknown` keys from the read model, if the transactions are settled and the
    /// read model caught up. @returns how many were resolved.
    std::size_t resolve_unknown_keys(std::chrono::milliseconds catch_up_deadline);
    /// How long after its claim another instance's pending key is taken for abandoned: past the
    /// Kafka transaction timeout (60 s), with a margin.
    std::chrono::milliseconds abandoned_after{std::chrono::seconds(90)};

    /// Observer of every batch that reached Kafka: (orders, outcome). For metrics.
    std::function<void(std::size_t, IntakeTransactions::Outcome)> on_batch;

  private:
    void committed(std::vector<PlaceRequest*>& placed);
    void aborted(std::vector<PlaceRequest*>& placed, const std::string& error);
    void unknown(std::vector<PlaceRequest*>& placed, const std::string& error);
    /// Runs `f` as one unit of the key store; logs and returns false if it failed.
    bool with_keys(const char* what, const std::function<void()>& f);
    IdempotencyStore& keys_;
    IntakeTransactions& txns_;
    OrderLookup& orders_;
    std::chrono::milliseconds settle_budget_;
};

}  // namespace orderpipe::order
