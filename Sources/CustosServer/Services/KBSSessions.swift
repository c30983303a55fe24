public import CustosCrypto
public import CustosKBS
public import Foundation
import Synchronization

/// The KBS sessions between `/auth`, `/attest` and `/resource` (service.md §4.4), in memory: a session is a nonce
/// until it is attested (the nonce is consumed then: a replayed `/attest` finds no challenge), then the verified
/// result the cookie stands for. Sessions expire after `lifetime`; the table is capped at `capacity` (a full table
/// first drops expired sessions, then refuses new ones), so memory does not grow with traffic.
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

    struct Session: Sendable {
        let nonce: String
        let hash: KBSHashAlgorithm
        let expires: Date
        var nonceConsumed = false
        var attested: Attested?
    }

    public let capacity: Int
    public let lifetime: TimeInterval
    private let table = Mutex<[String: Session]>([:])

    public init(capacity: Int = 100_000, lifetime: TimeInterval = 300) {
        self.capacity = capacity
        self.lifetime = lifetime
    }

    public var count: Int { table.withLock { $0.count } }

    public struct Full: Error {}

    /// A new session: its id (32 hex digits, the cookie) and its challenge.
    public func create(hash: KBSHashAlgorithm?, now: Date) throws -> (id: String, challenge: KBSChallenge) {
        let challenge = try KBSChallenge.generate(selectedHash: hash)
        let id = Hex.encode(try SecureRandom.bytes(16))
        let session = Session(nonce: challenge.nonce, hash: hash ?? .default, expires: now.addingTimeInterval(lifetime))
        try table.withLock { table in
            if table.count >= capacity { table = table.filter { $0.value.expires > now } }
            guard table.count < capacity else { throw Full() }
            table[id] = session
        }
        return (id, challenge)
    }

    /// Takes the challenge of session `id` for one attestation: returns its nonce and hash once; afterwards (or
    /// once expired, or for an unknown id) nil.
    public func consumeChallenge(id: String, now: Date) -> (nonce: String, hash: KBSHashAlgorithm)? {
        table.withLock { table in
            guard var session = table[id] else { return nil }
            guard session.expires > now else {
                table[id] = nil
                return nil
            }
            guard !session.nonceConsumed else { return nil }
            session.nonceConsumed = true
            table[id] = session
            return (session.nonce, session.hash)
        }
    }

    /// Records the result of a successful attestation on session `id`.
    public func attach(_ attested: Attested, to id: String) {
        table.withLock { table in table[id]?.attested = attested }
    }

    /// The attested result of session `id`, if it is attested and unexpired.
    public func attested(id: String, now: Date) -> Attested? {
        table.withLock { table in
            guard let session = table[id] else { return nil }
            guard session.expires > now, let attested = session.attested, attested.expires > now else {
                if session.expires <= now { table[id] = nil }
                return nil
            }
            return attested
        }
    }

    /// Drops expired sessions (the service calls this every minute).
    public func sweep(now: Date) {
        table.withLock { table in table = table.filter { $0.value.expires > now } }
    }
}
