import CustosAudit
import CustosCrypto
import CustosStore
import Foundation
import GRDB
import Testing

/// The `since`/`until` filter of ``AuditLogReader/entries(tenant:type:since:until:limit:cursor:)`` against a filter of
/// every entry by its parsed time, with entry times that do not rise with seq; the query plans that keep it cheap; and
/// the `audit-v2` index on a log made before it.
@Suite struct AuditTimeFilterTests {
    static let base = Date(timeIntervalSince1970: 1_790_000_000)

    /// Entry `index` of a seeded shuffle: times jump back and forth by up to a minute, two tenants, two types.
    static func event(_ index: Int, offset: Int) -> AuditEvent {
        AuditEvent(
            time: base.addingTimeInterval(Double(offset) + 0.25), tenant: index % 3 == 0 ? "tenant-b" : "tenant-a",
            type: index % 2 == 0 ? .secretReleased : .attestationAffirmed, actor: ["kind": "tee", "tee": "tdx"],
            object: ["n": .integer(Int64(index))], appraisal: nil, requestId: "req-\(index)")
    }

    /// The log's entries, all of them read without a filter, with each one's time parsed from its body.
    static func everything(_ log: AuditLog) throws -> [(record: AuditRecord, time: Date, tenant: String, type: String)] {
        let page = try log.entries(limit: 10_000)
        return try page.records.map { record in
            let entry = record.entry
            let time = try #require(entry["time"]?.stringValue.flatMap(RFC3339.parse))
            return (record, time, entry["tenant"]?.stringValue ?? "", entry["type"]?.stringValue ?? "")
        }
    }

    /// Every page of a filtered read, following the cursor.
    static func pages(
        _ log: AuditLog, tenant: String?, type: String?, since: Date?, until: Date?, limit: Int
    ) throws -> [UInt64] {
        var seqs: [UInt64] = []
        var cursor: UInt64? = nil
        var pages = 0
        repeat {
            let page = try log.entries(tenant: tenant, type: type, since: since, until: until, limit: limit, cursor: cursor)
            seqs += page.records.map(\.seq)
            cursor = page.nextCursor
            pages += 1
        } while cursor != nil && pages < 1_000
        return seqs
    }

    @Test func timeFiltersMatchAFilterOfEveryEntry() async throws {
        let scratch = try AuditLogTests.Scratch()
        let store = try DataDirectory(scratch.directory.appendingPathComponent("data")).open(environment: [:], create: true).store
        let log = try await AuditLog.open(pool: store.pool, signingKey: try Ed25519PrivateKey(), checkpointEvery: 0)
        var generator = SeededGenerator.fromEnvironment(label: "timeFiltersMatchAFilterOfEveryEntry")
        var offsets: [Int] = []
        for index in 0..<300 {
            // Mostly rising, with entries whose event time lies up to a minute before or after their neighbours'.
            let offset = index + Int.random(in: -60...60, using: &generator)
            offsets.append(offset)
            _ = try await log.append(Self.event(index, offset: offset))
        }
        let all = try Self.everything(log)
        #expect(all.count == 300)
        #expect(zip(offsets, offsets.dropFirst()).contains { $0 > $1 }, "the times must not rise with seq for this test")

        var windows: [(Date?, Date?)] = [(nil, nil)]
        for _ in 0..<25 {
            let low = Self.base.addingTimeInterval(Double(Int.random(in: -80...380, using: &generator)))
            let high = low.addingTimeInterval(Double(Int.random(in: 0...120, using: &generator)))
            windows += [(low, nil), (nil, high), (low, high)]
        }
        // Exactly an entry's time (both bounds are inclusive), before every entry, after every entry, an empty range.
        let exact = Self.base.addingTimeInterval(Double(offsets[150]) + 0.25)
        windows += [
            (exact, exact), (Self.base.addingTimeInterval(-1_000), nil), (Self.base.addingTimeInterval(10_000), nil),
            (Self.base.addingTimeInterval(100), Self.base.addingTimeInterval(50)),
        ]
        for (since, until) in windows {
            for (tenant, type) in [(nil, nil), ("tenant-a", nil), (nil, "secret.released"), ("tenant-b", "attestation.affirmed")] {
                let expected = all.filter { item in
                    (since.map { item.time >= $0 } ?? true) && (until.map { item.time <= $0 } ?? true)
                        && (tenant.map { item.tenant == $0 } ?? true) && (type.map { item.type == $0 } ?? true)
                }.map(\.record.seq)
                for limit in [3, 10_000] {
                    let got = try Self.pages(log, tenant: tenant, type: type, since: since, until: until, limit: limit)
                    #expect(
                        got == expected,
                        "since \(String(describing: since)) until \(String(describing: until)) \(tenant ?? "-") \(type ?? "-") limit \(limit)"
                    )
                }
            }
        }
        #expect(try log.entries(since: exact, until: exact).records.map(\.seq).contains(150))
    }

    /// The bounds query reads the time index (entries in range only); the page query never does (it would sort every
    /// entry in range to return one page in seq order).
    @Test func queryPlansUseTheTimeIndexForTheBoundsOnly() async throws {
        let scratch = try AuditLogTests.Scratch()
        let store = try DataDirectory(scratch.directory.appendingPathComponent("data")).open(environment: [:], create: true).store
        _ = try await AuditLog.open(pool: store.pool, signingKey: try Ed25519PrivateKey(), checkpointEvery: 0)
        try await store.pool.read { db in
            func plan(_ sql: String) throws -> String {
                try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + sql, arguments: ["2026-01-01T00:00:00.000Z", "2027-01-01T00:00:00.000Z"])
                    .map { $0["detail"] as String? ?? "" }.joined(separator: "; ")
            }
            let bounds = try plan("SELECT MIN(seq), MAX(seq) FROM audit_entries WHERE time >= ? AND time <= ?")
            #expect(bounds.contains("COVERING INDEX audit_entries_time"), "\(bounds)")
            let page = try plan(
                "SELECT seq, body, leaf_hash FROM audit_entries WHERE seq >= 0 AND seq BETWEEN 0 AND 9 AND +time >= ? AND +time <= ? ORDER BY seq LIMIT 5"
            )
            #expect(!page.contains("audit_entries_time") && !page.contains("TEMP B-TREE"), "\(page)")
        }
    }

    /// Tampered rows whose time is not a time (a BLOB, a number stored as text) do not trap a conversion in the
    /// range estimate, and the filter answers as a plain SQL filter of every row does (`audit verify` reports the rows).
    @Test func timesThatAreNotTimesAnswerAsAPlainFilter() async throws {
        let scratch = try AuditLogTests.Scratch()
        let store = try DataDirectory(scratch.directory.appendingPathComponent("data")).open(environment: [:], create: true).store
        let log = try await AuditLog.open(pool: store.pool, signingKey: try Ed25519PrivateKey(), checkpointEvery: 0)
        for index in 0..<40 { _ = try await log.append(Self.event(index, offset: index)) }
        try await store.pool.write { db in
            try db.execute(sql: "DROP TRIGGER audit_entries_no_update")
            // The first and last rows are among the 17 the estimate samples.
            try db.execute(sql: "UPDATE audit_entries SET time = x'07ff' WHERE seq IN (0, 39)")
            try db.execute(sql: "UPDATE audit_entries SET time = 7 WHERE seq = 20")
        }
        for (since, until) in [(35.0, nil), (18.0, 22.0), (nil, 3.0)] as [(Double?, Double?)] {
            let low = since.map { Self.base.addingTimeInterval($0) }
            let high = until.map { Self.base.addingTimeInterval($0) }
            let plain = try await store.pool.read { db in
                try Int64.fetchAll(
                    db, sql: "SELECT seq FROM audit_entries WHERE (? IS NULL OR time >= ?) AND (? IS NULL OR time <= ?) ORDER BY seq",
                    arguments: [
                        low.map(AuditEntry.timestamp), low.map(AuditEntry.timestamp), high.map(AuditEntry.timestamp),
                        high.map(AuditEntry.timestamp),
                    ])
            }.map { UInt64($0) }
            #expect(!plain.isEmpty, "\(plain)")
            #expect(try log.entries(since: low, until: high).records.map(\.seq) == plain, "since \(since ?? -1) until \(until ?? -1)")
        }
    }

    /// A log made before `audit-v2` gets the index when it is opened, and its entries read the same through it.
    @Test func aLogFromBeforeTheTimeIndexGetsItWhenOpened() async throws {
        let scratch = try AuditLogTests.Scratch()
        let queue = try DatabaseQueue(path: scratch.path)
        try AuditSchema.migrator.migrate(queue, upTo: "audit-v1")
        func indexes() throws -> [String] {
            try queue.read { db in
                try String.fetchAll(
                    db, sql: "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'audit_entries' ORDER BY name")
            }
        }
        #expect(try !indexes().contains("audit_entries_time"))
        let pool = try DatabasePool(path: scratch.path)
        let log = try await AuditLog.open(pool: pool, signingKey: try Ed25519PrivateKey(), checkpointEvery: 0)
        #expect(try indexes().contains("audit_entries_time"))
        for index in 0..<5 { _ = try await log.append(Self.event(index, offset: 10 * index)) }
        let since = Self.base.addingTimeInterval(15)
        #expect(try log.entries(since: since).records.map(\.seq) == [2, 3, 4])
    }
}
