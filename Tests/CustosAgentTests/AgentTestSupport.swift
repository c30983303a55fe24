import AsyncHTTPClient
import CustosCrypto
import CustosTDX
import CustosTestSupport
import Foundation
import NIOCore
import NIOHTTP1
import Testing

#if canImport(Glibc)
    import Glibc
#endif

// MARK: - A running `custos serve` for the agent's tests

struct AgentTestError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// `custos serve` started as a user would (`--tdx-root` with the test hierarchy's root, `--collateral` with its
/// collateral valid from yesterday for 30 days), on a free loopback port, with a fresh data directory.
final class ServiceProcess {
    let directory: URL
    let server: ServeProcess
    var port: Int { server.port }
    var baseURL: String { server.baseURL }
    let adminToken: String

    static let hierarchy = Result { try TDXTestHierarchy() }

    /// A quote spec valid now whose RTMRs are those the real CCEL replays to (q10's).
    static func spec() throws -> TDXQuoteSpec {
        var spec = TDXQuoteSpec()
        let now = Date()
        spec.issueDate = Date.ISO8601FormatStyle().format(now.addingTimeInterval(-86_400))
        spec.nextUpdate = Date.ISO8601FormatStyle().format(now.addingTimeInterval(30 * 86_400))
        spec.rtmrs = try FakeGuestTrees.realRTMRs()
        return spec
    }

    /// Starts the service.
    init(directory: URL, spec: TDXQuoteSpec) async throws {
        self.directory = directory
        let hierarchy = try Self.hierarchy.get()
        let root = directory.appendingPathComponent("tdx-root.pem")
        try Data(hierarchy.root.pemRepresentation.utf8).write(to: root)
        let platform = directory.appendingPathComponent("collateral").appendingPathComponent(Hex.encode(spec.fmspc).uppercased())
        try FileManager.default.createDirectory(at: platform, withIntermediateDirectories: true)
        for (name, bytes) in try hierarchy.collateralFiles(spec) { try Data(bytes).write(to: platform.appendingPathComponent(name)) }
        let data = directory.appendingPathComponent("var")
        server = try ServeProcess(
            arguments: [
                "--data", data.path, "--policies", TestData.packageRoot.appendingPathComponent("Policies").path, "--collateral",
                directory.appendingPathComponent("collateral").path, "--tdx-root", root.path,
            ], log: directory.appendingPathComponent("serve.log"), logLevel: "warning", workingDirectory: directory)
        try await server.waitUntilHealthy()
        // The bootstrap token is written before the server listens.
        let tokenFile = data.appendingPathComponent("bootstrap-admin.token")
        adminToken = try String(contentsOf: tokenFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// SIGTERM and wait: the graceful stop `make run`'s user gets.
    func stop() {
        guard server.process.isRunning else { return }
        kill(server.process.processIdentifier, SIGTERM)
        server.process.waitUntilExit()
    }

    static func freePort() throws -> Int { try ServeProcess.freePort() }

    /// An admin request (plain HTTP).
    func admin(_ method: HTTPMethod, _ path: String, body: [UInt8]) async throws -> (Int, String) {
        var configuration = HTTPClient.Configuration()
        configuration.timeout = .init(connect: .seconds(10), read: .seconds(30))
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        do {
            var request = HTTPClientRequest(url: baseURL + path)
            request.method = method
            request.headers.add(name: "Authorization", value: "Bearer \(adminToken)")
            request.body = .bytes(ByteBuffer(bytes: body))
            let response = try await client.execute(request, timeout: .seconds(30))
            let text = String(buffer: try await response.body.collect(upTo: 1 << 20))
            try await client.shutdown()
            return (Int(response.status.code), text)
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    /// The default tenant's reference values for `spec`'s quotes and one secret at `default/key/disk`.
    func provision(spec: TDXQuoteSpec, secret: [UInt8], path: String = "default/key/disk") async throws {
        let sets: [(String, [UInt8])] = [("mr_td", spec.mrTD), ("rtmr_1", spec.rtmrs[1]), ("rtmr_2", spec.rtmrs[2])]
        for (name, value) in sets {
            let (status, text) = try await admin(
                .PUT, "/v1/reference-values/default/\(name)", body: CanonicalJSON.encode(["values": [.string(Hex.encode(value))]]))
            guard status == 200 else { throw AgentTestError("PUT reference value \(name): \(status) \(text)") }
        }
        let (status, text) = try await admin(.PUT, "/v1/secrets/\(path)", body: secret)
        guard status == 201 else { throw AgentTestError("PUT secret: \(status) \(text)") }
    }
}

// MARK: - A guest: fake trees and the agent binary

/// A temporary guest: a fake configfs-tsm driven by the test hierarchy, a fake sysfs with the real CCEL, and an
/// output directory on tmpfs (/dev/shm).
final class FakeGuest {
    let directory: URL
    let output: URL
    let configfs: FakeConfigfsTSM
    let sysfs: URL

    init(spec: TDXQuoteSpec, concurrentWrites: Int = 0, readRaces: Int = 0, ccel: Bool = true) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("custos-agent-\(UUID().uuidString)")
        output = URL(fileURLWithPath: "/dev/shm").appendingPathComponent("custos-agent-out-\(UUID().uuidString)")
        let factory = try ServiceProcess.hierarchy.get().quoteFactory(spec)
        configfs = try FakeConfigfsTSM(
            root: directory.appendingPathComponent("config"), factory: factory, concurrentWrites: concurrentWrites, readRaces: readRaces)
        sysfs = directory.appendingPathComponent("sys")
        let (table, data) = try FakeGuestTrees.realCCEL()
        try FakeGuestTrees.makeSysfs(at: sysfs, table: ccel ? table : nil, data: ccel ? data : nil)
        configfs.start()
    }

    func cleanUp() {
        configfs.stop()
        try? FileManager.default.removeItem(at: directory)
        try? FileManager.default.removeItem(at: output)
    }

    /// `custos agent ARGS --configfs … --sysfs …` (and `--json`).
    func agent(_ arguments: [String], environment: [String: String] = [:]) throws -> CustosExecutable.Result {
        try CustosExecutable.run(
            ["agent"] + arguments + ["--configfs", configfs.root.path, "--sysfs", sysfs.path, "--json"], environment: environment)
    }

    /// The `error` object of a `--json` failure.
    static func error(_ result: CustosExecutable.Result) -> JSONValue? {
        (try? JSONValue.parse(Array(result.stdout.utf8)))?["error"]
    }
}

/// Mode bits of a file.
func permissions(_ path: String) throws -> Int {
    let attributes = try FileManager.default.attributesOfItem(atPath: path)
    return (attributes[.posixPermissions] as? NSNumber)?.intValue ?? -1
}

/// The vendor data (CCEL, q10) and the built binary the agent tests need.
enum AgentTestConditions {
    static var ready: Bool { TestData.isAvailable && CustosExecutable.isBuilt }
    static let reason = "needs the vendor testdata (CCEL, q10) and the built custos binary (swift build --build-tests)"
}
