#pragma once
/// inventory-service: all-or-nothing reservations, releases and restocks, on the shared
/// runtime. Its stock lives in SQLite in DATA_DIR (one instance; a second is refused) or, with
/// DATABASE_URL, in a PostgreSQL database shared by N instances of one consumer group. Either
/// way it refuses to start on an empty state once its consumer group has committed offsets.

#include "inventory_processor.hpp"

#include "orderpipe/runtime/runtime.hpp"

#include <memory>
#include <mutex>

namespace orderpipe::inventory {

struct InventoryServiceConfig {
    runtime::ServiceSettings settings;
    std::string seed_path;                           ///< INVENTORY_SEED; empty: the default catalog
    std::chrono::hours processed_retention{24 * 7};  ///< PROCESSED_EVENTS_RETENTION_HOURS

    /// The common settings plus the ones above (docs/CONFIGURATION.md).
    static InventoryServiceConfig from_env(EnvReader& env);
};

class InventoryService {
  public:
    using Config = InventoryServiceConfig;
    static constexpr const char* kName = "inventory-service";

    explicit InventoryService(Config config);
    ~InventoryService();
    InventoryService(const InventoryService&) = delete;
    InventoryService& operator=(const InventoryService&) = delete;

    void start();
    void stop();
    runtime::Runtime& runtime() { return *runtime_; }
    std::uint16_t http_port() const { return runtime_->http_port(); }

  private:
    void handle_list(http::Request&& req, const http::Responder& respond);
    void handle_get(http::Request&& req, const http::Responder& respond);
    void handle_put(http::Request&& req, const http::Responder& respond);

    Config config_;
    std::unique_ptr<runtime::Runtime> runtime_;
    std::unique_ptr<InventoryState> loop_state_;  // the loop thread's
    /// Held while an HTTP thread reads http_state_ (SQLite only: one connection).
    std::unique_lock<std::mutex> http_lock();
    std::mutex http_mu_;
    std::unique_ptr<InventoryState> http_state_;  // reads from HTTP threads, under http_lock()
    std::unique_ptr<InventoryProcessor> processor_;
    kafka::ProcessingLoop* loop_ = nullptr;
};

}  // namespace orderpipe::inventory
