// dlqctl: see, triage and replay dead letters (docs/CONTRACT.md "dlqctl").
//
//   dlqctl list    [--topic T] [filters] [--json]
//   dlqctl show    <partition>:<offset> [--topic T]
//   dlqctl stats   [--topic T]
//   dlqctl replay  [filters] [--dry-run] [--rate N] [--to TOPIC] [--force] [--yes]
//   dlqctl discard [filters] --note "why" [--yes]
//   filters: --since/--until (RFC 3339 or 30m/1h/2d), --order-id, --reason, --error-contains,
//            --partition, --offset, --status pending|replayed|discarded
//
// --topic defaults to notifications.dlq; any <topic>.dlq works. --bootstrap (or
// KAFKA_BOOTSTRAP_SERVERS) picks the cluster; TOPIC_PREFIX and other KAFKA_* variables apply as
// for the services. A replay writes each record back to its dlq.original_topic (or --to) in one
// Kafka transaction with its REPLAYED entry on the compacted dlq.resolutions.
// Exit codes: 0 done, 1 failure (Kafka unreachable, a transaction that did not commit),
// 2 usage error.

#include "dlq.hpp"
#include "dlq_kafka.hpp"

#include "orderpipe/common/config.hpp"
#include "orderpipe/common/faults.hpp"
#include "orderpipe/common/ids.hpp"
#include "orderpipe/common/logging.hpp"
#include "orderpipe/common/time.hpp"
#include "orderpipe/contract/events.hpp"
#include "orderpipe/contract/topics.hpp"
#include "orderpipe/kafka/admin.hpp"
#include "orderpipe/kafka/consumer.hpp"
#include "orderpipe/kafka/producer.hpp"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <set>
#include <sstream>
#include <thread>

namespace {

using namespace orderpipe;
using namespace orderpipe::dlqctl;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

/// A problem of the command line: exit 2.
struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct Options : Connection {
    std::string topic;
    FilterText filter;  // as typed
    bool as_json = false;
    std::string position;  // show
    bool dry_run = false;
    double rate = 0;  // records per second; 0: as fast as it goes
    std::string to;
    bool force = false;
    bool yes = false;
    std::string note;
    int max_replays = 3;
};

/// The DLQ of `o.topic` and its ledger; a topic that is not a DLQ is a usage error.
Dlq load(const Options& o) {
    try {
        return dlqctl::load(o, o.topic);
    } catch (const NotADeadLetterTopic& e) {
        throw UsageError(std::string("--topic ") + e.what());
    }
}

std::string user() {
    if (const char* u = std::getenv("USER"); u != nullptr && *u != 0) return u;
    if (const char* l = getlogin(); l != nullptr) return l;
    return "unknown";
}

std::vector<const Entry*> selected(const Dlq& dlq, const Options& o) {
    try {
        return select(dlq.entries, parse_filters(o.filter, std::chrono::system_clock::now(), "--"));
    } catch (const std::invalid_argument& e) {
        throw UsageError(e.what());
    }
}

std::chrono::seconds age(const Entry& e) {
    if (!e.failed_at) return std::chrono::seconds(0);
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now() -
                                                            *e.failed_at);
}

std::string cut(std::string s, std::size_t n) {
    for (auto& c : s) {
        if (c == '\n' || c == '\r' || c == '\t') c = ' ';
    }
    return s.size() <= n ? s : s.substr(0, n - 1) + "…";
}

void say(const std::string& what) { std::cerr << "dlqctl: " << what << '\n'; }

int cmd_list(const Options& o) {
    const auto dlq = load(o);
    const auto chosen = selected(dlq, o);
    if (o.as_json) {
        json out = json::array();
        for (const auto* e : chosen) out.push_back(entry_json(*e));
        std::cout << out.dump(2) << '\n';
        return kExitOk;
    }
    std::cout << std::left << std::setw(12) << "POSITION" << std::setw(6) << "AGE" << std::setw(38)
              << "ORDER" << std::setw(16) << "REASON" << std::setw(10) << "STATUS"
              << "LAST ERROR\n";
    for (const auto* e : chosen) {
        std::cout << std::left << std::setw(12)
                  << (std::to_string(e->record.partition) + ":" + std::to_string(e->record.offset))
                  << std::setw(6) << short_age(age(*e)) << std::setw(38)
                  << cut(e->record.key.value_or("-"), 37) << std::setw(16) << e->reason
                  << std::setw(10) << to_string(e->status) << cut(e->last_error, 60) << '\n';
    }
    std::cout << chosen.size() << " of " << dlq.entries.size() << " record(s) in " << dlq.topic
              << '\n';
    return kExitOk;
}

int cmd_show(Options o) {
    const auto colon = o.position.find(':');
    std::int32_t p = 0;
    std::int64_t off = 0;
    try {
        if (colon == std::string::npos) throw std::invalid_argument("no colon");
        std::size_t used = 0;
        p = static_cast<std::int32_t>(std::stol(o.position.substr(0, colon), &used));
        if (used != colon) throw std::invalid_argument("partition");
        const auto rest = o.position.substr(colon + 1);
        off = std::stoll(rest, &used);
        if (used != rest.size()) throw std::invalid_argument("offset");
    } catch (const std::exception&) {
        throw UsageError("show: \"" + o.position + "\" is not <partition>:<offset>, e.g. 1:42");
    }
    const auto dlq = load(o);
    for (const auto& e : dlq.entries) {
        if (e.record.partition != p || e.record.offset != off) continue;
        json j = entry_json(e);
        if (e.record.value) {
            try {
                j["value"] = json::parse(*e.record.value);
            } catch (const std::exception&) {
                j["value"] = *e.record.value;  // not JSON: as text (dump() escapes what it must)
            }
        } else {
            j["value"] = nullptr;
        }
        std::cout << j.dump(2, ' ', false, json::error_handler_t::replace) << '\n';
        return kExitOk;
    }
    std::cerr << "dlqctl: no record " << o.position << " in " << dlq.topic << '\n';
    return kExitFailure;
}

int cmd_stats(const Options& o) {
    const auto dlq = load(o);
    std::map<std::string, int> by_reason, by_status, by_age;
    for (const auto& e : dlq.entries) {
        ++by_reason[e.reason.empty() ? "(none)" : e.reason];
        ++by_status[to_string(e.status)];
        const auto a = age(e).count();
        ++by_age[a < 3600 ? "< 1h" : a < 86400 ? "< 1d" : a < 7 * 86400 ? "< 7d" : ">= 7d"];
    }
    json out = {{"topic", dlq.topic},
                {"records", dlq.entries.size()},
                {"by_reason", by_reason},
                {"by_status", by_status},
                {"by_age", by_age}};
    std::cout << out.dump(2) << '\n';
    return kExitOk;
}

/// Asks before writing; refuses when nobody can answer. @returns true to go on.
bool confirm(const Options& o, const std::string& question) {
    if (o.yes) return true;
    if (isatty(STDIN_FILENO) == 0) {
        throw UsageError("refusing to write without --yes: stdin is not a terminal (" + question +
                         ")");
    }
    std::cerr << question << " [y/N] " << std::flush;
    std::string answer;
    std::getline(std::cin, answer);
    return answer == "y" || answer == "Y" || answer == "yes";
}

/// Fault point `write-hold` (tests): between reading the ledger and writing, wait (at most 30 s)
/// until someone else has committed to dlq.resolutions — a second dlqctl run meanwhile — so a
/// test sees two dlqctl resolve the same dead letters at once, whatever the machine's speed.
void hold_for_another_writer(const Options& o, const Dlq& dlq) {
    if (!faults::hit("dlqctl", "write-hold")) return;
    std::cerr << "dlqctl: holding before writing (FAULT_INJECT write-hold)" << std::endl;
    const std::string ledger_topic = o.prefix + std::string(contract::topic::kDlqResolutions);
    const auto until = Clock::now() + std::chrono::seconds(30);
    kafka::AdminClient admin(client(o, "admin"));
    while (Clock::now() < until) {
        const auto topics = admin.topics(o.timeout);
        if (topics.contains(ledger_topic) &&
            read_all(o, ledger_topic, topics.at(ledger_topic)).size() > dlq.ledger_records) {
            return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));  // NOLINT: polling
    }
}

int cmd_replay(const Options& o) {
    if (std::isnan(o.rate)) {  // CLI11's range check lets NaN through (every comparison is false)
        throw UsageError("--rate: expected records per second from 0.01 to 100000, not nan");
    }
    // Fence every other dlqctl on this DLQ before reading what they resolved (not for a dry run,
    // which writes nothing).
    std::optional<LedgerWriter> writer;
    if (!o.dry_run) writer.emplace(o, o.prefix + o.topic);
    const auto dlq = load(o);
    const auto plan = plan_replay(selected(dlq, o),
                                  {o.max_replays, o.force, o.to.empty() ? "" : o.prefix + o.to});
    if (plan.skipped_resolved > 0) {
        std::cerr << "dlqctl: skipping " << plan.skipped_resolved
                  << " record(s) already replayed or discarded (a dead letter is resolved once; "
                     "one whose replay failed again is a new dead letter)\n";
    }
    if (plan.skipped_replay_limit > 0) {
        std::cerr << "dlqctl: skipping " << plan.skipped_replay_limit << " record(s) replayed "
                  << o.max_replays << " times already (DLQ_MAX_REPLAYS; --force to go on)\n";
    }
    if (plan.skipped_no_original_topic > 0) {
        std::cerr << "dlqctl: skipping " << plan.skipped_no_original_topic
                  << " record(s) with no dlq.original_topic: use --to\n";
    }
    if (plan.steps.empty()) {
        std::cout << "nothing to replay\n";
        return kExitOk;
    }
    const auto units = plan_records(o, plan, contract::DlqAction::kReplayed, user(), o.note);
    if (o.dry_run) {
        for (const auto& step : plan.steps) {
            const auto& e = *step.entry;
            std::cout << "would replay " << e.key() << " (order " << e.record.key.value_or("-")
                      << ", " << e.reason << ") to " << step.to << " as replay "
                      << e.replay_count + 1 << '\n';
        }
        std::cout << units.size() << " record(s) would be replayed; nothing was written\n";
        return kExitOk;
    }
    if (!confirm(o,
                 "Replay " + std::to_string(units.size()) + " record(s) from " + dlq.topic + "?")) {
        std::cout << "nothing written\n";
        return kExitOk;
    }
    hold_for_another_writer(o, dlq);
    const auto done = write_transactions(*writer, "replayed", units, o.rate, say);
    std::cout << "replayed " << done << " of " << units.size() << " record(s)\n";
    return done == units.size() ? kExitOk : kExitFailure;
}

int cmd_discard(const Options& o) {
    if (o.note.empty()) throw UsageError("discard needs --note \"why\"");
    LedgerWriter writer(o, o.prefix + o.topic);  // first: see LedgerWriter
    const auto dlq = load(o);
    const auto units = plan_records(o, plan_discard(selected(dlq, o)),
                                    contract::DlqAction::kDiscarded, user(), o.note);
    if (units.empty()) {
        std::cout << "nothing to discard\n";
        return kExitOk;
    }
    if (!confirm(o,
                 "Discard " + std::to_string(units.size()) + " record(s) of " + dlq.topic + "?")) {
        std::cout << "nothing written\n";
        return kExitOk;
    }
    hold_for_another_writer(o, dlq);
    const auto done = write_transactions(writer, "discarded", units, o.rate, say);
    std::cout << "discarded " << done << " of " << units.size() << " record(s)\n";
    return done == units.size() ? kExitOk : kExitFailure;
}

void add_filters(CLI::App* cmd, Options& o) {
    cmd->add_option("--since", o.filter.since, "failed at or after (RFC 3339, or 30m/1h/2d ago)");
    cmd->add_option("--until", o.filter.until, "failed at or before (RFC 3339, or 30m/1h/2d ago)");
    cmd->add_option("--order-id", o.filter.order_id, "the record's key (the order id)");
    cmd->add_option("--reason", o.filter.reason, "MAX_RETRIES, PERMANENT_ERROR or POISON_MESSAGE");
    cmd->add_option("--error-contains", o.filter.error_contains, "text in dlq.last_error");
    cmd->add_option("--partition", o.filter.partition, "the DLQ partition")
        ->check(CLI::NonNegativeNumber);
    cmd->add_option("--offset", o.filter.offset, "the DLQ offset")->check(CLI::NonNegativeNumber);
    cmd->add_option("--status", o.filter.status, "pending, replayed or discarded");
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    EnvReader env;
    o.bootstrap = env.string("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092");
    o.prefix = env.string("TOPIC_PREFIX", "");
    o.max_replays = static_cast<int>(env.integer("DLQ_MAX_REPLAYS", 3, 1, 1000));
    o.kafka_properties = env.kafka_passthrough();
    o.topic = std::string(contract::topic::kNotificationsDlq);
    const std::string fault_spec = env.string("FAULT_INJECT", "");
    try {
        env.finish();
        faults::configure(fault_spec);
    } catch (const std::exception& e) {
        std::cerr << "dlqctl: " << e.what() << '\n';
        return kExitUsage;
    }
    log::init("dlqctl", env.string("LOG_LEVEL", "error"));

    CLI::App app{"dlqctl: see, triage and replay orderpipe's dead letters (docs/CONTRACT.md)"};
    app.require_subcommand(1);
    app.add_option("--bootstrap", o.bootstrap, "Kafka bootstrap servers [KAFKA_BOOTSTRAP_SERVERS]");
    app.add_option("--topic", o.topic, "the DLQ topic [notifications.dlq]");
    auto* list = app.add_subcommand("list", "a table of the dead letters");
    add_filters(list, o);
    list->add_flag("--json", o.as_json, "JSON instead of a table");
    auto* show = app.add_subcommand("show", "everything about one dead letter");
    show->add_option("position", o.position, "<partition>:<offset>")->required();
    auto* stats = app.add_subcommand("stats", "counts by reason, status and age");
    auto* replay = app.add_subcommand("replay", "write dead letters back to their topic");
    add_filters(replay, o);
    replay->add_flag("--dry-run", o.dry_run, "say what would be replayed; write nothing");
    replay->add_option("--rate", o.rate, "records per second at most (0.01 to 100000)")
        ->check(CLI::Range(0.01, 100000.0));
    replay->add_option("--to", o.to, "write to this topic instead of dlq.original_topic");
    replay->add_flag("--force", o.force,
                     "past DLQ_MAX_REPLAYS (a replayed or discarded record is never replayed)");
    replay->add_flag("--yes,-y", o.yes, "do not ask");
    replay->add_option("--note", o.note, "recorded in dlq.resolutions");
    auto* discard = app.add_subcommand("discard", "mark dead letters as not to be replayed");
    add_filters(discard, o);
    discard->add_option("--note", o.note, "why (recorded in dlq.resolutions)")->required();
    discard->add_flag("--yes,-y", o.yes, "do not ask");
    for (auto* cmd : {list, show, stats, replay, discard}) {
        cmd->add_option("--topic", o.topic, "the DLQ topic [notifications.dlq]");
        cmd->add_option("--bootstrap", o.bootstrap, "Kafka bootstrap servers");
    }
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        const int code = app.exit(e);
        return code == 0 ? kExitOk : kExitUsage;
    }
    try {
        if (list->parsed()) return cmd_list(o);
        if (show->parsed()) return cmd_show(o);
        if (stats->parsed()) return cmd_stats(o);
        if (replay->parsed()) return cmd_replay(o);
        if (discard->parsed()) return cmd_discard(o);
    } catch (const UsageError& e) {
        std::cerr << "dlqctl: " << e.what() << '\n';
        return kExitUsage;
    } catch (const std::exception& e) {
        std::cerr << "dlqctl: " << e.what() << '\n';
        return kExitFailure;
    }
    return kExitUsage;
}
