#include "url.hpp"

namespace orderpipe::http::detail {
namespace {

int hex_value(char c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

}  // namespace

std::optional<std::string> percent_decode(std::string_view in, bool plus_as_space) {
    std::string out;
    out.reserve(in.size());
    for (std::size_t i = 0; i < in.size(); ++i) {
        const char c = in[i];
        if (c == '%') {
            if (i + 2 >= in.size()) {
                return std::nullopt;
            }
            const int hi = hex_value(in[i + 1]);
            const int lo = hex_value(in[i + 2]);
            if (hi < 0 || lo < 0) {
                return std::nullopt;
            }
            out.push_back(static_cast<char>((hi << 4) | lo));
            i += 2;
        } else if (c == '+' && plus_as_space) {
            out.push_back(' ');
        } else {
            out.push_back(c);
        }
    }
    return out;
}

bool parse_query(std::string_view query, std::map<std::string, std::string>& out) {
    while (!query.empty()) {
        const auto amp = query.find('&');
        const std::string_view pair = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
        if (pair.empty()) {
            continue;
        }
        const auto eq = pair.find('=');
        auto key = percent_decode(pair.substr(0, eq), true);
        auto value = percent_decode(
            eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1), true);
        if (!key || !value) {
            return false;
        }
        out.try_emplace(std::move(*key), std::move(*value));
    }
    return true;
}

ParsedTarget parse_target(std::string_view target) {
    ParsedTarget result;
    // Absolute form (RFC 9112 §3.2.2) is legal for any server: drop "scheme://authority".
    if (const auto scheme_end = target.find("://");
        scheme_end != std::string_view::npos && target.front() != '/') {
        const auto path_start = target.find('/', scheme_end + 3);
        target = path_start == std::string_view::npos ? std::string_view{"/"}
                                                      : target.substr(path_start);
    }
    if (target.empty() || target.front() != '/') {
        result.error = "request target must start with '/'";
        return result;
    }
    // A fragment is never sent by conforming clients; ignore one if present.
    target = target.substr(0, target.find('#'));

    const auto qmark = target.find('?');
    const std::string_view raw_path = target.substr(0, qmark);
    if (qmark != std::string_view::npos && !parse_query(target.substr(qmark + 1), result.query)) {
        result.error = "malformed percent-encoding in the query string";
        return result;
    }

    result.path.reserve(raw_path.size());
    std::string_view rest = raw_path.substr(1);
    for (;;) {
        const auto slash = rest.find('/');
        auto segment = percent_decode(rest.substr(0, slash), false);
        if (!segment) {
            result.error = "malformed percent-encoding in the path";
            return result;
        }
        if (segment->find('\0') != std::string::npos) {
            result.error = "the path must not contain NUL";
            return result;
        }
        result.path.push_back('/');
        result.path += *segment;
        result.segments.push_back(std::move(*segment));
        if (slash == std::string_view::npos) {
            break;
        }
        rest = rest.substr(slash + 1);
    }
    return result;
}

}  // namespace orderpipe::http::detail
