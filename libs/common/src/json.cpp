#include "orderpipe/common/json.hpp"

#include <set>
#include <string>
#include <variant>
#include <vector>

namespace orderpipe {
namespace {

using json = nlohmann::json;

/// Forwards to nlohmann's DOM builder, but keeps float literals as text, bounds nesting and
/// refuses an object with the same key twice (nlohmann would keep the last one silently).
/// `tagged`: every string is stored as "s<text>" and every float literal as "n<literal>", so a
/// number and a string with the same text stay different (for canonical_json()).
class ExactNumberSax {
  public:
    ExactNumberSax(json& root, std::size_t max_depth, bool tagged = false)
        : dom_(root, false), max_depth_(max_depth), tagged_(tagged) {}

    bool null() { return dom_.null(); }
    bool boolean(bool v) { return dom_.boolean(v); }
    bool number_integer(json::number_integer_t v) { return dom_.number_integer(v); }
    bool number_unsigned(json::number_unsigned_t v) { return dom_.number_unsigned(v); }
    bool number_float(json::number_float_t /*approx*/, const json::string_t& text) {
        json::string_t copy = tagged_ ? "n" + text : text;  // the exact literal, e.g. "999.99"
        return dom_.string(copy);
    }
    bool string(json::string_t& v) {
        if (!tagged_) return dom_.string(v);
        json::string_t copy = "s" + v;
        return dom_.string(copy);
    }
    bool binary(json::binary_t& v) { return dom_.binary(v); }
    bool start_object(std::size_t n) {
        if (!enter()) return false;
        keys_.emplace_back();
        return dom_.start_object(n);
    }
    bool key(json::string_t& k) {
        if (!keys_.back().insert(k).second) {
            error_ = "duplicate key \"" + k + "\" in an object";
            return false;
        }
        return dom_.key(k);
    }
    bool end_object() {
        --depth_;
        keys_.pop_back();
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
    bool tagged_;
    std::size_t depth_ = 0;
    std::vector<std::set<std::string>> keys_;  // of each open object
    std::string error_;
};

}  // namespace

std::optional<std::string> canonical_json(std::string_view text, std::size_t max_depth) {
    json root;
    ExactNumberSax sax(root, max_depth, /*tagged=*/true);
    const bool ok = json::sax_parse(text.begin(), text.end(), &sax, json::input_format_t::json,
                                    /*strict=*/true, /*ignore_comments=*/false);
    if (!ok || root.is_discarded()) return std::nullopt;
    return root.dump();  // object keys sorted, no spaces
}

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
