import CustosCrypto
import Foundation
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
    /// The most sessions held; past it, the oldest are dropped (memory stays bounded whatever clients do).
    let capacity: Int
    private let sessions = Mutex<[String: Session]>([:])

    init(idleLifetime: TimeInterval = 15 * 60, absoluteLifetime: TimeInterval = 60 * 60, capacity: Int = 10_000) {
        self.idleLifetime = idleLifetime
        self.absoluteLifetime = absoluteLifetime
        self.capacity = capacity
    }

    /// 32 random bytes, base64url: session ids and CSRF tokens.
    static func randomToken() throws -> String { Base64.urlEncode(try SecureRandom.bytes(32)) }

    /// Starts a session (a sign-in session when `token` is nil).
    func create(token: String?, now: Date = Date()) throws -> Session {
        let session = Session(id: try Self.randomToken(), csrf: try Self.randomToken(), token: token, createdAt: now, lastSeen: now)
        sessions.withLock { table in
            if table.count >= capacity {
                table = table.filter { !isExpired($0.value, now: now) }
                // Sign-in sessions (anyone can make those) go first, so a flood of sign-in pages cannot sign reviewers out.
                while table.count >= capacity,
                    let oldest = table.min(by: {
                        ($0.value.token == nil ? 0 : 1, $0.value.lastSeen) < ($1.value.token == nil ? 0 : 1, $1.value.lastSeen)
                    })
                {
                    table.removeValue(forKey: oldest.key)
                }
            }
            table[session.id] = session
        }
        return session
    }

    /// The live session with this id (its idle timer restarted), or nil.
    func session(id: String, now: Date = Date()) -> Session? {
        sessions.withLock { table in
            guard var session = table[id] else { return nil }
            guard !isExpired(session, now: now) else {
                table.removeValue(forKey: id)
                return nil
            }
            session.lastSeen = now
            table[id] = session
            return session
        }
    }

    func remove(id: String) { _ = sessions.withLock { $0.removeValue(forKey: id) } }

    var count: Int { sessions.withLock { $0.count } }

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
