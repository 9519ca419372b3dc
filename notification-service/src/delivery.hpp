#pragma once
/// The notification service's delivery rules (docs/CONTRACT.md "The saga", step 4), pure: how an
/// answer of the email provider is classified, how long to wait before the next attempt, and the
/// circuit breaker. No I/O and no clock of their own: tested without a provider.

#include <chrono>
#include <optional>
#include <string>

namespace orderpipe::notification {

using Clock = std::chrono::steady_clock;

/// What the provider answered to one attempt.
struct SendResult {
    long status = 0;    ///< HTTP status; 0 when no answer came (timeout, connection error)
    std::string error;  ///< transport error text when status is 0
    std::optional<std::chrono::milliseconds> retry_after;  ///< from a Retry-After header
    std::string body;  ///< the start of the answer's body (for last_error)
};

enum class Verdict {
    kSent,       ///< 2xx
    kTransient,  ///< no answer, 5xx, 408, 429: try again later
    kPermanent,  ///< any other answer: trying again cannot help
};

Verdict classify(const SendResult& result);

/// A short text for logs and dlq.last_error, e.g. "HTTP 503: busy" or "timeout".
std::string describe(const SendResult& result);

/// The wait before attempt `failed_attempts + 1`: base × 2^(failed_attempts − 1), jittered by
/// ±20 % (`jitter` is uniform in [0, 1)), at most `cap`, and never shorter than the provider's
/// Retry-After (which the caller checks against the cap). With base 2 s: about 2 s after the
/// first failure, 4 s after the second.
std::chrono::milliseconds retry_delay(int failed_attempts, std::chrono::milliseconds base,
                                      std::optional<std::chrono::milliseconds> retry_after,
                                      double jitter,
                                      std::chrono::milliseconds cap = std::chrono::hours(1));

/// A circuit breaker over the provider: `failures_to_open` transient failures in a row open
/// it; while open no attempt is made; after `open_for` one probe is let through (half-open):
/// its success closes the breaker, its failure opens it again. Answers that prove the provider
/// is up (2xx, permanent 4xx) reset the count. Not thread-safe.
class CircuitBreaker {
  public:
    enum class State { kClosed, kOpen, kHalfOpen };

    /// A probe not answered within `probe_lost_after` is taken as lost (its request dropped on a
    /// path that could not say so), and the next one goes out: the breaker never waits for good.
    CircuitBreaker(int failures_to_open, std::chrono::milliseconds open_for,
                   std::chrono::milliseconds probe_lost_after = std::chrono::seconds(60))
        : failures_to_open_(failures_to_open),
          open_for_(open_for),
          probe_lost_after_(probe_lost_after) {}

    /// May an attempt start now? In half-open, true once (the probe) until it is answered.
    bool allow(Clock::time_point now);
    /// The provider answered (2xx or a permanent error): it is up.
    void on_answer();
    /// A transient failure. @returns true when this opened the breaker.
    bool on_transient_failure(Clock::time_point now);
    /// The probe will never be answered (its request was dropped: partitions revoked, an
    /// unknown outcome): the breaker stays open and lets the next probe through. Without this a
    /// half-open breaker waits for that answer forever and nothing is sent again.
    void abandon_probe() { probing_ = false; }

    State state(Clock::time_point now) const;
    /// True while the probe of a half-open breaker is out.
    bool probing() const { return probing_; }

  private:
    int failures_to_open_;
    std::chrono::milliseconds open_for_;
    int consecutive_ = 0;
    bool open_ = false;
    bool probing_ = false;
    std::chrono::milliseconds probe_lost_after_;
    Clock::time_point opened_at_{};
    Clock::time_point probe_sent_at_{};
};

const char* to_string(CircuitBreaker::State s);

}  // namespace orderpipe::notification
