#include "orderpipe/common/money.hpp"

#include <catch2/catch.hpp>

using orderpipe::Money;

TEST_CASE("money parses exact decimals", "[money]") {
    CHECK(Money::parse("999.99")->minor_units() == 99999);
    CHECK(Money::parse("29.9")->minor_units() == 2990);
    CHECK(Money::parse("10")->minor_units() == 1000);
    CHECK(Money::parse("0.01")->minor_units() == 1);
    CHECK(Money::parse("0")->minor_units() == 0);
    CHECK(Money::parse("1059.97")->to_string() == "1059.97");
    CHECK(Money::parse("5")->to_string() == "5.00");
}

TEST_CASE("money rejects what is not a plain two-digit decimal", "[money]") {
    for (const char* bad : {"", "-1", "+1", "1.", ".5", "1.234", "1e3", "1.2e1", " 1", "1 ", "abc",
                            "1,00", "0x10", "NaN", "Infinity", "99999999999999999999"}) {
        INFO(bad);
        CHECK_FALSE(Money::parse(bad).has_value());
    }
}

TEST_CASE("money arithmetic is exact and checked", "[money]") {
    auto price = *Money::parse("29.99");
    CHECK(price.times(2)->to_string() == "59.98");
    auto total = Money::parse("999.99")->plus(*price.times(2));
    REQUIRE(total);
    CHECK(total->to_string() == "1059.97");
    // 0.1 + 0.2 is exactly 0.3 here, unlike binary floating point.
    CHECK(Money::parse("0.1")->plus(*Money::parse("0.2")) == Money::parse("0.3"));
    CHECK_FALSE(Money::from_minor_units(Money::kMaxMinorUnits).plus(*Money::parse("0.01")));
    CHECK_FALSE(Money::parse("99999999")->times(1000000));
}

TEST_CASE("currency codes are three upper-case letters", "[money]") {
    CHECK(orderpipe::is_currency_code("USD"));
    CHECK(orderpipe::is_currency_code("EUR"));
    CHECK_FALSE(orderpipe::is_currency_code("usd"));
    CHECK_FALSE(orderpipe::is_currency_code("US"));
    CHECK_FALSE(orderpipe::is_currency_code("US1"));
    // The ISO 4217 list, not the shape.
    CHECK(orderpipe::is_currency_code("JPY"));
    CHECK(orderpipe::is_currency_code("ZAR"));
    CHECK(orderpipe::is_currency_code("AED"));
    CHECK_FALSE(orderpipe::is_currency_code("ZZZ"));
    CHECK_FALSE(orderpipe::is_currency_code("ABC"));
    CHECK_FALSE(orderpipe::is_currency_code("XXX"));
    CHECK_FALSE(orderpipe::is_currency_code("XAU"));
}
