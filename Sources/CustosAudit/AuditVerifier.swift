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
    /// Verifies the log in `pool`.
    /// - Throws: ``AuditError/Code-swift.struct/notAnAuditLog`` or ``AuditError/Code-swift.struct/database`` when the
    ///   file is not an audit log at all; everything found *in* a log is reported in the result instead.
    public static func verify(pool: any DatabaseReader) throws(AuditError) -> AuditVerification {
        let reader = try AuditLogReader(database: pool)
        var scan = Scan()
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

            // Entries: leaves, chain, invariants, filter columns.
            let cursor = try Row.fetchCursor(db, sql: "SELECT seq, body, leaf_hash, tenant, type, time FROM audit_entries ORDER BY seq")
            var previous: [UInt8]? = nil
            while let row = try cursor.next() {
                let expected = range.size
                let seqValue = Int64.fromDatabaseValue(row[0] as DatabaseValue) ?? -1
                guard seqValue >= 0, UInt64(seqValue) == expected else {
                    fail(expected, seqValue > Int64(bitPattern: expected) ? "entry \(expected) is missing" : "an entry has seq \(seqValue)")
                    break
                }
                let body = blob(row[1])
                let leaf = MerkleHash.leaf(body)
                guard constantTimeEqual(leaf, blob(row[2])) else {
                    fail(expected, "the entry's bytes do not hash to its stored leaf hash")
                    break
                }
                switch AuditEntry.inspect(body, seq: expected, previousLeaf: previous) {
                case .failure(let problem):
                    fail(expected, problem.reason)
                case .success(let members):
                    if let problem = filterColumnsProblem(row, members: members) { fail(expected, problem) }
                }
                if failure != nil { break }
                for node in range.append(leaf) {
                    while nodes.count < node.level { nodes.append([]) }
                    nodes[node.level - 1].append(contentsOf: node.hash)
                }
                previous = leaf
                if wanted.remove(range.size) != nil { roots[range.size] = range.root }
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

        /// The tenant, type and time columns must repeat the body's members (they serve filtering only).
        private func filterColumnsProblem(_ row: Row, members entry: [String: JSONValue]) -> String? {
            let columns = [
                String.fromDatabaseValue(row[3] as DatabaseValue), String.fromDatabaseValue(row[4] as DatabaseValue),
                String.fromDatabaseValue(row[5] as DatabaseValue),
            ]
            let members = [entry["tenant"]?.stringValue, entry["type"]?.stringValue, entry["time"]?.stringValue]
            return columns == members ? nil : "the tenant, type or time column differs from the entry"
        }
    }
}
