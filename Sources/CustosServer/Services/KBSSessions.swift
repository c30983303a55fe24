public import CustosCrypto
public import CustosKBS
public import Foundation
import NIOCore
import Synchronization

/// The KBS sessions between `/auth`, `/attest` and `/resource` (service.md §4.4), in memory: a session is a nonce
/// until it is attested (the nonce is consumed then: a replayed `/attest` finds no challenge), then the verified
/// result the cookie stands for. Sessions expire after `lifetime`.
///
/// Two tables, each capped and each kept in creation order (every session has the same lifetime, so that is expiry
/// order): **pending** challenges, which anyone can make with one unauthenticated request, and **attested** sessions,
/// which cost a verified quote. Expired sessions are dropped from the front of each queue as new ones arrive, in
/// amortized constant time. A full pending table evicts its oldest challenge, so a flood of `/auth` requests can
/// neither refuse real guests their challenges nor touch attested sessions, and never costs work proportional to the
/// table (it used to copy the whole table under the lock on every refused request). A full attested table evicts its
/// oldest session (whose guest, if still there, attests again).
public final class KBSSessions: Sendable {
    /// What an attested session (or a verified Bearer token) allows. Kept small on purpose: at the target rate a
    /// five-minute session lifetime means hundreds of thousands of live sessions, so a session holds neither its
    /// token nor its claims (the release reads the appraisal's claims from the store when the policy needs them).
    public struct Attested: Sendable {
        public let tenant: String
        /// The TEE key as canonical JWK bytes (an OpenSSL key object per live session would cost kilobytes each).
        public let teePubkeyJSON: [UInt8]
        /// Its RFC 7638 thumbprint.
        public let teeKeyThumbprint: String
        public let status: EARStatus
        /// The claims the release policy sees: a Bearer token's annotated evidence, or nil for a session (then the
        /// appraisal's claims are read from the store).
        public let claims: JSONValue?
        public let appraisalID: String?
        public let policy: String?
        public let expires: Date

        public init(
            tenant: String, teePubkey: JSONWebKey, status: EARStatus, claims: JSONValue?, appraisalID: String?, policy: String?,
            expires: Date
        ) {
            self.tenant = tenant
            self.teePubkeyJSON = CanonicalJSON.encode(teePubkey.jsonValue)
            self.teeKeyThumbprint = teePubkey.thumbprintBase64URL
            self.status = status
            self.claims = claims
            self.appraisalID = appraisalID
            self.policy = policy
            self.expires = expires
        }

        /// The TEE key, rebuilt from its JWK.
        public func teePubkey() throws(CryptoError) -> JSONWebKey { try JSONWebKey(jsonBytes: teePubkeyJSON) }
    }

    struct Pending: Sendable {
        let nonce: String
        let hash: KBSHashAlgorithm
        let expires: Date
        var nonceConsumed = false
    }

    struct AttestedSession: Sendable {
        let attested: Attested
        /// The session's own expiry (from its creation), not the token's.
        let expires: Date
    }

    struct State {
        var pending: [String: Pending] = [:]
        var pendingOrder = CircularBuffer<(id: String, expires: Date)>()
        var attested: [String: AttestedSession] = [:]
        var attestedOrder = CircularBuffer<(id: String, expires: Date)>()

        /// Drops expired sessions from the front of both queues (queue entries of sessions already gone are dropped
        /// on the way).
        mutating func prune(now: Date) {
            while let first = pendingOrder.first, first.expires <= now {
                pendingOrder.removeFirst()
                if let session = pending[first.id], session.expires <= now { pending[first.id] = nil }
            }
            while let first = attestedOrder.first, first.expires <= now {
                attestedOrder.removeFirst()
                if let session = attested[first.id], session.expires <= now { attested[first.id] = nil }
            }
        }

        /// Removes the oldest live pending challenge; false when there is none.
        mutating func evictOldestPending() -> Bool {
            while let first = pendingOrder.popFirst() {
                if pending.removeValue(forKey: first.id) != nil { return true }
            }
            return false
        }

        /// Removes the oldest live attested session; false when there is none.
        mutating func evictOldestAttested() -> Bool {
            while let first = attestedOrder.popFirst() {
                if attested.removeValue(forKey: first.id) != nil { return true }
            }
            return false
        }
    }

    /// Most pending challenges kept.
    public let capacity: Int
    /// Most attested sessions kept.
    public let attestedCapacity: Int
    public let lifetime: TimeInterval
    private let state = Mutex(State())

    public init(capacity: Int = 100_000, attestedCapacity: Int = 200_000, lifetime: TimeInterval = 300) {
        precondition(capacity > 0 && attestedCapacity > 0 && lifetime > 0, "KBS session capacities and lifetime must be positive")
        self.capacity = capacity
        self.attestedCapacity = attestedCapacity
        self.lifetime = lifetime
    }

    /// Live entries in both tables (expired ones not yet pruned included).
    public var count: Int { state.withLock { $0.pending.count + $0.attested.count } }
    public var pendingCount: Int { state.withLock { $0.pending.count } }
    public var attestedCount: Int { state.withLock { $0.attested.count } }
    /// The two queues' lengths (live and stale entries), for tests of their bounds.
    var queueLengths: (pending: Int, attested: Int) { state.withLock { ($0.pendingOrder.count, $0.attestedOrder.count) } }

    /// A new session: its id (32 hex digits, the cookie) and its challenge. Never refused for lack of room: the
    /// oldest pending challenge makes way.
    /// - Throws: ``CryptoError`` when the system's random source fails.
    public func create(hash: KBSHashAlgorithm?, now: Date) throws(CryptoError) -> (id: String, challenge: KBSChallenge) {
        let challenge = try KBSChallenge.generate(selectedHash: hash)
        let id = Hex.encode(try SecureRandom.bytes(16))
        let expires = now.addingTimeInterval(lifetime)
        state.withLock { state in
            state.prune(now: now)
            while state.pending.count >= capacity, state.evictOldestPending() {}
            state.pending[id] = Pending(nonce: challenge.nonce, hash: hash ?? .default, expires: expires)
            state.pendingOrder.append((id, expires))
            // Queue entries of challenges since attested linger until they expire; rebuild when they outnumber the
            // live ones, so that the queue stays within twice the table.
            if state.pendingOrder.count > 2 * capacity {
                state.pendingOrder = CircularBuffer(state.pendingOrder.filter { state.pending[$0.id] != nil })
            }
        }
        return (id, challenge)
    }

    /// Takes the challenge of session `id` for one attestation: returns its nonce and hash once; afterwards (or
    /// once expired, or for an unknown id) nil.
    public func consumeChallenge(id: String, now: Date) -> (nonce: String, hash: KBSHashAlgorithm)? {
        state.withLock { state in
            guard var session = state.pending[id] else { return nil }
            guard session.expires > now else {
                state.pending[id] = nil
                return nil
            }
            guard !session.nonceConsumed else { return nil }
            session.nonceConsumed = true
            state.pending[id] = session
            return (session.nonce, session.hash)
        }
    }

    /// Records the result of a successful attestation on session `id` (whose challenge was consumed): the session
    /// moves to the attested table, keeping its expiry. Nothing happens when the session is gone meanwhile.
    public func attach(_ attested: Attested, to id: String) {
        state.withLock { state in
            guard let session = state.pending[id], session.nonceConsumed else { return }
            state.pending[id] = nil
            while state.attested.count >= attestedCapacity, state.evictOldestAttested() {}
            state.attested[id] = AttestedSession(attested: attested, expires: session.expires)
            state.attestedOrder.append((id, session.expires))
        }
    }

    /// The attested result of session `id`, if it is attested and unexpired.
    public func attested(id: String, now: Date) -> Attested? {
        state.withLock { state in
            guard let session = state.attested[id] else { return nil }
            guard session.expires > now, session.attested.expires > now else {
                if session.expires <= now { state.attested[id] = nil }
                return nil
            }
            return session.attested
        }
    }

    /// Drops expired sessions (creating a session does the same; this is for an idle service).
    public func sweep(now: Date) {
        state.withLock { $0.prune(now: now) }
    }
}
