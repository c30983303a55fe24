import CustosCrypto
public import Foundation

/// Attestation challenges (KBS `/auth` sessions, `/v1/challenges`) kept in memory with an expiry and a hard cap.
///
/// Why in memory and not in SQLite: issuing a challenge is the first step of every attestation, and it would be a
/// durable write per `/auth` on the hot path for a value that lives five minutes (service.md §12: "nonces and
/// challenges in memory with TTL"). Losing them on a restart only costs each guest one retry of `/auth`. The cap
/// bounds memory when an unauthenticated client floods `/auth` (Trustee #1536): a full cache throws
/// ``StoreError/Code-swift.struct/capacity`` (answer 429/503) instead of growing.
///
/// A challenge is single-use: ``consume(id:now:)`` or ``consume(nonce:now:)`` removes it, so replaying evidence
/// for a consumed nonce fails. Lookups go through a hash table keyed by the 32-byte random nonce or id: timing
/// reveals nothing useful about an unknown 256-bit value, so no constant-time comparison is needed here.
public actor ChallengeCache {
    /// One issued challenge.
    public struct Challenge: Sendable, Hashable {
        /// `chl_` + 16 random bytes in hex (the KBS session id / `challenge_id`).
        public let id: String
        /// The nonce the evidence must bind (32 random bytes by default).
        public let nonce: [UInt8]
        public let tee: String
        public let tenantId: String?
        public let workloadId: String?
        public let issuedAt: Date
        public let expiresAt: Date
    }

    /// The result of consuming a challenge.
    public enum Consumed: Sendable, Hashable {
        case valid(Challenge)
        /// Never issued, already consumed, or evicted after expiry.
        case unknown
        /// Issued, but past its expiry (it is removed all the same).
        case expired(Challenge)
    }

    public let capacity: Int
    public let lifetime: TimeInterval
    public let nonceLength: Int

    private var byId: [String: Challenge] = [:]
    private var idByNonce: [[UInt8]: String] = [:]
    /// Ids in issue order, which is expiry order (one lifetime for all): expired ones are dropped from the front.
    private var order: [String] = []
    private var orderStart = 0

    /// - Parameters:
    ///   - capacity: the most challenges held at once (default 100 000, about 20 MB).
    ///   - lifetime: seconds a challenge stays valid (default 300, Trustee's 5 minutes).
    ///   - nonceLength: nonce bytes (default 32).
    public init(capacity: Int = 100_000, lifetime: TimeInterval = 300, nonceLength: Int = 32) {
        self.capacity = max(1, capacity)
        self.lifetime = lifetime
        self.nonceLength = max(16, nonceLength)
    }

    /// The number of challenges held (expired ones not yet evicted included).
    public var count: Int { byId.count }

    /// Issues a fresh challenge.
    /// - Throws: `capacity` when the cache is full of unexpired challenges; `sealing` if the DRBG fails.
    public func issue(tee: String, tenantId: String? = nil, workloadId: String? = nil, now: Date) throws(StoreError) -> Challenge {
        evictExpired(now: now)
        guard byId.count < capacity else {
            throw StoreError(.capacity, "too many outstanding challenges (\(capacity)); retry later")
        }
        let nonce: [UInt8]
        let idBytes: [UInt8]
        do {
            nonce = try SecureRandom.bytes(nonceLength)
            idBytes = try SecureRandom.bytes(16)
        } catch { throw StoreError(.sealing, "cannot generate a nonce: \(error)") }
        let challenge = Challenge(
            id: "chl_" + Hex.encode(idBytes), nonce: nonce, tee: tee, tenantId: tenantId, workloadId: workloadId, issuedAt: now,
            expiresAt: now.addingTimeInterval(lifetime))
        byId[challenge.id] = challenge
        idByNonce[nonce] = challenge.id
        order.append(challenge.id)
        if order.count - orderStart > 2 * capacity {
            // Consumed ids pile up behind a long-lived one: rebuild the order from what is held (hard memory bound).
            order = byId.values.sorted { ($0.expiresAt, $0.id) < ($1.expiresAt, $1.id) }.map(\.id)
            orderStart = 0
        }
        return challenge
    }

    /// Looks a challenge up without consuming it (e.g. to echo it).
    public func peek(id: String, now: Date) -> Challenge? {
        guard let challenge = byId[id], now < challenge.expiresAt else { return nil }
        return challenge
    }

    /// Consumes the challenge with this id: it can never be used again.
    public func consume(id: String, now: Date) -> Consumed {
        guard let challenge = byId.removeValue(forKey: id) else { return .unknown }
        idByNonce.removeValue(forKey: challenge.nonce)
        return now < challenge.expiresAt ? .valid(challenge) : .expired(challenge)
    }

    /// Consumes the challenge that issued this nonce.
    public func consume(nonce: [UInt8], now: Date) -> Consumed {
        guard let id = idByNonce[nonce] else { return .unknown }
        return consume(id: id, now: now)
    }

    /// Drops every challenge past its expiry.
    public func evictExpired(now: Date) {
        while orderStart < order.count {
            let id = order[orderStart]
            if let challenge = byId[id] {
                guard now >= challenge.expiresAt else { break }
                byId.removeValue(forKey: id)
                idByNonce.removeValue(forKey: challenge.nonce)
            }
            orderStart += 1
        }
        // Compact the order list once its consumed prefix dominates (amortised O(1) per challenge).
        if orderStart > 1024, orderStart * 2 > order.count {
            order.removeFirst(orderStart)
            orderStart = 0
        }
    }
}
