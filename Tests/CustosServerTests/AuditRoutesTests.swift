import CustosAudit
import CustosCrypto
import CustosServer
import CustosStore
import CustosTestSupport
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Testing

/// The audit API over real HTTP: entries (scoped by tenant), the signed checkpoint, inclusion and consistency proofs
/// checked with CustosAudit's verifiers and, independently, with pymerkle (PyPI) and an RFC 9162 verifier in Python;
/// and the final checkpoint `custos serve` signs on SIGTERM.
@Suite struct AuditRoutesTests {
    struct Fixture {
        let directory: URL
        let parts: CustosService.Parts
        let store: any Store
        let audit: AuditRecorder
        let app: any ApplicationProtocol
    }

    static func configuration(_ directory: URL) -> ServerConfiguration {
        var configuration = ServerConfiguration()
        configuration.port = 0
        configuration.dataDirectory = directory.appendingPathComponent("data").path
        configuration.policiesDirectory = TestData.packageRoot.appendingPathComponent("Policies").path
        configuration.certsDirectory = directory.appendingPathComponent("certs").path
        return configuration
    }

    static func fixture() async throws -> Fixture {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("custos-audit-api-\(UUID().uuidString)")
        let parts = try await CustosService.assemble(configuration: configuration(directory), logger: Logger(label: "test"))
        return Fixture(
            directory: directory, parts: parts, store: try #require(parts.store), audit: try #require(parts.audit),
            app: CustosService.makeApplication(parts))
    }

    /// `count` events alternating between two tenants.
    static func appendEvents(_ audit: AuditRecorder, count: Int, from start: Int = 0) async throws {
        for index in start..<(start + count) {
            try await audit.record(
                index % 2 == 0 ? "secret.created" : "secret.rotated", tenant: index % 2 == 0 ? "tenant-a" : "tenant-b",
                actor: ["kind": "admin", "id": "test"], object: ["secret": .string("disk/key-\(index)"), "version": 1])
        }
    }

    static func token(_ store: any Store, tenant: String?, role: Role) async throws -> HTTPFields {
        let issued = try await store.createCredential(tenantId: tenant, role: role, label: "test", expiresAt: nil, now: Date())
        return [.authorization: "Bearer \(issued.token)"]
    }

    static func json(_ response: TestResponse) -> JSONValue { (try? JSONValue.parse(Array(buffer: response.body))) ?? .null }
    static func hashes(_ value: JSONValue?) -> [[UInt8]] {
        (value?.arrayValue ?? []).map { (try? Hex.decode($0.stringValue ?? "")) ?? [] }
    }

    /// Fetches and verifies the checkpoint with the key the discovery document publishes.
    static func checkpoint(_ client: some TestClientProtocol) async throws -> Checkpoint {
        var vkey = ""
        var origin = ""
        try await client.execute(uri: "/.well-known/attestation-service", method: .get) { response in
            vkey = json(response).value(atPath: "audit.verifier_key")?.stringValue ?? ""
            origin = json(response).value(atPath: "audit.origin")?.stringValue ?? ""
        }
        var note: [UInt8] = []
        try await client.execute(uri: "/v1/audit/checkpoint", method: .get) { response in
            #expect(response.status == .ok)
            #expect(response.headers[.contentType]?.hasPrefix("text/plain") == true)
            note = Array(buffer: response.body)
        }
        return try SignedCheckpoint(verifying: note, key: try NoteVerifierKey(parsing: vkey), origin: origin).checkpoint
    }

    /// Every entry, through the paged API.
    static func allEntries(_ client: some TestClientProtocol, headers: HTTPFields, limit: Int) async throws -> [JSONValue] {
        var entries: [JSONValue] = []
        var cursor: String? = nil
        repeat {
            let uri = "/v1/audit/entries?limit=\(limit)" + (cursor.map { "&cursor=\($0)" } ?? "")
            var next: String? = nil
            try await client.execute(uri: uri, method: .get, headers: headers) { response in
                #expect(response.status == .ok)
                let page = json(response)
                let items = page["entries"]?.arrayValue ?? []
                #expect(items.count <= limit)
                entries += items
                next = page["next_cursor"]?.stringValue
            }
            cursor = next
        } while cursor != nil && entries.count < 10_000
        return entries
    }

    @Test func proofsVerifyWithCustosAuditAndWithPymerkle() async throws {
        let fixture = try await Self.fixture()
        defer { try? FileManager.default.removeItem(at: fixture.directory) }
        try await Self.appendEvents(fixture.audit, count: 7)
        let auditor = try await Self.token(fixture.store, tenant: nil, role: .auditor)
        try await fixture.app.test(.live) { client in
            // The first checkpoint covers the 7 entries (none was signed yet, so the route signs one).
            let first = try await Self.checkpoint(client)
            #expect(first.size == 7)
            try await Self.appendEvents(fixture.audit, count: 6, from: 7)
            try await fixture.audit.log.signCheckpoint()
            let second = try await Self.checkpoint(client)
            #expect(second.size == 13)

            // Entries in pages of 5; their canonical bytes are the leaves.
            let entries = try await Self.allEntries(client, headers: auditor, limit: 5)
            #expect(entries.count == 13)
            #expect(entries.enumerated().allSatisfy { $0.element["seq"] == .integer(Int64($0.offset)) })
            let leaves = entries.map { CanonicalJSON.encode($0) }

            var inclusion: [JSONValue] = []
            for size in [first.size, second.size] {
                let root = size == first.size ? first.rootHash : second.rootHash
                for index in 0..<size {
                    try await client.execute(
                        uri: "/v1/audit/proofs/inclusion?index=\(index)&tree_size=\(size)", method: .get, headers: auditor
                    ) { response in
                        #expect(response.status == .ok)
                        let proof = Self.json(response)
                        #expect(proof["leafIndex"] == .integer(Int64(index)))
                        #expect(proof["treeSize"] == .integer(Int64(size)))
                        let leafHash = MerkleHash.leaf(leaves[Int(index)])
                        #expect(proof["leafHash"] == .string(Hex.encode(leafHash)))
                        let path = Self.hashes(proof["hashes"])
                        #expect(
                            MerkleProof.verifyInclusion(index: index, size: size, leafHash: leafHash, path: path, root: root).isVerified)
                        inclusion.append([.integer(Int64(index)), .integer(Int64(size)), proof["hashes"] ?? .null])
                    }
                }
            }
            var consistency: [[UInt8]] = []
            try await client.execute(uri: "/v1/audit/proofs/consistency?first=7&second=13", method: .get) { response in
                #expect(response.status == .ok)
                consistency = Self.hashes(Self.json(response)["hashes"])
            }
            #expect(
                MerkleProof.verifyConsistency(
                    first: 7, second: 13, firstRoot: first.rootHash, secondRoot: second.rootHash, path: consistency
                ).isVerified)
            // A tampered proof does not verify (the check can fail).
            var broken = consistency
            broken[0][0] ^= 1
            #expect(
                !MerkleProof.verifyConsistency(first: 7, second: 13, firstRoot: first.rootHash, secondRoot: second.rootHash, path: broken)
                    .isVerified)

            // Independently: pymerkle recomputes both roots from the entries and the paths; consistency is checked by
            // the script's own RFC 9162 verifier against pymerkle's roots.
            let input: JSONValue = [
                "leaves": .array(leaves.map { .string(Hex.encode($0)) }),
                "roots": ["7": .string(Hex.encode(first.rootHash)), "13": .string(Hex.encode(second.rootHash))],
                "inclusion": .array(inclusion),
                "consistency": [[7, 13, .array(consistency.map { .string(Hex.encode($0)) })]],
            ]
            let output = try Self.pymerkleCheck(input)
            #expect(output["checked"] == .integer(Int64(2 + inclusion.count + 1)))
            #expect(output["mismatches"] == .array([]))
        }
    }

    @Test func entriesAreScopedByTenantAndRequestsAreChecked() async throws {
        let fixture = try await Self.fixture()
        defer { try? FileManager.default.removeItem(at: fixture.directory) }
        for tenant in ["tenant-a", "tenant-b"] { _ = try await fixture.store.createTenant(id: tenant, displayName: tenant, now: Date()) }
        try await Self.appendEvents(fixture.audit, count: 9)
        let readerA = try await Self.token(fixture.store, tenant: "tenant-a", role: .tenantReader)
        let launcherA = try await Self.token(fixture.store, tenant: "tenant-a", role: .launcher)
        let admin = try await Self.token(fixture.store, tenant: nil, role: .serviceAdmin)
        try await fixture.app.test(.live) { client in
            let mine = try await Self.allEntries(client, headers: readerA, limit: 2)
            #expect(mine.count == 5)
            #expect(mine.allSatisfy { $0["tenant"] == "tenant-a" })
            #expect(try await Self.allEntries(client, headers: admin, limit: 100).count == 9)
            try await client.execute(uri: "/v1/audit/entries?tenant=tenant-b", method: .get, headers: admin) { response in
                #expect(Self.json(response)["entries"]?.arrayValue?.count == 4)
            }
            try await client.execute(uri: "/v1/audit/entries?type=secret.rotated", method: .get, headers: admin) { response in
                #expect(Self.json(response)["entries"]?.arrayValue?.allSatisfy { $0["type"] == "secret.rotated" } == true)
                #expect(Self.json(response)["entries"]?.arrayValue?.count == 4)
            }
            try await client.execute(uri: "/v1/audit/entries?since=2999-01-01T00:00:00Z", method: .get, headers: admin) { response in
                #expect(Self.json(response)["entries"] == .array([]))
            }
            // Another tenant's part of the log: 404; the launcher role reads no log: 403; no credential: 401.
            try await client.execute(uri: "/v1/audit/entries?tenant=tenant-b", method: .get, headers: readerA) {
                #expect($0.status == .notFound)
            }
            try await client.execute(uri: "/v1/audit/entries", method: .get, headers: launcherA) { #expect($0.status == .forbidden) }
            try await client.execute(uri: "/v1/audit/entries", method: .get) { #expect($0.status == .unauthorized) }
            try await client.execute(uri: "/v1/audit/proofs/inclusion?index=0", method: .get) { #expect($0.status == .unauthorized) }
            // A tenant proves inclusion of its own entries only.
            try await client.execute(uri: "/v1/audit/proofs/inclusion?index=0&tree_size=9", method: .get, headers: readerA) {
                #expect($0.status == .ok)
            }
            try await client.execute(uri: "/v1/audit/proofs/inclusion?index=1&tree_size=9", method: .get, headers: readerA) {
                #expect($0.status == .notFound)
            }
            // Bad parameters: 400 problems.
            for uri in [
                "/v1/audit/entries?limit=0", "/v1/audit/entries?limit=1001", "/v1/audit/entries?cursor=-1", "/v1/audit/entries?type=nope",
                "/v1/audit/entries?since=yesterday",
            ] {
                try await client.execute(uri: uri, method: .get, headers: admin) { response in
                    #expect(response.status == .badRequest, "\(uri)")
                    #expect(response.headers[.contentType] == "application/problem+json")
                }
            }
            for uri in [
                "/v1/audit/proofs/inclusion?index=9&tree_size=9", "/v1/audit/proofs/inclusion?index=0&tree_size=10",
                "/v1/audit/proofs/inclusion", "/v1/audit/proofs/consistency?first=0&second=9",
                "/v1/audit/proofs/consistency?first=5&second=4", "/v1/audit/proofs/consistency?first=x&second=4",
            ] {
                try await client.execute(uri: uri, method: .get, headers: admin) { #expect($0.status == .badRequest, "\(uri)") }
            }
        }
    }

    // MARK: Shutdown

    /// `custos serve` on a data directory whose log has entries no checkpoint covers: after SIGTERM, the latest
    /// checkpoint in the database covers the whole log.
    @Test(Requirement.skipOrFail(unless: CustosExecutable.isBuilt, "needs the custos executable (swift build)"))
    func sigtermSignsAFinalCheckpoint() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("custos-audit-stop-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let configuration = Self.configuration(directory)
        do {
            let parts = try await CustosService.assemble(configuration: configuration, logger: Logger(label: "test"))
            let audit = try #require(parts.audit)
            try await Self.appendEvents(audit, count: 5)
            #expect(audit.log.latestCheckpoint() == nil)
        }
        let server = try ServeProcess(arguments: [
            "--data", configuration.dataDirectory, "--policies", configuration.policiesDirectory, "--certs", configuration.certsDirectory,
        ])
        defer { server.kill() }
        try await server.waitUntilHealthy()
        #expect(await server.stop() == 0)

        let reopened = try await CustosService.assemble(configuration: configuration, logger: Logger(label: "test"))
        let log = try #require(reopened.audit?.log)
        let latest = try #require(log.latestCheckpoint())
        #expect(log.head.size == 5)
        #expect(latest.checkpoint.size == log.head.size)
        #expect(latest.checkpoint.rootHash == log.head.root)
    }

    // MARK: Python peer

    /// Runs scripts/audit/pymerkle_check.py (pymerkle 7.0.0 from the venv scripts/audit/setup-venv.sh builds).
    static func pymerkleCheck(_ input: JSONValue) throws -> JSONValue {
        let setup = try run("/bin/sh", [TestData.packageRoot.appendingPathComponent("scripts/audit/setup-venv.sh").path])
        let python = try #require(setup.stdout.split(separator: "\n").last.map(String.init), "pymerkle venv: \(setup.stderr)")
        try #require(setup.status == 0, "pymerkle venv: \(setup.stderr)")
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("custos-audit-api-\(UUID().uuidString).json")
        try Data(CanonicalJSON.encode(input)).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let result = try run(python, [TestData.packageRoot.appendingPathComponent("scripts/audit/pymerkle_check.py").path, file.path])
        try #require(result.status == 0, "pymerkle_check.py: \(result.stderr)")
        return try JSONValue.parse(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    static func run(_ executable: String, _ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
    }
}
