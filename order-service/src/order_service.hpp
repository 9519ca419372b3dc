#pragma once
/// order-service wiring: configuration, the intake, the idempotency store and the HTTP routes.
/// main.cpp only reads the environment, starts this and waits for a signal; tests start it
/// in-process with their own settings.

#include "idempotency_store.hpp"
#include "intake.hpp"
#include "recent_orders.hpp"

#include "orderpipe/common/config.hpp"
#include "orderpipe/http/server.hpp"

#include <memory>

namespace orderpipe::order {

struct OrderServiceConfig {
    CommonConfig common;
    IntakeOptions intake;
    std::chrono::milliseconds kafka_timeout{10000};  ///< INTAKE_COMMIT_TIMEOUT
    unsigned http_threads = 2;
    std::chrono::hours idempotency_retention{48};

    /// Reads SPEC §10's variables plus INTAKE_BATCH_MAX, INTAKE_LINGER, INTAKE_QUEUE_MAX,
    /// INTAKE_COMMIT_TIMEOUT, HTTP_THREADS, IDEMPOTENCY_RETENTION_HOURS.
    /// @throws ConfigError naming every invalid variable.
    static OrderServiceConfig from_env(EnvReader& env);
};

class OrderService {
public:
    explicit OrderService(OrderServiceConfig config);
    ~OrderService();
    OrderService(const OrderService&) = delete;
    OrderService& operator=(const OrderService&) = delete;

    /// Opens the data directory, resolves Idempotency-Keys a crash left pending, starts the
    /// intake and the HTTP server. @throws on a bad data dir or an HTTP port in use.
    void start();
    /// Graceful: readyz turns 503, queued orders are committed and answered, then HTTP stops.
    void stop();
    std::uint16_t http_port() const;

private:
    void handle_create(http::Request&& req, http::Responder respond);
    void handle_get(http::Request&& req, http::Responder respond);
    std::optional<std::string> readiness();
    void resolve_pending_keys();
    std::optional<std::string> missing_topic();

    OrderServiceConfig config_;
    std::shared_ptr<prometheus::Registry> registry_;
    std::unique_ptr<IdempotencyStore> idempotency_;
    RecentOrders recent_;
    std::unique_ptr<Intake> intake_;
    std::unique_ptr<http::Server> http_;
    std::atomic<bool> draining_{false};
    std::mutex topics_mu_;
    std::optional<std::string> topics_problem_ = std::string("topics not checked yet");
    std::chrono::steady_clock::time_point topics_checked_{};
    prometheus::Family<prometheus::Counter>* orders_total_ = nullptr;
};

}  // namespace orderpipe::order
