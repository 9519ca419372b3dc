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
