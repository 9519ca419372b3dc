// orderpipe-bench: drives POST /orders against a running pipeline (the one scripts/run.sh
// starts), watches the decisions on orders.events (read_committed), and reports throughput,
// latency percentiles, CPU time per order of every process (the broker included), peak memory,
// and the broker's raw transactional ceiling measured in the same run (docs/BENCHMARKS.md).
//
//   orderpipe-bench --rate 5000 --duration 30s          open loop at 5,000 orders/s
//   orderpipe-bench --connections 256 --duration 30s    closed loop, 256 in flight
//
// It restocks the built-in catalog's SKUs first (PUT /inventory/{sku}) so that well-stocked
// orders are confirmed and MONITOR-001 orders are cancelled for stock.

#include "load.hpp"
#include "procstat.hpp"

#include "orderpipe/common/cloudevent.hpp"
#include "orderpipe/common/ids.hpp"
#include "orderpipe/common/logging.hpp"
#include "orderpipe/contract/topics.hpp"
#include "orderpipe/kafka/admin.hpp"
#include "orderpipe/kafka/consumer.hpp"
#include "orderpipe/kafka/event_record.hpp"
#include "orderpipe/kafka/producer.hpp"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

using namespace orderpipe;
using namespace orderpipe::bench;
using nlohmann::json;

namespace {

struct Options {
    std::string order_url = "http://127.0.0.1:8080";
    std::string inventory_url = "http://127.0.0.1:8081";
    std::string bootstrap = "127.0.0.1:9092";
    std::string topic_prefix;
    double rate = 0;
    std::size_t connections = 0;
    double warmup_s = 10;
    double duration_s = 30;
    double ceiling_s = 5;
    bool restock = true;
    std::string json_path;
    std::string label;
    std::vector<std::string> kafka_properties;  ///< -X key=value, for the bench's own clients

    kafka::ClientConfig client(const std::string& id) const {
        kafka::ClientConfig cc{bootstrap, id, {}};
        for (const auto& kv : kafka_properties) {
            const auto eq = kv.find('=');
            cc.properties[kv.substr(0, eq)] = eq == std::string::npos ? "" : kv.substr(eq + 1);
        }
        return cc;
    }
};

std::pair<std::string, std::uint16_t> host_port(const std::string& url) {
    std::string rest = url.substr(url.find("://") == std::string::npos ? 0 : url.find("://") + 3);
    rest = rest.substr(0, rest.find('/'));
    const auto colon = rest.rfind(':');
    if (colon == std::string::npos) return {rest, 80};
    return {rest.substr(0, colon), static_cast<std::uint16_t>(std::stoi(rest.substr(colon + 1)))};
}

/// One blocking HTTP request (setup and scrapes only). @returns the status and the body.
std::pair<int, std::string> http_exchange(const std::string& url, boost::beast::http::verb verb,
                                          const std::string& target, const std::string& body) {
    namespace beast = boost::beast;
    namespace http = beast::http;
    const auto [host, port] = host_port(url);
    boost::asio::io_context io;
    beast::tcp_stream stream(io);
    stream.connect(boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address(host), port));
    http::request<http::string_body> req{verb, target, 11};
    req.set(http::field::host, host);
    req.set(http::field::content_type, "application/json");
    req.body() = body;
    req.prepare_payload();
    http::write(stream, req);
    beast::flat_buffer buffer;
    http::response<http::string_body> res;
    http::read(stream, buffer, res);
    return {static_cast<int>(res.result_int()), std::move(res.body())};
}

int http_call(const std::string& url, boost::beast::http::verb verb, const std::string& target,
              const std::string& body) {
    return http_exchange(url, verb, target, body).first;
}

/// Committed Kafka transactions so far, by "service/loop", summed over a service's instances:
/// kafka_transactions_total{result="committed"} from each daemon's own /metrics (its HTTP_PORT,
/// so each instance behind HAProxy is counted once). A daemon that does not answer is left out.
std::map<std::string, double> committed_transactions(const std::vector<WatchedProcess>& procs) {
    static const std::string kMetric = "kafka_transactions_total{";
    std::map<std::string, double> out;
    for (const auto& p : procs) {
        if (!p.name.ends_with("-service")) continue;
        const int port = http_port_of(p.pid);
        if (port == 0) continue;
        std::string text;
        try {
            auto [status, body] = http_exchange("http://127.0.0.1:" + std::to_string(port),
                                                boost::beast::http::verb::get, "/metrics", "");
            if (status != 200) continue;
            text = std::move(body);
        } catch (const std::exception&) {
            continue;
        }
        std::istringstream lines(text);
        for (std::string line; std::getline(lines, line);) {
            if (!line.starts_with(kMetric) ||
                line.find("result=\"committed\"") == std::string::npos)
                continue;
            const auto l = line.find("loop=\"");
            const auto close = line.rfind('}');
            if (l == std::string::npos || close == std::string::npos) continue;
            const auto end = line.find('"', l + 6);
            try {
                out[p.name + "/" + line.substr(l + 6, end - l - 6)] +=
                    std::stod(line.substr(close + 1));
            } catch (const std::exception&) {  // NOLINT(bugprone-empty-catch): not a sample
            }
        }
    }
    return out;
}

double percentile(std::vector<double>& v, double p) {
    if (v.empty()) return std::nan("");
    std::sort(v.begin(), v.end());
    const auto rank =
        static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
    return v[std::max<std::size_t>(rank, 1) - 1];
}

double ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

/// Watches orders.events from its end and times each bench order from its intended send to
/// the first decision the bench sees.
class Decisions {
  public:
    Decisions(const Options& o) : options_(o) {
        kafka::ConsumerOptions co;
        co.group_id = "orderpipe-bench-" + std::to_string(::getpid());
        const auto cc = o.client("orderpipe-bench");
        consumer_ = std::make_unique<kafka::Consumer>(cc, co);
        const std::string topic = o.topic_prefix + std::string(contract::topic::kOrdersEvents);
        const int n = consumer_->partition_count(topic, std::chrono::seconds(10));
        if (n == 0) throw std::runtime_error("topic " + topic + " not found on " + o.bootstrap);
        std::vector<kafka::TopicPartitionOffset> at_end;
        for (int p = 0; p < n; ++p) at_end.push_back({topic, p, kafka::Consumer::kEnd});
        consumer_->assign(at_end);
        thread_ = std::thread([this] { run(); });
    }
    ~Decisions() {
        stop_ = true;
        consumer_->wake();
        if (thread_.joinable()) thread_.join();
        consumer_->close();
    }

    /// A 201 for `order_id`, meant to be sent at `intended`.
    void placed(const std::string& order_id, Clock::time_point intended) {
        std::lock_guard lock(mu_);
        if (auto it = decided_.find(order_id); it != decided_.end()) {
            latencies_.push_back({intended, it->second});
            decided_.erase(it);
        } else {
            placed_.emplace(order_id, intended);
        }
    }

    /// (intended send, decision seen) of every order decided so far.
    std::vector<std::pair<Clock::time_point, Clock::time_point>> latencies() {
        std::lock_guard lock(mu_);
        return latencies_;
    }
    std::size_t undecided() {
        std::lock_guard lock(mu_);
        return placed_.size();
    }

  private:
    void run() {
        while (!stop_) {
            auto batch = consumer_->poll_batch(2000, std::chrono::milliseconds(100));
            const auto now = Clock::now();
            std::lock_guard lock(mu_);
            for (const auto& r : batch.records) {
                const auto type = r.header("ce_type");
                if (type != "ORDER_CONFIRMED" && type != "ORDER_CANCELLED") continue;
                const std::string id = r.header("ce_subject").value_or("");
                if (auto it = placed_.find(id); it != placed_.end()) {
                    latencies_.push_back({it->second, now});
                    placed_.erase(it);
                } else if (!seen_.contains(id)) {
                    decided_.emplace(id, now);  // the 201 is not parsed yet
                }
                seen_.insert(id);
            }
        }
    }

    const Options& options_;
    std::unique_ptr<kafka::Consumer> consumer_;
    std::thread thread_;
    std::atomic<bool> stop_{false};
    std::mutex mu_;
    std::unordered_map<std::string, Clock::time_point> placed_;
    std::unordered_map<std::string, Clock::time_point> decided_;
    std::unordered_set<std::string> seen_;  // only one decision per order counts
    std::vector<std::pair<Clock::time_point, Clock::time_point>> latencies_;
};

/// Records/s a transactional producer commits on this broker, with records like ORDER_CREATED's
/// (same value size and headers), 100 ms per transaction, 3 partitions.
json measure_ceiling(const Options& o) {
    const std::string topic = o.topic_prefix + "orderpipe-bench.ceiling";
    const auto cc = o.client("orderpipe-bench-ceiling");
    kafka::create_topics(cc, {{topic, 3, 1, {{"retention.ms", "60000"}}}});
    kafka::ProducerOptions po;
    po.transactional_id = "orderpipe-bench-ceiling";
    kafka::TransactionalProducer producer(cc, po);
    producer.init_transactions();
    const auto sample =
        CloudEvent::make("ORDER_CREATED", "/order-service", new_uuid_v7(), new_uuid_v7(),
                         std::nullopt, TraceContext::fresh().header(), json::parse(order_body(7)));
    std::size_t n = 0;
    // The floor: one record per transaction, one at a time (what one hop of the saga costs at
    // least on this broker).
    std::vector<double> one_ms;
    for (int i = 0; i < 50; ++i) {
        const auto t0 = Clock::now();
        producer.begin();
        producer.produce(kafka::to_record(topic, std::to_string(n++), sample));
        if (producer.commit_or_abort() == kafka::TxnOutcome::kCommitted)
            one_ms.push_back(ms(Clock::now() - t0));
    }
    std::size_t committed = 0;
    const auto start = Clock::now();
    const auto end = start + std::chrono::duration_cast<Clock::duration>(
                                 std::chrono::duration<double>(o.ceiling_s));
    while (Clock::now() < end) {
        producer.begin();
        const auto txn_end = Clock::now() + std::chrono::milliseconds(100);
        std::size_t in_txn = 0;
        while (Clock::now() < txn_end) {
            producer.produce(kafka::to_record(topic, std::to_string(n++), sample));
            ++in_txn;
        }
        if (producer.commit_or_abort() == kafka::TxnOutcome::kCommitted) committed += in_txn;
    }
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    const auto rec = kafka::to_record(topic, "k", sample);
    std::size_t bytes = rec.value->size();
    for (const auto& [k, v] : rec.headers) bytes += k.size() + (v ? v->size() : 0);
    return {{"records_per_s", static_cast<double>(committed) / seconds},
            {"record_bytes", bytes},
            {"transaction_ms", 100},
            {"seconds", seconds},
            {"one_record_transaction_ms",
             {{"p50", percentile(one_ms, 50)}, {"p99", percentile(one_ms, 99)}}}};
}

/// CPU of this process's threads, by thread name, in clock ticks.
std::map<std::string, long> thread_ticks() {
    std::map<std::string, long> out;
    for (const auto& t : std::filesystem::directory_iterator("/proc/self/task")) {
        std::ifstream comm(t.path() / "comm");
        std::string name;
        std::getline(comm, name);
        std::ifstream stat(t.path() / "stat");
        std::string line;
        std::getline(stat, line);
        std::istringstream f(line.substr(line.rfind(')') + 2));
        std::string field;
        long ticks = 0;
        for (int i = 3; f >> field; ++i) {
            if (i == 14 || i == 15) ticks += std::stol(field);
            if (i == 15) break;
        }
        out[name] += ticks;
    }
    return out;
}

/// `n` one-record transactions, one after the other: their latency and the client's CPU per
/// transaction by thread (what one hop of the saga costs a service at low load).
json probe_transactions(const Options& o, int n) {
    const std::string topic = o.topic_prefix + "orderpipe-bench.ceiling";
    const auto cc = o.client("orderpipe-bench-probe");
    kafka::create_topics(cc, {{topic, 3, 1, {{"retention.ms", "60000"}}}});
    kafka::ProducerOptions po;
    po.transactional_id = "orderpipe-bench-probe";
    kafka::TransactionalProducer producer(cc, po);
    producer.init_transactions();
    kafka::OutgoingRecord r{topic, std::string("k"), std::string(400, 'x'), {}};
    producer.begin();
    producer.produce(r);
    (void)producer.commit_or_abort();  // metadata and partition registration out of the way
    std::vector<double> lat;
    const auto before = thread_ticks();
    const char* gap = std::getenv("PROBE_GAP_MS");
    for (int i = 0; i < n; ++i) {
        if (gap != nullptr) std::this_thread::sleep_for(std::chrono::milliseconds(std::atoi(gap)));
        const auto t0 = Clock::now();
        producer.begin();
        producer.produce(r);
        (void)producer.commit_or_abort();
        lat.push_back(ms(Clock::now() - t0));
    }
    json cpu = json::object();
    for (const auto& [name, ticks] : thread_ticks()) {
        const long d = ticks - (before.contains(name) ? before.at(name) : 0);
        if (d > 0)
            cpu[name] =
                static_cast<double>(d) * 1e6 / static_cast<double>(::sysconf(_SC_CLK_TCK)) / n;
    }
    return {{"transactions", n},
            {"latency_ms",
             {{"p50", percentile(lat, 50)},
              {"p90", percentile(lat, 90)},
              {"p99", percentile(lat, 99)}}},
            {"cpu_us_per_transaction_by_thread", cpu}};
}

// --compare: earlier runs' JSON side by side, as a Markdown table (docs/BENCHMARKS.md).
// Instances of one service are summed into one row (their count in brackets); peak RSS is the
// largest instance's.
int compare(const std::vector<std::string>& files) {
    std::vector<json> runs;
    std::vector<std::string> heads;
    for (const auto& f : files) {
        std::ifstream in(f);
        if (!in) {
            std::cerr << "orderpipe-bench: --compare: cannot read " << f << "\n";
            return 2;
        }
        json r = json::parse(in, nullptr, false);
        if (r.is_discarded() || !r.is_object() || !r.contains("accepted_per_s") ||
            !r.contains("processes")) {
            std::cerr << "orderpipe-bench: --compare: " << f
                      << " is not a result of orderpipe-bench --json\n";
            return 2;
        }
        heads.push_back(r.value("label", "").empty() ? std::filesystem::path(f).stem().string()
                                                     : r["label"].get<std::string>());
        runs.push_back(std::move(r));
    }
    auto num = [](const json& j, std::initializer_list<const char*> path) -> std::optional<double> {
        const json* at = &j;
        for (const char* k : path) {
            if (!at->is_object() || !at->contains(k)) return std::nullopt;
            at = &(*at)[k];
        }
        if (!at->is_number()) return std::nullopt;
        return at->get<double>();
    };
    auto fmt = [](std::optional<double> v, const char* unit = "", int decimals = 0) {
        if (!v) return std::string("—");
        char b[64];
        std::snprintf(b, sizeof b, "%.*f%s", decimals, *v, unit);
        return std::string(b);
    };
    auto row = [&](const std::string& name, auto cell) {
        std::cout << "| " << name;
        for (const auto& r : runs) std::cout << " | " << cell(r);
        std::cout << " |\n";
    };
    std::cout << "|";
    for (const auto& h : heads) std::cout << " | " << h;
    std::cout << " |\n|---";
    for (std::size_t i = 0; i < runs.size(); ++i) std::cout << "|---";
    std::cout << "|\n";
    row("accepted orders/s", [&](const json& r) { return fmt(num(r, {"accepted_per_s"})); });
    row("decisions/s", [&](const json& r) { return fmt(num(r, {"decisions_per_s"})); });
    row("POST p99", [&](const json& r) { return fmt(num(r, {"post_ms", "p99"}), " ms"); });
    row("POST → decision p50 / p99", [&](const json& r) {
        return fmt(num(r, {"post_to_decision_ms", "p50"}), " ms") + " / " +
               fmt(num(r, {"post_to_decision_ms", "p99"}), " ms");
    });
    row("undecided at the end", [&](const json& r) { return fmt(num(r, {"undecided_at_end"})); });
    row("**CPU µs per order, all processes**",
        [&](const json& r) { return "**" + fmt(num(r, {"cpu_us_per_order_total"})) + "**"; });
    // Every process name any run has, in first-seen order.
    std::vector<std::string> names;
    for (const auto& r : runs)
        for (const auto& p : r["processes"]) {
            const auto n = p.value("name", "");
            if (n != "orderpipe-bench" && std::find(names.begin(), names.end(), n) == names.end())
                names.push_back(n);
        }
    std::sort(names.begin(), names.end());
    for (const auto& n : names) {
        row("CPU µs/order: " + n, [&](const json& r) {
            double us = 0;
            int count = 0;
            for (const auto& p : r["processes"])
                if (p.value("name", "") == n) {
                    us += p.value("cpu_us_per_order", 0.0);
                    count += p.contains("processes") ? p["processes"].get<int>() : 1;
                }
            if (count == 0) return std::string("—");
            return fmt(us) + (count > 1 && n != "postgresql" ? " (" + std::to_string(count) + ")"
                                                             : std::string());
        });
    }
    for (const auto& n : names) {
        if (n == "postgresql" || n == "kafka broker") continue;
        row("peak RSS: " + n, [&](const json& r) {
            std::optional<double> peak;
            for (const auto& p : r["processes"])
                if (p.value("name", "") == n)
                    peak = std::max(peak.value_or(0.0), p.value("peak_rss_mib", 0.0));
            return fmt(peak, " MiB", 1);
        });
    }
    std::vector<std::string> loops;
    for (const auto& r : runs)
        if (r.contains("transactions_per_order"))
            for (const auto& [loop, v] : r["transactions_per_order"].items())
                if (std::find(loops.begin(), loops.end(), loop) == loops.end())
                    loops.push_back(loop);
    std::sort(loops.begin(), loops.end());
    for (const auto& l : loops) {
        row("transactions/order: " + l, [&](const json& r) {
            return fmt(num(r, {"transactions_per_order", l.c_str()}), "", 3);
        });
    }
    row("raw ceiling (records/s)", [&](const json& r) {
        return fmt(num(r, {"ceiling", "records_per_s"}));
    });
    row("decisions / ceiling",
        [&](const json& r) { return fmt(num(r, {"decision_ratio_to_ceiling"}), "", 3); });
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    CLI::App app{
        "orderpipe-bench: load the pipeline and report throughput, latency, CPU per order "
        "and the broker's ceiling (docs/BENCHMARKS.md)"};
    app.add_option("--order-url", o.order_url, "order-service base URL");
    app.add_option("--inventory-url", o.inventory_url, "inventory-service base URL (restock)");
    app.add_option("--bootstrap", o.bootstrap, "Kafka bootstrap servers")
        ->envname("KAFKA_BOOTSTRAP_SERVERS");
    app.add_option("--topic-prefix", o.topic_prefix, "TOPIC_PREFIX of the pipeline")
        ->envname("TOPIC_PREFIX");
    auto* rate = app.add_option("--rate", o.rate, "open loop: orders per second")
                     ->check(CLI::PositiveNumber);
    app.add_option("--connections", o.connections,
                   "connections (closed loop: orders in flight); default 256")
        ->check(CLI::Range(1, 4096));
    app.add_option("--warmup", o.warmup_s, "seconds of load before measuring")
        ->check(CLI::Range(0.0, 3600.0));
    app.add_option("--duration", o.duration_s, "seconds measured")->check(CLI::Range(1.0, 3600.0));
    app.add_option("--ceiling", o.ceiling_s, "seconds of raw transactional produce (0: skip)")
        ->check(CLI::Range(0.0, 600.0));
    app.add_flag("!--no-restock", o.restock, "do not PUT stock levels before the run");
    app.add_option("--json", o.json_path, "also write the results as JSON to this file");
    app.add_option("--label", o.label, "a name for this run in the JSON");
    app.add_option("-X", o.kafka_properties,
                   "a librdkafka property for the bench's own clients, key=value (repeatable)");
    int probe = 0;
    app.add_option("--probe-transactions", probe,
                   "only run N one-record transactions back to back and print their latency and "
                   "the client's CPU per transaction by thread");
    std::string log_level = "warn";
    app.add_option("--log-level", log_level, "JSON log lines on stderr at this level and above");
    std::vector<std::string> compared;
    app.add_option("--compare", compared,
                   "only print earlier runs' --json files side by side (a Markdown table); "
                   "instances of one service summed")
        ->check(CLI::ExistingFile);
    CLI11_PARSE(app, argc, argv);
    log::init("orderpipe-bench", log_level);
    if (!compared.empty()) return compare(compared);
    if (probe > 0) {
        std::cout << probe_transactions(o, probe).dump(2) << "\n";
        return 0;
    }
    const bool open_loop = rate->count() > 0;
    if (o.connections == 0) o.connections = 256;

    try {
        if (o.restock) {
            for (const auto& [sku, n] : bench_stock()) {
                const int status = http_call(o.inventory_url, boost::beast::http::verb::put,
                                             "/inventory/" + sku, json{{"available", n}}.dump());
                if (status != 200) {
                    std::cerr << "orderpipe-bench: PUT " << o.inventory_url << "/inventory/" << sku
                              << " answered " << status << "\n";
                    return 1;
                }
            }
        }
        Decisions decisions(o);
        const auto [host, port] = host_port(o.order_url);
        LoadOptions lo{host, port, open_loop ? o.rate : 0.0, o.connections, 42};
        Load load(lo);
        std::mutex mu;
        std::vector<Sample> samples;
        std::atomic<bool> measuring{false};
        Clock::time_point window_start, window_end;
        load.on_sample([&](const Sample& s) {
            if (s.status == 201) decisions.placed(s.order_id, s.intended);
            if (!measuring) return;
            std::lock_guard lock(mu);
            samples.push_back(s);
        });
        const auto processes = find_processes();
        std::cerr << "orderpipe-bench: "
                  << (open_loop ? "open loop at " + std::to_string(static_cast<long>(o.rate)) +
                                      " orders/s"
                                : "closed loop")
                  << ", " << o.connections << " connections, warm-up " << o.warmup_s
                  << " s, measuring " << o.duration_s << " s\n";
        load.start();
        std::this_thread::sleep_for(std::chrono::duration<double>(o.warmup_s));
        std::map<int, ProcessUsage> before;
        for (const auto& p : processes) before[p.pid] = usage_of(p.pid);
        const auto txns_before = committed_transactions(processes);
        window_start = Clock::now();
        measuring = true;
        std::size_t peak_backlog = 0;
        std::map<int, long> peak_rss;
        while (Clock::now() - window_start < std::chrono::duration<double>(o.duration_s)) {
            std::this_thread::sleep_for(std::chrono::milliseconds(250));
            peak_backlog = std::max(peak_backlog, load.backlog());
            for (const auto& p : processes)
                peak_rss[p.pid] = std::max(peak_rss[p.pid], usage_of(p.pid).rss_kib);
        }
        window_end = Clock::now();
        std::map<int, ProcessUsage> after;
        for (const auto& p : processes) after[p.pid] = usage_of(p.pid);
        const auto txns_after = committed_transactions(processes);
        measuring = false;
        const std::size_t unanswered = load.stop(std::chrono::seconds(30));
        // Let the last decisions arrive.
        const auto drain_until = Clock::now() + std::chrono::seconds(30);
        while (decisions.undecided() > 0 && Clock::now() < drain_until) {
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }

        // --- figures -------------------------------------------------------------------------
        const double window = std::chrono::duration<double>(window_end - window_start).count();
        std::map<int, std::size_t> by_status;
        std::vector<double> post_ms;
        std::size_t accepted = 0;
        {
            std::lock_guard lock(mu);
            for (const auto& s : samples) {
                if (s.intended < window_start || s.intended >= window_end) continue;
                ++by_status[s.status];
                if (s.status == 201) ++accepted;
                post_ms.push_back(ms(s.answered - s.intended));
            }
        }
        std::vector<double> decision_ms;
        std::size_t decided_in_window = 0;
        for (const auto& [intended, seen] : decisions.latencies()) {
            if (seen >= window_start && seen < window_end) ++decided_in_window;
            if (intended >= window_start && intended < window_end)
                decision_ms.push_back(ms(seen - intended));
        }
        const double accepted_per_s = static_cast<double>(accepted) / window;
        json result{{"label", o.label},
                    {"mode", open_loop ? "open" : "closed"},
                    {"target_rate", open_loop ? json(o.rate) : json(nullptr)},
                    {"connections", o.connections},
                    {"warmup_s", o.warmup_s},
                    {"window_s", window},
                    {"accepted_per_s", accepted_per_s},
                    {"decisions_per_s", static_cast<double>(decided_in_window) / window},
                    {"unanswered_at_end", unanswered},
                    {"undecided_at_end", decisions.undecided()},
                    {"peak_backlog", peak_backlog}};
        json statuses = json::object();
        for (const auto& [status, n] : by_status)
            statuses[status == 0 ? "transport error" : std::to_string(status)] = n;
        result["statuses"] = statuses;
        result["post_ms"] = {{"p50", percentile(post_ms, 50)},
                             {"p90", percentile(post_ms, 90)},
                             {"p99", percentile(post_ms, 99)},
                             {"p999", percentile(post_ms, 99.9)},
                             {"max", percentile(post_ms, 100)}};
        result["post_to_decision_ms"] = {{"p50", percentile(decision_ms, 50)},
                                         {"p90", percentile(decision_ms, 90)},
                                         {"p99", percentile(decision_ms, 99)},
                                         {"p999", percentile(decision_ms, 99.9)},
                                         {"count", decision_ms.size()}};
        json procs = json::array();
        double total_us = 0;
        // PostgreSQL's processes (one per connection) are summed into one row.
        json postgres{{"name", "postgresql"}, {"pid", 0},           {"processes", 0},
                      {"cpu_s", 0.0},         {"cpu_cores", 0.0},   {"cpu_us_per_order", 0.0},
                      {"rss_mib", 0.0},       {"peak_rss_mib", 0.0}};
        for (const auto& p : processes) {
            const double cpu = after[p.pid].cpu_seconds - before[p.pid].cpu_seconds;
            if (p.name == "postgresql") {
                const double us = accepted == 0 ? 0 : cpu * 1e6 / static_cast<double>(accepted);
                total_us += us;
                postgres["processes"] = postgres["processes"].get<int>() + 1;
                postgres["cpu_s"] = postgres["cpu_s"].get<double>() + cpu;
                postgres["cpu_cores"] = postgres["cpu_cores"].get<double>() + cpu / window;
                postgres["cpu_us_per_order"] = postgres["cpu_us_per_order"].get<double>() + us;
                postgres["rss_mib"] = postgres["rss_mib"].get<double>() +
                                      static_cast<double>(peak_rss[p.pid]) / 1024.0;
                postgres["peak_rss_mib"] = postgres["peak_rss_mib"].get<double>() +
                                           static_cast<double>(after[p.pid].peak_rss_kib) / 1024.0;
                continue;
            }
            const double us_per_order =
                accepted == 0 ? 0 : cpu * 1e6 / static_cast<double>(accepted);
            if (p.name != "orderpipe-bench") total_us += us_per_order;
            procs.push_back(
                {{"name", p.name},
                 {"pid", p.pid},
                 {"cpu_s", cpu},
                 {"cpu_cores", cpu / window},
                 {"cpu_us_per_order", us_per_order},
                 {"rss_mib", static_cast<double>(peak_rss[p.pid]) / 1024.0},
                 {"peak_rss_mib", static_cast<double>(after[p.pid].peak_rss_kib) / 1024.0}});
        }
        if (postgres["processes"].get<int>() > 0) procs.push_back(postgres);
        result["processes"] = procs;
        result["cpu_us_per_order_total"] = total_us;
        // Orders per transaction is what amortises a transaction's fixed cost: per loop, the
        // transactions it committed in the window per order accepted in it.
        json txns = json::object();
        for (const auto& [loop, n] : txns_after) {
            const auto b = txns_before.find(loop);
            const double d = n - (b == txns_before.end() ? 0.0 : b->second);
            txns[loop] = accepted == 0 ? 0.0 : d / static_cast<double>(accepted);
        }
        result["transactions_per_order"] = txns;
        if (o.ceiling_s > 0) {
            const auto ceiling = measure_ceiling(o);
            result["ceiling"] = ceiling;
            const double c = ceiling["records_per_s"].get<double>();
            // 2 records per order at intake; ~6 on the way to the decision.
            result["intake_ratio_to_ceiling"] = accepted_per_s * 2 / c;
            result["decision_ratio_to_ceiling"] = result["decisions_per_s"].get<double>() * 6 / c;
        }

        // --- report --------------------------------------------------------------------------
        std::printf("\n%-28s %12.0f orders/s  (%zu accepted in %.1f s)\n", "accepted",
                    accepted_per_s, accepted, window);
        std::printf("%-28s %12.0f orders/s\n", "decisions",
                    result["decisions_per_s"].get<double>());
        std::printf("%-28s", "statuses");
        for (const auto& [s, n] : statuses.items())
            std::printf(" %s:%s", s.c_str(), n.dump().c_str());
        std::printf("\n%-28s p50 %.1f  p90 %.1f  p99 %.1f  p999 %.1f  max %.1f ms\n",
                    "POST /orders", result["post_ms"]["p50"].get<double>(),
                    result["post_ms"]["p90"].get<double>(), result["post_ms"]["p99"].get<double>(),
                    result["post_ms"]["p999"].get<double>(),
                    result["post_ms"]["max"].get<double>());
        std::printf("%-28s p50 %.1f  p90 %.1f  p99 %.1f  p999 %.1f ms  (%zu orders)\n",
                    "POST -> decision", result["post_to_decision_ms"]["p50"].get<double>(),
                    result["post_to_decision_ms"]["p90"].get<double>(),
                    result["post_to_decision_ms"]["p99"].get<double>(),
                    result["post_to_decision_ms"]["p999"].get<double>(), decision_ms.size());
        std::printf("\n%-24s %8s %10s %12s %10s %10s\n", "process", "pid", "cores", "CPU us/order",
                    "RSS MiB", "peak MiB");
        for (const auto& p : procs) {
            std::printf("%-24s %8d %10.2f %12.0f %10.1f %10.1f\n",
                        p["name"].get<std::string>().c_str(), p["pid"].get<int>(),
                        p["cpu_cores"].get<double>(), p["cpu_us_per_order"].get<double>(),
                        p["rss_mib"].get<double>(), p["peak_rss_mib"].get<double>());
        }
        std::printf("%-24s %8s %10s %12.0f  (every process but the bench)\n", "total", "", "",
                    total_us);
        if (!txns.empty()) {
            std::printf("\n%-40s %s\n", "loop (service/loop)", "transactions per order");
            for (const auto& [loop, per] : txns.items())
                std::printf("%-40s %10.3f\n", loop.c_str(), per.get<double>());
        }
        if (result.contains("ceiling")) {
            std::printf("\n%-28s %12.0f records/s (%zu-byte records, 100 ms transactions)\n",
                        "raw ceiling", result["ceiling"]["records_per_s"].get<double>(),
                        result["ceiling"]["record_bytes"].get<std::size_t>());
            std::printf("%-28s p50 %.1f  p99 %.1f ms\n", "one-record transaction",
                        result["ceiling"]["one_record_transaction_ms"]["p50"].get<double>(),
                        result["ceiling"]["one_record_transaction_ms"]["p99"].get<double>());
            std::printf("%-28s %12.2f  (2 records per order)\n", "intake / ceiling",
                        result["intake_ratio_to_ceiling"].get<double>());
            std::printf("%-28s %12.2f  (~6 records per order)\n", "decisions / ceiling",
                        result["decision_ratio_to_ceiling"].get<double>());
        }
        if (!o.json_path.empty()) std::ofstream(o.json_path) << result.dump(2) << "\n";
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "orderpipe-bench: " << e.what() << "\n";
        return 1;
    }
}
