import Foundation
import Synchronization

/// A token bucket: `rate` requests per second on average, bursts up to `burst`. It starts full.
///
/// Time is the monotonic uptime clock: a wall clock set back (NTP step, an operator) would otherwise drain the
/// bucket and answer `Retry-After` in hours, or set forward, refill it at once.
final class RateLimiter: Sendable {
    let rate: Double
    let burst: Double
    private let state: Mutex<(tokens: Double, last: UInt64)>

    /// Nanoseconds of the monotonic clock (`CLOCK_MONOTONIC` through Dispatch).
    static func uptime() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    init(rate: Double, burst: Double, now: UInt64 = RateLimiter.uptime()) {
        precondition(rate > 0 && burst >= 1, "a rate limiter needs a positive rate and a burst of at least one")
        self.rate = rate
        self.burst = burst
        self.state = Mutex((burst, now))
    }

    /// nil when allowed (a token is taken), else the whole seconds to wait for the next token (at least 1).
    func take(now: UInt64 = RateLimiter.uptime()) -> Int? {
        state.withLock { state in
            let elapsed = now > state.last ? Double(now - state.last) / 1e9 : 0
            state.tokens = min(burst, state.tokens + elapsed * rate)
            state.last = max(state.last, now)
            guard state.tokens >= 1 else { return max(1, Int(((1 - state.tokens) / rate).rounded(.up))) }
            state.tokens -= 1
            return nil
        }
    }
}
