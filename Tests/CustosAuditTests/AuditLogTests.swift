import CustosAudit
import CustosCrypto
import CustosStore
import Foundation
import GRDB
import Testing

/// The stored log: entries, nodes and checkpoints against an independent in-memory tree, triggers, restarts, the
/// restored-backup refusal, group commit and the pinned migrations.
@Suite struct AuditLogTests {
    /// A fresh database file in its own temporary directory.
    final class Scratch {
        let directory: URL
        var path: String { directory.appendingPathComponent("custos.sqlite").path }
        init() throws {
            directory = FileManager.default.temporaryDirectory.appendingPathComponent("custos-audit-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        }
        deinit { try? FileManager.default.removeItem(at: directory) }
    }

    /// A store with tenant `tenant-a` and an audit log on its database (the scratch directory lives as long as the
    /// returned value).
    struct StoreAndLog {
        let scratch: Scratch
        let store: SQLiteStore
        let log: AuditLog
        static let t0 = Date(timeIntervalSince1970: 1_800_000_000)

        static func make() async throws -> StoreAndLog {
            let scratch = try Scratch()
            let store = try DataDirectory(scratch.directory.appendingPathComponent("data")).open(environment: [:], create: true).store
            _ = try await store.createTenant(id: "tenant-a", displayName: "A", now: t0)
            let log = try await AuditLog.open(pool: store.pool, signingKey: try Ed25519PrivateKey(), checkpointEvery: 0)
            return StoreAndLog(scratch: scratch, store: store, log: log)
        }
    }

    static func event(_ index: Int, tenant: String = "tenant-a", type: AuditEventType = .secretReleased) -> AuditEvent {
        AuditEvent(
            time: Date(timeIntervalSince1970: 1_790_000_000 + Double(index)), tenant: tenant, type: type,
            actor: ["kind": "tee", "tee": "tdx", "key_jkt": .string("jkt-\(index)")],
            object: ["secret": "tenant-a/disk/root-key", "version": 3],
            appraisal: ["id": .string("apr_\(index)"), "status": "affirming"], requestId: "req-\(index)")
    }

    @Test func entryBytesFollowTheSpecExample() throws {
        let bytes = try AuditEntry.encode(Self.event(0), seq: 0, previousLeaf: nil)
        let expected =
            #"{"actor":{"key_jkt":"jkt-0","kind":"tee","tee":"tdx"},"appraisal":{"id":"apr_0","status":"affirming"},"#
            + #""object":{"secret":"tenant-a/disk/root-key","version":3},"prev_leaf":"\#(String(repeating: "0", count: 64))","#
            + #""request_id":"req-0","seq":0,"tenant":"tenant-a","time":"2026-09-21T14:13:20.000Z","type":"secret.released","v":1}"#
        #expect(String(decoding: bytes, as: UTF8.self) == expected)
        #expect(AuditEntry.problem(in: bytes, seq: 0, previousLeaf: nil) == nil)
        #expect(AuditEntry.problem(in: bytes, seq: 1, previousLeaf: nil) != nil)
        #expect(AuditEntry.timestamp(Date(timeIntervalSince1970: 951_782_400.123)) == "2000-02-29T00:00:00.123Z")
    }

    @Test func unfitEventsAreRejected() throws {
        var secret = Self.event(1)
        secret.object = ["secret": "x", "plaintext": "hunter2"]
        #expect(throws: AuditError.self) { try AuditEntry.encode(secret, seq: 0, previousLeaf: nil) }
        var notObject = Self.event(1)
        notObject.actor = "admin"
        #expect(throws: AuditError.self) { try AuditEntry.encode(notObject, seq: 0, previousLeaf: nil) }
        var huge = Self.event(1)
        huge.object = ["blob": .string(String(repeating: "a", count: 70_000))]
        let error = #expect(throws: AuditError.self) { try AuditEntry.encode(huge, seq: 0, previousLeaf: nil) }
        #expect(error?.code == .invalidEvent)
        #expect(throws: AuditError.self) { try AuditEventType("secret.stolen") }
        // Int64.min (abs() of it trapped) and the first integer JSON cannot carry exactly.
        for number in [Int64.min, JSONValue.maxSafeInteger + 1, -JSONValue.maxSafeInteger - 1] {
            var wide = Self.event(1)
            wide.object = ["n": .integer(number)]
            #expect(throws: AuditError.self) { try AuditEntry.encode(wide, seq: 0, previousLeaf: nil) }
        }
        var edge = Self.event(1)
        edge.object = ["n": .integer(-JSONValue.maxSafeInteger)]
        #expect(throws: Never.self) { try AuditEntry.encode(edge, seq: 0, previousLeaf: nil) }
    }

    /// An appraisal committed alongside its audit entry: both are written, or — when the store refuses the write — neither
    /// is and no sequence number is used; a write for another database is refused before anything runs.
    @Test func appendAlongsideAStoreWriteIsAtomic() async throws {
        let fixture = try await StoreAndLog.make()
        let (store, log, t0) = (fixture.store, fixture.log, StoreAndLog.t0)
        func appraisal(_ id: String) -> Appraisal {
            Appraisal(
                id: id, tenantId: "tenant-a", workloadId: "wl", tee: "tdx", createdAt: t0, status: .affirming, policyId: "p",
                policySHA256: String(repeating: "ab", count: 32), trustVector: ["hardware": 2], claims: [:], trace: [],
                tokenJTI: nil, evidenceSHA256: Array(repeating: 1, count: 32))
        }
        let first = try await log.append(Self.event(0), alongside: try store.appraisalInsert(appraisal("apr_one")))
        #expect(first.seq == 0)
        #expect(try await store.appraisal(tenantId: "tenant-a", id: "apr_one").id == "apr_one")

        // The same id again: the store write fails (conflict), so the entry is not appended either.
        let conflict = await #expect(throws: AuditError.self) {
            try await log.append(Self.event(1), alongside: try store.appraisalInsert(appraisal("apr_one")))
        }
        #expect(conflict?.code == .database)
        #expect(log.head.size == 1)
        let count = try await store.pool.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM audit_entries") }
        #expect(count == 1)
        #expect(try await log.append(Self.event(2)).seq == 1)

        // A write made for another database is refused; nothing is written to either.
        let otherScratch = try Scratch()
        let other = try DataDirectory(otherScratch.directory.appendingPathComponent("data")).open(environment: [:], create: true).store
        _ = try await other.createTenant(id: "tenant-a", displayName: "A", now: t0)
        let foreign = await #expect(throws: AuditError.self) {
            try await log.append(Self.event(3), alongside: try other.appraisalInsert(appraisal("apr_two")))
        }
        #expect(foreign?.code == .database)
        #expect(log.head.size == 2)
        await #expect(throws: StoreError.self) { try await other.appraisal(tenantId: "tenant-a", id: "apr_two") }
        await #expect(throws: StoreError.self) { try await store.appraisal(tenantId: "tenant-a", id: "apr_two") }
    }

    /// A SEV launch's decision as the service commits it: appraisal, decision and audit entry in one transaction
    /// (`StoreWrite.then`), then the injection with its own entry. A decision the launch's state refuses leaves no
    /// appraisal, no entry and the launch as it was.
    @Test func launchDecisionCommitsWithItsAppraisalAndEntry() async throws {
        let fixture = try await StoreAndLog.make()
        let (store, log, t0) = (fixture.store, fixture.log, StoreAndLog.t0)
        let launch = try await store.createLaunch(
            NewLaunch(
                tenantId: "tenant-a", workloadId: "vm-1", tee: "sev-es", policyId: "sev-es-prod", guestPolicy: 0x05, createdAt: t0,
                expiresAt: t0.addingTimeInterval(300), sessionSecret: SecretBytes(Array(repeating: 0x42, count: 32))))
        func appraisal(_ id: String) -> Appraisal {
            Appraisal(
                id: id, tenantId: "tenant-a", workloadId: "vm-1", tee: "sev-es", createdAt: t0, status: .affirming, policyId: "p",
                policySHA256: String(repeating: "ab", count: 32), trustVector: ["hardware": 2], claims: [:], trace: [],
                tokenJTI: nil, evidenceSHA256: Array(repeating: 1, count: 32))
        }
        func decision(_ id: String) throws -> StoreWrite {
            try store.appraisalInsert(appraisal(id)).then(
                store.launchDecision(tenantId: "tenant-a", id: launch.id, allowed: true, appraisalId: id, reason: nil, now: t0))
        }
        // Not measured yet: the decision is refused inside the transaction, so the appraisal insert is rolled back too.
        await #expect(throws: AuditError.self) { try await log.append(Self.event(0), alongside: try decision("apr_early")) }
        #expect(log.head.size == 0)
        await #expect(throws: StoreError.self) { try await store.appraisal(tenantId: "tenant-a", id: "apr_early") }
        #expect(try await store.launch(tenantId: "tenant-a", id: launch.id).state == .created)

        _ = try await store.recordLaunchMeasurement(
            tenantId: "tenant-a", id: launch.id, measurement: Array(repeating: 0xAB, count: 48), now: t0)
        #expect(try await log.append(Self.event(1), alongside: try decision("apr_1")).seq == 0)
        #expect(try await store.appraisal(tenantId: "tenant-a", id: "apr_1").id == "apr_1")
        #expect(try await store.launch(tenantId: "tenant-a", id: launch.id).state == .allowed)

        #expect(
            try await log.append(Self.event(2), alongside: store.launchInjection(tenantId: "tenant-a", id: launch.id, now: t0)).seq == 1)
        #expect(try await store.launch(tenantId: "tenant-a", id: launch.id).state == .injected)
        await #expect(throws: StoreError(.notFound, "")) {
            _ = try await store.openLaunchSessionSecret(tenantId: "tenant-a", id: launch.id)
        }
        // Injected twice: refused, and no entry for it.
        await #expect(throws: AuditError.self) {
            try await log.append(Self.event(3), alongside: store.launchInjection(tenantId: "tenant-a", id: launch.id, now: t0))
        }
        #expect(log.head.size == 2)

        // Writes for two databases do not combine.
        let otherScratch = try Scratch()
        let other = try DataDirectory(otherScratch.directory.appendingPathComponent("data")).open(environment: [:], create: true).store
        #expect(throws: StoreError(.invalidInput, "")) {
            _ = try store.appraisalInsert(appraisal("apr_x")).then(other.launchInjection(tenantId: "tenant-a", id: launch.id, now: t0))
        }
    }

    /// An allowed launch as the service records it: appraisal, decision, injection and two entries in one
    /// transaction, with consecutive indexes. When the second entry cannot be written, nothing is: no entry, no
    /// appraisal, the launch still measured, and the log's next index is the one before (the in-memory tree is
    /// restored, so the next append and a full verification agree).
    @Test func severalEventsCommitTogetherOrNotAtAll() async throws {
        let fixture = try await StoreAndLog.make()
        let (store, log, t0) = (fixture.store, fixture.log, StoreAndLog.t0)
        func measuredLaunch() async throws -> Launch {
            let launch = try await store.createLaunch(
                NewLaunch(
                    tenantId: "tenant-a", workloadId: "vm-1", tee: "sev-es", policyId: "sev-es-prod", guestPolicy: 0x05, createdAt: t0,
                    expiresAt: t0.addingTimeInterval(300), sessionSecret: SecretBytes(Array(repeating: 0x42, count: 32))))
            return try await store.recordLaunchMeasurement(
                tenantId: "tenant-a", id: launch.id, measurement: Array(repeating: 0xAB, count: 48), now: t0)
        }
        func allowAndInject(_ launch: Launch, appraisal id: String) throws -> StoreWrite {
            let appraisal = Appraisal(
                id: id, tenantId: "tenant-a", workloadId: "vm-1", tee: "sev-es", createdAt: t0, status: .affirming, policyId: "p",
                policySHA256: String(repeating: "ab", count: 32), trustVector: ["hardware": 2], claims: [:], trace: [],
                tokenJTI: nil, evidenceSHA256: Array(repeating: 1, count: 32))
            return try store.appraisalInsert(appraisal)
                .then(store.launchDecision(tenantId: "tenant-a", id: launch.id, allowed: true, appraisalId: id, reason: nil, now: t0))
                .then(store.launchInjection(tenantId: "tenant-a", id: launch.id, now: t0))
        }
        let pair = [
            Self.event(0, type: try AuditEventType("launch.measurement.allowed")),
            Self.event(1, type: try AuditEventType("launch.secret.injected")),
        ]

        let first = try await measuredLaunch()
        let receipts = try await log.append(pair, alongside: try allowAndInject(first, appraisal: "apr_1"))
        #expect(receipts.map(\.seq) == [0, 1])
        #expect(try await store.launch(tenantId: "tenant-a", id: first.id).state == .injected)

        // The second entry of the next pair (seq 3) cannot be written.
        let second = try await measuredLaunch()
        try await store.pool.write { db in
            try db.execute(
                sql: "CREATE TEMP TRIGGER refuse_seq_3 BEFORE INSERT ON audit_entries WHEN NEW.seq = 3 BEGIN SELECT RAISE(ABORT, 'no'); END"
            )
        }
        let refused = await #expect(throws: AuditError.self) {
            try await log.append(pair, alongside: try allowAndInject(second, appraisal: "apr_2"))
        }
        #expect(refused?.code == .database)
        #expect(log.head.size == 2)
        #expect(try await store.pool.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM audit_entries") } == 2)
        await #expect(throws: StoreError.self) { try await store.appraisal(tenantId: "tenant-a", id: "apr_2") }
        #expect(try await store.launch(tenantId: "tenant-a", id: second.id).state == .measured)
        try await store.pool.write { db in try db.execute(sql: "DROP TRIGGER refuse_seq_3") }

        // An unfit event anywhere in the list: refused before anything runs.
        var unfit = Self.event(2)
        unfit.object = ["secret": "x", "plaintext": "hunter2"]
        let invalid = await #expect(throws: AuditError.self) {
            try await log.append([pair[0], unfit], alongside: try allowAndInject(second, appraisal: "apr_2"))
        }
        #expect(invalid?.code == .invalidEvent)
        await #expect(throws: AuditError(.invalidEvent, "")) { try await log.append([], alongside: nil) }

        #expect(try await log.append(pair, alongside: try allowAndInject(second, appraisal: "apr_2")).map(\.seq) == [2, 3])
        #expect(try await store.launch(tenantId: "tenant-a", id: second.id).state == .injected)
        let verification = try AuditVerifier.verify(pool: store.pool)
        #expect(verification.verified)
        #expect(verification.size == 4)
        #expect(verification.rootHash == log.head.root)
    }

    /// A secret opened and its release recorded in one transaction (`append(after:event:)`): the entry is written
    /// only when the step's value says the secret opened, names the version that was read, and a step for another
    /// database is refused before it runs.
    @Test func secretOpeningAndItsEntryShareATransaction() async throws {
        let fixture = try await StoreAndLog.make()
        let (store, log, t0) = (fixture.store, fixture.log, StoreAndLog.t0)
        let released: @Sendable (Result<OpenedSecret, StoreError>) -> AuditEvent? = { opening in
            guard case .success(let opened) = opening else { return nil }
            var event = Self.event(0)
            event.object = ["version": .integer(opened.version.version)]
            return event
        }
        // No secret yet: the step's value is the refusal, and nothing is appended.
        let missing = try await log.append(
            after: store.secretOpening(tenantId: "tenant-a", path: "key/disk", now: t0, limit: nil), event: released)
        guard case .failure(let refusal) = missing.value else { Issue.record("a missing secret opened"); return }
        #expect(refusal.code == .notFound)
        #expect(missing.receipt == nil && log.head.size == 0)

        _ = try await store.putSecret(tenantId: "tenant-a", path: "key/disk", value: SecretBytes([1, 2, 3]), now: t0)
        _ = try await store.putSecret(tenantId: "tenant-a", path: "key/disk", value: SecretBytes([4, 5, 6]), now: t0)
        let opened = try await log.append(
            after: store.secretOpening(tenantId: "tenant-a", path: "key/disk", now: t0, limit: nil), event: released)
        guard case .success(let secret) = opened.value else { Issue.record("the secret did not open"); return }
        #expect(secret.value == SecretBytes([4, 5, 6]) && secret.version.version == 2)
        #expect(opened.receipt?.seq == 0)
        let body = try await store.pool.read { db in try Data.fetchOne(db, sql: "SELECT body FROM audit_entries WHERE seq = 0") }
        let entry = try JSONValue.parse(Array(try #require(body)))
        #expect(entry["object"]?["version"] == .integer(2))

        // A release limit (maxReleasesPerAttestation) counts in the same transaction: two releases to appraisal apr_1,
        // then the refusal, with nothing opened or appended; another appraisal has its own count.
        let limit = ReleaseLimit(appraisalID: "apr_1", maximum: 2)
        for expected in [1, 2] {
            let limited = try await log.append(
                after: store.secretOpening(tenantId: "tenant-a", path: "key/disk", now: t0, limit: limit), event: released)
            guard case .success = limited.value else { Issue.record("release \(expected) was refused"); return }
            #expect(limited.receipt?.seq == UInt64(expected))
        }
        let third = try await log.append(
            after: store.secretOpening(tenantId: "tenant-a", path: "key/disk", now: t0, limit: limit), event: released)
        guard case .failure(let limitReached) = third.value else { Issue.record("a third release opened"); return }
        #expect(limitReached.code == .releaseLimit && third.receipt == nil)
        let count = try await store.pool.read { db in
            try Int.fetchOne(db, sql: "SELECT count FROM secret_release_count WHERE tenant_id = 'tenant-a' AND appraisal_id = 'apr_1'")
        }
        #expect(count == 2)
        let otherAppraisal = try await log.append(
            after: store.secretOpening(
                tenantId: "tenant-a", path: "key/disk", now: t0, limit: ReleaseLimit(appraisalID: "apr_2", maximum: 1)),
            event: released)
        guard case .success = otherAppraisal.value else { Issue.record("another appraisal's release was refused"); return }

        let otherScratch = try Scratch()
        let other = try DataDirectory(otherScratch.directory.appendingPathComponent("data")).open(environment: [:], create: true).store
        let foreign = await #expect(throws: AuditError.self) {
            _ = try await log.append(
                after: other.secretOpening(tenantId: "tenant-a", path: "key/disk", now: t0, limit: nil), event: released)
        }
        #expect(foreign?.code == .database)
        #expect(log.head.size == 4)
    }

    /// Appends 1…1,000 entries in concurrent batches; every stored node equals the recursion over the leaf hashes
    /// recomputed from the stored bodies, and proofs from the log verify against its signed checkpoints.
    @Test(.timeLimit(.minutes(10))) func storedTreeMatchesAnIndependentTree() async throws {
        let scratch = try Scratch()
        let pool = try StoreDatabase.openPool(path: scratch.path)
        let log = try await AuditLog.open(pool: pool, signingKey: try Ed25519PrivateKey(), origin: "custos.test/a", checkpointEvery: 100)
        var total = 0
        for batch in [1, 2, 5, 13, 64, 200, 715] {
            try await withThrowingTaskGroup(of: AuditReceipt.self) { group in
                for index in total..<(total + batch) { group.addTask { try await log.append(Self.event(index)) } }
                for try await _ in group {}
            }
            total += batch
        }
        #expect(total == 1000)
        #expect(log.head.size == 1000)
        let (bodies, nodes): ([[UInt8]], [String: [UInt8]]) = try await pool.read { db in
            let bodies = try Data.fetchAll(db, sql: "SELECT body FROM audit_entries ORDER BY seq").map { [UInt8]($0) }
            var nodes: [String: [UInt8]] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT level, idx, hash FROM audit_nodes") {
                let level: Int = row[0]
                let index: Int = row[1]
                let hash: Data = row[2]
                nodes["\(level),\(index)"] = [UInt8](hash)
            }
            return (bodies, nodes)
        }
        #expect(bodies.count == 1000)
        let tree = InMemoryMerkleTree(leafHashes: bodies.map { MerkleHash.leaf($0) })
        #expect(nodes.count == 1000 - 1000.nonzeroBitCount)
        for level in 1..<tree.levels.count {
            for (index, hash) in tree.levels[level].enumerated() {
                #expect(nodes["\(level),\(index)"] == hash, "node (\(level), \(index))")
            }
        }
        #expect(log.head.root == tree.root(size: 1000))
        // The chain: each entry names its predecessor's leaf.
        for seq in 1..<bodies.count {
            #expect(AuditEntry.problem(in: bodies[seq], seq: UInt64(seq), previousLeaf: tree.levels[0][seq - 1]) == nil)
        }
        // Checkpoints every 100 entries, each with the independent root at its size.
        let checkpoints: [(Int64, Data)] = try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT size, root FROM audit_checkpoints ORDER BY size").map { ($0[0] as Int64, $0[1] as Data) }
        }
        // One checkpoint for each transaction that crossed a multiple of 100 (group commit puts many entries in
        // one transaction; a checkpoint is only ever signed for a committed size), the last one at 1000.
        #expect(checkpoints.count >= 2)
        #expect(checkpoints.last?.0 == 1000)
        #expect(checkpoints.map(\.0) == checkpoints.map(\.0).sorted())
        for (size, root) in checkpoints { #expect([UInt8](root) == tree.root(size: UInt64(size))) }
        let latest = try #require(log.latestCheckpoint())
        #expect(latest.checkpoint.size == 1000)
        for index: UInt64 in [0, 1, 499, 998, 999] {
            let proof = try log.inclusionProof(index: index)
            #expect(proof.treeSize == 1000)
            #expect(
                MerkleProof.verifyInclusion(
                    index: index, size: 1000, leafHash: MerkleHash.leaf(bodies[Int(index)]), path: proof.hashes,
                    root: latest.checkpoint.rootHash)
                    == .verified)
        }
        for first: UInt64 in [1, 100, 333, 512, 999, 1000] {
            let path = try log.consistencyProof(first: first, second: 1000)
            #expect(
                MerkleProof.verifyConsistency(
                    first: first, second: 1000, firstRoot: tree.root(size: first), secondRoot: latest.checkpoint.rootHash, path: path)
                    == .verified)
        }
        #expect(throws: AuditError.self) { try log.inclusionProof(index: 1000, treeSize: 1000) }
        #expect(throws: AuditError.self) { try log.consistencyProof(first: 0, second: 10) }
        #expect(throws: AuditError.self) { try log.consistencyProof(first: 10, second: 1001) }
        let verification = try AuditVerifier.verify(pool: pool)
        #expect(verification.verified)
        #expect(verification.size == 1000)
        #expect(verification.checkpointsChecked == checkpoints.count)
        #expect(verification.rootHash == tree.root(size: 1000))
    }

    @Test func triggersAbortUpdatesAndDeletes() async throws {
        let scratch = try Scratch()
        let pool = try StoreDatabase.openPool(path: scratch.path)
        let log = try await AuditLog.open(pool: pool, signingKey: try Ed25519PrivateKey(), checkpointEvery: 2)
        for index in 0..<4 { _ = try await log.append(Self.event(index)) }
        for sql in [
            "UPDATE audit_entries SET tenant = 'x' WHERE seq = 0", "DELETE FROM audit_entries WHERE seq = 3",
            "UPDATE audit_nodes SET idx = 9", "DELETE FROM audit_nodes", "UPDATE audit_checkpoints SET size = 5",
            "DELETE FROM audit_checkpoints", "UPDATE audit_meta SET value = 'x'", "DELETE FROM audit_meta",
        ] {
            let error = #expect(throws: DatabaseError.self, "\(sql) was allowed") { try pool.write { db in try db.execute(sql: sql) } }
            #expect(error?.message?.contains("append-only") == true)
        }
        #expect(try AuditVerifier.verify(pool: pool).verified)
    }

    /// A start counts the entries after the latest checkpoint (not every entry: that made a start O(size)): one
    /// missing there is refused as `corrupted`, naming where the count began. One missing before the checkpoint is
    /// left to the verifier, which names it.
    @Test func aMissingEntryIsFoundAtOpenAfterTheCheckpointAndByTheVerifierBefore() async throws {
        for (deleted, refusedAtOpen) in [(UInt64(12), true), (UInt64(3), false)] {
            let scratch = try Scratch()
            let pool = try StoreDatabase.openPool(path: scratch.path)
            let key = try Ed25519PrivateKey()
            let log = try await AuditLog.open(pool: pool, signingKey: key, checkpointEvery: 0)
            for index in 0..<10 { _ = try await log.append(Self.event(index)) }
            #expect(try await log.signCheckpoint().checkpoint.size == 10)
            for index in 10..<15 { _ = try await log.append(Self.event(index)) }
            // Someone who can write the file drops the append-only trigger and deletes a row.
            try await pool.write { db in
                try db.execute(sql: "DROP TRIGGER audit_entries_no_delete")
                try db.execute(sql: "DELETE FROM audit_entries WHERE seq = ?", arguments: [Int64(deleted)])
            }
            if refusedAtOpen {
                let refused = await #expect(throws: AuditError.self) {
                    _ = try await AuditLog.open(pool: pool, signingKey: key, checkpointEvery: 0)
                }
                #expect(refused?.code == .corrupted)
                #expect(refused?.seq == 10)
            } else {
                _ = try await AuditLog.open(pool: pool, signingKey: key, checkpointEvery: 0)
            }
            let verification = try AuditVerifier.verify(pool: pool)
            #expect(!verification.verified)
            #expect(verification.firstBadSeq == deleted)
        }
    }

    /// Reopening resumes the tree; a database restored from before a signed checkpoint refuses to append; another
    /// key or origin is refused.
    @Test func reopenResumesAndRestoredBackupIsRefused() async throws {
        let scratch = try Scratch()
        let key = try Ed25519PrivateKey()
        let backup = scratch.directory.appendingPathComponent("backup.sqlite").path
        do {
            let pool = try StoreDatabase.openPool(path: scratch.path)
            let log = try await AuditLog.open(pool: pool, signingKey: key, checkpointEvery: 0)
            for index in 0..<5 { _ = try await log.append(Self.event(index)) }
            try await log.signCheckpoint()
            try pool.backup(to: try DatabaseQueue(path: backup))
            for index in 5..<9 { _ = try await log.append(Self.event(index)) }
            #expect(try await log.signCheckpoint().checkpoint.size == 9)
        }
        do {
            let pool = try StoreDatabase.openPool(path: scratch.path)
            let log = try await AuditLog.open(pool: pool, signingKey: key, checkpointEvery: 0)
            #expect(log.head.size == 9)
            let receipt = try await log.append(Self.event(9))
            #expect(receipt.seq == 9)
            try await log.signCheckpoint()
            let again = await #expect(throws: AuditError.self) {
                _ = try await AuditLog.open(pool: pool, signingKey: try Ed25519PrivateKey(), checkpointEvery: 0)
            }
            #expect(again?.code == .notAnAuditLog)
            let otherOrigin = await #expect(throws: AuditError.self) {
                _ = try await AuditLog.open(pool: pool, signingKey: key, origin: "custos.test/other", checkpointEvery: 0)
            }
            #expect(otherOrigin?.code == .notAnAuditLog)
            #expect(try AuditVerifier.verify(pool: pool).verified)
        }
        // Copy the newest checkpoint into the restored backup (as a published checkpoint kept outside would show).
        let restored = try StoreDatabase.openPool(path: backup)
        let newest: (Int64, Data, Data)? = try await StoreDatabase.openPool(path: scratch.path).read { db in
            try Row.fetchOne(db, sql: "SELECT size, root, note FROM audit_checkpoints ORDER BY size DESC LIMIT 1").map {
                ($0[0] as Int64, $0[1] as Data, $0[2] as Data)
            }
        }
        let row = try #require(newest)
        try await restored.write { db in
            try db.execute(sql: "INSERT INTO audit_checkpoints (size, root, note) VALUES (?, ?, ?)", arguments: [row.0, row.1, row.2])
        }
        let error = await #expect(throws: AuditError.self) {
            _ = try await AuditLog.open(pool: restored, signingKey: key, checkpointEvery: 0)
        }
        #expect(error?.code == .behindCheckpoint)
        let verification = try AuditVerifier.verify(pool: restored)
        #expect(!verification.verified)
        #expect(verification.firstBadSeq == 5)
    }

    /// Under concurrent load several appends share a transaction.
    @Test func groupCommitBatchesConcurrentWrites() async throws {
        let scratch = try Scratch()
        let pool = try StoreDatabase.openPool(path: scratch.path)
        try await pool.write { db in try db.execute(sql: "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)") }
        let writer = GroupCommitWriter(pool, maxBatchSize: 64)
        let results = try await withThrowingTaskGroup(of: Result<Int64, any Error>.self) { group in
            for index in 0..<400 {
                group.addTask {
                    do {
                        return .success(
                            try await writer.perform { db in
                                // Every 50th item fails (NOT NULL): only its own savepoint rolls back.
                                try db.execute(sql: "INSERT INTO t (id, v) VALUES (?, ?)", arguments: [index, index % 50 == 7 ? nil : "v"])
                                return db.lastInsertedRowID
                            })
                    } catch { return .failure(error) }
                }
            }
            var all: [Result<Int64, any Error>] = []
            for try await result in group { all.append(result) }
            return all
        }
        let failures = results.filter { if case .failure = $0 { true } else { false } }
        #expect(failures.count == 8)
        #expect(try await pool.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM t") } == 392)
        let batches = await writer.batchCount
        #expect(batches < 400, "no batching: \(batches) transactions for 400 writes")
    }

    /// A shipped migration is never edited: its SQL's SHA-256 is pinned here. Add a new migration instead.
    @Test func shippedMigrationsAreUnchanged() {
        let pinned: [String: String] = [
            "audit-v1": "12980a0191c69aa267e60a1b51e2fda9abe0766dbd12f76facc0a7ac4cf34781",
            "audit-v2": "4acd950e551c635688ead38bc55856a6922b67564af20749eb935ca3f4c6a5ae",
        ]
        #expect(AuditSchema.migrations.map(\.identifier) == ["audit-v1", "audit-v2"])
        for migration in AuditSchema.migrations {
            #expect(Hex.encode(Digest.sha256(Array(migration.sql.utf8))) == pinned[migration.identifier], "\(migration.identifier) changed")
        }
    }
}
