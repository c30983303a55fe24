import CustosAudit
import CustosCrypto
import Foundation
import Testing

/// RFC 6962/9162 hashes, roots and proofs against the transparency-dev reference vectors (specs/audit.md §1, §3.4,
/// §4), plus every proof of every tree of 1…64 leaves.
@Suite struct MerkleTests {
    static func hex(_ text: String) -> [UInt8] { (try? Hex.decode(text)) ?? [] }

    // MARK: §4 data (transparency-dev/merkle testonly/constants.go)

    static let leafInputs: [[UInt8]] = [
        "", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f",
    ].map(hex)
    static let leafHashes: [String] = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
        "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
    ]
    static let nodes: [String: String] = [
        "1,0": "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "1,1": "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "1,2": "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "1,3": "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "2,0": "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "2,1": "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        "3,0": "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ]
    static let roots: [String] = [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ]

    /// A §4 proof element given as the first 8 hex digits of a leaf or node hash from the tables above.
    static func full(_ prefix: String) -> [UInt8] {
        let all = leafHashes + Array(nodes.values)
        let matches = Set(all.filter { $0.hasPrefix(prefix) })
        return matches.count == 1 ? hex(matches.first ?? "") : []
    }

    static var tree: InMemoryMerkleTree { InMemoryMerkleTree(leafHashes: leafInputs.map { MerkleHash.leaf($0) }) }

    // MARK: §1 known answers

    @Test func knownAnswers() {
        #expect(Hex.encode(MerkleHash.emptyRoot) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(Hex.encode(MerkleHash.leaf([UInt8]())) == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d")
        #expect(Hex.encode(MerkleHash.leaf(Array("L123456".utf8))) == "395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56")
        #expect(
            Hex.encode(MerkleHash.node(Array("N123".utf8), Array("N456".utf8)))
                == "aa217fe888e47007fa15edab33c2b492a722cb106c64667fc2b044444de66bbb")
        #expect([2, 5, 8, 9].map { MerkleHash.split($0) } == [1, 4, 4, 8])
    }

    @Test func leafHashesAndInnerNodes() {
        #expect(Self.leafInputs.map { Hex.encode(MerkleHash.leaf($0)) } == Self.leafHashes)
        let tree = Self.tree
        for (address, expected) in Self.nodes {
            let parts = address.split(separator: ",").compactMap { Int($0) }
            #expect(Hex.encode(tree.levels[parts[0]][parts[1]]) == expected, "node \(address)")
        }
    }

    /// Roots for n = 0…8 three ways: the recursion, the stack algorithm and the compact range.
    @Test func rootsThreeWays() {
        let leaves = Self.leafInputs.map { MerkleHash.leaf($0) }
        for n in 0...8 {
            let prefix = Array(leaves.prefix(n))
            #expect(Hex.encode(InMemoryMerkleTree(leafHashes: prefix).root(size: UInt64(n))) == Self.roots[n], "recursion n=\(n)")
            #expect(Hex.encode(MerkleHash.root(leafHashes: prefix)) == Self.roots[n], "stack n=\(n)")
            var range = CompactRange()
            for leaf in prefix { range.append(leaf) }
            #expect(Hex.encode(range.root) == Self.roots[n], "compact range n=\(n)")
        }
        #expect(Base64.encode(Self.hex(Self.roots[8])) == "XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=")
    }

    // MARK: §4 proofs

    struct InclusionVector: Sendable, CustomTestStringConvertible {
        let index: UInt64
        let size: UInt64
        let path: [String]
        var testDescription: String { "leaf \(index) of \(size)" }
    }

    static let inclusionVectors: [InclusionVector] = [
        InclusionVector(index: 0, size: 1, path: []),
        InclusionVector(index: 0, size: 8, path: ["96a296d2", "5f083f0a", "6b47aaf2"]),
        InclusionVector(index: 5, size: 8, path: ["bc1a0643", "ca854ea1", "d37ee418"]),
        InclusionVector(index: 2, size: 3, path: ["fac54203"]),
        InclusionVector(index: 1, size: 5, path: ["6e340b9c", "5f083f0a", "bc1a0643"]),
    ]

    struct ConsistencyVector: Sendable, CustomTestStringConvertible {
        let first: UInt64
        let second: UInt64
        let path: [String]
        var testDescription: String { "\(first) → \(second)" }
    }

    static let consistencyVectors: [ConsistencyVector] = [
        ConsistencyVector(first: 1, second: 1, path: []),
        ConsistencyVector(first: 1, second: 8, path: ["96a296d2", "5f083f0a", "6b47aaf2"]),
        ConsistencyVector(first: 6, second: 8, path: ["0ebc5d34", "ca854ea1", "d37ee418"]),
        ConsistencyVector(first: 2, second: 5, path: ["5f083f0a", "bc1a0643"]),
        ConsistencyVector(first: 6, second: 7, path: ["0ebc5d34", "b08693ec", "d37ee418"]),
    ]

    @Test(arguments: inclusionVectors) func inclusionVector(_ vector: InclusionVector) {
        let tree = Self.tree
        let expected = vector.path.map(Self.full)
        #expect(expected.allSatisfy { $0.count == 32 })
        #expect(tree.proofs.inclusionPath(index: vector.index, size: vector.size) == expected)
        let leaf = tree.levels[0][Int(vector.index)]
        let root = Self.hex(Self.roots[Int(vector.size)])
        #expect(
            MerkleProof.verifyInclusion(index: vector.index, size: vector.size, leafHash: leaf, path: expected, root: root) == .verified)
        // The probe mutations of §4 (transparency-dev testdata/inclusion/*): each must be rejected.
        for (name, mutated) in Self.inclusionMutations(index: vector.index, size: vector.size, leaf: leaf, path: expected, root: root) {
            #expect(!mutated().isVerified, "mutation accepted: \(name)")
        }
    }

    static func inclusionMutations(
        index: UInt64, size: UInt64, leaf: [UInt8], path: [[UInt8]], root: [UInt8]
    ) -> [(String, () -> MerkleProofVerification)] {
        func verify(_ i: UInt64, _ s: UInt64, _ l: [UInt8], _ p: [[UInt8]], _ r: [UInt8]) -> () -> MerkleProofVerification {
            { MerkleProof.verifyInclusion(index: i, size: s, leafHash: l, path: p, root: r) }
        }
        var cases: [(String, () -> MerkleProofVerification)] = [
            ("index + 1", verify(index + 1, size, leaf, path, root)),
            ("index XOR 2", verify(index ^ 2, size, leaf, path, root)),
            ("size * 2", verify(index, size * 2, leaf, path, root)),
            ("wrong leaf", verify(index, size, MerkleHash.leaf(Array("WAT".utf8)), path, root)),
            ("empty-tree root", verify(index, size, leaf, path, MerkleHash.emptyRoot)),
            ("random root", verify(index, size, leaf, path, Digest.sha256(Array("random".utf8)))),
            ("trailing empty element", verify(index, size, leaf, path + [[]], root)),
            ("leading empty element", verify(index, size, leaf, [[]] + path, root)),
            ("extra root", verify(index, size, leaf, path + [root], root)),
            ("zero-length leaf hash", verify(index, size, [], path, root)),
            ("size 0", verify(index, 0, leaf, path, root)),
        ]
        if index > 0 { cases.append(("index - 1", verify(index - 1, size, leaf, path, root))) }
        if size > 1 { cases.append(("size / 2", verify(index, size / 2, leaf, path, root))) }
        for position in path.indices {
            var flipped = path
            flipped[position][0] ^= 0x01
            cases.append(("flip in element \(position)", verify(index, size, leaf, flipped, root)))
            var removed = path
            removed.remove(at: position)
            cases.append(("element \(position) removed", verify(index, size, leaf, removed, root)))
            var inserted = path
            inserted.insert(Digest.sha256(Array("x".utf8)), at: position)
            cases.append(("element inserted at \(position)", verify(index, size, leaf, inserted, root)))
        }
        return cases
    }

    @Test(arguments: consistencyVectors) func consistencyVector(_ vector: ConsistencyVector) {
        let tree = Self.tree
        let expected = vector.path.map(Self.full)
        #expect(expected.allSatisfy { $0.count == 32 })
        #expect(tree.proofs.consistencyProof(first: vector.first, second: vector.second) == expected)
        let first = Self.hex(Self.roots[Int(vector.first)])
        let second = Self.hex(Self.roots[Int(vector.second)])
        #expect(
            MerkleProof.verifyConsistency(first: vector.first, second: vector.second, firstRoot: first, secondRoot: second, path: expected)
                == .verified)
        for (name, mutated) in Self.consistencyMutations(
            first: vector.first, second: vector.second, firstRoot: first, secondRoot: second, path: expected)
        {
            #expect(!mutated().isVerified, "mutation accepted: \(name)")
        }
    }

    static func consistencyMutations(
        first: UInt64, second: UInt64, firstRoot: [UInt8], secondRoot: [UInt8], path: [[UInt8]]
    ) -> [(String, () -> MerkleProofVerification)] {
        func verify(_ f: UInt64, _ s: UInt64, _ r1: [UInt8], _ r2: [UInt8], _ p: [[UInt8]]) -> () -> MerkleProofVerification {
            { MerkleProof.verifyConsistency(first: f, second: s, firstRoot: r1, secondRoot: r2, path: p) }
        }
        let other = Digest.sha256(Array("other".utf8))
        var cases: [(String, () -> MerkleProofVerification)] = [
            ("size1 + 1", verify(first + 1, second, firstRoot, secondRoot, path)),
            ("size1 XOR 2", verify(first ^ 2, second, firstRoot, secondRoot, path)),
            ("size2 * 2", verify(first, second * 2, firstRoot, secondRoot, path)),
            ("wrong root1", verify(first, second, other, secondRoot, path)),
            ("wrong root2", verify(first, second, firstRoot, other, path)),
            ("prepended root1", verify(first, second, firstRoot, secondRoot, [firstRoot] + path)),
            ("appended root2", verify(first, second, firstRoot, secondRoot, path + [secondRoot])),
            ("size1 0", verify(0, second, firstRoot, secondRoot, path)),
            ("size1 > size2", verify(second + 1, second, firstRoot, secondRoot, path)),
        ]
        if first != second {
            cases.append(("swapped roots", verify(first, second, secondRoot, firstRoot, path)))
            cases.append(("empty proof", verify(first, second, firstRoot, secondRoot, [])))
            cases.append(("truncated proof", verify(first, second, firstRoot, secondRoot, Array(path.dropLast()))))
            if second > 1 { cases.append(("size2 / 2", verify(first, second / 2, firstRoot, secondRoot, path))) }
            if first > 1 { cases.append(("size1 - 1", verify(first - 1, second, firstRoot, secondRoot, path))) }
        } else {
            cases.append(("equal sizes with a proof", verify(first, second, firstRoot, secondRoot, [firstRoot])))
        }
        for position in path.indices {
            var flipped = path
            flipped[position][31] ^= 0x80
            cases.append(("flip in element \(position)", verify(first, second, firstRoot, secondRoot, flipped)))
            var removed = path
            removed.remove(at: position)
            cases.append(("element \(position) removed", verify(first, second, firstRoot, secondRoot, removed)))
        }
        return cases
    }

    // MARK: §3.4 worked example (seven leaves)

    @Test func workedExampleOfSevenLeaves() {
        let t = InMemoryMerkleTree(leafHashes: Self.leafInputs.prefix(7).map { MerkleHash.leaf($0) })
        let l = t.levels
        let (a, b, c, d, e, f, j) = (l[0][0], l[0][1], l[0][2], l[0][3], l[0][4], l[0][5], l[0][6])
        let g = MerkleHash.node(a, b)
        let h = MerkleHash.node(c, d)
        let i = MerkleHash.node(e, f)
        let k = MerkleHash.node(g, h)
        let lNode = MerkleHash.node(i, j)
        #expect(t.root(size: 7) == MerkleHash.node(k, lNode))
        #expect(t.proofs.inclusionPath(index: 0, size: 7) == [b, h, lNode])
        #expect(t.proofs.inclusionPath(index: 3, size: 7) == [c, g, lNode])
        #expect(t.proofs.inclusionPath(index: 4, size: 7) == [f, j, k])
        #expect(t.proofs.inclusionPath(index: 6, size: 7) == [i, k])
        #expect(t.proofs.consistencyProof(first: 3, second: 7) == [c, d, g, lNode])
        #expect(t.proofs.consistencyProof(first: 4, second: 7) == [lNode])
        #expect(t.proofs.consistencyProof(first: 6, second: 7) == [i, j, k])
    }

    /// Trap 6: the (leaf 1, size 5) path also verifies as size 6 against the size-5 root; sizes come from checkpoints.
    @Test func sizeCollisionOfTrap6() {
        let tree = Self.tree
        let path = tree.proofs.inclusionPath(index: 1, size: 5)
        let root5 = tree.root(size: 5)
        #expect(MerkleProof.verifyInclusion(index: 1, size: 6, leafHash: tree.levels[0][1], path: path, root: root5) == .verified)
    }

    // MARK: Every proof of trees of 1…64 leaves

    @Test func everyProofOfTreesUpTo64Leaves() {
        let leaves = (0..<64).map { MerkleHash.leaf(Array("entry \($0)".utf8)) }
        let tree = InMemoryMerkleTree(leafHashes: leaves)
        var checked = 0
        for n in UInt64(1)...64 {
            let root = MerkleHash.root(leafHashes: leaves.prefix(Int(n)))
            #expect(tree.root(size: n) == root)
            for m in 0..<n {
                let path = tree.proofs.inclusionPath(index: m, size: n)
                let inner = UInt64(64 - (m ^ (n - 1)).leadingZeroBitCount)
                #expect(path.count == Int(inner) + (m >> inner).nonzeroBitCount, "length of PATH(\(m), \(n))")
                #expect(MerkleProof.verifyInclusion(index: m, size: n, leafHash: leaves[Int(m)], path: path, root: root) == .verified)
                if !path.isEmpty {
                    var flipped = path
                    flipped[flipped.count - 1][0] ^= 1
                    #expect(!MerkleProof.verifyInclusion(index: m, size: n, leafHash: leaves[Int(m)], path: flipped, root: root).isVerified)
                    #expect(
                        !MerkleProof.verifyInclusion(index: m, size: n, leafHash: leaves[Int(m)], path: path.dropLast(), root: root)
                            .isVerified)
                }
                #expect(
                    !MerkleProof.verifyInclusion(index: m, size: n, leafHash: leaves[Int(m)], path: path + [root], root: root).isVerified)
                checked += 1
            }
            for m in 1...n {
                let proof = tree.proofs.consistencyProof(first: m, second: n)
                let old = tree.root(size: m)
                #expect(
                    MerkleProof.verifyConsistency(first: m, second: n, firstRoot: old, secondRoot: root, path: proof) == .verified,
                    "PROOF(\(m), \(n))")
                if m < n {
                    var flipped = proof
                    flipped[0][5] ^= 1
                    #expect(!MerkleProof.verifyConsistency(first: m, second: n, firstRoot: old, secondRoot: root, path: flipped).isVerified)
                    #expect(
                        !MerkleProof.verifyConsistency(first: m, second: n, firstRoot: old, secondRoot: root, path: proof + [root])
                            .isVerified)
                    #expect(
                        !MerkleProof.verifyConsistency(first: m, second: n, firstRoot: root, secondRoot: root, path: proof).isVerified)
                }
                checked += 1
            }
        }
        #expect(checked == 64 * 65)
    }

    /// Random trees of up to 300 leaves: every PATH and PROOF verifies; removing, appending or flipping an element
    /// fails. The seed is printed; `CUSTOS_TEST_SEED` overrides it.
    @Test func randomTreesUpTo300Leaves() {
        var rng = SeededGenerator.fromEnvironment(label: "randomTreesUpTo300Leaves")
        for _ in 0..<4 {
            let n = UInt64.random(in: 1...300, using: &rng)
            let leaves = (0..<n).map { _ in MerkleHash.leaf((0..<8).map { _ in UInt8.random(in: 0...255, using: &rng) }) }
            let tree = InMemoryMerkleTree(leafHashes: leaves)
            let root = tree.root(size: n)
            for m in 0..<n {
                let path = tree.proofs.inclusionPath(index: m, size: n)
                #expect(MerkleProof.verifyInclusion(index: m, size: n, leafHash: leaves[Int(m)], path: path, root: root) == .verified)
                if !path.isEmpty {
                    var flipped = path
                    let position = Int.random(in: 0..<path.count, using: &rng)
                    flipped[position][Int.random(in: 0..<32, using: &rng)] ^= 1 << UInt8.random(in: 0...7, using: &rng)
                    #expect(!MerkleProof.verifyInclusion(index: m, size: n, leafHash: leaves[Int(m)], path: flipped, root: root).isVerified)
                    var removed = path
                    removed.remove(at: position)
                    #expect(!MerkleProof.verifyInclusion(index: m, size: n, leafHash: leaves[Int(m)], path: removed, root: root).isVerified)
                }
                let old = tree.root(size: m + 1)
                let proof = tree.proofs.consistencyProof(first: m + 1, second: n)
                #expect(MerkleProof.verifyConsistency(first: m + 1, second: n, firstRoot: old, secondRoot: root, path: proof) == .verified)
                if !proof.isEmpty {
                    var flipped = proof
                    flipped[Int.random(in: 0..<proof.count, using: &rng)][Int.random(in: 0..<32, using: &rng)] ^= 1
                    #expect(
                        !MerkleProof.verifyConsistency(first: m + 1, second: n, firstRoot: old, secondRoot: root, path: flipped).isVerified)
                    #expect(
                        !MerkleProof.verifyConsistency(first: m + 1, second: n, firstRoot: old, secondRoot: root, path: proof + [old])
                            .isVerified)
                }
            }
        }
    }
}

/// SplitMix64: a small seeded generator; the seed is printed so a failure can be replayed with `CUSTOS_TEST_SEED`.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    static func fromEnvironment(label: String) -> SeededGenerator {
        let seed = ProcessInfo.processInfo.environment["CUSTOS_TEST_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: 0...UInt64.max)
        print("\(label): seed \(seed) (set CUSTOS_TEST_SEED=\(seed) to replay)")
        return SeededGenerator(seed: seed)
    }
}
