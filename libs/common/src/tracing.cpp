#include "orderpipe/common/tracing.hpp"

#include "orderpipe/common/ids.hpp"
#include "orderpipe/common/logging.hpp"
#include "orderpipe/common/signals.hpp"

#include <curl/curl.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>

namespace orderpipe::tracing {
namespace {

using nlohmann::json;

constexpr std::size_t kMaxOpenHops = 20000;
constexpr std::size_t kMaxQueued = 20000;
constexpr std::size_t kBatch = 1000;

std::int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

json attribute(const std::string& key, const std::string& value) {
    return {{"key", key}, {"value", {{"stringValue", value}}}};
}

size_t discard(char*, size_t size, size_t n, void*) { return size * n; }

class Exporter {
  public:
    Exporter(std::string url, std::string service)
        : url_(std::move(url)), service_(std::move(service)) {
        // Lives as long as the process (configure()); it never takes a process signal.
        with_signals_blocked([this] { std::thread([this] { run(); }).detach(); });
    }

    void begin(const std::string& span, const std::string& parent) {
        std::lock_guard lock(mu_);
        if (open_.size() >= kMaxOpenHops) {
            open_.erase(order_.front());
            order_.pop_front();
        }
        if (open_.emplace(span, Hop{parent, now_ns()}).second) order_.push_back(span);
    }

    void committed(const std::string& traceparent, std::string_view name,
                   std::vector<std::pair<std::string, std::string>> attributes) {
        auto ctx = TraceContext::parse(traceparent);
        if (!ctx) return;
        std::lock_guard lock(mu_);
        auto it = open_.find(ctx->span_id);
        if (it == open_.end()) return;
        json span = {{"traceId", ctx->trace_id},
                     {"spanId", ctx->span_id},
                     {"name", name},
                     {"kind", 4},  // SPAN_KIND_PRODUCER: the hop ends with the event committed
                     {"startTimeUnixNano", std::to_string(it->second.start_ns)},
                     {"endTimeUnixNano", std::to_string(now_ns())},
                     {"attributes", json::array()}};
        if (!it->second.parent.empty()) span["parentSpanId"] = it->second.parent;
        for (const auto& [k, v] : attributes) span["attributes"].push_back(attribute(k, v));
        open_.erase(it);                          // its key stays in order_ until evicted: harmless
        if (queue_.size() >= kMaxQueued) return;  // the collector is away: dropped
        queue_.push_back(std::move(span));
        if (queue_.size() >= kBatch) cv_.notify_all();
    }

    void flush() {
        std::unique_lock lock(mu_);
        flush_requested_ = true;
        cv_.notify_all();
        cv_.wait_for(lock, std::chrono::seconds(3), [&] { return queue_.empty() && !posting_; });
    }

  private:
    struct Hop {
        std::string parent;
        std::int64_t start_ns;
    };

    void run() {
        CURL* curl = curl_easy_init();
        std::unique_lock lock(mu_);
        for (;;) {
            cv_.wait_for(lock, std::chrono::seconds(1),
                         [&] { return flush_requested_ || queue_.size() >= kBatch; });
            flush_requested_ = false;
            while (!queue_.empty()) {
                std::vector<json> batch;
                while (!queue_.empty() && batch.size() < kBatch) {
                    batch.push_back(std::move(queue_.front()));
                    queue_.pop_front();
                }
                posting_ = true;
                lock.unlock();
                post(curl, batch);
                lock.lock();
                posting_ = false;
            }
            cv_.notify_all();
        }
    }

    void post(CURL* curl, std::vector<json>& spans) {
        if (curl == nullptr) return;
        json body = {
            {"resourceSpans",
             json::array({{{"resource",
                            {{"attributes", json::array({attribute("service.name", service_)})}}},
                           {"scopeSpans", json::array({{{"scope", {{"name", "orderpipe"}}},
                                                        {"spans", std::move(spans)}}})}}})}};
        const std::string text = body.dump();
        curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
        curl_easy_reset(curl);
        curl_easy_setopt(curl, CURLOPT_URL, url_.c_str());
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, text.c_str());
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(text.size()));
        curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 2000L);
        curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
        const CURLcode rc = curl_easy_perform(curl);
        long status = 0;
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
        curl_slist_free_all(headers);
        if (rc == CURLE_OK && status >= 200 && status < 300) {
            failing_ = false;
            return;
        }
        // The batch is dropped. Said once per outage, not per batch.
        if (!failing_.exchange(true)) {
            log::warn("cannot export spans; dropping them until the collector answers",
                      {{"url", url_},
                       {"error", rc != CURLE_OK ? curl_easy_strerror(rc)
                                                : "HTTP " + std::to_string(status)}});
        }
    }

    std::string url_;
    std::string service_;
    std::mutex mu_;
    std::condition_variable cv_;
    bool flush_requested_ = false;
    bool posting_ = false;
    std::atomic<bool> failing_{false};
    std::unordered_map<std::string, Hop> open_;
    std::deque<std::string> order_;
    std::deque<json> queue_;
};

std::atomic<Exporter*> g_exporter{nullptr};

}  // namespace

void configure(const std::string& traces_url, std::string service) {
    if (traces_url.empty() || g_exporter.load() != nullptr) return;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    // Lives until the process ends (flush() posts what is left at exit).
    g_exporter.store(new Exporter(traces_url, std::move(service)));
    log::info("exporting spans", {{"url", traces_url}});
}

bool enabled() noexcept { return g_exporter.load(std::memory_order_relaxed) != nullptr; }

void begin(const std::string& span_id, const std::string& parent_span_id) {
    if (auto* e = g_exporter.load()) e->begin(span_id, parent_span_id);
}

void committed(const std::string& traceparent, std::string_view name,
               std::vector<std::pair<std::string, std::string>> attributes) {
    if (auto* e = g_exporter.load()) e->committed(traceparent, name, std::move(attributes));
}

void flush() {
    if (auto* e = g_exporter.load()) e->flush();
}

}  // namespace orderpipe::tracing
