import CustosCrypto
import CustosTDX
import CustosTestSupport
import Foundation
import NIOHTTP1
import Testing

/// `custos agent fetch` (the real binary) on a fake configfs-tsm and the real CCEL, against a running `custos serve`.
@Suite(.serialized, .enabled(if: AgentTestConditions.ready, Comment(rawValue: AgentTestConditions.reason)))
struct AgentFlowTests {
    static let secret = Array("LUKS passphrase for the TD: correct horse battery staple\n".utf8)

    /// Runs `body` with a provisioned service and a fake guest, and tears both down.
    static func withService(
        guestSpec: TDXQuoteSpec? = nil, concurrentWrites: Int = 0, readRaces: Int = 0,
        _ body: (ServiceProcess, FakeGuest) async throws -> Void
    ) async throws {
        let spec = try ServiceProcess.spec()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("custos-agent-svc-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let service = try await ServiceProcess(directory: directory, spec: spec)
        defer { service.stop() }
        try await service.provision(spec: spec, secret: secret)
        let guest = try FakeGuest(spec: guestSpec ?? spec, concurrentWrites: concurrentWrites, readRaces: readRaces)
        defer { guest.cleanUp() }
        try await body(service, guest)
    }

    /// The whole flow: auth → attest (configfs-tsm quote, real CCEL) → resource; the file holds the stored secret,
    /// mode 0400, and the service's audit log records the release.
    @Test(.timeLimit(.minutes(10)))
    func fetchWritesTheStoredSecretWithMode0400() async throws {
        try await Self.withService { service, guest in
            let result = try guest.agent(["fetch", "--url", service.baseURL, "--resource", "default/key/disk", "--out", guest.output.path])
            #expect(result.status == 0, "stdout: \(result.stdout) stderr: \(result.stderr)")
            let file = guest.output.appendingPathComponent("key/disk").path
            #expect(FileManager.default.contents(atPath: file).map { [UInt8]($0) } == Self.secret)
            #expect(try permissions(file) == 0o400)
            let report = try JSONValue.parse(Array(result.stdout.utf8))
            #expect(report["handshakes"] == .integer(1))
            #expect(report["quoteSource"] == "configfs-tsm")
            // The trimmed CCEL went with the quote: smaller than the 256 KiB area, and non-empty.
            let logBytes = try #require(report["eventLogBytes"]?.integerValue)
            #expect(logBytes > 0 && logBytes < 262_144)
            #expect(guest.configfs.quotesIssued == 1)
            // No temporary files left next to the secret.
            let names = try FileManager.default.contentsOfDirectory(atPath: guest.output.appendingPathComponent("key").path)
            #expect(names == ["disk"])
            // The release is the service's audit event.
            let (status, audit) = try await service.admin(.GET, "/v1/audit/entries?limit=100", body: [])
            #expect(status == 200)
            #expect(audit.contains("secret.released"), "\(audit.prefix(500))")
        }
    }

    /// A TD whose MRTD has no reference value: the service issues a token but the release policy says no. Exit 1,
    /// stage `resource`, the service's `PolicyDeny` in the message, no file written.
    @Test(.timeLimit(.minutes(10)))
    func policyDenialExitsOneNamingTheResourceStage() async throws {
        var unknown = try ServiceProcess.spec()
        unknown.mrTD = [UInt8](repeating: 0x5e, count: 48)
        try await Self.withService(guestSpec: unknown) { service, guest in
            let result = try guest.agent(["fetch", "--url", service.baseURL, "--resource", "default/key/disk", "--out", guest.output.path])
            #expect(result.status == 1, "stdout: \(result.stdout) stderr: \(result.stderr)")
            let error = try #require(FakeGuest.error(result))
            #expect(error["code"] == "resourceRejected")
            #expect(error["field"] == "resource")
            #expect(error["message"]?.stringValue?.contains("PolicyDeny") == true, "\(error)")
            #expect(result.stderr.contains("resource:"))
            #expect(!FileManager.default.fileExists(atPath: guest.output.appendingPathComponent("key/disk").path))
        }
    }

    /// The TD attested as tenant `default` asks for another tenant's repository: PolicyDeny, exit 1.
    @Test(.timeLimit(.minutes(10)))
    func anotherTenantsResourceIsRefused() async throws {
        try await Self.withService { service, guest in
            let result = try guest.agent([
                "fetch", "--url", service.baseURL, "--resource", "default/key/disk,tenant-b/key/other", "--out", guest.output.path,
            ])
            #expect(result.status == 1, "stdout: \(result.stdout) stderr: \(result.stderr)")
            let error = try #require(FakeGuest.error(result))
            #expect(error["code"] == "resourceRejected")
            let message = error["message"]?.stringValue ?? ""
            #expect(message.contains("PolicyDeny") && message.contains("tenant-b"), "\(message)")
            // Nothing is written when any resource is refused.
            #expect(!FileManager.default.fileExists(atPath: guest.output.appendingPathComponent("key/disk").path))
        }
    }

    /// Another writer changes `generation` between the agent's inblob write and its read: the agent drops that
    /// entry (whose outblob is the other writer's quote) and succeeds on a fresh one.
    @Test(.timeLimit(.minutes(10)))
    func concurrentWriterIsRetriedOnAFreshEntry() async throws {
        try await Self.withService(concurrentWrites: 2) { service, guest in
            let result = try guest.agent(["fetch", "--url", service.baseURL, "--resource", "default/key/disk", "--out", guest.output.path])
            #expect(result.status == 0, "stdout: \(result.stdout) stderr: \(result.stderr)")
            #expect(guest.configfs.racesInjected == 2)
            #expect(guest.configfs.entries.count == 3)
            #expect(Set(guest.configfs.entries).count == 3)
            let file = guest.output.appendingPathComponent("key/disk").path
            #expect(FileManager.default.contents(atPath: file).map { [UInt8]($0) } == Self.secret)
        }
    }

    /// `generation` moves while the agent reads `outblob` (the fake bumps it after the agent opened the FIFO and
    /// before it writes the quote): the whole quote read is discarded and a fresh entry succeeds.
    @Test(.timeLimit(.minutes(10)))
    func generationBumpedDuringTheReadIsRetried() async throws {
        try await Self.withService(readRaces: 1) { service, guest in
            let result = try guest.agent(["fetch", "--url", service.baseURL, "--resource", "default/key/disk", "--out", guest.output.path])
            #expect(result.status == 0, "stdout: \(result.stdout) stderr: \(result.stderr)")
            #expect(guest.configfs.racesInjected == 1)
            #expect(guest.configfs.entries.count == 2)
            let file = guest.output.appendingPathComponent("key/disk").path
            #expect(FileManager.default.contents(atPath: file).map { [UInt8]($0) } == Self.secret)
        }
    }

    /// `custos agent evidence` returns the fake provider's quote with the given REPORTDATA, zero-padded.
    @Test(.timeLimit(.minutes(10)))
    func evidencePrintsAQuoteBoundToTheReportData() throws {
        let guest = try FakeGuest(spec: try ServiceProcess.spec())
        defer { guest.cleanUp() }
        let result = try guest.agent(["evidence", "--report-data", "00112233445566778899aabbccddeeff"])
        #expect(result.status == 0, "\(result.stdout) \(result.stderr)")
        let report = try JSONValue.parse(Array(result.stdout.utf8))
        let quote = try Base64.decode(try #require(report["quote"]?.stringValue))
        // REPORTDATA of a v4 quote is at offset 568 (48-byte header + 520): read by offset, not by the agent's parser.
        #expect(Array(quote[568..<584]) == (try Hex.decode("00112233445566778899aabbccddeeff")))
        #expect(Array(quote[584..<632]) == [UInt8](repeating: 0, count: 48))
    }
}
