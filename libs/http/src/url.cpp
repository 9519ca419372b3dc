#include "url.hpp"

#include <boost/url/encoding_opts.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>

namespace orderpipe::http::detail {

namespace urls = boost::urls;

ParsedTarget parse_target(std::string_view target) {
    ParsedTarget result;
    // Origin form ("/a/b?x=1"), or the absolute form (RFC 9112 §3.2.2) any server must accept.
    // Boost.URL enforces RFC 3986: '"', '<', '{', '|', spaces, bytes >= 0x80 and malformed
    // escapes are refused rather than passed on to handlers.
    auto parsed = !target.empty() && target.front() == '/' ? urls::parse_origin_form(target)
                                                           : urls::parse_absolute_uri(target);
    if (!parsed) {
        result.error = "malformed request target (RFC 3986): " + parsed.error().message();
        return result;
    }
    const urls::url_view& url = *parsed;
    for (auto segment : url.encoded_segments()) {
        std::string decoded = segment.decode();
        if (decoded.find('\0') != std::string::npos) {
            result.error = "the path must not contain NUL";
            return result;
        }
        result.path.push_back('/');
        result.path += decoded;
        result.segments.push_back(std::move(decoded));
    }
    if (result.segments.empty()) {
        result.path = "/";
        result.segments.emplace_back();  // "/" is one empty segment for the router
    }
    urls::encoding_opts plus_as_space;
    plus_as_space.space_as_plus = true;
    for (auto param : url.encoded_params()) {
        if (param.key.empty() && !param.has_value) continue;  // "&&"
        result.query.try_emplace(
            param.key.decode(plus_as_space),
            param.has_value ? param.value.decode(plus_as_space) : std::string());
    }
    return result;
}

}  // namespace orderpipe::http::detail
