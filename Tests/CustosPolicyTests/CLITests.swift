import CustosCrypto
import CustosTestSupport
import Foundation
import Testing

@testable import CustosCLI
@testable import CustosPolicy

/// `custos policy …` exit codes and output.
@Suite struct PolicyCLITests {
    func run(_ arguments: [String]) -> Int32 { CustosCommand.exitStatus(running: arguments) }

    /// A temporary directory with `files`; removed by the caller.
    func directory(_ files: [String: String]) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("custos-policy-\(UUID().uuidString)")
        for (name, text) in files {
            let url = dir.appendingPathComponent(name)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(text.utf8).write(to: url)
        }
        return dir
    }

    @Test("lint: 0 on the shipped policies, 1 on problems, 2 on a missing directory")
    func lint() throws {
        #expect(run(["policy", "lint", Fixture.policiesDirectory.path]) == 0)
        let bad = try directory(["x/bad.yaml": Fixture.appraisal("{ claim: tdx.nope, equals: x }")])
        defer { try? FileManager.default.removeItem(at: bad) }
        #expect(run(["policy", "lint", bad.path]) == 1)
        #expect(run(["policy", "lint", "/nonexistent-\(UUID())"]) == 2)
    }

    /// The shipped example sets (`examples: true`) are named in a note; a folder without examples gets none.
    @Test("lint notes the example reference values", .enabled(if: CustosExecutable.isBuilt))
    func lintNotesExamples() throws {
        let shipped = try CustosExecutable.run(["policy", "lint", Fixture.policiesDirectory.path])
        #expect(shipped.status == 0)
        let note = shipped.stdout.split(separator: "\n").first { $0.hasPrefix("note: ") }
        #expect(note?.contains("5 of the sets are examples (mr_config_id, mr_td, rtmr_1, rtmr_2, xfam)") == true, "\(shipped.stdout)")
        let own = try directory([
            "rv.yaml": "apiVersion: custos/v1\nkind: ReferenceValues\nsets:\n  mr_td:\n    values: [\"aabb\"]\n"
        ])
        defer { try? FileManager.default.removeItem(at: own) }
        let result = try CustosExecutable.run(["policy", "lint", own.path])
        #expect(result.status == 0)
        #expect(!result.stdout.contains("note:"))
        let set = try PolicySet.load(directory: own)
        #expect(set.referenceValues["mr_td"]?.isExample == false && set.exampleSets.isEmpty)
        #expect(
            try PolicySet.load(directory: Fixture.policiesDirectory).exampleSets.allSatisfy {
                $0.file?.hasSuffix("tdx-examples.yaml") == true
            })
    }

    @Test("lint prints one file:line:col: message per problem", .enabled(if: CustosExecutable.isBuilt))
    func lintOutput() throws {
        let bad = try directory([
            "a.yaml": Fixture.appraisal("{ claim: tdx.nope, equals: x }", id: "a"),
            "b.yaml": Fixture.appraisal("{ claim: sev.build_id, equals: x }", id: "b"),
        ])
        defer { try? FileManager.default.removeItem(at: bad) }
        let result = try CustosExecutable.run(["policy", "lint", bad.path])
        #expect(result.status == 1)
        let lines = result.stdout.split(separator: "\n").map(String.init)
        #expect(lines.count == 2)
        #expect(lines.first?.hasPrefix(bad.path + "/a.yaml:10:20: unknown claim 'tdx.nope'") == true)
        #expect(lines.last?.hasPrefix(bad.path + "/b.yaml:10:42: ") == true)
    }

    @Test("eval: exit 0 allow, 1 deny, 2 bad claims or unknown policy")
    func eval() throws {
        let dir = try directory(["t.yaml": Fixture.appraisal("{ claim: tdx.tcb_status, equals: UpToDate }")])
        defer { try? FileManager.default.removeItem(at: dir) }
        let allow = dir.appendingPathComponent("allow.json")
        try Data(#"{"tdx": {"tcb_status": "UpToDate"}}"#.utf8).write(to: allow)
        let deny = dir.appendingPathComponent("deny.json")
        try Data(#"{"tdx": {"tcb_status": "OutOfDate"}}"#.utf8).write(to: deny)
        let broken = dir.appendingPathComponent("broken.json")
        try Data(#"{"tdx": {"tcb_status": 1.5}}"#.utf8).write(to: broken)
        let base = ["policy", "eval", "--policies", dir.path, "--policy", "t", "--claims"]
        #expect(run(base + [allow.path]) == 0)
        #expect(run(base + [deny.path, "--json"]) == 1)
        #expect(run(base + [broken.path]) == 2)
        #expect(run(base + ["/nonexistent.json"]) == 2)
        #expect(run(["policy", "eval", "--policies", dir.path, "--policy", "nope", "--claims", allow.path]) == 2)
    }

    @Test("hash and list", .enabled(if: CustosExecutable.isBuilt))
    func hashAndList() throws {
        let dir = try directory(["p.yaml": HashTests.block])
        defer { try? FileManager.default.removeItem(at: dir) }
        let hash = try CustosExecutable.run(["policy", "hash", dir.appendingPathComponent("p.yaml").path])
        #expect(hash.status == 0)
        #expect(hash.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "hash-test@sha256:\(HashTests.expected)")
        let list = try CustosExecutable.run(["policy", "list", "--policies", dir.path, "--json"])
        #expect(list.status == 0)
        let entries = try JSONValue.parse(Array(list.stdout.utf8))
        #expect(
            entries == [
                ["id": "hash-test", "kind": "AppraisalPolicy", "tee": "tdx", "file": "p.yaml", "sha256": .string(HashTests.expected)]
            ])
        #expect(try CustosExecutable.run(["policy", "hash", "/nonexistent.yaml"]).status == 2)
    }
}
