// orderpipe-console against a real broker: an order's timeline is every record of the order on
// every topic (what a scan of the topics by key shows), fetched by offset, with its state; a
// DLQ's view is what `dlqctl list --json` shows; bad input gets a clear answer.

#include "console_support.hpp"
#include "order_index.hpp"

#include <fstream>

using namespace orderpipe;
using namespace orderpipe::testing;
using nlohmann::json;

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
    // What the page adds to each of dlqctl's entries: its ledger key, age and payload.
    auto entries = dlq.json()["entries"];
    for (auto& e : entries) {
        CHECK(e["ledger_key"] == e["topic"].get<std::string>() + "/" +
                                     std::to_string(e["partition"].get<int>()) + "/" +
                                     std::to_string(e["offset"].get<std::int64_t>()));
        CHECK(e["value"]["order_id"] == bounced);
        for (const auto* added : {"ledger_key", "age_seconds", "value"}) e.erase(added);
    }
    CHECK(entries == json::parse(listed));
    CHECK(entries.size() == 1);
    CHECK(dlq.json()["total"] == 1);
    CHECK(dlq.json()["truncated"] == false);
    // Filters as dlqctl's, named as query parameters.
    CHECK(http_request("GET", c.url("/api/dlq/notifications.dlq?reason=MAX_RETRIES"))
              .json()["entries"]
              .empty());
    auto bad_filter = http_request("GET", c.url("/api/dlq/notifications.dlq?since=soon"));
    CHECK(bad_filter.status == 400);
    CHECK(bad_filter.body.find("since") != std::string::npos);
    CHECK(bad_filter.body.find("expected RFC 3339") != std::string::npos);
    CHECK(http_request("GET", c.url("/api/dlq/notifications.dlq?limit=0")).status == 400);
    CHECK(http_request("GET", c.url("/api/dlq/notifications.dlq?partition=-1")).status == 400);

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

TEST_CASE(
    "the console replays and discards dead letters through dlqctl's ledger, only for an "
    "operator; search finds orders by customer; the live view shows /api/metrics",
    "[console][kafka]") {
    Pipeline p;
    p.start_provider();
    p.provider_rules({{"match", {{"to", "bounce@example.com"}}}, {"answer", "400"}});
    p.start_inventory();
    p.start_orders();
    p.start_notifications();
    p.start_analytics();
    const std::string token = "s3cret-operator-token";
    const auto operators = p.dir.path() + "/operators";
    {
        std::ofstream f(operators);
        f << "# test\nana:" << console::sha256_hex(token) << "\n";
    }
    Console c(p, {{"CONSOLE_OPERATORS_FILE", operators}});

    auto place_bounced = [&] {
        auto body = Pipeline::order_body({{"MOUSE-001", 1}});
        body["customer_email"] = "bounce@example.com";
        body["customer_id"] = "cust-console";
        auto placed = http_request("POST", p.order_url("/orders"), body.dump(),
                                   {"Content-Type: application/json"});
        REQUIRE(placed.status == 201);
        return placed.json()["order_id"].get<std::string>();
    };
    const auto first = place_bounced();
    const auto second = place_bounced();
    REQUIRE(eventually([&] { return read_committed(p.topic("notifications.dlq"), 1).size() == 2; },
                       std::chrono::seconds(60)));

    // Search: by order id, customer id, email in another case; newest first.
    json found;
    REQUIRE(eventually(
        [&] {
            found = http_request("GET", c.url("/api/search?q=Bounce%40Example.COM")).json();
            return found["orders"].size() == 2;
        },
        std::chrono::seconds(60)));
    CHECK(found["orders"][0]["order_id"] == second);
    CHECK(found["orders"][1]["order_id"] == first);
    CHECK(found["orders"][0]["customer_id"] == "cust-console");
    CHECK(http_request("GET", c.url("/api/search?q=cust-console")).json()["orders"].size() == 2);
    CHECK(http_request("GET", c.url("/api/search?q=" + first)).json()["orders"][0]["order_id"] ==
          first);
    CHECK(http_request("GET", c.url("/api/search?q=nobody")).json()["orders"].empty());
    CHECK(http_request("GET", c.url("/api/search?q=")).status == 400);

    const auto dlq = http_request("GET", c.url("/api/dlq/notifications.dlq")).json();
    REQUIRE(dlq["entries"].size() == 2);
    std::map<std::string, std::string> key_of;  // order id → ledger key
    for (const auto& e : dlq["entries"]) key_of[e["key"]] = e["ledger_key"];
    const auto action = [&](const std::string& what, const json& body,
                            std::vector<std::string> headers) {
        headers.push_back("Content-Type: application/json");
        return http_request("POST", c.url("/api/dlq/notifications.dlq/" + what), body.dump(),
                            headers);
    };
    const std::string bearer = "Authorization: Bearer " + token;
    const json replay_first = {{"keys", {key_of[first]}}, {"dry_run", false}};

    // Refused: no token, a wrong one, another origin. Nothing written.
    auto refused = action("replay", replay_first, {});
    CHECK(refused.status == 401);
    CHECK(refused.body.find("operator token") != std::string::npos);
    CHECK(action("replay", replay_first, {"Authorization: Bearer nope"}).status == 401);
    CHECK(action("replay", replay_first, {bearer, "Origin: http://evil.example"}).status == 403);
    CHECK(action("discard", {{"keys", {key_of[first]}}, {"dry_run", false}}, {bearer}).status ==
          400);  // a discard says why
    CHECK(action("replay", {{"keys", {"notifications.dlq/9/9"}}, {"dry_run", true}}, {bearer})
              .status == 404);
    CHECK(action("replay", {{"filters", {{"since", "soon"}}}}, {bearer}).status == 400);
    CHECK(http_request("GET", c.url("/api/whoami"), "", {bearer}).json()["user"] == "ana");
    CHECK(http_request("GET", c.url("/api/whoami")).status == 401);

    // A dry run says what would happen and writes nothing.
    auto preview = action("replay", {{"keys", {key_of[first]}}, {"dry_run", true}}, {bearer});
    INFO(preview.body);
    REQUIRE(preview.status == 200);
    CHECK(preview.json()["planned"].size() == 1);
    CHECK(preview.json()["planned"][0]["order_id"] == first);
    CHECK(preview.json()["planned"][0]["to"] == p.topic("notifications.requests"));
    CHECK(preview.json()["done"] == 0);
    auto [rc, listed] = p.dlqctl("list --json --status pending");
    REQUIRE(rc == 0);
    CHECK(json::parse(listed).size() == 2);

    // Replayed for real by the operator once the provider is healed: sent, and dlqctl agrees.
    p.provider_heal();
    auto replayed = action("replay", replay_first, {bearer, "Origin: " + c.url("")});
    INFO(replayed.body);
    REQUIRE(replayed.status == 200);
    CHECK(replayed.json()["done"] == 1);
    CHECK(replayed.json()["user"] == "ana");
    // Again: resolved once.
    auto again = action("replay", replay_first, {bearer});
    CHECK(again.json()["done"] == 0);
    CHECK(again.json()["skipped"]["resolved"] == 1);
    auto discarded = action(
        "discard", {{"keys", {key_of[second]}}, {"dry_run", false}, {"note", "test"}}, {bearer});
    REQUIRE(discarded.status == 200);
    CHECK(discarded.json()["done"] == 1);
    std::tie(rc, listed) = p.dlqctl("list --json");
    REQUIRE(rc == 0);
    std::map<std::string, json> by_order;
    for (const auto& e : json::parse(listed)) by_order[e["key"]] = e;
    CHECK(by_order[first]["status"] == "replayed");
    CHECK(by_order[first]["resolution"]["user"] == "ana");
    CHECK(by_order[second]["status"] == "discarded");
    CHECK(by_order[second]["resolution"]["note"] == "test");
    json timeline;
    CHECK(eventually(
        [&] {
            timeline = http_request("GET", c.url("/api/orders/" + first + "/timeline")).json();
            for (const auto& r : timeline["records"]) {
                if (r["type"] == "NOTIFICATION_SENT") return true;
            }
            return false;
        },
        std::chrono::seconds(60)));

    // The live view: the analytics-service's figures as they are, every service ready.
    json live;
    REQUIRE(eventually(
        [&] {
            live = http_request("GET", c.url("/api/live")).json();
            const auto metrics = http_request("GET", p.analytics_url("/api/metrics")).json();
            bool ready = true;
            for (const auto& s : live["services"]) ready = ready && s["status"] == "ready";
            return ready && live["services"].size() == 4 && live["metrics"] == metrics &&
                   metrics["notifications.sent"] == 1 && live["breaker"] == "closed";
        },
        std::chrono::seconds(60)));
    INFO(live.dump(1));
    CHECK(live["lag"].is_array());
}
