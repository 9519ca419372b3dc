// The console's page in a real browser: Debian's chromium, driven by playwright-core from
// tests/browser/console.mjs, against a whole pipeline (broker, services, the fake email provider,
// orderpipe-console serving the built page). The script places an order and opens its timeline,
// breaks the email provider, watches the dead letter appear in the triage view, is refused a
// replay without the operator's token, replays it with the token after a dry run, sees it
// resolved and NOTIFICATION_SENT in the timeline, and checks that dlqctl agrees with the page.
// Its screenshots go to ORDERPIPE_CONSOLE_SCREENSHOTS (default: the build's
// console-screenshots/; docs/CONSOLE.md shows the ones taken into docs/images/).

#include "console_support.hpp"

#include <cstdlib>
#include <fstream>
#include <sstream>

using namespace orderpipe;
using namespace orderpipe::testing;
using nlohmann::json;

TEST_CASE("the console's page, in Chromium: a timeline, a dead letter replayed by an operator",
          "[console][browser][kafka]") {
    Pipeline p;
    p.start_provider();
    p.start_inventory();
    p.start_orders();
    p.start_notifications();
    p.start_analytics();
    const std::string token = "browser-test-operator-token";
    const auto operators = p.dir.path() + "/operators";
    {
        std::ofstream f(operators);
        f << "operator:" << console::sha256_hex(token) << "\n";
    }
    Console c(p, {{"CONSOLE_OPERATORS_FILE", operators}});
    REQUIRE(http_request("GET", c.url("/")).status == 200);  // the page is built

    const char* shots = std::getenv("ORDERPIPE_CONSOLE_SCREENSHOTS");
    const std::map<std::string, std::string> env{
        {"CONSOLE_URL", c.url("")},
        {"ORDER_URL", p.order_url("")},
        {"PROVIDER_URL", p.provider_url("")},
        {"OPERATOR_TOKEN", token},
        {"DLQCTL", DLQCTL_BIN},
        {"DLQCTL_ARGS_JSON", json::array({"--bootstrap", bootstrap()}).dump()},
        {"DLQCTL_ENV_JSON", json{{"TOPIC_PREFIX", p.prefix + "."}}.dump()},
        {"SCREENSHOT_DIR", shots != nullptr ? shots : ORDERPIPE_CONSOLE_SCREENSHOTS},
        // A loaded CI machine: every wait of the script may take three times its minute.
        {"TIMEOUT_SCALE", "3"}};
    const auto log = p.dir.path() + "/console.mjs.log";
    ChildProcess browser(ORDERPIPE_BROWSER_TEST, env, log);
    const auto rc = browser.wait_exit(std::chrono::minutes(20));
    std::stringstream out;
    out << std::ifstream(log).rdbuf();
    INFO(out.str());
    REQUIRE(rc.has_value());
    CHECK(*rc == 0);
}
