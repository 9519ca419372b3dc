#include "orderpipe/common/json.hpp"

#include <variant>

namespace orderpipe {
namespace {

using json = nlohmann::json;

/// Forwards to nlohmann's DOM builder, but keeps float literals as text and bounds nesting.
class ExactNumberSax {
  public:
    ExactNumberSax(json& root, std::size_t max_depth) : dom_(root, false), max_depth_(max_depth) {}

    bool null() { return dom_.null(); }
    bool boolean(bool v) { return dom_.boolean(v); }
    bool number_integer(json::number_integer_t v) { return dom_.number_integer(v); }
    bool number_unsigned(json::number_unsigned_t v) { return dom_.number_unsigned(v); }
    bool number_float(json::number_float_t /*approx*/, const json::string_t& text) {
        json::string_t copy = text;  // the exact literal, e.g. "999.99"
        return dom_.string(copy);
    }
    bool string(json::string_t& v) { return dom_.string(v); }
    bool binary(json::binary_t& v) { return dom_.binary(v); }
    bool start_object(std::size_t n) { return enter() && dom_.start_object(n); }
    bool key(json::string_t& k) { return dom_.key(k); }
    bool end_object() {
        --depth_;
        return dom_.end_object();
    }
    bool start_array(std::size_t n) { return enter() && dom_.start_array(n); }
    bool end_array() {
        --depth_;
        return dom_.end_array();
    }
    bool parse_error(std::size_t position, const std::string& /*token*/,
                     const nlohmann::detail::exception& ex) {
        if (error_.empty()) {
            error_ = ex.what();
            // nlohmann prefixes "[json.exception.parse_error.101] "; keep the readable part.
            if (auto pos = error_.find("] "); pos != std::string::npos) error_.erase(0, pos + 2);
            error_ += " (at byte " + std::to_string(position) + ")";
        }
        return false;
    }

    const std::string& error() const { return error_; }

  private:
    bool enter() {
        if (++depth_ > max_depth_) {
            error_ = "nesting deeper than " + std::to_string(max_depth_) + " levels";
            return false;
        }
        return true;
    }

    nlohmann::detail::json_sax_dom_parser<json> dom_;
    std::size_t max_depth_;
    std::size_t depth_ = 0;
    std::string error_;
};

}  // namespace

std::variant<json, JsonParseError> parse_untrusted_json(std::string_view text,
                                                        std::size_t max_depth) {
    json root;
    ExactNumberSax sax(root, max_depth);
    const bool ok = json::sax_parse(text.begin(), text.end(), &sax, json::input_format_t::json,
                                    /*strict=*/true, /*ignore_comments=*/false);
    if (!ok || root.is_discarded()) {
        return JsonParseError{sax.error().empty() ? "invalid JSON" : sax.error()};
    }
    return root;
}

}  // namespace orderpipe
