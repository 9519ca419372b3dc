#include "server_core.hpp"

#include <pthread.h>
#include <sys/resource.h>

#include <algorithm>
#include <cerrno>
#include <exception>
#include <future>
#include <stdexcept>
#include <system_error>

#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <spdlog/spdlog.h>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/socket_base.hpp>
#include <boost/beast/core/bind_handler.hpp>
#include <nlohmann/json.hpp>

#include "orderpipe/http/problem.hpp"
#include "session.hpp"

namespace orderpipe::http::detail {

namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

constexpr std::chrono::milliseconds kAcceptRetryDelay{100};

std::shared_ptr<prometheus::Registry> or_private(std::shared_ptr<prometheus::Registry> registry) {
    return registry ? std::move(registry) : std::make_shared<prometheus::Registry>();
}

std::string endpoint_text(const std::string& address, std::uint16_t port) {
    return (address.find(':') != std::string::npos ? "[" + address + "]" : address) + ":" +
           std::to_string(port);
}

[[noreturn]] void throw_bind_error(const boost::system::error_code& ec, const std::string& what) {
    throw std::system_error(static_cast<std::error_code>(ec), what);
}

/// Descriptors kept for what is not an HTTP connection: Kafka clients, SQLite, logs, pipes.
constexpr std::size_t kReservedDescriptors = 256;

/// The connection limit: `configured`, or what the descriptor limit leaves. The soft limit is
/// raised to the hard one first (as nginx and Go do): Debian's default of 1024 is a limit for
/// select(), which nothing here uses.
std::size_t connection_limit(std::size_t configured) {
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
        rlimit raised = limit;
        raised.rlim_cur = limit.rlim_max;
        if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
    }
    std::size_t available = 4096;
    if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur > 0) {
        const auto n = static_cast<std::size_t>(limit.rlim_cur);
        available = n > 2 * kReservedDescriptors ? n - kReservedDescriptors : n / 2;
    } else if (limit.rlim_cur == RLIM_INFINITY) {
        available = 1'000'000;
    }
    const std::size_t chosen = configured == 0 ? available : std::min(configured, available);
    return std::max<std::size_t>(chosen, 2);
}

}  // namespace

ServerCore::ServerCore(ServerOptions options, std::shared_ptr<prometheus::Registry> registry)
    : ioc_(static_cast<int>(std::max(1U, options.threads))),
      options_(std::move(options)),
      log_prefix_(options_.service_name.empty() ? "http: " : options_.service_name + " http: "),
      registry_(or_private(std::move(registry))),
      metrics_(*registry_),
      accept_strand_(net::make_strand(ioc_)),
      acceptor_(accept_strand_),
      accept_retry_timer_(accept_strand_) {
    options_.threads = std::max(1U, options_.threads);
    router_.add("GET", "/livez", [this](Request&&, const Responder& respond) {
        nlohmann::json body = options_.liveness;
        body["status"] = "alive";
        respond(Response::json(200, body));
    });
    router_.add("GET", "/readyz",
                [this](Request&&, const Responder& respond) { respond(readiness_response()); });
    router_.add("GET", "/metrics",
                [this](Request&&, const Responder& respond) { respond(metrics_response()); });
}

ServerCore::~ServerCore() {
    if (on_io_thread()) {
        // Joining ourselves would deadlock or throw; this is a programming error.
        spdlog::critical("{}Server destroyed from one of its own io threads", log_prefix_);
        std::terminate();
    }
    try {
        stop();
    } catch (const std::exception& e) {
        spdlog::error("{}error while stopping: {}", log_prefix_, e.what());
    }
}

void ServerCore::route(std::string method, std::string pattern, Handler handler) {
    const std::lock_guard lock(control_mutex_);
    if (phase_ != Phase::configuring) {
        throw std::logic_error("http: route() must be called before start()");
    }
    router_.add(std::move(method), std::move(pattern), std::move(handler));
}

void ServerCore::set_readiness(std::function<Readiness()> check) {
    const std::lock_guard lock(readiness_mutex_);
    readiness_ = std::move(check);
}

void ServerCore::start() {
    const std::lock_guard lock(control_mutex_);
    if (phase_ != Phase::configuring) {
        throw std::logic_error("http: start() may be called only once (and not after stop())");
    }
    const std::string where = endpoint_text(options_.address, options_.port);
    boost::system::error_code ec;
    const auto address = net::ip::make_address(options_.address, ec);
    if (ec) {
        throw_bind_error(ec, log_prefix_ + "invalid listen address '" + options_.address + "'");
    }
    const tcp::endpoint endpoint{address, options_.port};
    if (acceptor_.open(endpoint.protocol(), ec); ec) {
        throw_bind_error(ec, log_prefix_ + "cannot open a socket for " + where);
    }
    // Lets a restarted service rebind while old connections sit in TIME_WAIT.
    if (acceptor_.set_option(net::socket_base::reuse_address(true), ec); ec) {
        throw_bind_error(ec, log_prefix_ + "cannot set SO_REUSEADDR on " + where);
    }
    if (acceptor_.bind(endpoint, ec); ec) {
        acceptor_.close();
        throw_bind_error(ec, log_prefix_ + "cannot bind " + where +
                                 " (is another process using port " +
                                 std::to_string(options_.port) + "? set HTTP_PORT)");
    }
    if (acceptor_.listen(net::socket_base::max_listen_connections, ec); ec) {
        acceptor_.close();
        throw_bind_error(ec, log_prefix_ + "cannot listen on " + where);
    }
    port_.store(acceptor_.local_endpoint().port(), std::memory_order_release);

    max_connections_ = connection_limit(options_.max_connections);
    router_.bind_metrics(metrics_);
    work_.emplace(ioc_.get_executor());
    net::post(accept_strand_, [this] { do_accept(); });
    threads_.reserve(options_.threads);
    for (unsigned i = 0; i < options_.threads; ++i) {
        threads_.emplace_back([this] { run_io(); });
        thread_ids_.push_back(threads_.back().get_id());
    }
    phase_ = Phase::running;
    spdlog::info("{}listening on {}", log_prefix_, endpoint_text(options_.address, port()));
}

void ServerCore::stop() {
    const std::lock_guard lock(control_mutex_);
    if (phase_ != Phase::running) {
        phase_ = Phase::stopped;
        return;
    }
    if (on_io_thread()) {
        throw std::logic_error("http: stop() called from an io thread (a handler)");
    }
    phase_ = Phase::stopped;
    stopping_.store(true, std::memory_order_release);

    // 1. Stop accepting. The close runs on the acceptor's strand, after which on_accept sees
    //    stopping_ and registers no new session, so the snapshot below is complete.
    std::promise<void> acceptor_closed;
    net::post(accept_strand_, [this, &acceptor_closed] {
        boost::system::error_code ignored;
        acceptor_.close(ignored);
        accept_retry_timer_.cancel();
        acceptor_closed.set_value();
    });
    acceptor_closed.get_future().wait();

    // 2. Idle connections close now; in-flight requests get their response, then close.
    std::vector<std::shared_ptr<Session>> snapshot;
    {
        const std::lock_guard sessions_lock(sessions_mutex_);
        snapshot.reserve(sessions_.size());
        for (const auto& entry : sessions_) {
            snapshot.push_back(entry.second);
        }
    }
    for (const auto& session : snapshot) {
        session->shutdown();
    }
    snapshot.clear();

    // 3. Give in-flight requests up to drain_timeout.
    {
        std::unique_lock sessions_lock(sessions_mutex_);
        if (!sessions_drained_.wait_for(sessions_lock, options_.drain_timeout,
                                        [this] { return sessions_.empty(); })) {
            spdlog::warn("{}{} connection(s) still busy after the drain timeout; closing them",
                         log_prefix_, sessions_.size());
        }
    }

    // 4. Stop the io threads.
    work_.reset();
    ioc_.stop();
    for (auto& thread : threads_) {
        thread.join();
    }
    threads_.clear();
    thread_ids_.clear();

    // 5. From now on Responders do nothing; then drop the sessions still owned here while the
    //    io_context (which their sockets belong to) is alive.
    {
        const std::lock_guard liveness_lock(liveness_->mutex);
        liveness_->open = false;
    }
    std::unordered_map<Session*, std::shared_ptr<Session>> remaining;
    {
        const std::lock_guard sessions_lock(sessions_mutex_);
        remaining.swap(sessions_);
    }
    remaining.clear();
    spdlog::info("{}stopped", log_prefix_);
}

void ServerCore::unregister_session(Session* session) {
    std::shared_ptr<Session> owned;  // released after the lock: never destroy under the mutex
    bool drained = false;
    {
        const std::lock_guard lock(sessions_mutex_);
        if (auto it = sessions_.find(session); it != sessions_.end()) {
            owned = std::move(it->second);
            sessions_.erase(it);
        }
        drained = sessions_.empty();
        metrics_.connections(sessions_.size());
    }
    if (drained) {
        sessions_drained_.notify_all();
    }
}

void ServerCore::do_accept() {
    // Each connection gets its own strand: its handlers never run concurrently, with no lock.
    acceptor_.async_accept(net::make_strand(ioc_),
                           boost::beast::bind_front_handler(&ServerCore::on_accept, this));
}

void ServerCore::on_accept(boost::system::error_code ec, tcp::socket socket) {
    if (stopping_.load(std::memory_order_acquire) || ec == net::error::operation_aborted) {
        return;  // the socket (if any) closes with its destructor
    }
    if (ec) {
        spdlog::warn("{}accept failed: {}", log_prefix_, ec.message());
        if (ec == boost::system::errc::too_many_files_open ||
            ec == boost::system::errc::too_many_files_open_in_system ||
            ec == boost::system::errc::no_buffer_space ||
            ec == boost::system::errc::not_enough_memory) {
            // Out of descriptors or memory: retrying at once would spin on the same error.
            accept_retry_timer_.expires_after(kAcceptRetryDelay);
            accept_retry_timer_.async_wait([this](boost::system::error_code timer_ec) {
                if (!timer_ec && !stopping_.load(std::memory_order_acquire)) {
                    do_accept();
                }
            });
            return;
        }
        do_accept();
        return;
    }
    boost::system::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);  // small responses must not wait for Nagle
    auto session = std::make_shared<Session>(*this, std::move(socket));
    std::shared_ptr<Session> shed;
    {
        const std::lock_guard lock(sessions_mutex_);
        if (sessions_.size() >= max_connections_) {
            // Full: make room by closing the connection that has waited longest for a request's
            // headers (idle keep-alive, or a request sent by halves). Those hold descriptors
            // for nothing; a health check or a client with a request gets in.
            std::int64_t oldest = 0;
            for (const auto& [raw, s] : sessions_) {
                const auto since = s->waiting_since();
                if (since != 0 && (oldest == 0 || since < oldest)) {
                    oldest = since;
                    shed = s;
                }
            }
        }
        sessions_.emplace(session.get(), session);
        metrics_.connections(sessions_.size());
    }
    if (shed) shed->shed();
    session->start();
    do_accept();
}

void ServerCore::run_io() {
    pthread_setname_np(pthread_self(), "http-io");
    for (;;) {
        try {
            ioc_.run();
            return;
        } catch (const std::exception& e) {
            // Handlers catch their own errors; this is a last line so a bug never kills the
            // process's HTTP endpoint.
            spdlog::error("{}unexpected exception on an io thread: {}", log_prefix_, e.what());
        } catch (...) {
            spdlog::error("{}unexpected non-standard exception on an io thread", log_prefix_);
        }
    }
}

bool ServerCore::on_io_thread() const {
    const auto self = std::this_thread::get_id();
    return std::find(thread_ids_.begin(), thread_ids_.end(), self) != thread_ids_.end();
}

Response ServerCore::readiness_response() {
    if (stopping_.load(std::memory_order_acquire)) {
        return problem(503, "Not Ready", "draining: the service is shutting down");
    }
    std::function<Readiness()> check;
    {
        const std::lock_guard lock(readiness_mutex_);
        check = readiness_;
    }
    if (!check) return Response::json(200, {{"status", "ready"}});
    Readiness r;
    try {
        r = check();
    } catch (const std::exception& e) {
        return problem(503, "Not Ready", std::string("the readiness check failed: ") + e.what());
    }
    if (!r.ready) {
        return problem(503, "Not Ready", r.detail, {{"checks", std::move(r.checks)}});
    }
    return Response::json(200, {{"status", "ready"}, {"checks", std::move(r.checks)}});
}

Response ServerCore::metrics_response() const {
    Response response;
    response.content_type = "text/plain; version=0.0.4; charset=utf-8";
    response.body = prometheus::TextSerializer().Serialize(registry_->Collect());
    return response;
}

}  // namespace orderpipe::http::detail
