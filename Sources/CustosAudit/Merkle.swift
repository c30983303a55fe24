import CustosCrypto
public import Foundation

// MARK: - Hashes (specs/audit.md §1, RFC 6962 §2.1, RFC 9162 §2.1.1)

/// The RFC 6962/9162 hashes: SHA-256 with the 0x00 (leaf) and 0x01 (node) domain-separation prefixes.
public enum MerkleHash {
    /// Bytes in a hash.
    public static let byteCount = 32

    /// `MTH({})`: SHA-256 of the empty string (not the hash of an empty leaf; Trap 1).
    public static let emptyRoot: [UInt8] = Digest.sha256([UInt8]())

    /// `SHA-256(0x00 ‖ entry)`.
    public static func leaf(_ entry: some ContiguousBytes) -> [UInt8] {
        var hasher = StreamingDigest(.sha256)
        hasher.update([UInt8(0x00)])
        hasher.update(entry)
        return hasher.finalize()
    }

    /// `SHA-256(0x01 ‖ left ‖ right)`.
    public static func node(_ left: [UInt8], _ right: [UInt8]) -> [UInt8] {
        var hasher = StreamingDigest(.sha256)
        hasher.update([UInt8(0x01)])
        hasher.update(left)
        hasher.update(right)
        return hasher.finalize()
    }

    /// The largest power of two strictly below `n`: where `MTH(D[n])` splits (2→1, 5→4, 8→4, 9→8; 0 for `n < 2`).
    public static func split(_ n: UInt64) -> UInt64 {
        guard n >= 2 else { return 0 }
        return 1 << (63 - UInt64((n - 1).leadingZeroBitCount))
    }

    /// The root of `leafHashes` without recursion (RFC 9162 §2.1.2): O(n) time, O(log n) memory.
    public static func root(leafHashes: some Sequence<[UInt8]>) -> [UInt8] {
        var range = CompactRange()
        for leaf in leafHashes { range.append(leaf) }
        return range.root
    }
}

// MARK: - Compact range

/// The perfect subtrees covering `[0, size)`, one per set bit of `size`, biggest first (specs/audit.md §8.2): the
/// current root in O(log n) memory, and the nodes an append completes.
public struct CompactRange: Sendable, Equatable {
    /// The leaves covered.
    public private(set) var size: UInt64 = 0
    /// `(level, hash)` of each perfect subtree, biggest (leftmost) first.
    public private(set) var nodes: [(level: Int, hash: [UInt8])] = []

    public init() {}

    /// From the stored perfect nodes of a tree of `size` leaves (`node(level, index)`), as after a restart.
    public init(size: UInt64, node: (_ level: Int, _ index: UInt64) throws -> [UInt8]) rethrows {
        self.size = size
        var start: UInt64 = 0
        for level in stride(from: 63, through: 0, by: -1) where size & (1 << UInt64(level)) != 0 {
            nodes.append((level, try node(level, start >> UInt64(level))))
            start += 1 << UInt64(level)
        }
    }

    public static func == (lhs: CompactRange, rhs: CompactRange) -> Bool {
        lhs.size == rhs.size && lhs.nodes.elementsEqual(rhs.nodes) { $0.level == $1.level && $0.hash == $1.hash }
    }

    /// Adds a leaf and returns the perfect nodes (level ≥ 1) it completed, lowest first, as `(level, index, hash)`.
    @discardableResult
    public mutating func append(_ leafHash: [UInt8]) -> [(level: Int, index: UInt64, hash: [UInt8])] {
        var completed: [(level: Int, index: UInt64, hash: [UInt8])] = []
        var current = leafHash
        var level = 0
        var index = size
        while let last = nodes.last, last.level == level {
            nodes.removeLast()
            current = MerkleHash.node(last.hash, current)
            level += 1
            index >>= 1
            completed.append((level, index, current))
        }
        nodes.append((level, current))
        size += 1
        return completed
    }

    /// `MTH(D[0:size])`: the right fold `N(P1, N(P2, … N(Pk-1, Pk)))`.
    public var root: [UInt8] {
        guard var hash = nodes.last?.hash else { return MerkleHash.emptyRoot }
        for node in nodes.dropLast().reversed() { hash = MerkleHash.node(node.hash, hash) }
        return hash
    }
}

// MARK: - Proof generation (specs/audit.md §2.1, §3.1)

/// Builds RFC 6962 inclusion and consistency proofs from a source of perfect nodes, in O(log n) node reads.
///
/// `node(level, index)` must return `MTH(D[index·2^level : (index+1)·2^level])` (level 0: the leaf hashes). The
/// audit log reads them from `audit_nodes`/`audit_entries`; tests use ``InMemoryMerkleTree``.
public struct MerkleProofBuilder<Failure: Error> {
    let node: (_ level: Int, _ index: UInt64) throws(Failure) -> [UInt8]

    /// - Parameter node: The perfect-node source.
    public init(node: @escaping (_ level: Int, _ index: UInt64) throws(Failure) -> [UInt8]) { self.node = node }

    /// `MTH(D[a:b])`: a perfect node when the range is one, else split at the largest power of two below
    /// (`MTH({})` when `b <= a`).
    public func subtreeHash(_ a: UInt64, _ b: UInt64) throws(Failure) -> [UInt8] {
        guard b > a else { return MerkleHash.emptyRoot }
        let n = b - a
        if n & (n - 1) == 0, a % n == 0 { return try node(n.trailingZeroBitCount, a / n) }
        let k = MerkleHash.split(n)
        return MerkleHash.node(try subtreeHash(a, a + k), try subtreeHash(a + k, b))
    }

    /// `PATH(index, D[size])`, leaf-upward. Requires `index < size` (callers check; ``MerkleProofError``).
    public func inclusionPath(index: UInt64, size: UInt64) throws(Failure) -> [[UInt8]] {
        guard index < size else { return [] }
        var path: [[UInt8]] = []
        var low: UInt64 = 0
        var high = size
        while high - low > 1 {
            let k = MerkleHash.split(high - low)
            if index - low < k {
                path.append(try subtreeHash(low + k, high))
                high = low + k
            } else {
                path.append(try subtreeHash(low, low + k))
                low += k
            }
        }
        return path.reversed()
    }

    /// `PROOF(first, D[second])`, leaf-upward. Requires `0 < first <= second`; `first == second` gives `[]`.
    public func consistencyProof(first: UInt64, second: UInt64) throws(Failure) -> [[UInt8]] {
        guard first > 0, first < second else { return [] }
        var proof: [[UInt8]] = []
        var m = first
        var low: UInt64 = 0
        var high = second
        var known = true
        while true {
            if m == high - low {
                if !known { proof.append(try subtreeHash(low, high)) }
                break
            }
            let k = MerkleHash.split(high - low)
            if m <= k {
                proof.append(try subtreeHash(low + k, high))
                high = low + k
            } else {
                proof.append(try subtreeHash(low, low + k))
                low += k
                m -= k
                known = false
            }
        }
        return proof.reversed()
    }
}

/// A whole tree in memory (every perfect node), for tests and for checking exported logs.
public struct InMemoryMerkleTree: Sendable {
    /// `levels[ℓ][i]` = perfect node `(ℓ, i)`; `levels[0]` = the leaf hashes.
    public let levels: [[[UInt8]]]

    /// Builds every perfect node of the tree over `leafHashes`.
    public init(leafHashes: [[UInt8]]) {
        var levels = [leafHashes]
        while let last = levels.last, last.count >= 2 {
            levels.append(stride(from: 0, to: last.count - 1, by: 2).map { MerkleHash.node(last[$0], last[$0 + 1]) })
        }
        self.levels = levels
    }

    /// The leaves.
    public var size: UInt64 { UInt64(levels[0].count) }

    /// The proof builder over this tree's nodes.
    public var proofs: MerkleProofBuilder<Never> {
        MerkleProofBuilder { level, index in levels[level][Int(index)] }
    }

    /// `MTH(D[0:n])`, `n <= size`.
    public func root(size n: UInt64) -> [UInt8] { n == 0 ? MerkleHash.emptyRoot : proofs.subtreeHash(0, n) }
}

// MARK: - Proof verification (specs/audit.md §2.2, §3.2, §3.3)

/// Why a proof was rejected.
public enum MerkleProofFailure: Sendable, Equatable, CustomStringConvertible {
    /// `leaf_index >= tree_size`.
    case indexOutOfRange
    /// A hash in the proof, the leaf hash or a root is not 32 bytes.
    case malformedHash
    /// The proof has more elements than any tree of 2^64 leaves needs, or more than the sizes allow.
    case proofTooLong
    /// The proof ended before the sizes were consumed.
    case proofTooShort
    /// The recomputed root differs from the given one.
    case rootMismatch
    /// The recomputed old root differs from the given one (consistency only).
    case firstRootMismatch
    /// The sizes are not `0 < first <= second`, or equal sizes came with a proof or different roots.
    case invalidSizes
    /// A consistency proof between different sizes was empty.
    case emptyProof

    public var description: String {
        switch self {
        case .indexOutOfRange: "leaf index is not below the tree size"
        case .malformedHash: "a hash is not 32 bytes"
        case .proofTooLong: "the proof has too many elements"
        case .proofTooShort: "the proof has too few elements"
        case .rootMismatch: "the recomputed root does not match"
        case .firstRootMismatch: "the recomputed first root does not match"
        case .invalidSizes: "the tree sizes are not 0 < first <= second"
        case .emptyProof: "the consistency proof is empty"
        }
    }
}

/// A proof check's outcome (never a `Bool`; STYLE.md §8).
public enum MerkleProofVerification: Sendable, Equatable {
    case verified
    case rejected(MerkleProofFailure)

    /// Whether the proof verified.
    public var isVerified: Bool { self == .verified }
}

/// Static verifiers of RFC 9162 proofs, usable by clients without a database.
public enum MerkleProof {
    /// The longest inclusion proof any tree can need (Trap 10).
    public static let maxInclusionLength = 64
    /// The longest consistency proof any tree can need (Trap 10).
    public static let maxConsistencyLength = 65

    /// RFC 9162 §2.1.3.2: whether `path` proves that the leaf with `leafHash` (computed by the verifier from the
    /// entry bytes) is leaf `index` of the tree of `size` leaves whose root is `root` (from a verified checkpoint
    /// of that size).
    public static func verifyInclusion(
        index: UInt64, size: UInt64, leafHash: [UInt8], path: [[UInt8]], root: [UInt8]
    ) -> MerkleProofVerification {
        guard index < size else { return .rejected(.indexOutOfRange) }
        guard leafHash.count == MerkleHash.byteCount, root.count == MerkleHash.byteCount,
            path.allSatisfy({ $0.count == MerkleHash.byteCount })
        else { return .rejected(.malformedHash) }
        guard path.count <= maxInclusionLength else { return .rejected(.proofTooLong) }
        var fn = index
        var sn = size - 1
        var r = leafHash
        for p in path {
            guard sn != 0 else { return .rejected(.proofTooLong) }
            if fn & 1 == 1 || fn == sn {
                r = MerkleHash.node(p, r)
                if fn & 1 == 0 {
                    while fn & 1 == 0, fn != 0 {
                        fn >>= 1
                        sn >>= 1
                    }
                }
            } else {
                r = MerkleHash.node(r, p)
            }
            fn >>= 1
            sn >>= 1
        }
        guard sn == 0 else { return .rejected(.proofTooShort) }
        return constantTimeEqual(r, root) ? .verified : .rejected(.rootMismatch)
    }

    /// RFC 9162 §2.1.4.2 with the edge cases of specs/audit.md §3.3: whether `path` proves that the tree of `first`
    /// leaves with root `firstRoot` is a prefix of the tree of `second` leaves with root `secondRoot`.
    public static func verifyConsistency(
        first: UInt64, second: UInt64, firstRoot: [UInt8], secondRoot: [UInt8], path: [[UInt8]]
    ) -> MerkleProofVerification {
        guard firstRoot.count == MerkleHash.byteCount, secondRoot.count == MerkleHash.byteCount,
            path.allSatisfy({ $0.count == MerkleHash.byteCount })
        else { return .rejected(.malformedHash) }
        guard first > 0, first <= second else { return .rejected(.invalidSizes) }
        if first == second {
            guard path.isEmpty else { return .rejected(.proofTooLong) }
            return constantTimeEqual(firstRoot, secondRoot) ? .verified : .rejected(.rootMismatch)
        }
        guard !path.isEmpty else { return .rejected(.emptyProof) }
        guard path.count <= maxConsistencyLength else { return .rejected(.proofTooLong) }
        var path = path
        if first & (first - 1) == 0 { path.insert(firstRoot, at: 0) }
        var fn = first - 1
        var sn = second - 1
        while fn & 1 == 1 {
            fn >>= 1
            sn >>= 1
        }
        var fr = path[0]
        var sr = path[0]
        for c in path.dropFirst() {
            guard sn != 0 else { return .rejected(.proofTooLong) }
            if fn & 1 == 1 || fn == sn {
                fr = MerkleHash.node(c, fr)
                sr = MerkleHash.node(c, sr)
                if fn & 1 == 0 {
                    while fn & 1 == 0, fn != 0 {
                        fn >>= 1
                        sn >>= 1
                    }
                }
            } else {
                sr = MerkleHash.node(sr, c)
            }
            fn >>= 1
            sn >>= 1
        }
        guard sn == 0 else { return .rejected(.proofTooShort) }
        guard constantTimeEqual(fr, firstRoot) else { return .rejected(.firstRootMismatch) }
        return constantTimeEqual(sr, secondRoot) ? .verified : .rejected(.rootMismatch)
    }
}
