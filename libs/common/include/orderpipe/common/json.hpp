#pragma once
/// JSON parsing for untrusted input.

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace orderpipe {

struct JsonParseError {
    std::string message;  ///< what is wrong and where (byte offset), safe to show to a client
};

/// Parses untrusted JSON with a nesting limit. Every non-integer number is kept as its exact
/// source text in a JSON *string* (e.g. `999.99` becomes `"999.99"`), so money is never rounded
/// through a binary double. Integers stay integers.
/// @returns the value, or the error; never throws.
/// An object with the same key twice is an error too.
std::variant<nlohmann::json, JsonParseError> parse_untrusted_json(std::string_view text,
                                                                  std::size_t max_depth = 32);

/// One text per JSON value, whatever the key order and spacing: equal for two documents that are
/// the same JSON value, different otherwise (a number and a string of the same text differ:
/// `29.99` is not `"29.99"`). nullopt when `text` is not JSON parse_untrusted_json() accepts.
std::optional<std::string> canonical_json(std::string_view text, std::size_t max_depth = 32);

/// `obj[key]` if `obj` is an object holding a string there, else `fallback`. Never throws:
/// consumed events are untrusted, and nlohmann's value() throws on a wrong type.
inline std::string string_field(const nlohmann::json& obj, const char* key,
                                std::string fallback = {}) {
    if (!obj.is_object()) return fallback;
    auto it = obj.find(key);
    return it != obj.end() && it->is_string() ? it->get<std::string>() : fallback;
}

/// `obj[key]` if it is an integer, else `fallback`. Never throws.
inline std::int64_t int_field(const nlohmann::json& obj, const char* key,
                              std::int64_t fallback = 0) {
    if (!obj.is_object()) return fallback;
    auto it = obj.find(key);
    return it != obj.end() && it->is_number_integer() ? it->get<std::int64_t>() : fallback;
}

}  // namespace orderpipe
