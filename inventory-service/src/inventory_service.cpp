#include "inventory_service.hpp"

#include "orderpipe/common/json.hpp"
#include "orderpipe/common/logging.hpp"
#include "orderpipe/http/problem.hpp"
#include "orderpipe/kafka/event_record.hpp"

#include <filesystem>

namespace orderpipe::inventory {

using nlohmann::json;

InventoryServiceConfig InventoryServiceConfig::from_env(EnvReader& env) {
    InventoryServiceConfig c;
    c.common = CommonConfig::read(env, "inventory-service", 8081);
    c.seed_path = env.string("INVENTORY_SEED", "");
    c.batch_max = static_cast<std::size_t>(env.integer("BATCH_MAX", 500, 1, 10000));
    c.batch_linger = env.millis("BATCH_LINGER", c.batch_linger, std::chrono::milliseconds(0),
                                std::chrono::milliseconds(1000));
    c.kafka_timeout = env.millis("COMMIT_TIMEOUT", c.kafka_timeout, std::chrono::milliseconds(1000),
                                 std::chrono::minutes(5));
    c.processed_retention =
        std::chrono::hours(env.integer("PROCESSED_EVENTS_RETENTION_HOURS", 24 * 7, 1, 24 * 365));
    c.http_threads = static_cast<unsigned>(env.integer("HTTP_THREADS", 1, 1, 64));
    c.topics = {c.common.topic("inventory.requests"), c.common.topic("inventory.responses"),
                c.common.topic("inventory.events")};
    c.group_id = c.common.group("inventory-service");
    return c;
}

InventoryService::InventoryService(InventoryServiceConfig config)
    : config_(std::move(config)), registry_(std::make_shared<prometheus::Registry>()) {}

InventoryService::~InventoryService() { stop(); }

void InventoryService::start() {
    std::filesystem::create_directories(config_.common.data_dir);
    const std::string path =
        (std::filesystem::path(config_.common.data_dir) / "inventory-service.db").string();
    loop_store_ = std::make_unique<InventoryStore>(path);
    http_store_ = std::make_unique<InventoryStore>(path);
    auto catalog = config_.seed_path.empty() ? default_catalog() : load_catalog(config_.seed_path);
    if (loop_store_->seed_once(catalog)) {
        log::info("inventory seeded",
                  {{"skus", catalog.size()},
                   {"from", config_.seed_path.empty() ? "default catalog" : config_.seed_path}});
    }
    auto& replayed = prometheus::BuildCounter()
                         .Name("processed_events_replayed_total")
                         .Help("Events delivered again and answered from ProcessedEvents")
                         .Register(*registry_)
                         .Add({{"consumer", InventoryProcessor::kConsumer}});
    processor_ = std::make_unique<InventoryProcessor>(*loop_store_, config_.topics,
                                                      config_.processed_retention, replayed);
    kafka::LoopOptions lo;
    lo.name = "inventory-requests";
    lo.group_id = config_.group_id;
    lo.topics = {config_.topics.requests};
    lo.transactional_id = config_.common.transactional_id();
    lo.kill_before_commit_at = config_.common.fault_kill_before_commit;
    lo.batch_max = config_.batch_max;
    lo.batch_linger = config_.batch_linger;
    lo.operation_timeout = config_.kafka_timeout;
    loop_ = std::make_unique<kafka::ProcessingLoop>(
        kafka::ClientConfig::from(config_.common, config_.common.transactional_id()), lo,
        *processor_, *registry_);
    loop_->start();

    http::ServerOptions so;
    so.port = config_.common.http_port;
    so.threads = config_.http_threads;
    so.service_name = config_.common.service;
    http_ = std::make_unique<http::Server>(so, registry_);
    http_->route("GET", "/inventory",
                 [this](http::Request&& r, http::Responder d) { handle_list(std::move(r), d); });
    http_->route("GET", "/inventory/{sku}",
                 [this](http::Request&& r, http::Responder d) { handle_get(std::move(r), d); });
    http_->route("PUT", "/inventory/{sku}",
                 [this](http::Request&& r, http::Responder d) { handle_put(std::move(r), d); });
    http_->set_readiness([this]() -> std::optional<std::string> {
        if (stopped_) return "draining";
        return loop_->not_ready_reason();
    });
    http_->start();
    log::info("inventory-service listening",
              {{"port", http_->port()}, {"bootstrap", config_.common.bootstrap_servers}});
}

void InventoryService::stop() {
    if (stopped_.exchange(true)) return;
    if (loop_) loop_->stop();
    if (http_) http_->stop();
    log::info("inventory-service stopped");
}

std::uint16_t InventoryService::http_port() const { return http_ ? http_->port() : 0; }

void InventoryService::handle_list(http::Request&& /*req*/, http::Responder respond) {
    json out = json::array();
    {
        std::lock_guard lock(http_mu_);
        for (const auto& item : http_store_->items()) out.push_back(item.to_json());
    }
    respond(http::Response::json(200, out));
}

void InventoryService::handle_get(http::Request&& req, http::Responder respond) {
    const std::string& sku = req.path_params["sku"];
    std::optional<CatalogItem> item;
    {
        std::lock_guard lock(http_mu_);
        item = http_store_->item(sku);
    }
    if (!item) {
        respond(http::problem(404, "Unknown SKU", "no SKU " + sku));
        return;
    }
    respond(http::Response::json(200, item->to_json()));
}

void InventoryService::handle_put(http::Request&& req, http::Responder respond) {
    const std::string& sku = req.path_params["sku"];
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
    std::optional<CatalogItem> item;
    {
        std::lock_guard lock(http_mu_);
        // The stock change and its STOCK_ADJUSTED (outbox) commit together; the loop publishes
        // the outbox in its next Kafka transaction.
        sqlite::Transaction tx(http_store_->db());
        item = http_store_->set_available(sku, body["available"].get<std::int64_t>());
        if (item) {
            http_store_->add_outbox(
                kafka::record_to_json(stock_adjusted_record(config_.topics.events, *item)).dump());
        }
        tx.commit();
    }
    if (!item) {
        respond(http::problem(404, "Unknown SKU", "no SKU " + sku));
        return;
    }
    processor_->outbox_added();
    loop_->wake();
    log::info("stock adjusted", {{"sku", sku}, {"available", item->available}});
    respond(http::Response::json(200, item->to_json()));
}

}  // namespace orderpipe::inventory
