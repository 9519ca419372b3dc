#include "placement.hpp"

#include "orderpipe/common/logging.hpp"

#include <algorithm>

namespace orderpipe::order {

using Outcome = IntakeTransactions::Outcome;

Placement::Placement(IdempotencyStore& keys, IntakeTransactions& txns, OrderLookup& orders,
                     std::chrono::milliseconds settle_budget)
    : keys_(keys), txns_(txns), orders_(orders), settle_budget_(settle_budget) {}

bool Placement::with_keys(const char* what, const std::function<void()>& f) {
    try {
        keys_.together(f);
        return true;
    } catch (const std::exception& e) {
        log::error("Idempotency-Key store failed", {{"step", what}, {"error", e.what()}});
        return false;
    }
}

namespace {
/// The fields of every log line about `order` (docs/CONTRACT.md "Operations").
log::Fields about(const AcceptedOrder& order) {
    return log::Fields()
        .add("order_id", order.order_id())
        .add("correlation_id", order.correlation_id)
        .add("traceparent", order.traceparent);
}
}  // namespace

void Placement::place(std::vector<PlaceRequest>& batch) {
    std::vector<PlaceRequest*> placed;
    placed.reserve(batch.size());
    std::vector<std::pair<PlaceRequest*, PlaceResult>> answered;
    const bool any_key =
        std::any_of(batch.begin(), batch.end(), [](const PlaceRequest& r) { return r.key; });
    if (!any_key) {
        for (auto& r : batch) placed.push_back(&r);
    } else {
        // Claimed in key order: instances claiming overlapping keys at once (a retry on each)
        // then wait on each other in one order, never in a circle (a deadlock in PostgreSQL).
        std::vector<PlaceRequest*> by_key;
        for (auto& r : batch) by_key.push_back(&r);
        std::stable_sort(by_key.begin(), by_key.end(),
                         [](const PlaceRequest* a, const PlaceRequest* b) {
                             return a->key.value_or("") < b->key.value_or("");
                         });
        const bool claimed = with_keys("claim", [&] {
            placed.clear();
            answered.clear();
            for (auto* request : by_key) {
                auto& r = *request;
                if (!r.key) {
                    placed.push_back(&r);
                    continue;
                }
                auto c = keys_.claim(*r.key, r.canonical_body, r.order.order_id(), r.legacy_body);
                switch (c.result) {
                    case IdempotencyStore::ClaimResult::kClaimed:
                        placed.push_back(&r);
                        break;
                    case IdempotencyStore::ClaimResult::kReplay:
                        answered.push_back({&r,
                                            {PlaceOutcome::kReplayed, c.stored->order_id,
                                             c.stored->response, c.stored->status, ""}});
                        break;
                    case IdempotencyStore::ClaimResult::kMismatch:
                        answered.push_back(
                            {&r,
                             {PlaceOutcome::kKeyReused, "", "", 0,
                              "this Idempotency-Key was used with a different body"}});
                        break;
                    case IdempotencyStore::ClaimResult::kInProgress:
                        answered.push_back(
                            {&r,
                             {PlaceOutcome::kKeyInProgress, c.stored->order_id, "", 0,
                              "a request with this Idempotency-Key is still being processed, "
                              "or its outcome is not known yet; retry shortly"}});
                        break;
                }
            }
        });
        if (!claimed) {
            // Nothing went to Kafka: every request of the batch can be told so.
            for (auto& r : batch) {
                r.done({PlaceOutcome::kNotCommitted, r.order.order_id(), "", 0,
                        "the Idempotency-Key store is not available"});
            }
            return;
        }
        for (auto& [r, result] : answered) r->done(result);
    }
    if (placed.empty()) return;

    if (!orders_.writable()) {
        // Read-your-writes cannot be kept: refuse before anything is committed (a 503).
        with_keys("release", [&] {
            for (const auto* r : placed) {
                if (r->key) keys_.release(*r->key, r->order.order_id());
            }
        });
        for (auto* r : placed) {
            r->done({PlaceOutcome::kNotCommitted, r->order.order_id(), "", 0,
                     "the read model cannot be written (disk full?): the order was not created, "
                     "so that GET /orders/{id} finds every order answered 201; retry later"});
        }
        return;
    }
    std::vector<const AcceptedOrder*> orders;
    orders.reserve(placed.size());
    auto deadline = Clock::time_point::max();
    for (const auto* r : placed) {
        orders.push_back(&r->order);
        deadline = std::min(deadline, r->deadline);
    }
    const auto result = txns_.commit(orders, deadline);
    if (on_batch) on_batch(orders.size(), result.outcome);
    switch (result.outcome) {
        case Outcome::kCommitted:
            committed(placed);
            break;
        case Outcome::kAborted:
            aborted(placed, result.error);
            break;
        case Outcome::kUnknown:
            unknown(placed, result.error);
            break;
    }
}

void Placement::committed(std::vector<PlaceRequest*>& placed) {
    std::vector<const AcceptedOrder*> orders;
    for (const auto* r : placed) orders.push_back(&r->order);
    try {
        orders_.write_through(orders);
    } catch (const std::exception& e) {
        // The orders are committed: kept in memory for GET until they are written (the
        // projection of orders.events fills the gap too); no more orders until then.
        log::error(
            "read model write-through failed; these orders are served from memory and "
            "no more are taken until it can be written",
            {{"error", e.what()}, {"orders", orders.size()}});
    }
    std::vector<std::pair<PlaceRequest*, std::string>> bodies;
    for (auto* r : placed) bodies.emplace_back(r, created_response(r->order.created).dump());
    const bool stored = with_keys("complete", [&] {
        for (const auto& [r, body] : bodies) {
            if (r->key) keys_.complete(*r->key, {201, r->order.order_id(), body});
        }
    });
    if (!stored) {
        // The keys stay pending: a retry is told to wait (409) and never creates a second
        // order; they become unknown at the next start and are resolved then.
        log::error("committed orders whose Idempotency-Keys could not be completed",
                   {{"orders", placed.size()}});
    }
    for (auto& [r, body] : bodies) {
        log::Scope scope(about(r->order));
        log::info("order accepted", {{"total", r->order.created.total.to_string()},
                                     {"items", r->order.created.items.size()}});
        r->done({PlaceOutcome::kCreated, r->order.order_id(), std::move(body), 201, ""});
    }
}

void Placement::aborted(std::vector<PlaceRequest*>& placed, const std::string& error) {
    with_keys("release", [&] {
        for (const auto* r : placed) {
            if (r->key) keys_.release(*r->key, r->order.order_id());
        }
    });
    for (auto* r : placed) {
        log::Scope scope(about(r->order));
        log::info("order not created: its transaction was aborted", {{"error", error}});
        r->done({PlaceOutcome::kNotCommitted, r->order.order_id(), "", 0,
                 "the order could not be committed to Kafka and was not created: " + error});
    }
}

void Placement::unknown(std::vector<PlaceRequest*>& placed, const std::string& error) {
    log::warn("intake commit outcome unknown; settling it before answering",
              {{"orders", placed.size()}, {"error", error}});
    if (txns_.settle(Clock::now() + settle_budget_)) {
        // Settled, and the read model has read everything committed: it knows.
        std::vector<std::pair<PlaceRequest*, std::optional<std::string>>> found;
        for (auto* r : placed) found.emplace_back(r, orders_.created_body(r->order.order_id()));
        with_keys("resolve", [&] {
            for (const auto& [r, body] : found) {
                if (!r->key) continue;
                if (body) {
                    keys_.complete(*r->key, {201, r->order.order_id(), *body});
                } else {
                    keys_.release(*r->key, r->order.order_id());
                }
            }
        });
        for (auto& [r, body] : found) {
            log::Scope scope(about(r->order));
            log::info(body ? "order accepted (its unknown commit outcome was settled)"
                           : "order not created (its unknown commit outcome was settled)");
            if (body) {
                r->done({PlaceOutcome::kCreated, r->order.order_id(), std::move(*body), 201, ""});
            } else {
                r->done({PlaceOutcome::kNotCommitted, r->order.order_id(), "", 0,
                         "the Kafka transaction did not commit; the order was not created"});
            }
        }
        return;
    }
    with_keys("mark unknown", [&] {
        for (const auto* r : placed) {
            if (r->key) keys_.mark_unknown(*r->key, r->order.order_id());
        }
    });
    for (auto* r : placed) {
        log::Scope scope(about(r->order));
        log::warn("order outcome unknown: answered 504, its Idempotency-Key resolves it later");
        r->done({PlaceOutcome::kOutcomeUnknown, r->order.order_id(), "", 0,
                 "Kafka did not confirm the transaction in time; the order may or may not have "
                 "been created. Check GET /orders/" +
                     r->order.order_id() +
                     ", or retry later with the same Idempotency-Key to get the answer."});
    }
}

std::size_t Placement::resolve_unknown_keys(std::chrono::milliseconds catch_up_deadline) {
    if (!txns_.settled()) return 0;
    if (auto n = keys_.abandoned_to_unknown(abandoned_after); n > 0) {
        log::warn("Idempotency-Keys another instance left pending are now unknown",
                  {{"keys", n}, {"pending_for_more_than_ms", abandoned_after.count()}});
    }
    auto unknown = keys_.unknown(1000);
    if (unknown.empty()) return 0;
    // The outcome of every transaction of this producer is settled; the read model must now
    // read up to the current end, or an order that did commit could be taken for one that
    // did not.
    if (!orders_.caught_up(catch_up_deadline)) return 0;
    std::size_t committed = 0;
    const bool ok = with_keys("resolve unknown", [&] {
        committed = 0;
        for (const auto& k : unknown) {
            if (auto body = orders_.created_body(k.order_id)) {
                keys_.complete(k.key, {201, k.order_id, *body});
                ++committed;
            } else {
                keys_.release(k.key, k.order_id);
            }
        }
    });
    if (!ok) return 0;
    log::warn("resolved Idempotency-Keys whose outcome was unknown",
              {{"committed", committed}, {"never_committed", unknown.size() - committed}});
    return unknown.size();
}

}  // namespace orderpipe::order
