#include "orderpipe/http/server.hpp"

#include "orderpipe/common/storage_error.hpp"
#include "orderpipe/http/problem.hpp"

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "server_core.hpp"
#include "session.hpp"

namespace orderpipe::http {
namespace {

bool iequals_ascii(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) {
        return false;
    }
    for (std::size_t i = 0; i < a.size(); ++i) {
        auto lower = [](char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; };
        if (lower(a[i]) != lower(b[i])) {
            return false;
        }
    }
    return true;
}

}  // namespace

// ---- Request / Response -----------------------------------------------------------------------

std::optional<std::string> Request::header(std::string_view name) const {
    for (const auto& [key, value] : headers) {
        if (iequals_ascii(key, name)) {
            return value;
        }
    }
    return std::nullopt;
}

std::vector<std::string> Request::header_values(std::string_view name) const {
    std::vector<std::string> out;
    for (const auto& [key, value] : headers) {
        if (iequals_ascii(key, name)) out.push_back(value);
    }
    return out;
}

bool Request::has_json_body() const {
    const auto type = header("content-type");
    if (!type) return false;
    std::string media = type->substr(0, type->find(';'));
    while (!media.empty() && (media.back() == ' ' || media.back() == '\t')) media.pop_back();
    for (auto& c : media) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return media == "application/json" ||
           (media.rfind("application/", 0) == 0 && media.size() > 17 &&
            media.compare(media.size() - 5, 5, "+json") == 0);
}

Response Response::json(int status, const nlohmann::json& body) {
    Response response;
    response.status = status;
    response.body = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    return response;
}

// ---- Responder --------------------------------------------------------------------------------

Responder::Responder(std::shared_ptr<detail::ResponderState> state) noexcept
    : state_(std::move(state)) {}

void Responder::operator()(Response response) const {
    if (state_) {  // a moved-from Responder does nothing
        state_->complete(std::move(response), false);
    }
}

void Responder::on_cancel(std::function<void()> on_cancel) const {
    if (state_) state_->set_on_cancel(std::move(on_cancel));
}

void Responder::answer(const std::function<Response()>& make,
                       std::string_view what) const noexcept {
    try {
        (*this)(make());
    } catch (...) {
        try {
            (*this)(failure_response(what));
        } catch (...) {  // NOLINT(bugprone-empty-catch): out of memory; ResponderState answers 500
        }
    }
}

Response failure_response(std::string_view context) {
    try {
        throw;
    } catch (const StorageError& e) {
        spdlog::log(e.transient() ? spdlog::level::warn : spdlog::level::err,
                    "{}: storage failed: {}", context, e.what());
        if (e.transient()) {
            return with_retry_after(problem(503, "Service Unavailable",
                                            "the service's database cannot answer right now; "
                                            "try again"),
                                    1);
        }
    } catch (const std::exception& e) {
        spdlog::error("{} threw: {}", context, e.what());
    } catch (...) {
        spdlog::error("{} threw a non-standard exception", context);
    }
    return problem(500, "Internal Server Error",
                   "the request handler failed with an unexpected error");
}

bool Responder::responded() const noexcept {
    return state_ && state_->done_.load(std::memory_order_acquire);
}

// ---- Server -----------------------------------------------------------------------------------

class Server::Impl final : public detail::ServerCore {
  public:
    using ServerCore::ServerCore;
};

Server::Server(ServerOptions options, std::shared_ptr<prometheus::Registry> registry)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(registry))) {}

Server::~Server() = default;

void Server::route(std::string method, std::string pattern, Handler handler) {
    impl_->route(std::move(method), std::move(pattern), std::move(handler));
}

void Server::set_readiness(std::function<Readiness()> check) {
    impl_->set_readiness(std::move(check));
}

void Server::start() { impl_->start(); }

void Server::stop() { impl_->stop(); }

std::uint16_t Server::port() const { return impl_->port(); }

}  // namespace orderpipe::http
