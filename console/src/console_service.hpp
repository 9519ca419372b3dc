#pragma once
/// orderpipe-console: the operations console's daemon, on the shared runtime (its own HTTP
/// port, configured like every service). It reads Kafka with its own principal and calls the
/// services' HTTP APIs; it keeps no state of its own. So far its JSON API: an order's saga
/// across every topic, and a DLQ's dead letters as dlqctl sees them (docs/CONTRACT.md
/// "orderpipe-console"). Requests that call another service or Kafka run on one worker thread
/// with a bounded queue, never on the HTTP threads.

#include "orderpipe/runtime/runtime.hpp"

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace orderpipe::console {

struct ConsoleServiceConfig {
    runtime::ServiceSettings settings;
    std::string order_url = "http://127.0.0.1:8080";      ///< CONSOLE_ORDER_URL
    std::string analytics_url = "http://127.0.0.1:8083";  ///< CONSOLE_ANALYTICS_URL
    /// CONSOLE_UPSTREAM_TIMEOUT_MS: for one call to a service, and for reading Kafka.
    std::chrono::milliseconds upstream_timeout{5000};

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
    /// Queues `handler` for the worker thread; 503 when too many wait.
    void work(http::Request&& req, const http::Responder& respond, Handler handler);
    void run_work();
    void stop_work();

    void handle_timeline(http::Request&& req, const http::Responder& respond);
    void handle_dlq(http::Request&& req, const http::Responder& respond);

    Config config_;
    std::unique_ptr<runtime::Runtime> runtime_;
    std::mutex work_mu_;
    std::condition_variable work_cv_;
    std::deque<std::function<void()>> work_;
    bool work_stopping_ = false;
    std::thread worker_;
};

}  // namespace orderpipe::console
