import CustosCrypto
import CustosKBS
import Foundation
import Testing

@testable import CustosServer

/// The KBS session table: single-use challenges, expiry, and caps that a flood of unauthenticated `/auth` requests
/// cannot turn against real guests.
@Suite struct KBSSessionsTests {
    static let start = Date(timeIntervalSince1970: 1_800_000_000)

    static func attested(expires: Date) throws -> KBSSessions.Attested {
        KBSSessions.Attested(
            tenant: "default", teePubkey: JSONWebKey(.ec(try ECPrivateKey(generating: .p256).publicKey)), status: .affirming, claims: nil,
            appraisalID: "a", policy: nil, expires: expires)
    }

    /// Creates a session and attests it at `now`.
    static func attest(_ sessions: KBSSessions, now: Date) throws -> String {
        let (id, challenge) = try sessions.create(hash: nil, now: now)
        let taken = try #require(sessions.consumeChallenge(id: id, now: now))
        #expect(taken.nonce == challenge.nonce && taken.hash == .sha384)
        sessions.attach(try attested(expires: now.addingTimeInterval(300)), to: id)
        return id
    }

    @Test func aChallengeIsTakenOnceAndTheSessionThenStandsForTheResult() throws {
        let sessions = KBSSessions(capacity: 10, attestedCapacity: 10, lifetime: 60)
        let (id, _) = try sessions.create(hash: .sha512, now: Self.start)
        #expect(sessions.attested(id: id, now: Self.start) == nil)
        #expect(sessions.consumeChallenge(id: id, now: Self.start)?.hash == .sha512)
        #expect(sessions.consumeChallenge(id: id, now: Self.start) == nil, "a replayed /attest finds no challenge")
        sessions.attach(try Self.attested(expires: Self.start.addingTimeInterval(300)), to: id)
        #expect(sessions.attested(id: id, now: Self.start)?.tenant == "default")
        #expect(sessions.consumeChallenge(id: id, now: Self.start) == nil)
        #expect(sessions.pendingCount == 0 && sessions.attestedCount == 1)
        // Attaching to a session whose challenge was never taken, or to an unknown one, does nothing.
        let (fresh, _) = try sessions.create(hash: nil, now: Self.start)
        sessions.attach(try Self.attested(expires: Self.start.addingTimeInterval(300)), to: fresh)
        sessions.attach(try Self.attested(expires: Self.start.addingTimeInterval(300)), to: "00")
        #expect(sessions.attested(id: fresh, now: Self.start) == nil)
        #expect(sessions.consumeChallenge(id: fresh, now: Self.start) != nil)
    }

    @Test func sessionsExpireAtTheirLifetime() throws {
        let sessions = KBSSessions(capacity: 10, attestedCapacity: 10, lifetime: 60)
        let attestedID = try Self.attest(sessions, now: Self.start)
        let (pendingID, _) = try sessions.create(hash: nil, now: Self.start)
        let last = Self.start.addingTimeInterval(59.999)
        let end = Self.start.addingTimeInterval(60)
        #expect(sessions.attested(id: attestedID, now: last) != nil)
        #expect(sessions.attested(id: attestedID, now: end) == nil)
        #expect(sessions.consumeChallenge(id: pendingID, now: end) == nil)
        // An attested session also ends with its token.
        let (short, _) = try sessions.create(hash: nil, now: Self.start)
        _ = sessions.consumeChallenge(id: short, now: Self.start)
        sessions.attach(try Self.attested(expires: Self.start.addingTimeInterval(10)), to: short)
        #expect(sessions.attested(id: short, now: Self.start.addingTimeInterval(10)) == nil)
        // A sweep (and any later create) drops what expired.
        sessions.sweep(now: end)
        #expect(sessions.count == 0)
        #expect(sessions.queueLengths == (0, 0))
    }

    /// A flood of challenges evicts only the oldest challenges: every request still gets one, attested sessions are
    /// untouched, the newest challenges work, and the table and its queue stay within their bounds.
    @Test func aFloodOfChallengesCannotCrowdOutGuests() throws {
        let sessions = KBSSessions(capacity: 1000, attestedCapacity: 1000, lifetime: 300)
        var attestedIDs: [String] = []
        for index in 0..<10 { attestedIDs.append(try Self.attest(sessions, now: Self.start.addingTimeInterval(Double(index)))) }
        var flood: [String] = []
        for index in 0..<5000 {
            flood.append(try sessions.create(hash: nil, now: Self.start.addingTimeInterval(10 + Double(index) / 1000)).id)
        }
        let now = Self.start.addingTimeInterval(20)
        #expect(sessions.pendingCount == 1000)
        #expect(sessions.attestedCount == 10)
        for id in attestedIDs { #expect(sessions.attested(id: id, now: now) != nil) }
        #expect(sessions.consumeChallenge(id: flood[0], now: now) == nil, "the oldest challenge made way")
        #expect(sessions.consumeChallenge(id: flood[3999], now: now) == nil)
        #expect(sessions.consumeChallenge(id: flood[4000], now: now) != nil, "the newest 1000 are kept")
        #expect(sessions.consumeChallenge(id: flood[4999], now: now) != nil)
        // A guest that took its challenge during the flood still attests.
        let (guest, _) = try sessions.create(hash: nil, now: now)
        #expect(sessions.consumeChallenge(id: guest, now: now) != nil)
        sessions.attach(try Self.attested(expires: now.addingTimeInterval(300)), to: guest)
        #expect(sessions.attested(id: guest, now: now) != nil)
        #expect(sessions.queueLengths.pending <= 2 * 1000)
    }

    @Test func aFullAttestedTableEvictsItsOldestSession() throws {
        let sessions = KBSSessions(capacity: 100, attestedCapacity: 3, lifetime: 300)
        var ids: [String] = []
        for index in 0..<5 { ids.append(try Self.attest(sessions, now: Self.start.addingTimeInterval(Double(index)))) }
        let now = Self.start.addingTimeInterval(10)
        #expect(sessions.attestedCount == 3)
        #expect(ids.map { sessions.attested(id: $0, now: now) != nil } == [false, false, true, true, true])
    }

    /// Sessions that are attested leave stale entries in the pending queue; the queue is rebuilt before it exceeds
    /// twice the table, however many sessions pass through.
    @Test func queuesStayBounded() throws {
        let sessions = KBSSessions(capacity: 10, attestedCapacity: 10, lifetime: 300)
        for index in 0..<500 {
            _ = try Self.attest(sessions, now: Self.start.addingTimeInterval(Double(index) / 100))
            #expect(sessions.queueLengths.pending <= 20)
            #expect(sessions.queueLengths.attested <= 10 + 10)
        }
        #expect(sessions.attestedCount == 10 && sessions.pendingCount == 0)
    }
}
