#include "orderpipe/common/money.hpp"

#include <cstdio>

namespace orderpipe {

std::optional<Money> Money::parse(std::string_view text) {
    if (text.empty() || text.size() > 32) return std::nullopt;
    std::int64_t units = 0;
    std::size_t i = 0;
    std::size_t int_digits = 0;
    for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i, ++int_digits) {
        units = units * 10 + (text[i] - '0');
        if (units > kMaxMinorUnits / 100) return std::nullopt;
    }
    if (int_digits == 0) return std::nullopt;  // ".5", "-1", "+1", "abc"
    std::int64_t fraction = 0;
    if (i < text.size()) {
        if (text[i] != '.') return std::nullopt;
        ++i;
        std::size_t frac_digits = 0;
        for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i, ++frac_digits) {
            if (frac_digits == 2) return std::nullopt;  // more than two fraction digits
            fraction = fraction * 10 + (text[i] - '0');
        }
        if (frac_digits == 0 || i != text.size()) return std::nullopt;  // "1." or "1.2e3"
        if (frac_digits == 1) fraction *= 10;
    }
    const std::int64_t cents = units * 100 + fraction;
    if (cents > kMaxMinorUnits) return std::nullopt;
    return Money{cents};
}

std::string Money::to_string() const {
    char buf[32];
    const std::int64_t abs = cents_ < 0 ? -cents_ : cents_;
    std::snprintf(buf, sizeof buf, "%s%lld.%02lld", cents_ < 0 ? "-" : "",
                  static_cast<long long>(abs / 100), static_cast<long long>(abs % 100));
    return buf;
}

std::optional<Money> Money::plus(Money other) const {
    const std::int64_t sum = cents_ + other.cents_;  // both are capped far below INT64_MAX
    if (sum > kMaxMinorUnits || sum < -kMaxMinorUnits) return std::nullopt;
    return Money{sum};
}

std::optional<Money> Money::times(std::int64_t quantity) const {
    if (quantity < 0) return std::nullopt;
    if (quantity != 0 && cents_ > kMaxMinorUnits / quantity) return std::nullopt;
    return Money{cents_ * quantity};
}

bool is_currency_code(std::string_view code) {
    if (code.size() != 3) return false;
    for (char c : code) {
        if (c < 'A' || c > 'Z') return false;
    }
    return true;
}

}  // namespace orderpipe
