#pragma once
/// notification-service: sends the customer's emails for notifications.requests through the
/// email provider, with retries, a circuit breaker and a dead-letter queue, on the shared
/// runtime. Several instances share its consumer group. Each keeps the outcomes it stored in
/// SQLite in its DATA_DIR or, with DATABASE_URL, all share them in PostgreSQL, so a request
/// taken again by another instance (a moved partition, a replay) is not sent twice
/// (docs/ARCHITECTURE.md "Storage": the hand-over on a revoke, and what a crash leaves).

#include "email_client.hpp"
#include "notification_processor.hpp"

#include "orderpipe/runtime/runtime.hpp"

#include <memory>

namespace orderpipe::notification {

struct NotificationServiceConfig {
    runtime::ServiceSettings settings;
    std::string email_url = "http://localhost:8025/send";  ///< NOTIFY_EMAIL_URL
    std::chrono::milliseconds timeout{5000};               ///< NOTIFY_TIMEOUT_MS
    int max_attempts = 3;                                  ///< NOTIFY_MAX_ATTEMPTS
    std::chrono::milliseconds backoff{2000};               ///< NOTIFY_BACKOFF_MS
    std::chrono::milliseconds max_wait{30000};             ///< NOTIFY_MAX_WAIT_MS
    std::size_t max_in_flight = 1000;                      ///< NOTIFY_MAX_IN_FLIGHT
    int breaker_failures = 5;                              ///< NOTIFY_BREAKER_FAILURES
    std::chrono::milliseconds breaker_open{10000};         ///< NOTIFY_BREAKER_OPEN_MS
    long connections = 32;                                 ///< NOTIFY_CONNECTIONS
    std::chrono::hours processed_retention{24 * 7};        ///< PROCESSED_EVENTS_RETENTION_HOURS

    static NotificationServiceConfig from_env(EnvReader& env);
};

class NotificationService {
  public:
    using Config = NotificationServiceConfig;
    static constexpr const char* kName = "notification-service";

    explicit NotificationService(Config config);
    ~NotificationService();
    NotificationService(const NotificationService&) = delete;
    NotificationService& operator=(const NotificationService&) = delete;

    void start();
    void stop();
    runtime::Runtime& runtime() { return *runtime_; }
    std::uint16_t http_port() const { return runtime_->http_port(); }

  private:
    Config config_;
    std::unique_ptr<runtime::Runtime> runtime_;
    std::unique_ptr<OutcomeStore> store_;  // the loop thread's
    std::unique_ptr<EmailClient> client_;
    std::unique_ptr<NotificationProcessor> processor_;
    kafka::ProcessingLoop* loop_ = nullptr;
};

}  // namespace orderpipe::notification
