#include "delivery.hpp"

#include <algorithm>
#include <cmath>

namespace orderpipe::notification {

Verdict classify(const SendResult& r) {
    if (r.status >= 200 && r.status < 300) return Verdict::kSent;
    if (r.status == 0 || r.status >= 500 || r.status == 408 || r.status == 429) {
        return Verdict::kTransient;
    }
    return Verdict::kPermanent;
}

std::string describe(const SendResult& r) {
    if (r.status == 0) return r.error.empty() ? "no answer" : r.error;
    std::string out = "HTTP " + std::to_string(r.status);
    if (!r.body.empty()) out += ": " + r.body.substr(0, 200);
    return out;
}

std::chrono::milliseconds retry_delay(int failed_attempts, std::chrono::milliseconds base,
                                      std::optional<std::chrono::milliseconds> retry_after,
                                      double jitter, std::chrono::milliseconds cap) {
    const int exponent = std::clamp(failed_attempts - 1, 0, 20);
    const double scaled = static_cast<double>(base.count()) * std::pow(2.0, exponent) *
                          (0.8 + 0.4 * std::clamp(jitter, 0.0, 1.0));
    auto delay = std::chrono::milliseconds(
        static_cast<std::int64_t>(std::min(scaled, static_cast<double>(cap.count()))));
    if (retry_after && *retry_after > delay) delay = *retry_after;
    return delay;
}

bool CircuitBreaker::allow(Clock::time_point now) {
    if (!open_) return true;
    if (probing_ && now - probe_sent_at_ < probe_lost_after_) return false;
    if (!probing_ && now - opened_at_ < open_for_) return false;
    probing_ = true;  // half-open: one probe (or another, the last one being lost)
    probe_sent_at_ = now;
    return true;
}

void CircuitBreaker::on_answer() {
    consecutive_ = 0;
    open_ = false;
    probing_ = false;
}

bool CircuitBreaker::on_transient_failure(Clock::time_point now) {
    if (open_) {
        // The probe failed (or a send started before the breaker opened came back): stay open.
        if (probing_) {
            probing_ = false;
            opened_at_ = now;
        }
        return false;
    }
    if (++consecutive_ < failures_to_open_) return false;
    open_ = true;
    opened_at_ = now;
    return true;
}

CircuitBreaker::State CircuitBreaker::state(Clock::time_point now) const {
    if (!open_) return State::kClosed;
    if (probing_ || now - opened_at_ >= open_for_) return State::kHalfOpen;
    return State::kOpen;
}

const char* to_string(CircuitBreaker::State s) {
    switch (s) {
        case CircuitBreaker::State::kClosed:
            return "closed";
        case CircuitBreaker::State::kOpen:
            return "open";
        case CircuitBreaker::State::kHalfOpen:
            return "half-open";
    }
    return "?";
}

}  // namespace orderpipe::notification
