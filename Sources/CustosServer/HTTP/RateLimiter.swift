import Foundation
import HTTPTypes
import Hummingbird
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

/// A token bucket per client (`rate` per second, bursts of `burst`), for the unauthenticated requests that make a
/// pending session: one client cannot take every challenge of the shared ``RateLimiter``.
///
/// The table is bounded without a scan: buckets live in two generations; a lookup that finds a client in the old
/// one moves it to the current one, and when the current one holds `capacity / 2` clients the old one is dropped
/// and the current one becomes old. A client seen in the last two generations keeps its bucket (a refused client
/// stays refused); one not seen for that long starts full again, as it would by refilling.
final class ClientRateLimiter: Sendable {
    let rate: Double
    let burst: Double
    let capacity: Int
    private let state: Mutex<Generations>

    struct Bucket {
        var tokens: Double
        var last: UInt64
    }

    struct Generations {
        var current: [String: Bucket] = [:]
        var previous: [String: Bucket] = [:]
    }

    init(rate: Double, burst: Double, capacity: Int = 20_000) {
        precondition(rate > 0 && burst >= 1 && capacity >= 2, "a client rate limiter needs a positive rate, a burst and room")
        self.rate = rate
        self.burst = burst
        self.capacity = capacity
        self.state = Mutex(Generations())
    }

    /// nil when `client` may go on (a token is taken), else the whole seconds to wait (at least 1).
    func take(_ client: String, now: UInt64 = RateLimiter.uptime()) -> Int? {
        state.withLock { state in
            var bucket = state.current[client] ?? state.previous.removeValue(forKey: client) ?? Bucket(tokens: burst, last: now)
            let elapsed = now > bucket.last ? Double(now - bucket.last) / 1e9 : 0
            bucket.tokens = min(burst, bucket.tokens + elapsed * rate)
            bucket.last = max(bucket.last, now)
            var wait: Int? = nil
            if bucket.tokens >= 1 {
                bucket.tokens -= 1
            } else {
                wait = max(1, Int(((1 - bucket.tokens) / rate).rounded(.up)))
            }
            state.current[client] = bucket
            if state.current.count >= capacity / 2 {
                state.previous = state.current
                state.current = [:]
            }
            return wait
        }
    }

    /// Clients with a bucket (tests: the table stays within `capacity`).
    var count: Int { state.withLock { $0.current.count + $0.previous.count } }
}

/// The limits on requests that make a pending session (`POST /kbs/v0/auth`, `POST /v1/challenges`): the client's own
/// bucket first (so a client's refused requests do not drain the shared one), then the service's.
struct SessionRateLimits: Sendable {
    let shared: RateLimiter
    let perClient: ClientRateLimiter?
    /// The header naming the client when a proxy forwards the requests (`client_address_header`): the last address in
    /// it, the one the nearest proxy added. nil: the TCP peer's address.
    let clientHeader: HTTPField.Name?

    /// nil when the request may make a session, else the seconds to wait.
    func take(_ request: Request, context: CustosRequestContext) -> Int? {
        if let perClient, let wait = perClient.take(client(request, context: context)) { return wait }
        return shared.take()
    }

    /// Who the client is for the per-client bucket.
    func client(_ request: Request, context: CustosRequestContext) -> String {
        if let clientHeader, let forwarded = request.headers[values: clientHeader].last {
            let tail = forwarded.lastIndex(of: ",").map { forwarded[forwarded.index(after: $0)...] } ?? forwarded[...]
            let last = tail.trimmingCharacters(in: .whitespaces)
            if !last.isEmpty { return String(last.prefix(64)) }
        }
        return context.clientAddress ?? "unknown"
    }
}
