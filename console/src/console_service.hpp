#pragma once
/// orderpipe-console: the operations console's daemon, on the shared runtime (its own HTTP
/// port, configured like every service). It serves the page and the JSON API behind it: an
/// order's saga across every topic, the pipeline live, and DLQ triage with replay and discard
/// through dlqctl's ledger. It reads Kafka with its own principal and calls the services' HTTP
/// APIs; it keeps no state of its own (docs/CONTRACT.md "orderpipe-console"). What calls another
/// service or Kafka runs on worker threads (runtime::BlockingWork), never on the HTTP threads.

#include "operators.hpp"

#include "orderpipe/runtime/blocking_work.hpp"
#include "orderpipe/runtime/runtime.hpp"

#include <chrono>
#include <map>
#include <memory>
#include <string>

namespace orderpipe::console {

struct ConsoleServiceConfig {
    runtime::ServiceSettings settings;
    std::string order_url = "http://127.0.0.1:8080";         ///< CONSOLE_ORDER_URL
    std::string inventory_url = "http://127.0.0.1:8081";     ///< CONSOLE_INVENTORY_URL
    std::string notification_url = "http://127.0.0.1:8082";  ///< CONSOLE_NOTIFICATION_URL
    std::string analytics_url = "http://127.0.0.1:8083";     ///< CONSOLE_ANALYTICS_URL
    std::string jaeger_url;  ///< CONSOLE_JAEGER_URL: traces link there when set
    /// CONSOLE_UPSTREAM_TIMEOUT_MS: for one call to a service, and for reading Kafka.
    std::chrono::milliseconds upstream_timeout{5000};
    /// CONSOLE_OPERATORS_FILE: who may replay and discard; none without it, or when the file
    /// does not exist (then `operators_missing` names it, and the start says so).
    Operators operators;
    std::string operators_missing;
    std::string assets_dir;  ///< CONSOLE_ASSETS_DIR: the built page
    int max_replays = 3;     ///< DLQ_MAX_REPLAYS, as for dlqctl

    static ConsoleServiceConfig from_env(EnvReader& env);
};

class ConsoleService {
  public:
    using Config = ConsoleServiceConfig;
    static constexpr const char* kName = "orderpipe-console";

    explicit ConsoleService(Config config);
    ~ConsoleService();
    ConsoleService(const ConsoleService&) = delete;
    ConsoleService& operator=(const ConsoleService&) = delete;

    void start();
    void stop();
    runtime::Runtime& runtime() { return *runtime_; }
    std::uint16_t http_port() const { return runtime_->http_port(); }

  private:
    using Handler = void (ConsoleService::*)(http::Request&&, const http::Responder&);
    void route(const char* method, const char* path, runtime::BlockingWork& work, Handler h);

    void load_assets();
    void handle_page(http::Request&& req, const http::Responder& respond);
    void handle_asset(http::Request&& req, const http::Responder& respond);
    void handle_config(http::Request&& req, const http::Responder& respond);
    void handle_whoami(http::Request&& req, const http::Responder& respond);
    void handle_live(http::Request&& req, const http::Responder& respond);
    void handle_timeline(http::Request&& req, const http::Responder& respond);
    void handle_search(http::Request&& req, const http::Responder& respond);
    void handle_dlq(http::Request&& req, const http::Responder& respond);
    /// POST /api/dlq/{topic}/replay and /discard, once the operator is known.
    void handle_action(http::Request&& req, const http::Responder& respond);

    Config config_;
    std::unique_ptr<runtime::Runtime> runtime_;
    struct Asset {
        std::string content_type;
        std::string body;
    };
    std::map<std::string, Asset> assets_;  // read once at start; then only read
    // Reads (timelines, DLQs, searches), the live view's polls and actions wait in queues of
    // their own, so a slow DLQ read never holds the live view or an operator's replay.
    runtime::BlockingWork reads_{"console request", 2, 64};
    runtime::BlockingWork live_{"live view request", 1, 16};
    runtime::BlockingWork actions_{"DLQ action", 1, 16};
};

}  // namespace orderpipe::console
