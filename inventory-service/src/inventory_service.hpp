#pragma once
/// inventory-service wiring: configuration, the processing loop and the HTTP API.

#include "inventory_processor.hpp"

#include <prometheus/registry.h>
#include "orderpipe/common/config.hpp"
#include "orderpipe/http/server.hpp"
#include "orderpipe/kafka/processing_loop.hpp"

#include <memory>
#include <mutex>

namespace orderpipe::inventory {

struct InventoryServiceConfig {
    CommonConfig common;
    std::string seed_path;  ///< INVENTORY_SEED; empty: the default catalog
    InventoryTopics topics;
    std::string group_id = "inventory-service";
    std::size_t batch_max = 500;
    std::chrono::milliseconds batch_linger{5};
    std::chrono::milliseconds kafka_timeout{10000};
    std::chrono::hours processed_retention{24 * 7};
    unsigned http_threads = 1;

    /// SPEC §10 plus INVENTORY_SEED, BATCH_MAX, BATCH_LINGER, KAFKA_COMMIT_TIMEOUT... see
    /// docs/CONFIGURATION.md. @throws ConfigError
    static InventoryServiceConfig from_env(EnvReader& env);
};

class InventoryService {
  public:
    explicit InventoryService(InventoryServiceConfig config);
    ~InventoryService();
    InventoryService(const InventoryService&) = delete;
    InventoryService& operator=(const InventoryService&) = delete;

    void start();
    void stop();
    std::uint16_t http_port() const;

  private:
    void handle_list(http::Request&& req, http::Responder respond);
    void handle_get(http::Request&& req, http::Responder respond);
    void handle_put(http::Request&& req, http::Responder respond);

    InventoryServiceConfig config_;
    std::shared_ptr<prometheus::Registry> registry_;
    std::unique_ptr<InventoryStore> loop_store_;  // used by the loop thread only
    std::mutex http_mu_;
    std::unique_ptr<InventoryStore> http_store_;  // HTTP threads, under http_mu_
    std::unique_ptr<InventoryProcessor> processor_;
    std::unique_ptr<kafka::ProcessingLoop> loop_;
    std::unique_ptr<http::Server> http_;
    std::atomic<bool> stopped_{false};
};

}  // namespace orderpipe::inventory
