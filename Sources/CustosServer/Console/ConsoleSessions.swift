import CustosCrypto
import Foundation
import NIOCore
import Synchronization

/// The review console's server-side sessions (issue 14): a random id in an `HttpOnly; SameSite=Strict; Path=/ui`
/// cookie names a session held only in memory; the API token that signed in is kept here (never on a page) so each
/// request is authenticated again exactly as the `/v1` API authenticates it (a revoked token ends the session).
///
/// A session without a token is a *sign-in* session: it only carries the CSRF token of the sign-in form. Signing in
/// makes a new session id (no fixation).
final class ConsoleSessions: Sendable {
    struct Session: Sendable {
        let id: String
        /// Sent in every POST form and compared in constant time.
        let csrf: String
        /// The API token that signed in; nil for a sign-in session.
        let token: String?
        let createdAt: Date
        var lastSeen: Date
    }

    /// Idle expiry: a session unused this long is gone.
    let idleLifetime: TimeInterval
    /// Absolute expiry, also the cookie's `Max-Age`.
    let absoluteLifetime: TimeInterval
    /// The most sessions held of each kind (sign-in and signed-in); past it, the oldest of that kind are dropped, so
    /// memory stays bounded whatever clients do and a flood of sign-in pages cannot sign reviewers out.
    let capacity: Int
    /// The most signed-in sessions of one API token; past it, that token's oldest is dropped, so that a script signing
    /// in over and over with one token cannot push other reviewers out of the table.
    let perCredential: Int

    private struct Tables {
        /// Sign-in sessions (anyone can make one) and their ids in creation order: the oldest is dropped first, in
        /// O(1). An id whose session is already gone (signed in, expired on lookup) stays in the queue until it
        /// reaches the front or the queue is compacted.
        var signIn: [String: Session] = [:]
        var signInOrder = CircularBuffer<String>()
        /// Signed-in sessions; only a valid API token makes one.
        var signedIn: [String: Session] = [:]
    }
    private let tables = Mutex(Tables())

    init(
        idleLifetime: TimeInterval = 15 * 60, absoluteLifetime: TimeInterval = 60 * 60, capacity: Int = 10_000, perCredential: Int = 8
    ) {
        self.idleLifetime = idleLifetime
        self.absoluteLifetime = absoluteLifetime
        self.capacity = max(1, capacity)
        self.perCredential = max(1, perCredential)
    }

    /// 32 random bytes, base64url: session ids and CSRF tokens.
    static func randomToken() throws -> String { Base64.urlEncode(try SecureRandom.bytes(32)) }

    /// Starts a session (a sign-in session when `token` is nil).
    func create(token: String?, now: Date = Date()) throws -> Session {
        let session = Session(id: try Self.randomToken(), csrf: try Self.randomToken(), token: token, createdAt: now, lastSeen: now)
        tables.withLock { tables in
            if token == nil {
                // Creation order is expiry order for the absolute lifetime: expired and vanished ids leave from the
                // front, then the oldest live ones while the table is full.
                while let first = tables.signInOrder.first {
                    guard let held = tables.signIn[first] else {
                        tables.signInOrder.removeFirst()
                        continue
                    }
                    guard tables.signIn.count >= capacity || isExpired(held, now: now) else { break }
                    tables.signIn.removeValue(forKey: first)
                    tables.signInOrder.removeFirst()
                }
                tables.signIn[session.id] = session
                tables.signInOrder.append(session.id)
                // Ids removed out of order are dropped once they make up half the queue (amortized O(1)).
                if tables.signInOrder.count > 2 * max(tables.signIn.count, 16) {
                    tables.signInOrder = CircularBuffer(tables.signInOrder.filter { tables.signIn[$0] != nil })
                }
            } else {
                var own = tables.signedIn.values.filter { $0.token == token }
                if own.count >= perCredential {
                    own.sort { $0.createdAt < $1.createdAt }
                    for old in own.prefix(own.count - perCredential + 1) { tables.signedIn.removeValue(forKey: old.id) }
                }
                if tables.signedIn.count >= capacity {
                    tables.signedIn = tables.signedIn.filter { !isExpired($0.value, now: now) }
                    while tables.signedIn.count >= capacity, let oldest = tables.signedIn.min(by: { $0.value.lastSeen < $1.value.lastSeen })
                    {
                        tables.signedIn.removeValue(forKey: oldest.key)
                    }
                }
                tables.signedIn[session.id] = session
            }
        }
        return session
    }

    /// The live session with this id (its idle timer restarted), or nil.
    func session(id: String, now: Date = Date()) -> Session? {
        tables.withLock { tables in
            tables.signedIn[id] != nil ? touch(&tables.signedIn, id: id, now: now) : touch(&tables.signIn, id: id, now: now)
        }
    }

    /// The session `id` of `table` with its idle timer restarted; an expired one is removed.
    private func touch(_ table: inout [String: Session], id: String, now: Date) -> Session? {
        guard var session = table[id] else { return nil }
        guard !isExpired(session, now: now) else {
            table.removeValue(forKey: id)
            return nil
        }
        session.lastSeen = now
        table[id] = session
        return session
    }

    func remove(id: String) {
        tables.withLock { tables in
            if tables.signedIn.removeValue(forKey: id) == nil { tables.signIn.removeValue(forKey: id) }
        }
    }

    /// Sessions held: sign-in and signed-in.
    var count: (signIn: Int, signedIn: Int) { tables.withLock { ($0.signIn.count, $0.signedIn.count) } }

    /// The length of the sign-in order queue (ids of live and vanished sessions), for tests of its bound.
    var signInQueueLength: Int { tables.withLock { $0.signInOrder.count } }

    private func isExpired(_ session: Session, now: Date) -> Bool {
        now.timeIntervalSince(session.lastSeen) >= idleLifetime || now.timeIntervalSince(session.createdAt) >= absoluteLifetime
    }

    /// Constant-time comparison of a submitted CSRF token with the session's.
    static func csrfMatches(_ submitted: String?, _ expected: String) -> Bool {
        guard let submitted else { return false }
        let lhs = Array(submitted.utf8)
        let rhs = Array(expected.utf8)
        return lhs.count == rhs.count && constantTimeEqual(lhs, rhs)
    }
}
