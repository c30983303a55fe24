public import CustosCrypto
public import Foundation
public import GRDB

/// An inclusion proof as the CLI and API serve it.
public struct InclusionProof: Sendable, Equatable {
    public let leafIndex: UInt64
    public let treeSize: UInt64
    public let leafHash: [UInt8]
    /// Leaf-upward (specs/audit.md §2.1).
    public let hashes: [[UInt8]]
}

/// One stored entry.
public struct AuditRecord: Sendable, Equatable {
    public let seq: UInt64
    /// The JCS bytes that were hashed.
    public let body: [UInt8]
    public let leafHash: [UInt8]
    /// The body parsed (`.null` if a tampered body no longer parses).
    public var entry: JSONValue { (try? JSONValue.parse(body)) ?? .null }
}

/// A page of entries and where the next one starts.
public struct AuditPage: Sendable, Equatable {
    public let records: [AuditRecord]
    /// Pass as `cursor` to read on; `nil` when there is nothing more.
    public let nextCursor: UInt64?
}

/// The bytes of a BLOB or TEXT value; empty for anything else.
func blob(_ value: DatabaseValue) -> [UInt8] {
    switch value.storage {
    case .blob(let data): [UInt8](data)
    case .string(let text): Array(text.utf8)
    default: []
    }
}

/// Read access to an audit log from the database alone (no signing key): origin, verifier key, size, checkpoints,
/// proofs and entries. ``AuditLog`` uses it for its reads; the CLI's read-only commands use it directly.
public struct AuditLogReader: Sendable {
    /// The database.
    public let database: any DatabaseReader
    /// The log's origin, as recorded when it was created.
    public let origin: String
    /// The log's checkpoint key.
    public let noteKey: NoteVerifierKey

    /// The verifier key in C2SP vkey form.
    public var verifierKey: String { noteKey.encoded }

    /// Opens the log recorded in `database`.
    /// - Throws: ``AuditError/Code-swift.struct/notAnAuditLog`` when the audit tables or the recorded origin and key
    ///   are missing; ``AuditError/Code-swift.struct/database`` when SQLite fails.
    public init(database: any DatabaseReader) throws(AuditError) {
        self.database = database
        let meta: (String, String) = try Self.run(database) { db in
            guard try AuditSchema.isAuditLog(db) else { throw AuditError(.notAnAuditLog, "the database holds no audit log") }
            let origin = try String.fetchOne(db, sql: "SELECT value FROM audit_meta WHERE key = 'origin'")
            let vkey = try String.fetchOne(db, sql: "SELECT value FROM audit_meta WHERE key = 'vkey'")
            guard let origin, let vkey else { throw AuditError(.notAnAuditLog, "the audit log has no recorded origin and key") }
            return (origin, vkey)
        }
        self.origin = meta.0
        self.noteKey = try NoteVerifierKey(parsing: meta.1)
    }

    /// Runs a read, mapping SQLite's errors to ``AuditError``.
    static func run<T>(_ database: any DatabaseReader, _ body: (Database) throws -> T) throws(AuditError) -> T {
        do { return try database.read(body) } catch let error as AuditError { throw error } catch {
            throw AuditError(.database, "SQLite: \(error)")
        }
    }

    /// The number of entries stored (max(seq) + 1).
    public func size() throws(AuditError) -> UInt64 {
        try Self.run(database) { db in try Self.size(db) }
    }

    static func size(_ db: Database) throws -> UInt64 {
        guard let max = try Int64.fetchOne(db, sql: "SELECT max(seq) FROM audit_entries") else { return 0 }
        // The schema does not keep seq non-negative; a tampered file with seq = -1 made UInt64(max) trap.
        guard max >= 0, max < Int64.max else { throw AuditError(.corrupted, "the largest entry index \(max) is out of range") }
        return UInt64(max) + 1
    }

    /// The latest signed checkpoint, its signature and origin checked with the recorded key.
    /// - Throws: ``AuditError`` when the stored note does not verify.
    public func latestCheckpoint() throws(AuditError) -> SignedCheckpoint? {
        let note: [UInt8]? = try Self.run(database) { db in
            try Data.fetchOne(db, sql: "SELECT note FROM audit_checkpoints ORDER BY size DESC LIMIT 1").map { [UInt8]($0) }
        }
        guard let note else { return nil }
        return try SignedCheckpoint(verifying: note, key: noteKey, origin: origin)
    }

    /// The perfect-node source over a database connection (level 0 from `audit_entries.leaf_hash`).
    static func nodes(_ db: Database) -> MerkleProofBuilder<any Error> {
        MerkleProofBuilder { level, index in
            let hash: Data?
            if level == 0 {
                hash = try Data.fetchOne(
                    db.cachedStatement(sql: "SELECT leaf_hash FROM audit_entries WHERE seq = ?"), arguments: [Int64(bitPattern: index)])
            } else {
                hash = try Data.fetchOne(
                    db.cachedStatement(sql: "SELECT hash FROM audit_nodes WHERE level = ? AND idx = ?"),
                    arguments: [level, Int64(bitPattern: index)])
            }
            guard let hash, hash.count == MerkleHash.byteCount else {
                throw AuditError(.corrupted, "the tree node (\(level), \(index)) is missing or malformed")
            }
            return [UInt8](hash)
        }
    }

    /// `MTH(D[0:size])` from the stored nodes in O(log n) reads.
    public func root(size: UInt64) throws(AuditError) -> [UInt8] {
        try Self.run(database) { db in
            let stored = try Self.size(db)
            guard size <= stored else { throw AuditError(.outOfRange, "size \(size) is beyond the log's \(stored) entries") }
            return try Self.nodes(db).subtreeHash(0, size)
        }
    }

    /// The inclusion proof of leaf `index` in the tree of `treeSize` leaves (default: the latest checkpoint's size,
    /// or the stored size when nothing is signed yet).
    /// - Throws: ``AuditError/Code-swift.struct/outOfRange`` unless `index < treeSize <= size`.
    public func inclusionProof(index: UInt64, treeSize: UInt64? = nil) throws(AuditError) -> InclusionProof {
        let defaultSize = try treeSize == nil ? latestCheckpoint()?.checkpoint.size : nil
        return try Self.run(database) { db in
            let stored = try Self.size(db)
            let size = treeSize ?? defaultSize ?? stored
            guard size <= stored else { throw AuditError(.outOfRange, "tree size \(size) is beyond the log's \(stored) entries") }
            guard index < size else { throw AuditError(.outOfRange, "leaf index \(index) is not below tree size \(size)") }
            let nodes = Self.nodes(db)
            return InclusionProof(
                leafIndex: index, treeSize: size, leafHash: try nodes.subtreeHash(index, index + 1),
                hashes: try nodes.inclusionPath(index: index, size: size))
        }
    }

    /// The consistency proof from the tree of `first` leaves to the tree of `second`.
    /// - Throws: ``AuditError/Code-swift.struct/outOfRange`` unless `0 < first <= second <= size`.
    public func consistencyProof(first: UInt64, second: UInt64) throws(AuditError) -> [[UInt8]] {
        try Self.run(database) { db in
            let stored = try Self.size(db)
            guard first > 0, first <= second, second <= stored else {
                throw AuditError(.outOfRange, "sizes must satisfy 0 < first <= second <= \(stored), got \(first) and \(second)")
            }
            return try Self.nodes(db).consistencyProof(first: first, second: second)
        }
    }

    /// Entries in seq order from `cursor` (default 0), filtered by tenant, type and time.
    /// - Parameters:
    ///   - since: Only entries whose `time` is at or after this instant.
    ///   - limit: At most this many (1…10,000).
    public func entries(
        tenant: String? = nil, type: String? = nil, since: Date? = nil, limit: Int = 100, cursor: UInt64? = nil
    ) throws(AuditError) -> AuditPage {
        let limit = min(max(limit, 1), 10_000)
        // Seqs are below 2^63 (SQLite integers): a cursor past that has nothing after it (bitPattern wrapped it to a
        // negative seq, which listed the log from its start).
        guard let first = Int64(exactly: cursor ?? 0) else { return AuditPage(records: [], nextCursor: nil) }
        var conditions = ["seq >= ?"]
        var arguments: StatementArguments = [first]
        if let tenant {
            conditions.append("tenant = ?")
            arguments += [tenant]
        }
        if let type {
            conditions.append("type = ?")
            arguments += [type]
        }
        if let since {
            conditions.append("time >= ?")
            arguments += [AuditEntry.timestamp(since)]
        }
        let sql = "SELECT seq, body, leaf_hash FROM audit_entries WHERE \(conditions.joined(separator: " AND ")) ORDER BY seq LIMIT ?"
        arguments += [limit + 1]
        let records = try Self.run(database) { db in try Self.records(db, sql: sql, arguments: arguments) }
        guard records.count > limit else { return AuditPage(records: records, nextCursor: nil) }
        return AuditPage(records: Array(records.prefix(limit)), nextCursor: records[limit].seq)
    }

    /// The newest `limit` entries matching the filters, oldest first.
    public func latestEntries(tenant: String? = nil, type: String? = nil, limit: Int = 10) throws(AuditError) -> [AuditRecord] {
        var conditions = ["1"]
        var arguments: StatementArguments = []
        if let tenant {
            conditions.append("tenant = ?")
            arguments += [tenant]
        }
        if let type {
            conditions.append("type = ?")
            arguments += [type]
        }
        let sql = "SELECT seq, body, leaf_hash FROM audit_entries WHERE \(conditions.joined(separator: " AND ")) ORDER BY seq DESC LIMIT ?"
        arguments += [min(max(limit, 1), 10_000)]
        return try Self.run(database) { db in try Self.records(db, sql: sql, arguments: arguments) }.reversed()
    }

    private static func records(_ db: Database, sql: String, arguments: StatementArguments) throws -> [AuditRecord] {
        try Row.fetchAll(db, sql: sql, arguments: arguments).map { row in
            // Through DatabaseValue: a tampered row with a value of another type must not trap in a conversion.
            let seq = Int64.fromDatabaseValue(row[0] as DatabaseValue) ?? -1
            return AuditRecord(seq: UInt64(max(0, seq)), body: blob(row[1]), leafHash: blob(row[2]))
        }
    }
}
