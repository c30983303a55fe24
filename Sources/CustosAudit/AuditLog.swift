public import CustosCrypto
public import CustosStore
public import Foundation
public import GRDB
import Synchronization

/// What an append returns once the entry is durable.
public struct AuditReceipt: Sendable, Equatable {
    /// The entry's leaf index.
    public let seq: UInt64
    /// `SHA-256(0x00 ‖ entry)`.
    public let leafHash: [UInt8]
}

/// The append-only, verifiable audit log (specs/audit.md, service.md §11).
///
/// Appends go through a ``GroupCommitWriter``: many concurrent appends share one transaction and one fsync, and
/// each returns only after its transaction committed. Sequence numbers are assigned on the writer's queue, so seq
/// order is commit order. The compact range of the tree stays in memory; each append writes its entry and the
/// perfect nodes it completes, so proofs are O(log n) reads. Checkpoints are signed every `checkpointEvery`
/// entries, on ``signCheckpoint()`` (call it at shutdown) and by ``runCheckpointTimer(every:)``, always for a
/// committed size.
public final class AuditLog: Sendable {
    /// The default origin (use a unique one per log instance in production; Trap 18).
    public static let defaultOrigin = "custos.local/audit"

    /// Reads (proofs, entries, checkpoints) from the database.
    public let reader: AuditLogReader
    /// The log's origin.
    public var origin: String { reader.origin }
    /// The checkpoint verifier key, C2SP vkey form.
    public var verifierKey: String { reader.verifierKey }

    private let signer: NoteSigner
    private let writer: GroupCommitWriter
    private let appender: Appender
    private let state: Published
    private let checkpointEvery: UInt64
    /// The database the log writes to (``append(_:alongside:)`` refuses writes for another).
    private let database: ObjectIdentifier

    /// Opens (creating when new) the log in `pool`, checks it against its latest signed checkpoint and readies
    /// appends.
    /// - Parameters:
    ///   - pool: The shared database (``StoreDatabase/openPool(path:readOnly:)``); CustosAudit migrates its tables.
    ///   - signingKey: The log key (separate from any token key).
    ///   - origin: The checkpoint origin and key name; recorded at creation and required to match afterwards.
    ///   - checkpointEvery: Sign a checkpoint each time the size reaches a multiple of this (0: never by count).
    /// - Throws: ``AuditError``: `notAnAuditLog` when the database was created for another origin or key;
    ///   `corrupted` when entries, nodes and the latest checkpoint disagree; `behindCheckpoint` when the database
    ///   holds fewer entries than a checkpoint it signed (appending would fork the log); `database` for SQLite.
    public static func open(
        pool: any DatabaseWriter, signingKey: Ed25519PrivateKey, origin: String = defaultOrigin, checkpointEvery: Int = 1000
    ) async throws(AuditError) -> AuditLog {
        let signer = try NoteSigner(name: origin, privateKey: signingKey)
        let vkey = signer.verifierKey.encoded
        do {
            try AuditSchema.migrator.migrate(pool)
            try await pool.write { db in
                let stored = try String.fetchOne(db, sql: "SELECT value FROM audit_meta WHERE key = 'origin'")
                let storedKey = try String.fetchOne(db, sql: "SELECT value FROM audit_meta WHERE key = 'vkey'")
                switch (stored, storedKey) {
                case (nil, nil):
                    try db.execute(sql: "INSERT INTO audit_meta (key, value) VALUES ('origin', ?), ('vkey', ?)", arguments: [origin, vkey])
                case (origin?, vkey?): break
                default:
                    throw AuditError(
                        .notAnAuditLog, "the log was created for origin \(stored ?? "?") and key \(storedKey ?? "?"), not \(vkey)")
                }
            }
        } catch let error as AuditError { throw error } catch { throw AuditError(.database, "SQLite: \(error)") }

        let reader = try AuditLogReader(database: pool)
        let latest = try reader.latestCheckpoint()
        let (range, lastLeaf): (CompactRange, [UInt8]?) = try AuditLogReader.run(pool) { db in
            let size = try AuditLogReader.size(db)
            // The entries after the latest checkpoint must all be there (a missing row would shift every later seq).
            // Counted from the checkpoint on, not from 0: counting every row made a start O(size) — about 0.1 s
            // per million entries, minutes for a busy year. The signed part is checked against its root below, and
            // entry by entry by `custos audit verify`.
            let from = min(latest?.checkpoint.size ?? 0, size)
            let count =
                try Int64.fetchOne(db, sql: "SELECT count(*) FROM audit_entries WHERE seq >= ?", arguments: [Int64(bitPattern: from)]) ?? 0
            guard UInt64(count) == size - from else {
                throw AuditError(
                    .corrupted, "the log has \(count) entries from seq \(from) on, but its highest seq is \(Int64(size) - 1)", seq: from)
            }
            let nodes = AuditLogReader.nodes(db)
            let range = try CompactRange(size: size) { level, index in try nodes.subtreeHash(index << level, (index + 1) << level) }
            let last = size == 0 ? nil : try nodes.subtreeHash(size - 1, size)
            return (range, last)
        }
        // Startup check (specs/audit.md §8.2): the latest checkpoint verifies, the log is not behind it, and the
        // stored tree still has the root it signed.
        if let latest {
            guard latest.checkpoint.size <= range.size else {
                throw AuditError(
                    .behindCheckpoint,
                    "the database holds \(range.size) entries but a checkpoint was signed for \(latest.checkpoint.size)",
                    seq: range.size)
            }
            guard try reader.root(size: latest.checkpoint.size) == latest.checkpoint.rootHash else {
                throw AuditError(.corrupted, "the stored tree does not match the checkpoint of size \(latest.checkpoint.size)")
            }
        }
        let state = Published(size: range.size, root: range.root, latest: latest)
        return AuditLog(
            reader: reader, signer: signer, writer: GroupCommitWriter(pool, maxBatchSize: 1024), database: ObjectIdentifier(pool),
            appender: Appender(range: range, lastLeaf: lastLeaf, published: state), state: state,
            checkpointEvery: UInt64(max(0, checkpointEvery)))
    }

    private init(
        reader: AuditLogReader, signer: NoteSigner, writer: GroupCommitWriter, database: ObjectIdentifier, appender: Appender,
        state: Published, checkpointEvery: UInt64
    ) {
        self.reader = reader
        self.signer = signer
        self.writer = writer
        self.database = database
        self.appender = appender
        self.state = state
        self.checkpointEvery = checkpointEvery
    }

    /// The committed size and root.
    public var head: (size: UInt64, root: [UInt8]) { state.value.withLock { ($0.size, $0.root) } }

    /// Appends `event` and returns once it is durable.
    /// - Throws: ``AuditError/Code-swift.struct/invalidEvent`` for an unfit event (nothing is written);
    ///   ``AuditError/Code-swift.struct/database`` when the transaction failed (nothing of it was written).
    public func append(_ event: AuditEvent) async throws(AuditError) -> AuditReceipt {
        try await append(event, alongside: nil)
    }

    /// Appends `event` and runs `write` (a store write on the log's own database) in the same transaction: both
    /// commit or neither does, and they share the group commit's fsync.
    /// - Throws: as ``append(_:)``; ``AuditError/Code-swift.struct/database`` also when `write` failed (its message
    ///   says why) or belongs to another database (nothing is written).
    public func append(_ event: AuditEvent, alongside write: StoreWrite?) async throws(AuditError) -> AuditReceipt {
        guard let receipt = try await append([event], alongside: write).first else {
            throw AuditError(.database, "the append returned no receipt")
        }
        return receipt
    }

    /// Runs `write` (when given) and appends `events` in order, all in one transaction: every entry and the write
    /// commit together or nothing does, and the entries get consecutive indexes. For a decision that is recorded in
    /// two entries of different types (an allowed launch and its injected secret) where one without the other would
    /// be a lie.
    /// - Throws: as ``append(_:alongside:)``; `invalidEvent` when `events` is empty or any event is unfit (nothing
    ///   is written).
    public func append(_ events: [AuditEvent], alongside write: StoreWrite?) async throws(AuditError) -> [AuditReceipt] {
        guard !events.isEmpty else { throw AuditError(.invalidEvent, "no events to append") }
        for event in events { try AuditEntry.validate(event) }
        if let write, write.database != database {
            throw AuditError(.database, "the store write is for another database than the audit log's")
        }
        let appender = self.appender
        let receipts: [AuditReceipt]
        do {
            receipts = try await writer.perform { db in
                try write?.body(db)
                return try appender.append(events, db)
            }
        } catch let error as AuditError {
            throw error
        } catch let error as StoreError {
            throw AuditError(.database, "the store write failed: \(error)")
        } catch { throw AuditError(.database, "SQLite: \(error)") }
        if checkpointEvery > 0, receipts.contains(where: { ($0.seq + 1) % checkpointEvery == 0 }) { try await signCheckpoint() }
        return receipts
    }

    /// Runs `step` (on the log's own database) and appends the event that `event` makes of its value, in the same
    /// transaction: the entry records exactly what the step read or wrote, and neither commits without the other.
    /// When `event` makes no event (the step's value says the action is not taken), nothing is appended and the step's
    /// value is returned alone.
    /// - Throws: as ``append(_:alongside:)``; `database` also when `step` threw or belongs to another database.
    public func append<Value: Sendable>(
        after step: StoreStep<Value>, event: @escaping @Sendable (Value) -> AuditEvent?
    ) async throws(AuditError) -> (value: Value, receipt: AuditReceipt?) {
        guard step.database == database else { throw AuditError(.database, "the store step is for another database than the audit log's") }
        let appender = self.appender
        let outcome: (value: Value, receipt: AuditReceipt?)
        do {
            outcome = try await writer.perform { db in
                let value = try step.body(db)
                guard let made = event(value) else { return (value, nil) }
                try AuditEntry.validate(made)
                return (value, try appender.append(made, db))
            }
        } catch let error as AuditError {
            throw error
        } catch { throw AuditError(.database, "SQLite: \(error)") }
        if let receipt = outcome.receipt, checkpointEvery > 0, (receipt.seq + 1) % checkpointEvery == 0 { try await signCheckpoint() }
        return outcome
    }

    /// The latest signed checkpoint.
    public func latestCheckpoint() -> SignedCheckpoint? { state.value.withLock { $0.latest } }

    /// Signs a checkpoint for the committed size unless one exists for it already; use at shutdown.
    /// - Returns: The latest checkpoint afterwards.
    @discardableResult
    public func signCheckpoint() async throws(AuditError) -> SignedCheckpoint {
        let (size, root, latest) = state.value.withLock { ($0.size, $0.root, $0.latest) }
        if let latest, latest.checkpoint.size >= size { return latest }
        let signed = try SignedCheckpoint(signing: try Checkpoint(origin: origin, size: size, rootHash: root), with: signer)
        let note = Data(signed.note.utf8)
        do {
            try await writer.perform { db in
                try db.execute(
                    sql: "INSERT OR IGNORE INTO audit_checkpoints (size, root, note) VALUES (?, ?, ?)",
                    arguments: [Int64(bitPattern: size), Data(root), note])
            }
        } catch { throw AuditError(.database, "SQLite: \(error)") }
        return state.value.withLock { published in
            if (published.latest?.checkpoint.size ?? 0) < size || published.latest == nil { published.latest = signed }
            return published.latest ?? signed
        }
    }

    /// Signs a checkpoint every `interval` while the log grows, until the returned task is cancelled.
    public func runCheckpointTimer(every interval: Duration) -> Task<Void, Never> {
        Task { [self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                _ = try? await signCheckpoint()
            }
        }
    }

    /// The inclusion proof of leaf `index` in the tree of `treeSize` leaves (default: the latest checkpoint's).
    public func inclusionProof(index: UInt64, treeSize: UInt64? = nil) throws(AuditError) -> InclusionProof {
        try reader.inclusionProof(index: index, treeSize: treeSize ?? latestCheckpoint()?.checkpoint.size ?? head.size)
    }

    /// The consistency proof between two sizes.
    public func consistencyProof(first: UInt64, second: UInt64) throws(AuditError) -> [[UInt8]] {
        try reader.consistencyProof(first: first, second: second)
    }

    /// Entries in seq order (see ``AuditLogReader/entries(tenant:type:since:until:limit:cursor:)``).
    public func entries(
        tenant: String? = nil, type: String? = nil, since: Date? = nil, until: Date? = nil, limit: Int = 100, cursor: UInt64? = nil
    ) throws(AuditError) -> AuditPage {
        try reader.entries(tenant: tenant, type: type, since: since, until: until, limit: limit, cursor: cursor)
    }
}

// MARK: - Writer-side state

/// The committed head, readable from any thread.
final class Published: Sendable {
    struct Value {
        var size: UInt64
        var root: [UInt8]
        var latest: SignedCheckpoint?
    }
    let value: Mutex<Value>
    init(size: UInt64, root: [UInt8], latest: SignedCheckpoint?) {
        value = Mutex(Value(size: size, root: root, latest: latest))
    }
}

/// The append state: the compact range and the last leaf.
///
/// Only touched on the database writer's serial queue (inside ``GroupCommitWriter`` closures and GRDB's
/// transaction hooks, which run there too), hence `@unchecked Sendable`. A rolled-back transaction restores the
/// state it started from; a committed one publishes the new head.
final class Appender: @unchecked Sendable {
    private var range: CompactRange
    private var lastLeaf: [UInt8]?
    private var hooked = false
    private let published: Published

    init(range: CompactRange, lastLeaf: [UInt8]?, published: Published) {
        self.range = range
        self.lastLeaf = lastLeaf
        self.published = published
    }

    /// Appends `events` in order; when one fails, the state is what it was before the first (the caller's savepoint
    /// rolls back the rows of those that were appended).
    func append(_ events: [AuditEvent], _ db: Database) throws -> [AuditReceipt] {
        let savedRange = range
        let savedLeaf = lastLeaf
        do {
            var receipts: [AuditReceipt] = []
            receipts.reserveCapacity(events.count)
            for event in events { receipts.append(try append(event, db)) }
            return receipts
        } catch {
            range = savedRange
            lastLeaf = savedLeaf
            throw error
        }
    }

    /// Appends `event`. The state changes only when every row is written, so a failure leaves it as it was (the
    /// caller's savepoint rolls the rows back).
    func append(_ event: AuditEvent, _ db: Database) throws -> AuditReceipt {
        if !hooked {
            hooked = true
            let savedRange = range
            let savedLeaf = lastLeaf
            db.afterNextTransaction(
                onCommit: { _ in
                    self.hooked = false
                    let size = self.range.size
                    let root = self.range.root
                    self.published.value.withLock {
                        $0.size = size
                        $0.root = root
                    }
                },
                onRollback: { _ in
                    self.hooked = false
                    self.range = savedRange
                    self.lastLeaf = savedLeaf
                })
        }
        let seq = range.size
        let body = try AuditEntry.encode(event, seq: seq, previousLeaf: lastLeaf)
        let leaf = MerkleHash.leaf(body)
        var next = range
        let completed = next.append(leaf)
        try db.cachedStatement(sql: "INSERT INTO audit_entries (seq, body, leaf_hash, tenant, type, time) VALUES (?, ?, ?, ?, ?, ?)")
            .execute(arguments: [
                Int64(bitPattern: seq), Data(body), Data(leaf), event.tenant, event.type.rawValue, AuditEntry.timestamp(event.time),
            ])
        let insertNode = try db.cachedStatement(sql: "INSERT INTO audit_nodes (level, idx, hash) VALUES (?, ?, ?)")
        for node in completed {
            try insertNode.execute(arguments: [node.level, Int64(bitPattern: node.index), Data(node.hash)])
        }
        range = next
        lastLeaf = leaf
        return AuditReceipt(seq: seq, leafHash: leaf)
    }
}
