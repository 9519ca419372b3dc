#include "orderpipe/common/json.hpp"

#include <catch2/catch.hpp>

using orderpipe::JsonParseError;
using orderpipe::parse_untrusted_json;

TEST_CASE("floats are kept as their exact text", "[json]") {
    auto r = parse_untrusted_json(R"({"p": 999.99, "q": 2, "s": "x", "big": 0.1})");
    auto& j = std::get<nlohmann::json>(r);
    CHECK(j["p"] == "999.99");
    CHECK(j["q"] == 2);
    CHECK(j["q"].is_number_integer());
    CHECK(j["big"] == "0.1");
}

TEST_CASE("malformed JSON gives a readable error", "[json]") {
    for (const char* bad : {"", "{", "{\"a\":}", "[1,2", "nul", "{\"a\":1} trailing"}) {
        INFO(bad);
        auto r = parse_untrusted_json(bad);
        REQUIRE(std::holds_alternative<JsonParseError>(r));
        CHECK_FALSE(std::get<JsonParseError>(r).message.empty());
    }
}

TEST_CASE("deep nesting is refused, not recursed into", "[json]") {
    std::string deep(100000, '[');
    auto r = parse_untrusted_json(deep);
    REQUIRE(std::holds_alternative<JsonParseError>(r));
    CHECK_THAT(std::get<JsonParseError>(r).message, Catch::Contains("nesting"));
    CHECK(std::holds_alternative<nlohmann::json>(parse_untrusted_json("[[[[1]]]]")));
}

TEST_CASE("an object with the same key twice is refused, at any depth", "[json]") {
    // Before, the last one won silently ("currency":"USD","currency":"EUR" stored EUR).
    for (const char* dup : {R"({"currency":"USD","currency":"EUR"})",
                            R"({"items":[{"sku":"A","sku":"B"}]})", R"({"a":{"b":1,"b":1}})"}) {
        INFO(dup);
        auto r = parse_untrusted_json(dup);
        REQUIRE(std::holds_alternative<JsonParseError>(r));
        CHECK_THAT(std::get<JsonParseError>(r).message, Catch::Contains("duplicate key"));
    }
    // The same key in two objects is fine.
    CHECK(std::holds_alternative<nlohmann::json>(parse_untrusted_json(R"([{"a":1},{"a":2}])")));
}

TEST_CASE("canonical JSON: the same value whatever the order and spacing; types matter",
          "[json]") {
    using orderpipe::canonical_json;
    CHECK(canonical_json(R"({"b":1,"a":[29.99,"x"]})") ==
          canonical_json(R"( { "a" : [ 29.99 , "x" ] , "b" : 1 } )"));
    CHECK(canonical_json(R"({"p":29.99})") != canonical_json(R"({"p":"29.99"})"));
    CHECK(canonical_json(R"({"p":"n29.99"})") != canonical_json(R"({"p":29.99})"));
    CHECK(canonical_json(R"({"p":10})") != canonical_json(R"({"p":"10"})"));
    CHECK_FALSE(canonical_json(R"({"a":1,"a":2})"));
    CHECK_FALSE(canonical_json("{"));
}
