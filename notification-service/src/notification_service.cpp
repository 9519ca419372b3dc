#include "notification_service.hpp"

#include "pg_outcome_store.hpp"
#include "sqlite_outcome_store.hpp"

#include "orderpipe/contract/topics.hpp"

namespace orderpipe::notification {

namespace topic = contract::topic;

NotificationServiceConfig NotificationServiceConfig::from_env(EnvReader& env) {
    NotificationServiceConfig c;
    c.settings = runtime::ServiceSettings::read(env, "notification-service", 8082);
    c.email_url = env.string("NOTIFY_EMAIL_URL", c.email_url);
    if (c.email_url.rfind("http://", 0) != 0 && c.email_url.rfind("https://", 0) != 0) {
        env.problem("NOTIFY_EMAIL_URL=\"" + c.email_url +
                    "\": expected an http:// or https:// URL");
    }
    c.timeout = env.millis("NOTIFY_TIMEOUT_MS", c.timeout, std::chrono::milliseconds(100),
                           std::chrono::minutes(5));
    c.max_attempts = static_cast<int>(env.integer("NOTIFY_MAX_ATTEMPTS", c.max_attempts, 1, 100));
    c.backoff = env.millis("NOTIFY_BACKOFF_MS", c.backoff, std::chrono::milliseconds(0),
                           std::chrono::hours(1));
    c.max_wait = env.millis("NOTIFY_MAX_WAIT_MS", c.max_wait, std::chrono::milliseconds(1000),
                            std::chrono::hours(1));
    c.max_in_flight = static_cast<std::size_t>(env.integer(
        "NOTIFY_MAX_IN_FLIGHT", static_cast<std::int64_t>(c.max_in_flight), 1, 1000000));
    c.breaker_failures =
        static_cast<int>(env.integer("NOTIFY_BREAKER_FAILURES", c.breaker_failures, 1, 100000));
    c.breaker_open = env.millis("NOTIFY_BREAKER_OPEN_MS", c.breaker_open,
                                std::chrono::milliseconds(100), std::chrono::hours(1));
    c.connections = static_cast<long>(env.integer("NOTIFY_CONNECTIONS", c.connections, 1, 1024));
    c.processed_retention =
        std::chrono::hours(env.integer("PROCESSED_EVENTS_RETENTION_HOURS", 24 * 7, 1, 24 * 365));
    return c;
}

NotificationService::NotificationService(Config config)
    : config_(std::move(config)), runtime_(std::make_unique<runtime::Runtime>(config_.settings)) {}

NotificationService::~NotificationService() { stop(); }

void NotificationService::start() {
    auto& rt = *runtime_;
    const auto& s = rt.settings();
    if (s.shared_database()) {
        // Outcomes shared by every instance: a replay, or a partition moved (see hand_over()),
        // is not sent again.
        store_ = open_pg_outcomes(rt.database("notification", notification_migrations()),
                                  config_.processed_retention);
    } else {
        const std::string path = rt.open_state("notifications.db");
        try {
            store_ = open_sqlite_outcomes(path, config_.processed_retention);
        } catch (const std::exception& e) {
            throw runtime::StartupError("cannot open " + path + ": " + e.what());
        }
    }
    const std::string requests = s.topic(topic::kNotificationsRequests);
    NotificationOptions no;
    no.events_topic = s.topic(topic::kNotificationsEvents);
    no.dlq_topic = s.dlq_topic(requests);
    no.group_id = s.group_id(s.service);
    no.max_attempts = config_.max_attempts;
    no.backoff = config_.backoff;
    no.max_wait = config_.max_wait;
    no.handover_wait = config_.timeout + std::chrono::seconds(1);
    no.max_in_flight = config_.max_in_flight;
    no.breaker_failures = config_.breaker_failures;
    no.breaker_open = config_.breaker_open;
    no.processed_retention = config_.processed_retention;
    client_ = std::make_unique<EmailClient>(config_.email_url, config_.timeout, config_.connections,
                                            [this](std::uint64_t id, SendResult result) {
                                                processor_->answered(id, std::move(result));
                                            });
    processor_ = std::make_unique<NotificationProcessor>(
        *store_, no, [this](EmailClient::Request r) { client_->send(std::move(r)); },
        [this] {
            if (loop_ != nullptr) loop_->wake();
        },
        rt.registry());
    // Scales out: no static membership, so a stopped instance leaves the group and a peer takes
    // its partitions over at once.
    loop_ = &rt.add_loop({.name = "notification-requests",
                          .topics = {requests},
                          .processor = processor_.get(),
                          .static_membership = false});
    rt.writes({no.events_topic, no.dlq_topic});
    rt.add_detail("email provider", [this] {
        return "circuit breaker " + processor_->breaker_state() + ", " +
               std::to_string(client_->in_flight()) + " send(s) in flight";
    });
    rt.on_stop(
        "email client", [this] { client_->stop(); }, runtime::Runtime::StopPhase::kAfterLoops);
    rt.start();
}

void NotificationService::stop() { runtime_->stop(); }

}  // namespace orderpipe::notification
