import CustosAudit
import CustosCrypto
import CustosTestSupport
import Foundation
import Testing

/// Custos's roots and proofs checked by a peer from PyPI: pymerkle 7.0.0 (an RFC 9162 tree), run from a git-ignored
/// venv that scripts/audit/setup-venv.sh builds once. Needs python3-venv and PyPI once; fails (never skips) without.
@Suite struct PymerklePeerTests {
    static let python: Result<String, any Error> = Result {
        let script = TestData.packageRoot.appendingPathComponent("scripts/audit/setup-venv.sh").path
        let result = try Subprocess.run("/bin/sh", [script])
        guard result.status == 0, let path = result.stdout.split(separator: "\n").last.map(String.init), !path.isEmpty else {
            throw AuditError(.database, "could not build the pymerkle venv (exit \(result.status)): \(result.stderr)")
        }
        return path
    }

    /// Every root of sizes 1…64, every inclusion path and every consistency proof of those trees.
    @Test(.timeLimit(.minutes(10))) func pymerkleAgreesOnEveryProofUpTo64Leaves() throws {
        let python = try Self.python.get()
        let entries = (0..<64).map { index in Array("{\"seq\":\(index)}".utf8) + (index % 3 == 0 ? [] : [UInt8(index)]) }
        let tree = InMemoryMerkleTree(leafHashes: entries.map { MerkleHash.leaf($0) })
        var roots: [String: JSONValue] = [:]
        var inclusion: [JSONValue] = []
        var consistency: [JSONValue] = []
        func hexes(_ hashes: [[UInt8]]) -> JSONValue { .array(hashes.map { .string(Hex.encode($0)) }) }
        for n in UInt64(1)...64 {
            roots[String(n)] = .string(Hex.encode(tree.root(size: n)))
            for m in 0..<n {
                inclusion.append([.integer(Int64(m)), .integer(Int64(n)), hexes(tree.proofs.inclusionPath(index: m, size: n))])
            }
            for m in 1..<n {
                consistency.append([.integer(Int64(m)), .integer(Int64(n)), hexes(tree.proofs.consistencyProof(first: m, second: n))])
            }
        }
        let input: JSONValue = [
            "leaves": .array(entries.map { .string(Hex.encode($0)) }), "roots": .object(roots), "inclusion": .array(inclusion),
            "consistency": .array(consistency),
        ]
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("custos-pymerkle-\(UUID().uuidString).json")
        try Data(CanonicalJSON.encode(input)).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let script = TestData.packageRoot.appendingPathComponent("scripts/audit/pymerkle_check.py").path
        let result = try Subprocess.run(python, [script, file.path])
        #expect(result.status == 0, "\(result.stderr)")
        let output = try JSONValue.parse(result.stdout.trimmingCharacters(in: .newlines))
        #expect(output["checked"] == .integer(Int64(64 + inclusion.count + consistency.count)))
        #expect(output["mismatches"] == .array([]))
    }
}
