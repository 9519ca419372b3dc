#include "email_client.hpp"

#include "orderpipe/common/logging.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <charconv>
#include <memory>
#include <mutex>

namespace orderpipe::notification {
namespace {

/// One send in flight: owned by the easy handle (CURLOPT_PRIVATE) until it completes.
struct Transfer {
    std::uint64_t id = 0;
    curl_slist* headers = nullptr;
    SendResult result;
    ~Transfer() { curl_slist_free_all(headers); }
};

std::size_t on_header(char* buffer, std::size_t size, std::size_t count, void* user) noexcept {
    auto* t = static_cast<Transfer*>(user);
    const std::string_view line(buffer, size * count);
    constexpr std::string_view kName = "retry-after:";
    if (line.size() > kName.size()) {
        std::string lower(line.substr(0, kName.size()));
        for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (lower == kName) {
            auto value = line.substr(kName.size());
            while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
            long seconds = 0;
            auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), seconds);
            // Only the delay-seconds form; an HTTP-date is left to our own backoff. Any length
            // is taken (up to a year, so nothing overflows): one longer than NOTIFY_MAX_WAIT_MS
            // dead-letters the request rather than holding its partition.
            if (ec == std::errc{} && seconds >= 0) {
                t->result.retry_after = std::chrono::seconds(std::min(seconds, 365L * 86400));
            }
        }
    }
    return size * count;
}

std::size_t on_body(char* data, std::size_t size, std::size_t count, void* user) noexcept {
    auto* t = static_cast<Transfer*>(user);
    const std::size_t n = size * count;
    if (t->result.body.size() < 256) {
        t->result.body.append(data, std::min(n, 256 - t->result.body.size()));
    }
    return n;
}

void global_init() {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

}  // namespace

EmailClient::EmailClient(std::string url, std::chrono::milliseconds timeout, long max_connections,
                         Done on_done)
    : url_(std::move(url)),
      timeout_(timeout),
      max_connections_(max_connections),
      on_done_(std::move(on_done)) {
    global_init();
    CURLM* multi = curl_multi_init();
    curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, max_connections_);
    curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, max_connections_);
    multi_ = multi;
    thread_ = std::thread([this] { run(); });
}

EmailClient::~EmailClient() { stop(); }

void EmailClient::send(Request request) {
    request.deadline = std::chrono::steady_clock::now() + timeout_;
    {
        std::lock_guard lock(mu_);
        queued_.push_back(std::move(request));
    }
    ++in_flight_;
    curl_multi_wakeup(static_cast<CURLM*>(multi_));
}

void EmailClient::stop() {
    if (stopping_.exchange(true)) return;
    if (multi_ != nullptr) curl_multi_wakeup(static_cast<CURLM*>(multi_));
    if (thread_.joinable()) thread_.join();
    curl_multi_cleanup(static_cast<CURLM*>(multi_));
    multi_ = nullptr;
}

void EmailClient::start(Request r) {
    auto transfer = std::make_unique<Transfer>();
    transfer->id = r.id;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        r.deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
        // It waited its whole timeout for a connection: answered as libcurl answers a transfer
        // that waited inside it (its timeout counts from when it is added, connecting included).
        transfer->result.error = "timeout after " + std::to_string(timeout_.count()) + " ms";
        finish(transfer->id, std::move(transfer->result));
        return;
    }
    CURL* easy = curl_easy_init();
    transfer->headers = curl_slist_append(nullptr, "Content-Type: application/json");
    transfer->headers =
        curl_slist_append(transfer->headers, ("Idempotency-Key: " + r.idempotency_key).c_str());
    if (r.unanswered > 0) {
        transfer->headers = curl_slist_append(
            transfer->headers,
            ("Orderpipe-Unanswered-Attempts: " + std::to_string(r.unanswered)).c_str());
    }
    if (!r.traceparent.empty()) {
        transfer->headers =
            curl_slist_append(transfer->headers, ("traceparent: " + r.traceparent).c_str());
    }
    curl_easy_setopt(easy, CURLOPT_URL, url_.c_str());
    curl_easy_setopt(easy, CURLOPT_COPYPOSTFIELDS, r.body.c_str());
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, transfer->headers);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, static_cast<long>(left.count()));
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(easy, CURLOPT_HEADERDATA, transfer.get());
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, transfer.get());
    curl_easy_setopt(easy, CURLOPT_PRIVATE, transfer.release());  // back in run()
    curl_multi_add_handle(static_cast<CURLM*>(multi_), easy);
    active_.insert(easy);
}

void EmailClient::finish(std::uint64_t id, SendResult result) {
    --in_flight_;
    try {
        on_done_(id, std::move(result));
    } catch (const std::exception& e) {
        log::error("email answer handler failed", {{"error", e.what()}});
    }
}

void EmailClient::run() {
    auto* multi = static_cast<CURLM*>(multi_);
    const auto connections = static_cast<std::size_t>(max_connections_);
    while (!stopping_) {
        // No more transfers than connections: the rest wait in queued_ (see the header). The
        // ones whose timeout has passed are taken too, to be answered: the queue is in the
        // order of send(), so of deadlines, and they are at its front.
        std::deque<Request> fresh;
        {
            const auto now = std::chrono::steady_clock::now();
            std::size_t room = connections - std::min(connections, active_.size());
            std::lock_guard lock(mu_);
            while (!queued_.empty() && (room > 0 || queued_.front().deadline <= now)) {
                if (queued_.front().deadline > now) --room;
                fresh.push_back(std::move(queued_.front()));
                queued_.pop_front();
            }
        }
        for (auto& r : fresh) start(std::move(r));
        int running = 0;
        curl_multi_perform(multi, &running);
        int left = 0;
        bool finished = false;
        while (CURLMsg* msg = curl_multi_info_read(multi, &left)) {
            if (msg->msg != CURLMSG_DONE) continue;
            CURL* easy = msg->easy_handle;
            char* priv = nullptr;
            curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
            std::unique_ptr<Transfer> transfer(reinterpret_cast<Transfer*>(priv));
            if (msg->data.result == CURLE_OK) {
                curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &transfer->result.status);
            } else {
                transfer->result.status = 0;
                transfer->result.error =
                    msg->data.result == CURLE_OPERATION_TIMEDOUT
                        ? "timeout after " + std::to_string(timeout_.count()) + " ms"
                        : curl_easy_strerror(msg->data.result);
            }
            curl_multi_remove_handle(multi, easy);
            curl_easy_cleanup(easy);
            active_.erase(easy);
            finish(transfer->id, std::move(transfer->result));
            finished = true;
        }
        // A finished transfer freed a connection: a waiting request takes it at once.
        if (!finished) curl_multi_poll(multi, nullptr, 0, 100, nullptr);
    }
    // Stopping: abandon what is in flight.
    for (CURL* easy : active_) {
        char* priv = nullptr;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
        delete reinterpret_cast<Transfer*>(priv);
        curl_multi_remove_handle(multi, easy);
        curl_easy_cleanup(easy);
    }
    active_.clear();
}

}  // namespace orderpipe::notification
