// orderpipe-topics: creates the pipeline's topics from the contract (docs/CONTRACT.md
// "Topics"), so the names and settings of the topics live in one place: libs/contract.
//
//   orderpipe-topics create [--bootstrap B] [--prefix P] [--partitions N]
//                           [--replication-factor R] [--timeout S]
//   orderpipe-topics list   [--prefix P]     # the names, one a line
//
// Exit codes: 0 done, 1 the cluster refused or did not answer, 2 usage error.

#include "orderpipe/common/config.hpp"
#include "orderpipe/contract/topics.hpp"
#include "orderpipe/kafka/admin.hpp"

#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <thread>

namespace {

using orderpipe::contract::TopicKind;

std::vector<orderpipe::kafka::NewTopic> topic_specs(const std::string& prefix, int partitions,
                                                    int rf) {
    std::vector<orderpipe::kafka::NewTopic> out;
    for (const auto& t : orderpipe::contract::all_topics()) {
        orderpipe::kafka::NewTopic nt{prefix + t.name, partitions, rf, {}};
        if (rf > 1) nt.config["min.insync.replicas"] = "2";
        if (t.kind == TopicKind::kDeadLetters) {
            nt.config["retention.ms"] = std::to_string(orderpipe::contract::kDlqRetentionMs);
        } else if (t.kind == TopicKind::kLedger) {
            nt.config["cleanup.policy"] = "compact";
        }
        out.push_back(std::move(nt));
    }
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"Creates orderpipe's topics (docs/CONTRACT.md, \"Topics\")"};
    app.require_subcommand(1);
    // KAFKA_BOOTSTRAP_SERVERS and every other KAFKA_* variable (security settings), as the
    // services read them (docs/CONFIGURATION.md).
    orderpipe::EnvReader env;
    std::string bootstrap = env.string("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092");
    const auto kafka_properties = env.kafka_passthrough();
    try {
        env.finish();
    } catch (const orderpipe::ConfigError& e) {
        std::cerr << "orderpipe-topics: " << e.what() << '\n';
        return 2;
    }
    std::string prefix;
    int partitions = 3;
    int rf = 1;
    int timeout_s = 60;
    auto* create = app.add_subcommand("create", "create every missing topic (idempotent)");
    create->add_option("--bootstrap", bootstrap,
                       "Kafka bootstrap servers [KAFKA_BOOTSTRAP_SERVERS]");
    create->add_option("--prefix", prefix, "prefix of every topic name (TOPIC_PREFIX)");
    create->add_option("--partitions", partitions, "partitions per topic")
        ->check(CLI::Range(1, 1000));
    create
        ->add_option("--replication-factor", rf,
                     "replicas per partition; above 1 also sets min.insync.replicas=2")
        ->check(CLI::Range(1, 10));
    create->add_option("--timeout", timeout_s, "seconds to reach the cluster and see every topic")
        ->check(CLI::Range(1, 3600));
    auto* list = app.add_subcommand("list", "print the topic names, one a line");
    list->add_option("--prefix", prefix, "prefix of every topic name (TOPIC_PREFIX)");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        const int code = app.exit(e);
        return code == 0 ? 0 : 2;
    }

    const auto specs = topic_specs(prefix, partitions, rf);
    if (list->parsed()) {
        for (const auto& t : specs) std::cout << t.name << '\n';
        return 0;
    }
    try {
        orderpipe::kafka::AdminClient admin({bootstrap, "orderpipe-topics", kafka_properties});
        const auto timeout = std::chrono::seconds(timeout_s);
        const auto until = std::chrono::steady_clock::now() + timeout;
        admin.create_topics(specs, timeout);
        // Creation is asynchronous on the controller: wait until every topic is in the metadata.
        for (;;) {
            auto present = admin.topics(std::chrono::seconds(5));
            std::vector<std::string> missing;
            for (const auto& t : specs) {
                if (!present.contains(t.name)) missing.push_back(t.name);
            }
            if (missing.empty()) break;
            if (std::chrono::steady_clock::now() > until) {
                std::cerr << "orderpipe-topics: topics not visible after " << timeout_s
                          << " s: " << missing.front() << " and " << missing.size() - 1
                          << " more\n";
                return 1;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(200));
        }
        std::cout << "orderpipe-topics: " << specs.size() << " topics present on " << bootstrap
                  << " (partitions=" << partitions << ", replication-factor=" << rf << ")\n";
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "orderpipe-topics: " << e.what() << '\n';
        return 1;
    }
}
