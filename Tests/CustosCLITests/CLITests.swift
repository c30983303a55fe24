import CustosTestSupport
import Foundation
import Testing

typealias CLI = CustosExecutable

@Suite(
    Requirement.skipOrFail(unless: CLI.isBuilt && TestData.isAvailable, "needs the custos executable (swift build) and the vendor testdata")
)
struct CertsCLITests {
    struct Status: Decodable {
        let id: String
        let sha256: String
        let installed: Bool
        let vendor: String
        let role: String
        let subject: String?
    }

    @Test func installThenListJSONShowsAllElevenInstalled() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("custos-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try FileManager.default.copyItem(
            at: TestData.packageRoot.appendingPathComponent("Certs/anchors.json"), to: dir.appendingPathComponent("anchors.json"))

        let before = try CLI.run(["certs", "list", "--json", "--certs", dir.path])
        #expect(before.status == 0)
        let notYet = try JSONDecoder().decode([Status].self, from: Data(before.stdout.utf8))
        #expect(notYet.count == 11)
        #expect(notYet.allSatisfy { !$0.installed })

        let install = try CLI.run(["certs", "install", "--certs", dir.path, "--from", TestData.root.path])
        #expect(install.status == 0, "\(install.stdout)\(install.stderr)")

        let after = try CLI.run(["certs", "list", "--json", "--certs", dir.path])
        let statuses = try JSONDecoder().decode([Status].self, from: Data(after.stdout.utf8))
        #expect(statuses.count == 11)
        #expect(statuses.allSatisfy { $0.installed })
        let intel = try #require(statuses.first { $0.vendor == "Intel" })
        #expect(intel.sha256 == "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3")
        #expect(intel.subject?.hasSuffix("CN=Intel SGX Root CA") == true)
        #expect(statuses.filter { $0.vendor == "AMD" }.count == 10)
    }

    /// A mirror that is not there is input Custos cannot use (exit 2, `fileNotFound`); exit 1 is for anchors the
    /// mirror holds but whose pins do not match.
    @Test func installFromAMissingMirrorFailsWithExitCode2() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("custos-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try FileManager.default.copyItem(
            at: TestData.packageRoot.appendingPathComponent("Certs/anchors.json"), to: dir.appendingPathComponent("anchors.json"))
        let result = try CLI.run(["certs", "install", "--certs", dir.path, "--from", "/nonexistent"])
        #expect(result.status == 2)
        #expect(result.stderr.contains("the mirror /nonexistent does not exist"))
    }

    @Test func usageErrorsExitWithTwoAndVersionPrints() throws {
        #expect(try CLI.run(["certs", "install", "--download", "--from", "/tmp"]).status == 2)
        let unknown = try CLI.run(["no-such-command"])
        #expect(unknown.status == 2)
        #expect(unknown.stderr.contains("no-such-command"))
        #expect(try CLI.run(["--help"]).status == 0)
        let version = try CLI.run(["version", "--json"])
        #expect(version.status == 0)
        #expect(version.stdout.contains("OpenSSL 3"))
        let missing = try CLI.run(["certs", "list", "--certs", "/nonexistent"])
        #expect(missing.status == 2)
        #expect(missing.stderr.contains("manifestInvalid"))
    }
}
