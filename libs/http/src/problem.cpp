#include "orderpipe/http/problem.hpp"

#include <boost/beast/http/status.hpp>

namespace orderpipe::http {
namespace {

std::string reason_phrase(int status) {
    namespace bhttp = boost::beast::http;
    if (status < 0) {
        return "Error";
    }
    const auto code = bhttp::int_to_status(static_cast<unsigned>(status));
    if (code == bhttp::status::unknown) {
        return "Error";
    }
    return std::string(bhttp::obsolete_reason(code));
}

}  // namespace

Response problem(int status, std::string title, std::string detail, nlohmann::json extra) {
    // ordered_json keeps the RFC 9457 member order readable: type, title, status, detail, extras.
    nlohmann::ordered_json body;
    body["type"] = "about:blank";
    if (extra.is_object()) {
        if (auto type = extra.find("type"); type != extra.end() && type->is_string()) {
            body["type"] = *type;
        }
    }
    body["title"] = title.empty() ? reason_phrase(status) : std::move(title);
    body["status"] = status;
    if (!detail.empty()) {
        body["detail"] = std::move(detail);
    }
    if (extra.is_object()) {
        for (const auto& [key, value] : extra.items()) {
            if (key != "type" && key != "title" && key != "status" && key != "detail") {
                body[key] = value;
            }
        }
    }
    Response response;
    response.status = status;
    response.content_type = kProblemContentType;
    response.body = body.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
    return response;
}

}  // namespace orderpipe::http
