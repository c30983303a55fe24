import Testing

@testable import CustosServer

/// The token bucket behind `challenge_rate`, on an injected monotonic clock (nanoseconds).
@Suite struct RateLimiterTests {
    static let second: UInt64 = 1_000_000_000

    @Test func burstThenOneTokenPerIntervalWithTheWaitInWholeSeconds() {
        let t0: UInt64 = 5 * Self.second
        let limiter = RateLimiter(rate: 2, burst: 4, now: t0)
        for index in 0..<4 { #expect(limiter.take(now: t0) == nil, "burst request \(index)") }
        // Empty: the next token is 0.5 s away, reported as 1 s (Retry-After is whole seconds).
        #expect(limiter.take(now: t0) == 1)
        #expect(limiter.take(now: t0 + Self.second / 4) == 1)
        // 0.5 s after the start one token has come back; it is taken, and the bucket is empty again.
        #expect(limiter.take(now: t0 + Self.second / 2) == nil)
        #expect(limiter.take(now: t0 + Self.second / 2) == 1)
        // A long pause refills to the burst, never beyond it.
        let later = t0 + 3600 * Self.second
        for index in 0..<4 { #expect(limiter.take(now: later) == nil, "refilled request \(index)") }
        #expect(limiter.take(now: later) != nil)
    }

    @Test func slowRatesWaitLongerAndAnEarlierInstantChangesNothing() {
        let t0: UInt64 = 100 * Self.second
        let limiter = RateLimiter(rate: 0.1, burst: 1, now: t0)
        #expect(limiter.take(now: t0) == nil)
        #expect(limiter.take(now: t0) == 10)
        // An instant before the last one (two threads reading the clock in one order and locking in the other)
        // neither refills nor drains.
        #expect(limiter.take(now: t0 - 50 * Self.second) == 10)
        #expect(limiter.take(now: t0 + 4 * Self.second) == 6)
        #expect(limiter.take(now: t0 + 10 * Self.second) == nil)
    }
}
