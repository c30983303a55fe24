import CustosAudit
import CustosCrypto
import CustosKBS
import CustosServer
import CustosTestSupport
import Foundation
import Logging
import Testing

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
