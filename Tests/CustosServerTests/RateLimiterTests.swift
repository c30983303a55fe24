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

/// The per-client buckets of `challenge_rate_per_client`.
@Suite struct ClientRateLimiterTests {
    static let second: UInt64 = 1_000_000_000

    @Test func eachClientHasItsOwnBucket() {
        let t0: UInt64 = 7 * Self.second
        let limiter = ClientRateLimiter(rate: 1, burst: 2)
        #expect(limiter.take("10.0.0.1", now: t0) == nil)
        #expect(limiter.take("10.0.0.1", now: t0) == nil)
        #expect(limiter.take("10.0.0.1", now: t0) == 1)
        // Another client is not affected; the first one gets a token back a second later.
        #expect(limiter.take("10.0.0.2", now: t0) == nil)
        #expect(limiter.take("10.0.0.1", now: t0 + Self.second) == nil)
        #expect(limiter.take("10.0.0.1", now: t0 + Self.second) == 1)
    }

    /// However many clients come, the table stays within its capacity; a client that keeps asking keeps its bucket
    /// across the generations (stays refused), one not seen for two generations starts full again.
    @Test func theTableIsBoundedAndAnActiveClientKeepsItsBucket() {
        let t0: UInt64 = 9 * Self.second
        let limiter = ClientRateLimiter(rate: 0.001, burst: 1, capacity: 100)
        #expect(limiter.take("greedy", now: t0) == nil)
        #expect(limiter.take("greedy", now: t0) != nil)
        #expect(limiter.take("idle", now: t0) == nil)
        for index in 0..<10_000 {
            _ = limiter.take("client-\(index)", now: t0)
            if index % 10 == 0 { #expect(limiter.take("greedy", now: t0) != nil, "greedy let through after \(index) others") }
            #expect(limiter.count <= 100)
        }
        #expect(limiter.take("idle", now: t0) == nil, "a client forgotten for two generations starts full")
    }
}
