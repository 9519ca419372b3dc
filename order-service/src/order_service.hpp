#pragma once
/// order-service: intake (POST /orders), the decisions of the saga, customer cancels and
/// timeouts, and the order read model (GET /orders/{id}), on the shared runtime.

#include "intake.hpp"
#include "read_model.hpp"
#include "saga_processor.hpp"
#include "waiters.hpp"

#include "orderpipe/runtime/projection.hpp"
#include "orderpipe/runtime/runtime.hpp"

#include <prometheus/counter.h>
#include <prometheus/family.h>

#include <memory>
#include <mutex>

namespace orderpipe::order {

struct OrderServiceConfig {
    runtime::ServiceSettings settings;
    std::size_t intake_batch_max = 500;              ///< INTAKE_BATCH_MAX
    std::chrono::milliseconds intake_linger{2};      ///< INTAKE_LINGER
    std::size_t intake_queue_max = 20000;            ///< INTAKE_QUEUE_MAX
    std::chrono::hours idempotency_retention{48};    ///< IDEMPOTENCY_RETENTION_HOURS
    std::chrono::milliseconds order_timeout{30000};  ///< ORDER_TIMEOUT
    /// Test hook: see IntakeOptions::before_commit.
    std::function<void(std::size_t)> intake_before_commit;

    /// The common settings plus the ones above (docs/CONFIGURATION.md).
    /// @throws ConfigError naming every invalid variable (via env.finish()).
    static OrderServiceConfig from_env(EnvReader& env);
};

class OrderService {
  public:
    using Config = OrderServiceConfig;
    static constexpr const char* kName = "order-service";

    explicit OrderService(Config config);
    ~OrderService();
    OrderService(const OrderService&) = delete;
    OrderService& operator=(const OrderService&) = delete;

    /// Binds HTTP and starts everything else in the background (see Runtime::start).
    void start();
    void stop();
    runtime::Runtime& runtime() { return *runtime_; }
    std::uint16_t http_port() const { return runtime_->http_port(); }

  private:
    class OrdersProjection;

    void handle_create(http::Request&& req, const http::Responder& respond);
    void handle_get(http::Request&& req, const http::Responder& respond);
    void handle_cancel(http::Request&& req, const http::Responder& respond);
    /// Scaled out: a customer cancel of an order another instance may own goes to the owner
    /// through orders.commands; the answer comes from the shared read model.
    void route_cancel(const std::string& id, const http::Responder& respond);
    /// The answer to a routed cancel whose ORDER_CANCELLED would be `cancelled_id`.
    http::Response routed_cancel_answer(const std::string& id, const std::string& cancelled_id);
    std::optional<OrderRecord> read_order(const std::string& id);

    Config config_;
    SagaTopics topics_;
    std::unique_ptr<runtime::Runtime> runtime_;
    std::unique_ptr<OrderStore> read_store_;  // HTTP reads, under read_mu_
    std::mutex read_mu_;
    // Before the projection, the saga and the intake, which use it: destroyed after them.
    WrittenThrough written_through_;
    std::unique_ptr<OrderStore> saga_store_;  // the decision loop's thread
    std::unique_ptr<OrdersProjection> projection_handler_;
    std::unique_ptr<runtime::Projection> projection_;
    std::unique_ptr<SagaProcessor> saga_;
    kafka::ProcessingLoop* saga_loop_ = nullptr;
    std::unique_ptr<Intake> intake_;
    prometheus::Family<prometheus::Counter>* requests_ = nullptr;
    // Last: destroyed first, so waiters answered at destruction still find the stores.
    Waiters waiters_;
    /// Scaled out: sends routed cancels (orders.commands). After waiters_: its last delivery
    /// reports, at destruction, still find them.
    std::unique_ptr<kafka::Producer> commands_;
};

}  // namespace orderpipe::order
