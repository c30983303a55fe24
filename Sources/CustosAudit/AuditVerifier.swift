import CustosCrypto
import Foundation
public import GRDB

/// The outcome of a full check of a stored log (`custos audit verify`).
public struct AuditVerification: Sendable, Equatable {
    /// Whether every check passed.
    public let verified: Bool
    /// Entries read (the tree size the rows give).
    public let size: UInt64
    /// The root recomputed from the rows.
    public let rootHash: [UInt8]
    /// The lowest entry a failed check points at.
    public let firstBadSeq: UInt64?
    /// Why the log failed.
    public let reason: String?
    /// Signed checkpoints whose signature and root were checked.
    public let checkpointsChecked: Int
}

/// Re-derives a stored log from its rows: every leaf hash from the entry bytes, the `prev_leaf` chain and the
/// entry invariants (specs/audit.md §5), every stored perfect node, and each signed checkpoint's signature and
/// root. O(n) time; memory: one flat buffer of node hashes (32 bytes per entry).
public enum AuditVerifier {
    /// Verifies the log in `pool`. Every entry's leaf hash is recomputed from its stored bytes and its top-level
    /// members (`seq`, `prev_leaf`, `v`, the filter columns) are checked by a byte scan; `full` also re-parses each
    /// entry as strict JSON and checks it is valid UTF-8 in canonical (JCS) form (`custos audit verify --full`).
    /// - Throws: ``AuditError/Code-swift.struct/notAnAuditLog`` or ``AuditError/Code-swift.struct/database`` when the
    ///   file is not an audit log at all; everything found *in* a log is reported in the result instead.
    public static func verify(pool: any DatabaseReader, full: Bool = false) throws(AuditError) -> AuditVerification {
        try verify(pool: pool, full: full, rowsPerPartition: 65_536)
    }

    /// ``verify(pool:full:)`` with the smallest number of rows a parallel range gets (tests use small ranges).
    static func verify(pool: any DatabaseReader, full: Bool, rowsPerPartition: Int64) throws(AuditError) -> AuditVerification {
        let reader = try AuditLogReader(database: pool)
        var scan = Scan(full: full, rowsPerPartition: rowsPerPartition)
        do {
            try pool.read { db in try scan.run(db, reader: reader) }
        } catch let error as AuditError where error.code == .notAnAuditLog {
            throw error
        } catch {
            scan.fail(scan.range.size, "the database cannot be read after \(scan.range.size) entries: \(error)")
        }
        return AuditVerification(
            verified: scan.failure == nil, size: scan.range.size, rootHash: scan.range.root, firstBadSeq: scan.failure?.seq,
            reason: scan.failure?.reason, checkpointsChecked: scan.checkpointsChecked)
    }

    private struct Scan {
        /// Whether to re-parse and re-canonicalise every entry (`verify --full`).
        let full: Bool
        /// The smallest number of rows a parallel range gets.
        let rowsPerPartition: Int64
        var range = CompactRange()
        /// Computed perfect nodes, one flat buffer per level (index 0 = level 1).
        var nodes: [[UInt8]] = []
        var failure: (seq: UInt64?, reason: String)?
        var checkpointsChecked = 0

        mutating func fail(_ seq: UInt64?, _ reason: String) {
            guard let current = failure else {
                failure = (seq, reason)
                return
            }
            if let seq, current.seq.map({ seq < $0 }) ?? true { failure = (seq, reason) }
        }

        mutating func run(_ db: Database, reader: AuditLogReader) throws {
            // Checkpoints first (a small table): their sizes tell where to capture roots during the scan.
            var checkpoints: [(size: UInt64, root: [UInt8], note: [UInt8])] = []
            for row in try Row.fetchAll(db, sql: "SELECT size, root, note FROM audit_checkpoints ORDER BY size") {
                let size = Int64.fromDatabaseValue(row[0] as DatabaseValue) ?? -1
                guard size >= 0 else {
                    fail(nil, "a checkpoint row has an invalid size")
                    continue
                }
                checkpoints.append((UInt64(size), blob(row[1]), blob(row[2])))
            }
            var roots: [UInt64: [UInt8]] = [:]
            var wanted = Set(checkpoints.map(\.size))
            if wanted.remove(0) != nil { roots[0] = MerkleHash.emptyRoot }

            // Entries: leaves, chain, invariants, filter columns. With a pool of connections (WAL), contiguous seq
            // ranges are read and checked on all cores at once, each on its own connection; rows below the snapshot's
            // last seq are immutable (append-only, triggers), so every reader sees the same rows. Otherwise (a
            // single connection, e.g. a damaged file opened leniently) one range covers everything.
            let last = reader.database is DatabasePool ? try? Int64.fetchOne(db, sql: "SELECT max(seq) FROM audit_entries") : nil
            let partitions = Self.partitions(last: last, rowsPerPartition: rowsPerPartition)
            let full = self.full
            let results: [Partition]
            if partitions.count == 1 {
                results = [Partition.scan(db, partitions[0], full: full)]
            } else {
                let database = reader.database
                // Off the calling thread, which is inside `run`'s read (GRDB's database methods are not reentrant).
                results = ParallelMap.mapOnWorkers(partitions) { bounds in
                    do { return try database.read { db in Partition.scan(db, bounds, full: full) } } catch {
                        return Partition(leaves: [], count: 0, failure: nil, readError: error)
                    }
                }
            }
            var leafBuffer: [UInt8] = []
            leafBuffer.reserveCapacity(results.reduce(0) { $0 + $1.leaves.count })
            var count: UInt64 = 0
            var readError: (any Error)? = nil
            for (bounds, result) in zip(partitions, results) {
                leafBuffer.append(contentsOf: result.leaves)
                count += UInt64(result.count)
                if let failure = result.failure {
                    fail(failure.seq, failure.reason)
                    break
                }
                if let error = result.readError {
                    readError = error
                    break
                }
                // A range that ended early is missing its last rows: the next range's rows do not follow on (its
                // first row's chain check found no predecessor), so the scan stops here, at the first missing seq.
                if let upper = bounds.upper, count < UInt64(max(0, upper)) {
                    fail(count, "entry \(count) is missing")
                    break
                }
            }

            // The tree: every perfect node, level by level, from the leaves of the good prefix.
            let hasher = ReusableDigest(.sha256)
            var below = leafBuffer
            while below.count >= 64 {
                let pairs = below.count / 64
                var level: [UInt8] = []
                level.reserveCapacity(pairs * 32)
                below.withUnsafeBytes { bytes in
                    for pair in 0..<pairs {
                        level.append(
                            contentsOf: hasher.hash(
                                prefix: 1, bytes: UnsafeRawBufferPointer(rebasing: bytes[(pair * 64)..<(pair * 64 + 64)])))
                    }
                }
                nodes.append(level)
                below = level
            }
            let levels = nodes
            func perfect(_ level: Int, _ index: UInt64) -> [UInt8] {
                let buffer = level == 0 ? leafBuffer : levels[level - 1]
                let offset = Int(index) * 32
                return Array(buffer[offset..<(offset + 32)])
            }
            range = CompactRange(size: count, node: perfect)
            for size in wanted where size <= count { roots[size] = CompactRange(size: size, node: perfect).root }

            if let readError, failure == nil {
                fail(range.size, "the database cannot be read after \(range.size) entries: \(readError)")
            }
            if failure != nil { return }

            // Stored nodes against the recomputed ones.
            let nodeCursor = try Row.fetchCursor(db, sql: "SELECT level, idx, hash FROM audit_nodes ORDER BY level, idx")
            var seen = [Int](repeating: 0, count: nodes.count)
            while let row = try nodeCursor.next() {
                let level = Int.fromDatabaseValue(row[0] as DatabaseValue) ?? 0
                let index = Int.fromDatabaseValue(row[1] as DatabaseValue) ?? -1
                guard level >= 1, level <= nodes.count, index >= 0, index < nodes[level - 1].count / 32 else {
                    fail(nil, "the stored node (\(level), \(index)) does not belong to a tree of \(range.size) entries")
                    continue
                }
                let computed = nodes[level - 1][(index * 32)..<(index * 32 + 32)]
                if !constantTimeEqual(Array(computed), blob(row[2])) {
                    fail(UInt64(index) << UInt64(level), "the stored node (\(level), \(index)) differs from the entries' hashes")
                }
                seen[level - 1] += 1
            }
            for (offset, count) in seen.enumerated() where count != nodes[offset].count / 32 {
                fail(nil, "\(nodes[offset].count / 32 - count) stored node(s) of level \(offset + 1) are missing")
            }

            // Signed checkpoints: signature, origin, the stored root, and the recomputed root at that size.
            var lastGood: UInt64 = 0
            for checkpoint in checkpoints {
                guard let computed = roots[checkpoint.size] else {
                    fail(range.size, "the log has \(range.size) entries but a checkpoint was signed for \(checkpoint.size): truncated")
                    continue
                }
                let signed: SignedCheckpoint
                do { signed = try SignedCheckpoint(verifying: checkpoint.note, key: reader.noteKey, origin: reader.origin) } catch {
                    fail(nil, "the checkpoint of size \(checkpoint.size) does not verify: \(error.reason)")
                    continue
                }
                checkpointsChecked += 1
                guard signed.checkpoint.size == checkpoint.size, constantTimeEqual(signed.checkpoint.rootHash, checkpoint.root) else {
                    fail(nil, "the checkpoint row of size \(checkpoint.size) does not match its signed note")
                    continue
                }
                guard constantTimeEqual(computed, signed.checkpoint.rootHash) else {
                    fail(lastGood, "the entries below \(checkpoint.size) do not have the root signed for that size")
                    continue
                }
                lastGood = checkpoint.size
            }
        }

        /// Seq ranges of about equal size, one per core (at least 65,536 entries each), covering every row: the first
        /// has no lower bound and the last ends at `last`, the greatest seq when the scan started.
        static func partitions(last: Int64?, rowsPerPartition: Int64) -> [(lower: Int64?, upper: Int64?)] {
            guard let last, last >= 0 else { return [(nil, nil)] }
            let total = last + 1
            let count = Int64(min(max(1, ProcessInfo.processInfo.activeProcessorCount), Int(max(1, total / max(1, rowsPerPartition)))))
            guard count > 1 else { return [(nil, nil)] }
            return (0..<count).map { index in
                (index == 0 ? nil : total * index / count, index == count - 1 ? last + 1 : total * (index + 1) / count)
            }
        }

        /// The outcome of checking one seq range: the leaf hashes of its good prefix, and what stopped it.
        struct Partition: Sendable {
            var leaves: [UInt8]
            var count: Int
            var failure: (seq: UInt64, reason: String)?
            var readError: (any Error)?

            /// Reads the rows with `lower <= seq < upper` in order and checks each: its seq is the next expected one
            /// (`lower`, or 0), its bytes hash to its stored leaf, its `prev_leaf` is the previous entry's leaf
            /// (for the range's first row, the leaf of the row before `lower`, hashed from its stored bytes), and its
            /// members. Stops at the first problem or read error.
            static func scan(_ db: Database, _ bounds: (lower: Int64?, upper: Int64?), full: Bool) -> Partition {
                var result = Partition(leaves: [], count: 0, failure: nil, readError: nil)
                let hasher = ReusableDigest(.sha256)
                do {
                    var previous: [UInt8]? = nil
                    var conditions: [String] = []
                    var arguments: [any DatabaseValueConvertible] = []
                    if let lower = bounds.lower {
                        conditions.append("seq >= ?")
                        arguments.append(lower)
                        if lower > 0,
                            let body = try DatabaseValue.fetchOne(
                                db, sql: "SELECT body FROM audit_entries WHERE seq = ?", arguments: [lower - 1])
                        {
                            previous = hasher.hash(prefix: 0, blob(body))
                        }
                    }
                    if let upper = bounds.upper {
                        conditions.append("seq < ?")
                        arguments.append(upper)
                    }
                    let filter = conditions.isEmpty ? "" : " WHERE " + conditions.joined(separator: " AND ")
                    let cursor = try Row.fetchCursor(
                        db, sql: "SELECT seq, body, leaf_hash, tenant, type, time FROM audit_entries\(filter) ORDER BY seq",
                        arguments: StatementArguments(arguments))
                    let first = UInt64(max(0, bounds.lower ?? 0))
                    if let upper = bounds.upper, upper > 0 {
                        result.leaves.reserveCapacity(Int(upper - Int64(first)) * 32)
                    }
                    while true {
                        let row: Row?
                        // A read error (a truncated or corrupted file) ends the scan after the rows read so far.
                        do { row = try cursor.next() } catch {
                            result.readError = error
                            return result
                        }
                        guard let row else { return result }
                        let entry = StoredEntry(row)
                        let seq = first + UInt64(result.count)
                        let leaf = hasher.hash(prefix: 0, entry.body)
                        if let problem = Scan.problem(entry, seq: seq, leaf: leaf, previousLeaf: previous, full: full) {
                            result.failure = (seq, problem)
                            return result
                        }
                        result.leaves.append(contentsOf: leaf)
                        result.count += 1
                        previous = leaf
                    }
                } catch {
                    result.readError = error
                    return result
                }
            }
        }

        /// One row as read (through `DatabaseValue`, so a value of another type never traps in a conversion).
        struct StoredEntry: Sendable {
            let seq: Int64
            let body: [UInt8]
            let leafHash: [UInt8]
            let columns: [String?]
            init(_ row: Row) {
                seq = Int64.fromDatabaseValue(row[0] as DatabaseValue) ?? -1
                body = blob(row[1])
                leafHash = blob(row[2])
                columns = (3...5).map { String.fromDatabaseValue(row[$0] as DatabaseValue) }
            }
        }

        /// Why entry `seq` is bad, or `nil`. `full` re-parses and re-canonicalises the body (JCS, UTF-8); otherwise
        /// the top-level members are checked by a byte scan (``AuditEntry/quickProblem(_:seq:previousLeaf:columns:)``).
        static func problem(_ entry: StoredEntry, seq: UInt64, leaf: [UInt8], previousLeaf: [UInt8]?, full: Bool) -> String? {
            guard entry.seq >= 0, UInt64(entry.seq) == seq else {
                return entry.seq > Int64(bitPattern: seq)
                    ? "entry \(seq) is missing" : "entry \(seq) is missing or unreadable (a row with seq \(entry.seq) in its place)"
            }
            guard constantTimeEqual(leaf, entry.leafHash) else { return "the entry's bytes do not hash to its stored leaf hash" }
            guard full else { return AuditEntry.quickProblem(entry.body, seq: seq, previousLeaf: previousLeaf, columns: entry.columns) }
            switch AuditEntry.inspect(entry.body, seq: seq, previousLeaf: previousLeaf) {
            case .failure(let problem): return problem.reason
            case .success(let members):
                // The tenant, type and time columns serve filtering only and must repeat the body's members.
                let fromBody = [members["tenant"]?.stringValue, members["type"]?.stringValue, members["time"]?.stringValue]
                return entry.columns == fromBody ? nil : "the tenant, type or time column differs from the entry"
            }
        }
    }
}

/// Maps a collection on all cores (`DispatchQueue.concurrentPerform` over contiguous slices), keeping order.
enum ParallelMap {
    static func map<T: Sendable, R: Sendable>(_ items: [T], _ transform: @Sendable (T) -> R) -> [R] {
        let count = items.count
        let slices = min(max(1, ProcessInfo.processInfo.activeProcessorCount), max(1, count / 256))
        if slices == 1 { return items.map(transform) }
        let results = Results<R>(count: count)
        DispatchQueue.concurrentPerform(iterations: slices) { slice in
            let start = count * slice / slices
            let end = count * (slice + 1) / slices
            for index in start..<end { results.set(index, transform(items[index])) }
        }
        return results.collect()
    }

    /// Runs `transform` on each item on the global queue's worker threads, never on the calling thread, and waits
    /// for all: for work that must not run on a thread inside a database access.
    static func mapOnWorkers<T: Sendable, R: Sendable>(_ items: [T], _ transform: @escaping @Sendable (T) -> R) -> [R] {
        let results = Results<R>(count: items.count)
        let group = DispatchGroup()
        for (index, item) in items.enumerated() {
            DispatchQueue.global().async(group: group) { results.set(index, transform(item)) }
        }
        group.wait()
        return results.collect()
    }

    /// Slots each written by exactly one iteration before `concurrentPerform` returns, which orders the writes
    /// before the read; hence `@unchecked Sendable`.
    private final class Results<R>: @unchecked Sendable {
        private let base: UnsafeMutablePointer<R?>
        private let count: Int
        init(count: Int) {
            base = UnsafeMutablePointer<R?>.allocate(capacity: count)
            base.initialize(repeating: nil, count: count)
            self.count = count
        }
        func set(_ index: Int, _ value: R) { base[index] = value }
        func collect() -> [R] { UnsafeBufferPointer(start: base, count: count).compactMap { $0 } }
        deinit {
            base.deinitialize(count: count)
            base.deallocate()
        }
    }
}
