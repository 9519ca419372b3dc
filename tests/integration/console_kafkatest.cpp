// orderpipe-console against a real broker: an order's timeline is every record of the order on
// every topic (what a scan of the topics by key shows), fetched by offset, with its state; a
// DLQ's view is what `dlqctl list --json` shows; bad input gets a clear answer.

#include "console_service.hpp"
#include "order_index.hpp"
#include "pipeline.hpp"

using namespace orderpipe;
using namespace orderpipe::testing;
using nlohmann::json;

namespace {

struct Console {
    std::unique_ptr<console::ConsoleService> service;
    std::uint16_t port = 0;

    explicit Console(const Pipeline& p) {
        auto env = p.env("orderpipe-console");
        env["CONSOLE_ORDER_URL"] = p.order_url("");
        env["CONSOLE_ANALYTICS_URL"] = p.analytics_url("");
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
    json timeline(const std::string& order_id) const {
        auto r = http_request("GET", url("/api/orders/" + order_id + "/timeline"));
        INFO(r.body);
        REQUIRE(r.status == 200);
        return r.json();
    }
};

}  // namespace

TEST_CASE(
    "the console's timeline of an order is every record of it on every topic, with its state; "
    "its DLQ view is dlqctl's",
    "[console][kafka]") {
    Pipeline p;
    p.start_provider();
    p.provider_rules({{"match", {{"to", "bounce@example.com"}}}, {"answer", "400"}});
    p.start_inventory();
    p.start_orders();
    p.start_notifications();
    p.start_analytics();
    Console c(p);

    const auto confirmed = p.place({{"MOUSE-001", 2}});
    auto body = Pipeline::order_body({{"MOUSE-001", 1}});
    body["customer_email"] = "bounce@example.com";
    auto placed = http_request("POST", p.order_url("/orders"), body.dump(),
                               {"Content-Type: application/json"});
    REQUIRE(placed.status == 201);
    const auto bounced = placed.json()["order_id"].get<std::string>();
    CHECK(p.wait_terminal(confirmed)["status"] == "CONFIRMED");
    CHECK(p.wait_terminal(bounced)["status"] == "CONFIRMED");
    REQUIRE(read_committed(p.topic("notifications.dlq"), 1).size() == 1);

    // The timeline equals the topics, record for record, each fetched with its value.
    for (const auto& id : {confirmed, bounced}) {
        INFO(id);
        json timeline;
        std::set<Indexed> truth;
        const bool equal = eventually(
            [&] {
                truth = scanned(p, {id})[id];
                timeline = c.timeline(id);
                return indexed_of(timeline["records"]) == truth &&
                       (id == bounced ||
                        timeline["waiting_for"] == "");  // its email is sent: nothing to wait for
            },
            std::chrono::seconds(60));
        INFO(timeline.dump(1));
        REQUIRE(equal);
        CHECK(truth.size() >= 7);  // created, request, response, reserved, decided, email...
        CHECK(timeline["state"]["status"] == "CONFIRMED");
        for (const auto& e : timeline["records"]) {
            CHECK(e["fetched"] == true);
            CHECK(e["trace_id"].get<std::string>().size() == 32);
            CHECK_FALSE(e["source"].get<std::string>().empty());
        }
        // In time order, and the first one is the order's creation.
        CHECK(timeline["records"][0]["type"] == "ORDER_CREATED");
        CHECK(timeline["records"][0]["value"]["order_id"] == id);
        CHECK(timeline["records"][0]["gap_ms"].is_null());
    }
    const auto bounced_timeline = c.timeline(bounced);
    CHECK(bounced_timeline["waiting_for"].get<std::string>().find("dead letter") !=
          std::string::npos);

    // The DLQ view is dlqctl's.
    auto [rc, listed] = p.dlqctl("list --json");
    INFO(listed);
    REQUIRE(rc == 0);
    auto dlq = http_request("GET", c.url("/api/dlq/notifications.dlq"));
    REQUIRE(dlq.status == 200);
    CHECK(dlq.json()["entries"] == json::parse(listed));
    CHECK(dlq.json()["entries"].size() == 1);

    // Bad input: a clear answer, never a blank one.
    auto unknown = http_request("GET", c.url("/api/orders/nobody-at-all/timeline"));
    CHECK(unknown.status == 404);
    CHECK(unknown.body.find("nobody-at-all") != std::string::npos);
    CHECK(http_request("GET", c.url("/api/orders/a%2Fb/timeline")).status == 400);
    CHECK(http_request("GET", c.url("/api/orders/" + std::string(200, 'x') + "/timeline")).status ==
          400);
    auto not_dlq = http_request("GET", c.url("/api/dlq/orders.events"));
    CHECK(not_dlq.status == 404);
    CHECK(not_dlq.body.find("not a dead-letter topic") != std::string::npos);
}
