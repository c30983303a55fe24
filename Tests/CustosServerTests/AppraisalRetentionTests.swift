import CustosAudit
import CustosCrypto
import CustosServer
import CustosStore
import Foundation
import GRDB
import Logging
import Testing

/// `appraisal_retention_days`: old appraisals go tenant by tenant after an `appraisal.pruned` entry; newer ones,
/// other tenants' and the audit log stay.
@Suite struct AppraisalRetentionTests {
    static let now = Date(timeIntervalSince1970: 1_800_000_000)
    static let day: TimeInterval = 86_400

    struct Fixture {
        let directory: URL
        let store: SQLiteStore
        let log: AuditLog
        let audit: AuditRecorder
    }

    static func fixture() async throws -> Fixture {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("custos-retention-\(UUID().uuidString)")
        let store = try SQLiteStore.open(dataDirectory: directory, environment: [:])
        for tenant in ["tenant-a", "tenant-b"] { _ = try await store.createTenant(id: tenant, displayName: tenant, now: now) }
        let log = try await AuditLog.open(pool: store.pool, signingKey: try Ed25519PrivateKey(), origin: "custos.test/retention")
        return Fixture(
            directory: directory, store: store, log: log,
            audit: AuditRecorder(log: log, usesTestAnchors: false, logger: Logger(label: "test")))
    }

    static func appraisal(_ tenant: String, at time: Date) -> Appraisal {
        Appraisal(
            tenantId: tenant, workloadId: "wl", tee: "tdx", createdAt: time, status: .affirming, policyId: "p",
            policySHA256: String(repeating: "ab", count: 32), trustVector: ["hardware": 2], claims: ["tdx": ["mr_td": "00"]], trace: [],
            tokenJTI: nil, evidenceSHA256: Array(repeating: 1, count: 32))
    }

    static func remainingIDs(_ store: SQLiteStore, _ tenant: String) async throws -> Set<String> {
        try await store.pool.read { db in
            Set(try String.fetchAll(db, sql: "SELECT id FROM appraisal WHERE tenant_id = ?", arguments: [tenant]))
        }
    }

    @Test func oldAppraisalsGoAfterTheirEntryAndTheRestStays() async throws {
        let fixture = try await Self.fixture()
        defer { try? FileManager.default.removeItem(at: fixture.directory) }
        let store = fixture.store
        // Times not in insertion order: a recent appraisal first, then old and recent ones interleaved, so neither seq
        // nor insertion order tells the old ones apart. 30 days of retention: the cutoff is 30 days before `now`.
        var inserted: [Appraisal] = [Self.appraisal("tenant-a", at: Self.now.addingTimeInterval(-Self.day))]
        for index in 0..<1_203 {
            inserted.append(
                Self.appraisal("tenant-a", at: Self.now.addingTimeInterval(-Double(31 + index % 200) * Self.day - Double(index))))
            if index % 300 == 0 {
                inserted.append(Self.appraisal("tenant-a", at: Self.now.addingTimeInterval(-29 * Self.day + Double(index))))
            }
        }
        // Exactly at the cutoff stays (older than the retention goes); tenant-b's are all within it.
        inserted.append(Self.appraisal("tenant-a", at: Self.now.addingTimeInterval(-30 * Self.day)))
        for days in [29.0, 2, 0] { inserted.append(Self.appraisal("tenant-b", at: Self.now.addingTimeInterval(-days * Self.day))) }
        let batch = inserted
        try await store.pool.write { db in for appraisal in batch { try SQLiteStore.insertAppraisal(appraisal, in: db) } }
        let cutoff = Self.now.addingTimeInterval(-30 * Self.day)
        let expectedGone = Set(inserted.filter { $0.tenantId == "tenant-a" && $0.createdAt < cutoff }.map(\.id))
        #expect(expectedGone.count == 1_203)
        // Release counts: one first made before the cutoff, one after.
        let oldAppraisal = try #require(inserted.first { expectedGone.contains($0.id) })
        let counted = [(oldAppraisal.id, cutoff.addingTimeInterval(-60)), (inserted[0].id, Self.now)]
        try await store.pool.write { db in
            for (id, time) in counted {
                try db.execute(
                    sql:
                        "INSERT INTO secret_release_count (tenant_id, appraisal_id, path, count, first_at) VALUES ('tenant-a', ?, 'a/b', 1, ?)",
                    arguments: [id, Int64(time.timeIntervalSince1970 * 1000)])
            }
        }

        let retention = AppraisalRetention(
            store: store, audit: fixture.audit, retentionDays: 30, batchSize: 100, logger: Logger(label: "test"))
        let deleted = try await retention.prune(now: Self.now)
        #expect(deleted == ["tenant-a": 1_203])
        let everyA = Set(inserted.filter { $0.tenantId == "tenant-a" }.map(\.id))
        #expect(try await Self.remainingIDs(store, "tenant-a") == everyA.subtracting(expectedGone))
        #expect(try await Self.remainingIDs(store, "tenant-b") == Set(inserted.filter { $0.tenantId == "tenant-b" }.map(\.id)))
        await #expect(throws: StoreError.self) { try await store.appraisal(tenantId: "tenant-a", id: oldAppraisal.id) }
        let counts = try await store.pool.read { db in try String.fetchAll(db, sql: "SELECT appraisal_id FROM secret_release_count") }
        #expect(counts == [inserted[0].id])

        // One entry, for tenant-a only, naming the cutoff and the retention.
        let pruned = try fixture.log.entries(type: "appraisal.pruned", limit: 100).records.map(\.entry)
        #expect(pruned.count == 1)
        #expect(pruned.first?["tenant"] == "tenant-a")
        #expect(pruned.first?.value(atPath: "object.before") == "2026-12-16T08:00:00.000Z")
        #expect(pruned.first?.value(atPath: "object.retention_days") == .integer(30))

        // Nothing older is left: a second pass deletes nothing and records nothing.
        #expect(try await retention.prune(now: Self.now) == [:])
        #expect(try fixture.log.entries(type: "appraisal.pruned", limit: 100).records.count == 1)
        #expect(try AuditVerifier.verify(pool: store.pool).verified)
    }

    /// The service runs a pass after its first delay (here none) and stops when its task is cancelled.
    @Test func theServiceRunsAPassAndStops() async throws {
        let fixture = try await Self.fixture()
        defer { try? FileManager.default.removeItem(at: fixture.directory) }
        let old = Self.appraisal("tenant-b", at: Date().addingTimeInterval(-3 * Self.day))
        let recent = Self.appraisal("tenant-b", at: Date())
        for appraisal in [old, recent] { try await fixture.store.insertAppraisal(appraisal) }
        let service = AppraisalRetentionService(
            retention: AppraisalRetention(store: fixture.store, audit: fixture.audit, retentionDays: 2, logger: Logger(label: "test")),
            firstDelay: .zero, interval: .seconds(3600), logger: Logger(label: "test"))
        let task = Task { try await service.run() }
        var remaining = try await Self.remainingIDs(fixture.store, "tenant-b")
        for _ in 0..<100 where remaining.count > 1 {
            try await Task.sleep(for: .milliseconds(50))
            remaining = try await Self.remainingIDs(fixture.store, "tenant-b")
        }
        #expect(remaining == [recent.id])
        task.cancel()
        try await task.value
    }
}
