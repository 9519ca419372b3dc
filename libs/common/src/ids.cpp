#include "orderpipe/common/ids.hpp"

#include <array>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <random>

namespace orderpipe {
namespace {

constexpr char kHex[] = "0123456789abcdef";

std::mt19937_64& rng() {
    thread_local std::mt19937_64 gen{[] {
        std::random_device rd;
        std::seed_seq seq{rd(), rd(), rd(), rd(), rd(), rd(), rd(), rd()};
        return std::mt19937_64(seq);
    }()};
    return gen;
}

std::string random_hex(std::size_t digits) {
    std::string out;
    out.reserve(digits);
    while (out.size() < digits) {
        std::uint64_t r = rng()();
        for (int i = 0; i < 16 && out.size() < digits; ++i, r >>= 4) out.push_back(kHex[r & 0xF]);
    }
    return out;
}

bool is_hex(std::string_view s) {
    for (char c : s) {
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    }
    return true;
}

bool all_zero(std::string_view s) { return s.find_first_not_of('0') == std::string_view::npos; }

}  // namespace

std::string new_uuid_v7() {
    // RFC 9562 §5.7: 48-bit Unix ms timestamp, version 7, then random bits. Within one ms a
    // per-process counter in rand_a keeps ids from one process monotonic.
    static std::mutex mu;
    static std::uint64_t last_ms = 0;
    static std::uint16_t seq = 0;
    std::uint64_t ms =
        static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                       std::chrono::system_clock::now().time_since_epoch())
                                       .count());
    std::uint16_t rand_a = 0;
    {
        std::lock_guard lock(mu);
        if (ms <= last_ms) {
            ms = last_ms;
            if (++seq > 0x0FFF) {  // counter exhausted: borrow the next millisecond
                ++ms;
                seq = 0;
            }
        } else {
            seq = static_cast<std::uint16_t>(rng()() & 0x07FF);  // random start, room to count
        }
        last_ms = ms;
        rand_a = seq;
    }
    std::array<std::uint8_t, 16> b{};
    for (int i = 0; i < 6; ++i) b[i] = static_cast<std::uint8_t>(ms >> (40 - 8 * i));
    b[6] = static_cast<std::uint8_t>(0x70 | ((rand_a >> 8) & 0x0F));
    b[7] = static_cast<std::uint8_t>(rand_a & 0xFF);
    std::uint64_t r = rng()();
    for (int i = 8; i < 16; ++i, r >>= 8) b[i] = static_cast<std::uint8_t>(r);
    b[8] = static_cast<std::uint8_t>(0x80 | (b[8] & 0x3F));  // RFC 4122 variant
    std::string out;
    out.reserve(36);
    for (int i = 0; i < 16; ++i) {
        if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
        out.push_back(kHex[b[i] >> 4]);
        out.push_back(kHex[b[i] & 0xF]);
    }
    return out;
}

std::optional<TraceContext> TraceContext::parse(std::string_view tp) {
    if (tp.size() != 55 || tp[2] != '-' || tp[35] != '-' || tp[52] != '-') return std::nullopt;
    auto version = tp.substr(0, 2), trace = tp.substr(3, 32), span = tp.substr(36, 16),
         flags = tp.substr(53, 2);
    if (!is_hex(version) || version == "ff" || !is_hex(trace) || !is_hex(span) || !is_hex(flags) ||
        all_zero(trace) || all_zero(span)) {
        return std::nullopt;
    }
    return TraceContext{std::string(trace), std::string(span), std::string(flags)};
}

TraceContext TraceContext::fresh() { return TraceContext{random_hex(32), random_hex(16), "01"}; }

TraceContext TraceContext::child() const { return TraceContext{trace_id, random_hex(16), flags}; }

}  // namespace orderpipe
