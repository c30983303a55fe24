import CustosAudit
import CustosCrypto
import CustosKBS
import CustosServer
import CustosTestSupport
import Foundation
import Logging
import Testing

@Suite struct InitDataTests {
    @Test func parsesTheCoCoTOMLSubsetAndDigestsTheBody() throws {
        let body = """
            # init-data
            version = "0.1.0"
            algorithm = "sha256"
            count = 1_000

            [data]
            tenant = 'acme'
            "policy.rego" = "x"
            """
        // A quoted key is outside the subset: refused, not guessed.
        #expect(throws: InitData.Invalid.self) { try InitData(KBSInitData(format: "toml", body: body)) }
        let accepted = """
            version = "0.1.0"
            algorithm = "sha256"
            count = 1_000
            debug = false

            [data]
            tenant = 'acme'
            policy = '''
            package agent_policy
            default allow = true
            '''
            escaped = "a\\tb\\"c"
            """
        let initData = try InitData(KBSInitData(format: "toml", body: accepted))
        #expect(initData.tenant == "acme")
        #expect(initData.algorithm == .sha256)
        // MRCONFIGID: the SHA-256 of the exact body, zero-padded to 48 bytes (computed here with the digest alone).
        #expect(initData.mrConfigID == Digest.sha256(Array(accepted.utf8)) + [UInt8](repeating: 0, count: 16))
        #expect(initData.claims["count"] == 1000)
        #expect(initData.claims["debug"] == false)
        #expect(initData.claims["data"]?["policy"] == "package agent_policy\ndefault allow = true\n")
        #expect(initData.claims["data"]?["escaped"] == "a\tb\"c")
    }

    @Test(arguments: [
        "a = [1, 2]", "a = 1.5", "[[array]]\nb = 1", "a = \"unterminated", "a = '''open", "x = 1\nx = 2", "[t]\n[t]", "a.b = 1",
        "algorithm = \"md5\"", "a = \"\\u0041\"",
    ])
    func refusesWhatItDoesNotSupport(_ body: String) {
        #expect(throws: InitData.Invalid.self) { try InitData(KBSInitData(format: "toml", body: body)) }
    }

    @Test func refusesOtherFormats() {
        #expect(throws: InitData.Invalid.self) { try InitData(KBSInitData(format: "json", body: "{}")) }
    }
}

@Suite(Requirement.custosExecutable) struct KeysRotateTests {
    @Test func rotationIsAuditedKeepsTheOldKeyPublishedAndNeedsTheLock() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("custos-keys-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        var configuration = ServerConfiguration()
        configuration.dataDirectory = directory.path
        configuration.policiesDirectory = TestData.packageRoot.appendingPathComponent("Policies").path
        var parts: CustosService.Parts? = try await CustosService.assemble(configuration: configuration, logger: Logger(label: "t"))
        let first = try #require(parts?.tokens?.currentKeyID)
        // While the service holds the data directory, rotation refuses.
        let refused = try CustosExecutable.run(["keys", "rotate", "--data", directory.path])
        #expect(refused.status == 2)
        #expect(refused.stderr.contains("in use"))
        parts = nil
        let rotated = try CustosExecutable.run(["keys", "rotate", "--data", directory.path, "--json"])
        #expect(rotated.status == 0, "\(rotated.stderr)")
        let output = try JSONValue.parse(Array(rotated.stdout.utf8))
        #expect(output["old_kid"] == .string(first))
        let second = try #require(output["new_kid"]?.stringValue)
        #expect(second != first)
        // The restarted service signs with the new key and still publishes the old one (its tokens may be live).
        let restarted = try await CustosService.assemble(configuration: configuration, logger: Logger(label: "t"))
        #expect(restarted.tokens?.currentKeyID == second)
        let published = restarted.tokens?.publishedKeys(now: Date(), tokenLifetime: 300).keys.compactMap(\.keyID) ?? []
        #expect(Set(published) == [first, second])
        #expect(
            restarted.tokens?.publishedKeys(now: Date().addingTimeInterval(301), tokenLifetime: 300).keys.compactMap(\.keyID) == [second])
        let entries = try #require(restarted.audit?.log.reader.entries(type: "key.rotated", limit: 10).records)
        #expect(entries.count == 1)
        #expect(entries.first?.entry["object"]?["new_kid"] == .string(second))
    }
}

@Suite(Requirement.custosExecutable) struct ServeRefusalTests {
    /// Asked for HTTPS, the service never falls back to plain HTTP: it refuses to start and says what to do.
    @Test func tlsFlagsAreRefusedNotIgnored() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("custos-tls-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let result = try CustosExecutable.run([
            "serve", "--listen", "127.0.0.1:0", "--data", directory.path, "--tls-cert", "cert.pem", "--tls-key", "key.pem",
        ])
        #expect(result.status == 2)
        #expect(result.stderr.contains("reverse proxy"))
        #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("custos.sqlite").path))
    }
}
