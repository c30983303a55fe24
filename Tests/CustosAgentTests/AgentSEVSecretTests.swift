import CustosAgent
import CustosCrypto
import CustosTestSupport
import Foundation
import Testing

/// `custos agent sev-secret` on a fake securityfs (efi_secret's `secrets/coco/<guid>` files).
@Suite(.enabled(if: CustosExecutable.isBuilt, "needs the built custos binary (swift build --build-tests)"))
struct AgentSEVSecretTests {
    /// The LUKS GUID of sev.md §5.1 and a second entry.
    static let luks = "736869e5-84f0-4973-92ec-06879ce3da0b"
    static let other = "0a0b0c0d-1111-2222-3333-444455556666"
    static let secret = Array("disk key from the guest owner".utf8)

    struct Tree {
        let root: URL
        let securityfs: URL
        let output: URL
        func cleanUp() {
            try? FileManager.default.removeItem(at: root)
            try? FileManager.default.removeItem(at: output)
        }
    }

    static func tree(secrets: [String: [UInt8]]?) throws -> Tree {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("custos-sev-\(UUID().uuidString)")
        let securityfs = root.appendingPathComponent("security")
        try FakeGuestTrees.makeSecurityfs(at: securityfs, secrets: secrets)
        return Tree(
            root: root, securityfs: securityfs, output: URL(fileURLWithPath: "/dev/shm/custos-sev-out-\(UUID().uuidString)"))
    }

    static func run(_ tree: Tree, _ arguments: [String]) throws -> CustosExecutable.Result {
        try CustosExecutable.run(["agent", "sev-secret"] + arguments + ["--securityfs", tree.securityfs.path, "--json"])
    }

    /// The secret is written 0400 on tmpfs and the securityfs entry is unlinked; the other entry stays.
    @Test func secretIsWrittenAndTheEntryUnlinked() throws {
        let tree = try Self.tree(secrets: [Self.luks: Self.secret, Self.other: [1, 2, 3]])
        defer { tree.cleanUp() }
        let out = tree.output.appendingPathComponent("luks.key").path
        // Upper case is accepted and mapped to the driver's lower-case file name.
        let result = try Self.run(tree, ["--guid", Self.luks.uppercased(), "--out", out])
        #expect(result.status == 0, "\(result.stdout) \(result.stderr)")
        #expect(FileManager.default.contents(atPath: out).map { [UInt8]($0) } == Self.secret)
        #expect(try permissions(out) == 0o400)
        let coco = tree.securityfs.appendingPathComponent("secrets/coco")
        #expect(!FileManager.default.fileExists(atPath: coco.appendingPathComponent(Self.luks).path))
        #expect(FileManager.default.fileExists(atPath: coco.appendingPathComponent(Self.other).path))
        let report = try JSONValue.parse(Array(result.stdout.utf8))
        #expect(report["unlinked"] == true)
        #expect(report["bytes"] == .integer(Int64(Self.secret.count)))
    }

    /// `--list` prints GUIDs, never values.
    @Test func listShowsGUIDsOnly() throws {
        let tree = try Self.tree(secrets: [Self.luks: Self.secret, Self.other: [1, 2, 3]])
        defer { tree.cleanUp() }
        let result = try Self.run(tree, ["--list"])
        #expect(result.status == 0)
        let report = try JSONValue.parse(Array(result.stdout.utf8))
        #expect(report["guids"] == .array([.string(Self.other), .string(Self.luks)]))
        #expect(!result.stdout.contains("disk key"))
    }

    /// A GUID that is not there: exit 2, stage `secret`, the GUIDs present named; nothing written, nothing removed.
    @Test func missingGUIDIsAClearError() throws {
        let tree = try Self.tree(secrets: [Self.other: [1, 2, 3]])
        defer { tree.cleanUp() }
        let out = tree.output.appendingPathComponent("luks.key").path
        let result = try Self.run(tree, ["--guid", Self.luks, "--out", out])
        #expect(result.status == 2)
        let error = try #require(FakeGuest.error(result))
        #expect(error["code"] == "secretUnusable")
        #expect(error["field"] == "secret")
        let message = error["message"]?.stringValue ?? ""
        #expect(message.contains("no secret \(Self.luks)") && message.contains(Self.other), "\(message)")
        #expect(!FileManager.default.fileExists(atPath: out))
    }

    /// securityfs without `secrets/coco` (driver absent), and no securityfs at all: distinct messages.
    @Test func absentDriverAndUnmountedSecurityfs() throws {
        let tree = try Self.tree(secrets: nil)
        defer { tree.cleanUp() }
        let noDriver = try Self.run(tree, ["--list"])
        #expect(noDriver.status == 2)
        #expect(FakeGuest.error(noDriver)?["message"]?.stringValue?.contains("efi_secret driver is absent") == true, "\(noDriver.stdout)")
        let unmounted = try CustosExecutable.run([
            "agent", "sev-secret", "--list", "--securityfs", tree.root.appendingPathComponent("nothing").path, "--json",
        ])
        #expect(unmounted.status == 2)
        #expect(FakeGuest.error(unmounted)?["message"]?.stringValue?.contains("securityfs is not mounted") == true, "\(unmounted.stdout)")
    }

    /// The output on disk is refused before the entry is touched: the secret stays in securityfs.
    @Test func diskOutputKeepsTheEntry() throws {
        let tree = try Self.tree(secrets: [Self.luks: Self.secret])
        defer { tree.cleanUp() }
        try #require(!SecretFileWriter.isMemoryBacked(TestData.packageRoot.path))
        let out = TestData.packageRoot.appendingPathComponent(".build/sev-\(UUID().uuidString).key").path
        let result = try Self.run(tree, ["--guid", Self.luks, "--out", out])
        #expect(result.status == 2)
        #expect(FakeGuest.error(result)?["code"] == "writeUnusable")
        #expect(FileManager.default.fileExists(atPath: tree.securityfs.appendingPathComponent("secrets/coco/\(Self.luks)").path))
        #expect(!FileManager.default.fileExists(atPath: out))
    }

    @Test(arguments: ["", "736869e5", "736869e5-84f0-4973-92ec-06879ce3da0", "736869e5-84f0-4973-92ec-06879ce3da0g", "../../etc/passwd"])
    func malformedGUIDsAreRefused(guid: String) {
        #expect(throws: AgentError(.usage, .unusable, "")) { try EFISecretStore.normalize(guid: guid) }
    }
}
