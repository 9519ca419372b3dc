// orderpipe-check: the invariant checker (docs/RELIABILITY.md). Reads every topic from the
// beginning (read_committed, and read_uncommitted to count aborted records), the services' HTTP
// APIs and the clients' journal, and checks the guarantees I1–I5 and I7 of docs/CONTRACT.md one
// by one, naming every order that breaks one. Its code shares nothing with the services'.
//
// Exit status: 0 every invariant holds, 1 one is violated, 2 bad usage or input, 3 it could not
// read what it checks (broker or service unreachable).

#include "invariants.hpp"

#include <curl/curl.h>
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <thread>

int main(int argc, char** argv) {
    using namespace orderpipe::check;
    CLI::App app{
        "orderpipe-check: are the guarantees of docs/CONTRACT.md kept? (docs/RELIABILITY.md)"};
    std::string bootstrap = std::getenv("KAFKA_BOOTSTRAP_SERVERS") != nullptr
                                ? std::getenv("KAFKA_BOOTSTRAP_SERVERS")
                                : "127.0.0.1:9092";
    std::string prefix = std::getenv("TOPIC_PREFIX") != nullptr ? std::getenv("TOPIC_PREFIX") : "";
    Inputs in;
    std::string journal, catalog, json_out;
    double wait_s = 0;
    app.add_option("--bootstrap", bootstrap, "Kafka bootstrap servers [KAFKA_BOOTSTRAP_SERVERS]");
    app.add_option("--topic-prefix", prefix, "prepended to every topic name [TOPIC_PREFIX]");
    app.add_option("--order-url", in.order_url, "order-service, e.g. http://127.0.0.1:8080");
    app.add_option("--inventory-url", in.inventory_url, "inventory-service (I3's stock levels)");
    app.add_option("--analytics-url", in.analytics_url, "analytics-service (I5)");
    app.add_option("--provider-url", in.provider_url, "the fake email provider (I4's sends)");
    app.add_option("--journal", journal,
                   "the clients' answers, JSON lines: {\"op\":\"place\",\"customer_id\",\"status\","
                   "\"order_id\"} and {\"op\":\"cancel\",\"order_id\",\"status\"} (I1, I2); "
                   "{\"op\":\"lost\",\"service\",\"from\",\"until\",\"max_in_flight\"}: a "
                   "notification-service instance lost with sends out, the only reason a "
                   "notification the provider accepted may reach it again (I4)")
        ->check(CLI::ExistingFile);
    app.add_option("--catalog", catalog, "the inventory's seed file (INVENTORY_SEED), for I3")
        ->check(CLI::ExistingFile);
    app.add_option("--wait", wait_s,
                   "seconds to check again while something does not hold yet (a pipeline that "
                   "is still settling); the last report is printed")
        ->check(CLI::Range(0.0, 86400.0));
    app.add_option("--json", json_out, "also write the report as JSON to this file");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        const int code = app.exit(e);
        return code == 0 ? 0 : 2;  // bad usage: exit code 2
    }

    curl_global_init(CURL_GLOBAL_DEFAULT);
    try {
        if (!journal.empty()) in.journal = Journal::read(journal);
        if (!catalog.empty()) {
            std::ifstream f(catalog);
            in.catalog = nlohmann::json::parse(f, nullptr, false);
            if (!in.catalog->is_array()) {
                std::cerr << "orderpipe-check: " << catalog << " is not a JSON array of SKUs\n";
                return 2;
            }
        }
    } catch (const std::exception& e) {
        std::cerr << "orderpipe-check: " << e.what() << "\n";
        return 2;
    }

    const auto deadline = std::chrono::steady_clock::now() +
                          std::chrono::milliseconds(static_cast<long>(wait_s * 1000));
    Report report;
    for (int round = 1;; ++round) {
        TopicSet topics(bootstrap, prefix);
        try {
            report = check(topics, in);
        } catch (const std::exception& e) {
            if (std::chrono::steady_clock::now() < deadline) {
                std::cerr << "orderpipe-check: round " << round << ": " << e.what() << "; again\n";
                std::this_thread::sleep_for(std::chrono::seconds(2));
                continue;
            }
            std::cerr << "orderpipe-check: " << e.what() << "\n";
            return 3;
        }
        if (report.holds() || std::chrono::steady_clock::now() >= deadline) break;
        std::size_t open = 0;
        std::string first;
        for (const auto& i : report.invariants) {
            open += i.violations.size();
            if (first.empty() && !i.violations.empty()) first = i.id + ": " + i.violations[0];
        }
        std::cerr << "orderpipe-check: round " << round << ": " << open << " findings (" << first
                  << "); still settling? checking again\n";
        // Poll again (a settling pipeline); the deadline bounds it.
        std::this_thread::sleep_for(std::chrono::seconds(3));
    }
    std::cout << report.text();
    if (!json_out.empty()) std::ofstream(json_out) << report.to_json().dump(2) << "\n";
    std::cout << (report.holds() ? "every invariant holds\n" : "VIOLATIONS FOUND\n");
    return report.holds() ? 0 : 1;
}
