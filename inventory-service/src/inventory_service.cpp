#include "inventory_service.hpp"

#include "pg_inventory_state.hpp"
#include "sqlite_inventory_state.hpp"

#include "orderpipe/common/json.hpp"
#include "orderpipe/common/logging.hpp"
#include "orderpipe/contract/topics.hpp"
#include "orderpipe/http/problem.hpp"

namespace orderpipe::inventory {

using nlohmann::json;
namespace topic = contract::topic;

InventoryServiceConfig InventoryServiceConfig::from_env(EnvReader& env) {
    InventoryServiceConfig c;
    c.settings = runtime::ServiceSettings::read(env, "inventory-service", 8081);
    c.seed_path = env.string("INVENTORY_SEED", "");
    c.processed_retention =
        std::chrono::hours(env.integer("PROCESSED_EVENTS_RETENTION_HOURS", 24 * 7, 1, 24 * 365));
    return c;
}

InventoryService::InventoryService(Config config)
    : config_(std::move(config)), runtime_(std::make_unique<runtime::Runtime>(config_.settings)) {}

InventoryService::~InventoryService() { stop(); }

void InventoryService::start() {
    auto& rt = *runtime_;
    const auto& s = rt.settings();
    std::vector<CatalogItem> catalog;
    try {
        catalog = config_.seed_path.empty() ? default_catalog() : load_catalog(config_.seed_path);
    } catch (const std::exception& e) {
        throw runtime::StartupError(e.what());
    }
    const std::string seeded_from =
        config_.seed_path.empty() ? "default catalog" : config_.seed_path;
    if (s.shared_database()) {
        // N instances on one database: the catalog is seeded by whichever starts first, once
        // the database is there (a start-up step, after the schema's migration).
        auto pool = rt.database("inventory", inventory_migrations());
        loop_state_ = open_pg_inventory(pool, config_.processed_retention, s.transactional_id());
        http_state_ = open_pg_inventory(pool, config_.processed_retention, s.transactional_id());
        rt.add_startup_step("seeding the catalog", [this, catalog, seeded_from](const auto&) {
            if (loop_state_->seed_once(catalog)) {
                log::info("inventory seeded", {{"skus", catalog.size()}, {"from", seeded_from}});
            }
            return true;
        });
    } else {
        const std::string path = rt.open_state("inventory.db");
        try {
            loop_state_ = open_sqlite_inventory(path, config_.processed_retention);
            http_state_ = open_sqlite_inventory(path, config_.processed_retention);
        } catch (const std::exception& e) {
            throw runtime::StartupError("cannot open " + path + ": " + e.what());
        }
        if (loop_state_->seed_once(catalog)) {
            log::info("inventory seeded", {{"skus", catalog.size()}, {"from", seeded_from}});
        }
        rt.single_instance();
    }
    InventoryTopics topics{s.topic(topic::kInventoryRequests), s.topic(topic::kInventoryResponses),
                           s.topic(topic::kInventoryEvents)};
    processor_ = std::make_unique<InventoryProcessor>(*loop_state_, topics, s.shared_database());
    // Scaled out, a dead instance's partitions must move at once, not after its session expires.
    loop_ = &rt.add_loop({.name = "inventory-requests",
                          .topics = {topics.requests},
                          .processor = processor_.get(),
                          .static_membership = !s.shared_database()});
    rt.writes({topics.responses, topics.events});
    rt.state_is_not_rebuildable("act on its requests twice (sell stock twice)");
    rt.state_positions([this] { return loop_state_->positions(); },
                       [this](const Positions& p) { loop_state_->seed_positions(p); });

    rt.route("GET", "/inventory",
             [this](http::Request&& r, const http::Responder& d) { handle_list(std::move(r), d); });
    rt.route("GET", "/inventory/{sku}",
             [this](http::Request&& r, const http::Responder& d) { handle_get(std::move(r), d); });
    rt.route("PUT", "/inventory/{sku}",
             [this](http::Request&& r, const http::Responder& d) { handle_put(std::move(r), d); });
    rt.start();
}

void InventoryService::stop() { runtime_->stop(); }

std::unique_lock<std::mutex> InventoryService::http_lock() {
    // SQLite: one connection for every HTTP thread. PostgreSQL: a pool, safe from any thread.
    if (runtime_->settings().shared_database()) return {http_mu_, std::defer_lock};
    return std::unique_lock(http_mu_);
}

void InventoryService::handle_list(http::Request&& /*req*/, const http::Responder& respond) {
    json out = json::array();
    {
        const auto lock = http_lock();
        for (const auto& item : http_state_->items()) out.push_back(item.to_json());
    }
    respond(http::Response::json(200, out));
}

void InventoryService::handle_get(http::Request&& req, const http::Responder& respond) {
    const std::string& sku = req.path_params["sku"];
    std::optional<CatalogItem> item;
    {
        const auto lock = http_lock();
        item = http_state_->item(sku);
    }
    if (!item) {
        respond(http::problem(404, "Unknown SKU", "no SKU " + sku));
        return;
    }
    respond(http::Response::json(200, item->to_json()));
}

void InventoryService::handle_put(http::Request&& req, const http::Responder& respond) {
    const std::string sku = req.path_params["sku"];
    if (!req.has_json_body()) {
        respond(http::problem(415, "Unsupported Media Type",
                              "the body must be JSON: send Content-Type: application/json"));
        return;
    }
    auto parsed = parse_untrusted_json(req.body);
    if (auto* err = std::get_if<JsonParseError>(&parsed)) {
        respond(http::problem(400, "Malformed JSON", err->message));
        return;
    }
    const auto& body = std::get<json>(parsed);
    if (!body.is_object() || !body.contains("available") ||
        !body["available"].is_number_integer() || body["available"].get<std::int64_t>() < 0 ||
        body["available"].get<std::int64_t>() > 1'000'000'000) {
        respond(http::problem(422, "Invalid stock",
                              "the body must be {\"available\": N} with N an integer from 0 to "
                              "1000000000"));
        return;
    }
    if (runtime_->draining() || !runtime_->started()) {
        if (runtime_->draining()) runtime_->refused_while_draining();
        auto r = http::problem(503, "Service Unavailable", "the service is not running");
        r.headers.emplace_back("Retry-After", "1");
        respond(std::move(r));
        return;
    }
    // The loop thread applies it (the only writer of the stock); the answer comes once the
    // change is in SQLite.
    const bool queued = processor_->restock(
        sku, body["available"].get<std::int64_t>(),
        [respond, sku](InventoryProcessor::RestockOutcome outcome,
                       const std::optional<CatalogItem>& item) {
            switch (outcome) {
                case InventoryProcessor::RestockOutcome::kAdjusted:
                    respond(http::Response::json(200, item->to_json()));
                    return;
                case InventoryProcessor::RestockOutcome::kUnknownSku:
                    respond(http::problem(404, "Unknown SKU", "no SKU " + sku));
                    return;
                case InventoryProcessor::RestockOutcome::kNotApplied: {
                    auto r = http::problem(503, "Service Unavailable",
                                           "the restock could not be applied in time; nothing "
                                           "was changed");
                    r.headers.emplace_back("Retry-After", "1");
                    respond(std::move(r));
                    return;
                }
            }
        },
        std::chrono::steady_clock::now() + runtime_->settings().commit_timeout);
    if (!queued) {
        auto r = http::problem(429, "Too Many Requests", "too many restocks are waiting");
        r.headers.emplace_back("Retry-After", "1");
        respond(std::move(r));
        return;
    }
    loop_->wake();
}

}  // namespace orderpipe::inventory
