#pragma once
// The guarantees of docs/CONTRACT.md "Guarantees" (I1–I5, I7), checked from outside: from every
// committed record of the topics, the services' HTTP APIs and what the clients were answered
// (a journal). Its own code only: it shares nothing with the services but the wire format.

#include "records.hpp"

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

namespace orderpipe::check {

/// What a client was finally answered, one JSON object per line of the journal:
///   {"op":"place","customer_id":"...","status":201,"order_id":"..."}   (status 0: no answer)
///   {"op":"cancel","order_id":"...","status":202}
///   {"op":"lost",...}                                                   (see Lost)
/// Every request must carry its own customer_id: that is how an ORDER_CREATED is traced back to
/// the request that made it.
struct Journal {
    struct Placement {
        std::string customer_id;
        int status = 0;
        std::string order_id;
    };
    struct Cancel {
        std::string order_id;
        int status = 0;
    };
    /// A notification-service instance that lost the sends it had out (SIGKILL, a crash, a
    /// stop longer than its session), between two UTC times in RFC 3339 with milliseconds:
    ///   {"op":"lost","service":"notification-service-1","from":"2026-12-05T09:28:12.465Z",
    ///    "until":"...","max_in_flight":1000}
    /// Only such a loss may make a notification the provider accepted reach it again (I4), and
    /// at most max_in_flight of them per loss.
    struct Lost {
        std::string service;
        std::string from, until;  ///< RFC 3339, UTC, milliseconds: compared as text
        long max_in_flight = 0;
    };
    std::vector<Placement> placements;
    std::vector<Cancel> cancels;
    std::vector<Lost> losses;

    /// Throws std::runtime_error naming the line that is not one of the above.
    static Journal read(const std::string& path);
};

struct Inputs {
    std::string order_url;      ///< order-service base URL (read model: GET /orders/{id})
    std::string inventory_url;  ///< inventory-service (GET /inventory), for I3
    std::string analytics_url;  ///< analytics-service (GET /api/metrics), for I5
    std::string provider_url;   ///< the fake email provider (GET /sent), for I4's provider side
    std::optional<Journal> journal;
    /// The inventory's initial stock: [{"sku": "...", "stock": N}, ...] (INVENTORY_SEED), for I3.
    std::optional<nlohmann::json> catalog;
};

struct Invariant {
    Invariant(std::string id_, std::string title_) : id(std::move(id_)), title(std::move(title_)) {}
    std::string id;     ///< "I1"
    std::string title;  ///< what it promises
    bool checked = true;
    std::string not_checked_because;
    std::vector<std::string> facts;       ///< counts that show what was checked
    std::vector<std::string> violations;  ///< one line each, naming the order (and events)
};

struct Report {
    std::vector<Invariant> invariants;
    /// Per topic: committed records, and records of aborted transactions (read_uncommitted
    /// minus read_committed): proof that faults struck.
    nlohmann::json topics = nlohmann::json::object();
    bool holds() const;
    std::string text(std::size_t max_violations_each = 20) const;
    nlohmann::json to_json() const;
};

/// Checks every invariant once, on the committed records as they are now.
Report check(TopicSet& topics, const Inputs& inputs);

}  // namespace orderpipe::check
