#pragma once
// orderpipe-console in a test, next to a Pipeline's services (console_kafkatest,
// console_browser_kafkatest).

#include "console_service.hpp"
#include "pipeline.hpp"

#include <map>
#include <memory>
#include <string>

namespace orderpipe::testing {

struct Console {
    std::unique_ptr<console::ConsoleService> service;
    std::uint16_t port = 0;

    explicit Console(const Pipeline& p, std::map<std::string, std::string> more = {}) {
        auto env = p.env("orderpipe-console");
        env["CONSOLE_ORDER_URL"] = p.order_url("");
        env["CONSOLE_ANALYTICS_URL"] = p.analytics_url("");
        env["CONSOLE_INVENTORY_URL"] = p.inventory_url("");
        env["CONSOLE_NOTIFICATION_URL"] = p.notification_url("");
        for (auto& [k, v] : more) env[k] = v;
        EnvReader e(env);
        auto config = console::ConsoleServiceConfig::from_env(e);
        e.finish();
        config.settings.http_port = 0;
        service = std::make_unique<console::ConsoleService>(std::move(config));
        service->start();
        port = service->http_port();
        Pipeline::wait_ready(port);
    }
    std::string url(const std::string& path) const {
        return "http://127.0.0.1:" + std::to_string(port) + path;
    }
    nlohmann::json timeline(const std::string& order_id) const {
        auto r = http_request("GET", url("/api/orders/" + order_id + "/timeline"));
        INFO(r.body);
        REQUIRE(r.status == 200);
        return r.json();
    }
};

}  // namespace orderpipe::testing
