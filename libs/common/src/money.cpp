#include "orderpipe/common/money.hpp"

#include <algorithm>
#include <array>
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

namespace {
/// ISO 4217's current alphabetic codes (Debian iso-codes 4.15, 168 codes), without the ones that
/// are not money a shop takes: precious metals (XAG, XAU, XPD, XPT), bond-market units (XBA-XBD),
/// XDR, XSU, XUA, the test code XTS and "no currency" XXX. Sorted, for binary search.
constexpr std::array<std::string_view, 168> kCurrencies = {
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT", "BGN",
    "BHD", "BIF", "BMD", "BND", "BOB", "BOV", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD", "CDF",
    "CHE", "CHF", "CHW", "CLF", "CLP", "CNY", "COP", "COU", "CRC", "CUC", "CUP", "CVE", "CZK", "DJF",
    "DKK", "DOP", "DZD", "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD",
    "GNF", "GTQ", "GYD", "HKD", "HNL", "HRK", "HTG", "HUF", "IDR", "ILS", "INR", "IQD", "IRR", "ISK",
    "JMD", "JOD", "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD", "KZT", "LAK", "LBP",
    "LKR", "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR",
    "MWK", "MXN", "MXV", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN",
    "PGK", "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RSD", "RUB", "RWF", "SAR", "SBD", "SCR", "SDG",
    "SEK", "SGD", "SHP", "SLE", "SLL", "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL", "THB", "TJS",
    "TMT", "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "USN", "UYI", "UYU", "UYW",
    "UZS", "VED", "VES", "VND", "VUV", "WST", "XAF", "XCD", "XOF", "XPF", "YER", "ZAR", "ZMW", "ZWL",
};
}  // namespace

bool is_currency_code(std::string_view code) {
    return std::binary_search(kCurrencies.begin(), kCurrencies.end(), code);
}

}  // namespace orderpipe
