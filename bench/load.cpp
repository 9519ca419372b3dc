#include "load.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <atomic>
#include <deque>
#include <thread>

namespace orderpipe::bench {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

std::uint64_t splitmix(std::uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

struct CatalogSku {
    const char* sku;
    const char* price;
};
constexpr CatalogSku kStocked[] = {{"LAPTOP-001", "999.99"},
                                   {"MOUSE-001", "29.99"},
                                   {"KEYBOARD-001", "79.99"},
                                   {"HEADSET-001", "59.99"}};

/// The order id of a 201's body (`"order_id":"..."`), without a JSON parser on the hot path.
std::string order_id_of(const std::string& body) {
    static constexpr std::string_view kField = "\"order_id\":\"";
    const auto at = body.find(kField);
    if (at == std::string::npos) return {};
    const auto from = at + kField.size();
    const auto to = body.find('"', from);
    return to == std::string::npos ? std::string() : body.substr(from, to - from);
}

}  // namespace

const std::map<std::string, long long>& bench_stock() {
    static const std::map<std::string, long long> stock{{"LAPTOP-001", 1'000'000'000},
                                                        {"MOUSE-001", 1'000'000'000},
                                                        {"KEYBOARD-001", 1'000'000'000},
                                                        {"HEADSET-001", 1'000'000'000},
                                                        {"MONITOR-001", 999}};
    return stock;
}

std::string order_body(std::uint64_t n) {
    const std::uint64_t r = splitmix(n);
    std::string items;
    const auto dice = r % 100;
    if (dice == 0) {
        items = R"({"sku":"NOPE-001","quantity":1,"unit_price":"1.00"})";
    } else if (dice < 5) {
        items = R"({"sku":"MONITOR-001","quantity":1000,"unit_price":"249.99"})";
    } else {
        const std::size_t lines = 1 + (r >> 8) % 3;
        const std::size_t first = (r >> 16) % 4;
        for (std::size_t i = 0; i < lines; ++i) {
            const auto& s = kStocked[(first + i) % 4];
            if (!items.empty()) items += ',';
            items += std::string(R"({"sku":")") + s.sku + R"(","quantity":)" +
                     std::to_string(1 + ((r >> (24 + i)) & 1)) + R"(,"unit_price":")" + s.price +
                     "\"}";
        }
    }
    return R"({"customer_id":"bench-)" + std::to_string(n % 1000) +
           R"(","customer_email":"bench@example.com","currency":"USD","items":[)" + items + "]}";
}

class Load::Impl {
  public:
    struct Conn : std::enable_shared_from_this<Conn> {
        Impl& load;
        beast::tcp_stream stream;
        beast::flat_buffer buffer;
        http::request<http::string_body> req;
        http::response<http::string_body> res;
        Clock::time_point intended;

        explicit Conn(Impl& l) : load(l), stream(l.io) {}

        void connect() {
            stream.async_connect(load.endpoint, [self = shared_from_this()](beast::error_code ec) {
                if (ec) {
                    self->retry_later();
                    return;
                }
                self->stream.socket().set_option(tcp::no_delay(true));
                self->load.ready(self);
            });
        }
        void retry_later() {
            auto timer =
                std::make_shared<asio::steady_timer>(load.io, std::chrono::milliseconds(100));
            timer->async_wait([self = shared_from_this(), timer](beast::error_code) {
                if (!self->load.stopping) self->reconnect();
            });
        }
        void reconnect() {
            beast::error_code ignored;
            stream.socket().close(ignored);
            buffer.clear();
            connect();
        }
        void send(Clock::time_point when, std::string body) {
            intended = when;
            req = {};
            req.method(http::verb::post);
            req.target("/orders");
            req.version(11);
            req.set(http::field::host, load.host_header);
            req.set(http::field::content_type, "application/json");
            req.keep_alive(true);
            req.body() = std::move(body);
            req.prepare_payload();
            ++load.in_flight;
            http::async_write(
                stream, req, [self = shared_from_this()](beast::error_code ec, std::size_t) {
                    if (ec) {
                        self->finish(ec);
                        return;
                    }
                    self->res = {};
                    http::async_read(
                        self->stream, self->buffer, self->res,
                        [self](beast::error_code ec2, std::size_t) { self->finish(ec2); });
                });
        }
        void finish(beast::error_code ec) {
            --load.in_flight;
            Sample s{intended, Clock::now(), ec ? 0 : static_cast<int>(res.result_int()), {}};
            if (s.status == 201) s.order_id = order_id_of(res.body());
            if (load.sample_cb) load.sample_cb(s);
            if (ec || !res.keep_alive()) {
                reconnect();
                return;
            }
            load.ready(shared_from_this());
        }
    };

    explicit Impl(LoadOptions o)
        : options(std::move(o)),
          work(asio::make_work_guard(io)),
          ticker(io),
          endpoint(asio::ip::make_address(options.host), options.port),
          host_header(options.host + ":" + std::to_string(options.port)) {}

    void start() {
        start_time = Clock::now();
        for (std::size_t i = 0; i < options.connections; ++i) {
            asio::post(io, [this] { std::make_shared<Conn>(*this)->connect(); });
        }
        if (options.rate > 0) asio::post(io, [this] { tick(); });
        thread = std::thread([this] { io.run(); });
    }

    /// Open loop: every millisecond, queue the requests whose intended time has come.
    void tick() {
        if (stopping) return;
        const auto now = Clock::now();
        const double elapsed = std::chrono::duration<double>(now - start_time).count();
        // Request i is meant for start + i / rate: those with i <= elapsed * rate are due.
        const auto due = static_cast<std::uint64_t>(elapsed * options.rate) + 1;
        for (; scheduled < due; ++scheduled) {
            queue.push_back(start_time + std::chrono::duration_cast<Clock::duration>(
                                             std::chrono::duration<double>(
                                                 static_cast<double>(scheduled) / options.rate)));
        }
        dispatch();
        backlog_now = queue.size();
        ticker.expires_after(std::chrono::milliseconds(1));
        ticker.async_wait([this](beast::error_code ec) {
            if (!ec) tick();
        });
    }

    void ready(const std::shared_ptr<Conn>& c) {
        if (stopping) return;
        if (options.rate > 0) {
            idle.push_back(c);
            dispatch();
        } else {
            c->send(Clock::now(), order_body(next_order++));
        }
    }

    void dispatch() {
        while (!queue.empty() && !idle.empty()) {
            auto c = std::move(idle.back());
            idle.pop_back();
            const auto when = queue.front();
            queue.pop_front();
            c->send(when, order_body(next_order++));
        }
    }

    LoadOptions options;
    asio::io_context io;
    asio::executor_work_guard<asio::io_context::executor_type> work;
    asio::steady_timer ticker;
    tcp::endpoint endpoint;
    std::string host_header;
    std::thread thread;
    std::function<void(const Sample&)> sample_cb;
    // Owned by the io thread:
    std::deque<Clock::time_point> queue;
    std::vector<std::shared_ptr<Conn>> idle;
    Clock::time_point start_time;
    std::uint64_t scheduled = 0;
    std::uint64_t next_order = 0;
    // Read by other threads:
    std::atomic<bool> stopping{false};
    std::atomic<std::size_t> in_flight{0};
    std::atomic<std::size_t> backlog_now{0};
};

Load::Load(LoadOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {
    // Seeded bodies: two runs with the same seed send the same orders.
    impl_->next_order = impl_->options.seed * 1'000'000'000ULL;
}

Load::~Load() { stop(std::chrono::milliseconds(0)); }

void Load::on_sample(std::function<void(const Sample&)> f) { impl_->sample_cb = std::move(f); }

void Load::start() { impl_->start(); }

std::size_t Load::stop(std::chrono::milliseconds drain) {
    auto& i = *impl_;
    if (!i.thread.joinable()) return 0;
    i.stopping = true;
    asio::post(i.io, [&i] {
        i.ticker.cancel();
        i.queue.clear();
        i.idle.clear();
    });
    const auto until = Clock::now() + drain;
    while (i.in_flight > 0 && Clock::now() < until) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    const std::size_t left = i.in_flight;
    i.work.reset();
    i.io.stop();
    i.thread.join();
    return left;
}

std::size_t Load::backlog() const { return impl_->backlog_now; }

}  // namespace orderpipe::bench
