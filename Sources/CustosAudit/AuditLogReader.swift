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
    /// Whether the database has `audit-v2`'s time index (a read-only reader of a log from before it has not).
    let hasTimeIndex: Bool

    /// The verifier key in C2SP vkey form.
    public var verifierKey: String { noteKey.encoded }

    /// Opens the log recorded in `database`.
    /// - Throws: ``AuditError/Code-swift.struct/notAnAuditLog`` when the audit tables or the recorded origin and key
    ///   are missing; ``AuditError/Code-swift.struct/database`` when SQLite fails.
    public init(database: any DatabaseReader) throws(AuditError) {
        self.database = database
        let meta: (String, String, Bool) = try Self.run(database) { db in
            guard try AuditSchema.isAuditLog(db) else { throw AuditError(.notAnAuditLog, "the database holds no audit log") }
            let origin = try String.fetchOne(db, sql: "SELECT value FROM audit_meta WHERE key = 'origin'")
            let vkey = try String.fetchOne(db, sql: "SELECT value FROM audit_meta WHERE key = 'vkey'")
            guard let origin, let vkey else { throw AuditError(.notAnAuditLog, "the audit log has no recorded origin and key") }
            let index = try Bool.fetchOne(
                db, sql: "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = 'audit_entries_time')")
            return (origin, vkey, index ?? false)
        }
        self.hasTimeIndex = meta.2
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
    ///
    /// A time filter reads the log in seq order and skips entries out of range, unless the range holds less than half
    /// the log: then it first finds, on the `time` index (`audit-v2`), the first and last seq whose time is in range,
    /// and reads only between them (entry times are the events' own and need not rise with seq, so the bounds come from
    /// the index rather than from a search over seqs). A recent `since`, or the second around an appraisal, then costs
    /// the entries in range instead of the log before them; a `since` far back costs what it did. The share in range
    /// is estimated from 17 entries spread over the log. Later pages (a `cursor` past 0) start at their cursor and
    /// look bounds up again only for `until`. A read-only reader of a log from before the index always scans.
    /// - Parameters:
    ///   - since: Only entries whose `time` is at or after this instant.
    ///   - until: Only entries whose `time` is at or before this instant.
    ///   - limit: At most this many (1…10,000).
    public func entries(
        tenant: String? = nil, type: String? = nil, since: Date? = nil, until: Date? = nil, limit: Int = 100, cursor: UInt64? = nil
    ) throws(AuditError) -> AuditPage {
        let limit = min(max(limit, 1), 10_000)
        // Seqs are below 2^63 (SQLite integers): a cursor past that has nothing after it (bitPattern wrapped it to a
        // negative seq, which listed the log from its start).
        guard let first = Int64(exactly: cursor ?? 0) else { return AuditPage(records: [], nextCursor: nil) }
        var timeConditions: [String] = []
        var timeArguments: StatementArguments = []
        if let since {
            timeConditions.append("time >= ?")
            timeArguments += [AuditEntry.timestamp(since)]
        }
        if let until {
            timeConditions.append("time <= ?")
            timeArguments += [AuditEntry.timestamp(until)]
        }
        var filters: [String] = []
        var filterArguments: StatementArguments = []
        if let tenant {
            filters.append("tenant = ?")
            filterArguments += [tenant]
        }
        if let type {
            filters.append("type = ?")
            filterArguments += [type]
        }
        // The page's time terms are written `+time`: SQLite then never reads the page through the time index (which
        // would sort every entry in range to return a page in seq order); only the bounds query uses it.
        filters += timeConditions.map { "+" + $0 }
        filterArguments += timeArguments
        let boundsSQL = "SELECT MIN(seq), MAX(seq) FROM audit_entries WHERE \(timeConditions.joined(separator: " AND "))"
        let records = try Self.run(database) { db -> [AuditRecord] in
            var range = "seq >= ?"
            var arguments: StatementArguments = [first]
            if hasTimeIndex, (since != nil && first == 0) || until != nil,
                try Self.fewInRange(db, since: since.map(AuditEntry.timestamp), until: until.map(AuditEntry.timestamp))
            {
                let bounds = try Row.fetchOne(db, sql: boundsSQL, arguments: timeArguments)
                guard let low = bounds.flatMap({ Int64.fromDatabaseValue($0[0] as DatabaseValue) }),
                    let high = bounds.flatMap({ Int64.fromDatabaseValue($0[1] as DatabaseValue) })
                else { return [] }
                range = "seq >= ? AND seq BETWEEN ? AND ?"
                arguments += [low, high]
            }
            let conditions = ([range] + filters).joined(separator: " AND ")
            arguments += filterArguments
            arguments += [limit + 1]
            let sql = "SELECT seq, body, leaf_hash FROM audit_entries WHERE \(conditions) ORDER BY seq LIMIT ?"
            return try Self.records(db, sql: sql, arguments: arguments)
        }
        guard records.count > limit else { return AuditPage(records: records, nextCursor: nil) }
        return AuditPage(records: Array(records.prefix(limit)), nextCursor: records[limit].seq)
    }

    /// Whether at most half of 17 entries spread evenly over the log (the first, the last and 15 between) have their
    /// time in range: the time index then reads fewer entries than a scan in seq order would.
    static func fewInRange(_ db: Database, since: String?, until: String?) throws -> Bool {
        guard let last = try Int64.fetchOne(db, sql: "SELECT MAX(seq) FROM audit_entries") else { return false }
        let seqs = (0...16).map { last / 16 * Int64($0) + (last % 16) * Int64($0) / 16 }
        // Through DatabaseValue: a tampered row whose time is not text must not trap in a conversion.
        let times = try DatabaseValue.fetchAll(
            db, sql: "SELECT time FROM audit_entries WHERE seq IN (\(seqs.map(String.init).joined(separator: ",")))"
        ).map { String.fromDatabaseValue($0) ?? "" }
        let inRange = times.filter { time in (since.map { time >= $0 } ?? true) && (until.map { time <= $0 } ?? true) }.count
        return inRange * 2 <= times.count
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
