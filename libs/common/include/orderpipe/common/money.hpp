#pragma once
/// Exact decimal money: an amount in minor units (cents) with two fraction digits.
/// Never a binary float: parsing and formatting work on decimal text only.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace orderpipe {

class Money {
  public:
    /// Largest amount accepted anywhere (10^13 cents = 100 billion units); sums beyond it fail.
    static constexpr std::int64_t kMaxMinorUnits = 10'000'000'000'000;

    constexpr Money() = default;
    static constexpr Money from_minor_units(std::int64_t cents) { return Money{cents}; }

    /// Parses a non-negative decimal with at most two fraction digits ("999.99", "10", "0.5").
    /// Rejects signs, exponents, spaces, more than two fraction digits and amounts over the cap.
    static std::optional<Money> parse(std::string_view text);

    /// "1059.97": always two fraction digits.
    std::string to_string() const;

    std::int64_t minor_units() const { return cents_; }

    /// Checked arithmetic: nullopt on overflow past kMaxMinorUnits.
    std::optional<Money> plus(Money other) const;
    std::optional<Money> times(std::int64_t quantity) const;

    friend constexpr bool operator==(Money, Money) = default;
    friend constexpr auto operator<=>(Money, Money) = default;

  private:
    constexpr explicit Money(std::int64_t cents) : cents_(cents) {}
    std::int64_t cents_ = 0;
};

/// A current ISO 4217 currency code ("USD", "EUR"): the list, not just the shape ("ZZZ" is not).
bool is_currency_code(std::string_view code);

}  // namespace orderpipe
