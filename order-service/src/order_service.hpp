#pragma once
/// order-service wiring: configuration, the intake, the idempotency store and the HTTP routes.
/// main.cpp only reads the environment, starts this and waits for a signal; tests start it
/// in-process with their own settings.

#include "idempotency_store.hpp"
#include "intake.hpp"
#include "order_store.hpp"
#include "projection.hpp"
#include "saga_processor.hpp"
#include "waiters.hpp"

#include "orderpipe/common/config.hpp"
#include "orderpipe/http/server.hpp"

#include <condition_variable>
#include <memory>
#include <thread>

namespace orderpipe::order {

struct OrderServiceConfig {
    CommonConfig common;
    IntakeOptions intake;
    std::chrono::milliseconds kafka_timeout{10000};  ///< INTAKE_COMMIT_TIMEOUT
    unsigned http_threads = 2;
    std::chrono::hours idempotency_retention{48};
    SagaTopics topics;
    std::chrono::milliseconds order_timeout{30000};      ///< ORDER_TIMEOUT
    std::chrono::milliseconds catch_up_deadline{60000};  ///< read model catch-up at start
    std::string group_id = "order-service";              ///< consumer group of the decision loop
    std::size_t saga_batch_max = 500;
    std::chrono::milliseconds saga_batch_linger{5};

    /// Reads SPEC §10's variables plus INTAKE_*, ORDER_TIMEOUT, HTTP_THREADS,
    /// IDEMPOTENCY_RETENTION_HOURS (docs/CONFIGURATION.md).
    /// @throws ConfigError naming every invalid variable.
    static OrderServiceConfig from_env(EnvReader& env);
};

class OrderService {
  public:
    explicit OrderService(OrderServiceConfig config);
    ~OrderService();
    OrderService(const OrderService&) = delete;
    OrderService& operator=(const OrderService&) = delete;

    /// Opens the data directory, fences the previous incarnation's transactions, catches the
    /// read model up with orders.events, resolves Idempotency-Keys a crash left pending, then
    /// starts the intake, the saga loop and the HTTP API.
    /// @throws on a bad data dir, an HTTP port in use, or Kafka unreachable past the deadline.
    void start();
    /// Graceful: readyz turns 503, queued orders are committed and answered, then HTTP stops.
    void stop();
    std::uint16_t http_port() const;

  private:
    void handle_create(http::Request&& req, http::Responder respond);
    void handle_get(http::Request&& req, http::Responder respond);
    void handle_cancel(http::Request&& req, http::Responder respond);
    std::optional<OrderRecord> read_order(const std::string& id);
    void fence(const std::string& transactional_id);
    std::optional<std::string> readiness();
    /// Completes or releases Idempotency-Keys left pending (crash, or an unknown commit
    /// outcome) and claimed before `older_than_ms`, from the read model.
    void resolve_pending_keys(std::int64_t older_than_ms);
    void maintenance();
    std::optional<std::string> missing_topic();

    OrderServiceConfig config_;
    std::shared_ptr<prometheus::Registry> registry_;
    std::unique_ptr<IdempotencyStore> idempotency_;
    std::mutex read_mu_;
    std::unique_ptr<OrderStore> read_store_;    // HTTP reads, under read_mu_
    std::unique_ptr<OrderStore> intake_store_;  // intake thread's write-through
    std::unique_ptr<OrderStore> saga_store_;    // saga loop thread
    std::unique_ptr<OrderProjection> projection_;
    std::unique_ptr<SagaProcessor> saga_;
    std::unique_ptr<kafka::ProcessingLoop> saga_loop_;
    std::unique_ptr<Intake> intake_;
    std::unique_ptr<http::Server> http_;
    std::atomic<bool> draining_{false};
    std::mutex topics_mu_;
    std::optional<std::string> topics_problem_ = std::string("topics not checked yet");
    std::chrono::steady_clock::time_point topics_checked_{};
    prometheus::Family<prometheus::Counter>* orders_total_ = nullptr;
    std::mutex maintenance_mu_;
    std::condition_variable maintenance_cv_;
    std::thread maintenance_;
    // Last: destroyed first, so waiters answered at destruction still find the stores.
    Waiters waiters_;
};

}  // namespace orderpipe::order
