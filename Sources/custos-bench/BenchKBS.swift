import ArgumentParser
import AsyncHTTPClient
import CustosCrypto
import CustosKBS
import CustosTDX
import CustosTestSupport
import Foundation
import NIOCore
import NIOHTTP1
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// `custos-bench`: load generators that need test evidence. A separate executable, so the shipped `custos` binary
/// links no test support: the TDX hierarchy it signs quotes with is generated at run time into a state directory.
@main
struct CustosBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "custos-bench", abstract: "Load generators for the Custos service (test evidence).",
        subcommands: [KBSBench.self, HTTPBench.self, KBSPrepare.self])
}

/// Where the bench keeps its test hierarchy, collateral and reference values (so a server started with `--tdx-root
/// STATE/root.pem --collateral STATE/collateral` trusts the bench's quotes).
struct BenchState {
    let directory: URL
    let hierarchy: TDXTestHierarchy
    let spec: TDXQuoteSpec

    var rootPEM: URL { directory.appendingPathComponent("hierarchy/root.pem") }
    var collateralDirectory: URL { directory.appendingPathComponent("collateral") }

    static func spec(now: Date) -> TDXQuoteSpec {
        var spec = TDXQuoteSpec()
        spec.issueDate = Date.ISO8601FormatStyle().format(now.addingTimeInterval(-86_400))
        spec.nextUpdate = Date.ISO8601FormatStyle().format(now.addingTimeInterval(30 * 86_400))
        return spec
    }

    /// Opens `directory`, creating the hierarchy and (re)writing collateral valid from yesterday for 30 days.
    static func open(_ directory: URL) throws -> BenchState {
        let hierarchyDirectory = directory.appendingPathComponent("hierarchy")
        let hierarchy: TDXTestHierarchy
        if FileManager.default.fileExists(atPath: hierarchyDirectory.appendingPathComponent("root.key").path) {
            hierarchy = try TDXTestHierarchy.load(from: hierarchyDirectory)
        } else {
            hierarchy = try TDXTestHierarchy()
            try hierarchy.store(in: hierarchyDirectory)
        }
        let spec = Self.spec(now: Date())
        let platform = directory.appendingPathComponent("collateral").appendingPathComponent(Hex.encode(spec.fmspc).uppercased())
        try FileManager.default.createDirectory(at: platform, withIntermediateDirectories: true)
        for (name, bytes) in try hierarchy.collateralFiles(spec) { try Data(bytes).write(to: platform.appendingPathComponent(name)) }
        return BenchState(directory: directory, hierarchy: hierarchy, spec: spec)
    }
}

struct KBSPrepare: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kbs-prepare",
        abstract: "Write a test TDX hierarchy and its collateral for `custos serve --tdx-root … --collateral …`.")
    @Option(help: "State directory.") var state = ".build/bench-kbs"

    func run() throws {
        let state = try BenchState.open(URL(fileURLWithPath: state))
        print("custos serve --tdx-root \(state.rootPEM.path) --collateral \(state.collateralDirectory.path)")
    }
}

/// Latency samples of one stage (seconds).
struct Samples {
    var values: [Double] = []
    mutating func add(_ value: Double) { values.append(value) }
    func percentile(_ p: Double) -> Double {
        guard !values.isEmpty else { return 0 }
        let sorted = values.sorted()
        let rank = Int((Double(sorted.count) * p).rounded(.up)) - 1
        return sorted[min(sorted.count - 1, max(0, rank))]
    }
}

/// How many flows may still start.
final class FlowBudget: Sendable {
    private let left: Atomic<Int>
    init(_ count: Int) { left = Atomic(count) }
    func take() -> Bool { left.subtract(1, ordering: .relaxed).newValue >= 0 }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

struct KBSBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kbs",
        abstract: "Full KBS flows (auth → attest → resource, EC P-256 TEE keys, warm collateral) against a service.",
        discussion: """
            Without --url, starts `custos serve` itself (release build next to this executable, or --custos) on a \
            fresh data directory, provisions the default tenant's reference values and a secret, runs the load, and \
            reports the server's CPU time per flow and its RSS from /proc. With --url, the server must have been \
            started with the paths `custos-bench kbs-prepare` prints, and --token names an admin token file.
            """)

    @OptionGroup var server: BenchServerOptions
    @Option(help: "Concurrent flows.") var concurrency = 64
    @Option(help: "Seconds of load.") var duration = 10
    @Option(help: "Stop after this many flows (0: run for --duration).") var flows = 0
    @Option(help: "Decrypt one resource in this many (0: never).") var decryptEvery = 16
    @Flag(help: "JSON output.") var json = false

    func run() async throws {
        let state = try BenchState.open(URL(fileURLWithPath: server.state))
        let running = try await BenchServer.start(server, state: state)
        defer { running.stop() }
        let base = running.base
        let factory = try state.hierarchy.quoteFactory(state.spec)
        let cryptoFloor = try FlowFloor.cryptoMicros(factory: factory)

        let client = HTTPClient(
            eventLoopGroupProvider: .singleton,
            configuration: .init(connectionPool: .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: concurrency)))
        do { try await provision(client, base: base, token: running.adminToken, spec: state.spec) } catch {
            try? await client.shutdown()
            throw error
        }

        let cpuBefore = running.cpuSeconds()
        let started = Date()
        let deadline = started.addingTimeInterval(TimeInterval(duration))
        let remaining = FlowBudget(flows > 0 ? flows : Int.max)
        let results = try await withThrowingTaskGroup(of: WorkerResult.self) { group in
            for _ in 0..<concurrency {
                group.addTask {
                    try await Self.worker(
                        client: client, base: base, factory: factory, deadline: deadline, remaining: remaining, decryptEvery: decryptEvery)
                }
            }
            var all: [WorkerResult] = []
            for try await result in group { all.append(result) }
            return all
        }
        let elapsed = Date().timeIntervalSince(started)
        try? await client.shutdown()
        let cpuAfter = running.cpuSeconds()
        let rss = running.rssKiB()
        var stages: [String: Samples] = [:]
        var errors: [String: Int] = [:]
        var completed = 0
        for result in results {
            completed += result.completed
            for (stage, samples) in result.stages { stages[stage, default: Samples()].values += samples.values }
            for (kind, count) in result.errors { errors[kind, default: 0] += count }
        }
        let cpuPerFlow = (cpuBefore != nil && cpuAfter != nil && completed > 0) ? (cpuAfter! - cpuBefore!) / Double(completed) : nil
        report(
            completed: completed, elapsed: elapsed, stages: stages, errors: errors, cpuPerFlow: cpuPerFlow, rssKiB: rss,
            cryptoFloorMicros: cryptoFloor)
    }

    func report(
        completed: Int, elapsed: Double, stages: [String: Samples], errors: [String: Int], cpuPerFlow: Double?, rssKiB: Int?,
        cryptoFloorMicros: Double
    ) {
        let order = ["auth", "attest", "resource", "flow"]
        if json {
            var stageJSON: [String: JSONValue] = [:]
            for name in order {
                let samples = stages[name] ?? Samples()
                stageJSON[name] = [
                    "p50_us": .integer(Int64(samples.percentile(0.5) * 1e6)), "p99_us": .integer(Int64(samples.percentile(0.99) * 1e6)),
                ]
            }
            var document: [String: JSONValue] = [
                "flows": .integer(Int64(completed)), "seconds": .integer(Int64(elapsed.rounded())),
                "flows_per_second": .integer(Int64(Double(completed) / elapsed)), "concurrency": .integer(Int64(concurrency)),
                "stages": .object(stageJSON), "errors": .object(errors.mapValues { .integer(Int64($0)) }),
            ]
            if let cpuPerFlow { document["server_cpu_us_per_flow"] = .integer(Int64(cpuPerFlow * 1e6)) }
            if let rssKiB { document["server_rss_kib"] = .integer(Int64(rssKiB)) }
            document["crypto_floor_us_per_flow"] = .integer(Int64(cryptoFloorMicros))
            print(String(decoding: CanonicalJSON.encode(.object(document)), as: UTF8.self))
            return
        }
        print(
            "\(completed) full KBS flows in \(String(format: "%.1f", elapsed)) s at concurrency \(concurrency): "
                + "\(String(format: "%.0f", Double(completed) / elapsed)) flows/s")
        for name in order {
            let samples = stages[name] ?? Samples()
            print(
                "  \(name.padding(toLength: 9, withPad: " ", startingAt: 0)) p50 \(String(format: "%7.2f", samples.percentile(0.5) * 1e3)) ms"
                    + "  p99 \(String(format: "%7.2f", samples.percentile(0.99) * 1e3)) ms")
        }
        if let cpuPerFlow { print("  server CPU per flow: \(String(format: "%.3f", cpuPerFlow * 1e3)) ms (user+sys / flows)") }
        if let rssKiB { print("  server RSS after the run: \(rssKiB / 1024) MiB") }
        print(
            "  crypto floor per flow: \(String(format: "%.0f", cryptoFloorMicros)) µs "
                + "(p50 of one P-256 verification, one ES256 signature and one ECDH-ES+A256KW JWE, in this process)")
        print("  errors: \(errors.isEmpty ? "none" : errors.map { "\($0.key) \($0.value)" }.sorted().joined(separator: ", "))")
    }

    static let secretPath = "default/bench/secret"
    static let secret = Array("custos bench secret".utf8)

    func provision(_ client: HTTPClient, base: String, token: String, spec: TDXQuoteSpec) async throws {
        let sets: [(String, [UInt8])] = [("mr_td", spec.mrTD), ("rtmr_1", spec.rtmrs[1]), ("rtmr_2", spec.rtmrs[2])]
        for (name, value) in sets {
            let body = CanonicalJSON.encode(["values": [.string(Hex.encode(value))]])
            try await Self.expect(client, .PUT, "\(base)/v1/reference-values/default/\(name)", token: token, body: body, status: 200)
        }
        try await Self.expect(client, .PUT, "\(base)/v1/secrets/\(Self.secretPath)", token: token, body: Self.secret, status: 201)
    }

    static func expect(_ client: HTTPClient, _ method: HTTPMethod, _ url: String, token: String, body: [UInt8], status: Int) async throws {
        var request = HTTPClientRequest(url: url)
        request.method = method
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        request.body = .bytes(ByteBuffer(bytes: body))
        let response = try await client.execute(request, timeout: .seconds(30))
        let text = String(buffer: try await response.body.collect(upTo: 1 << 20))
        guard Int(response.status.code) == status else { throw BenchError("\(method) \(url): \(response.status) \(text)") }
    }

    struct WorkerResult: Sendable {
        var completed = 0
        var stages: [String: Samples] = [:]
        var errors: [String: Int] = [:]
    }

    static func worker(
        client: HTTPClient, base: String, factory: TDXQuoteFactory, deadline: Date, remaining: FlowBudget, decryptEvery: Int
    ) async throws -> WorkerResult {
        var result = WorkerResult()
        let key = try ECPrivateKey(generating: .p256)
        let teeKey = JWEDecryptionKey.ec(key)
        let authBody = CanonicalJSON.encode(["version": "0.4.0", "tee": "tdx", "extra-params": .object([:])])
        while Date() < deadline, remaining.take() {
            let flowStart = ContinuousClock.now
            do {
                // auth
                var start = ContinuousClock.now
                var request = HTTPClientRequest(url: "\(base)/kbs/v0/auth")
                request.method = .POST
                request.body = .bytes(ByteBuffer(bytes: authBody))
                var response = try await client.execute(request, timeout: .seconds(30))
                var body = try await response.body.collect(upTo: 1 << 20)
                guard response.status == .ok, let cookie = response.headers.first(name: "set-cookie")?.split(separator: ";").first,
                    let nonce = try JSONValue.parse(Array(buffer: body))["nonce"]?.stringValue
                else { throw BenchError("auth \(response.status)") }
                result.stages["auth", default: Samples()].add(seconds(since: start))

                // attest
                start = ContinuousClock.now
                let runtime = KBSRuntimeData(nonce: nonce, teePubkey: teeKey.publicJWK)
                let reportData = KBSBinding.reportData(nonce: nonce, teePubkey: runtime.teePubkeyJSON, additionalEvidence: "")
                let attestation = KBSAttestation(
                    runtimeData: runtime,
                    teeEvidence: KBSTEEEvidence(
                        primaryEvidence: TDXPrimaryEvidence(quote: try factory.quote(reportData: reportData), ccEventlog: nil).jsonValue))
                request = HTTPClientRequest(url: "\(base)/kbs/v0/attest")
                request.method = .POST
                request.headers.add(name: "Cookie", value: String(cookie))
                request.body = .bytes(ByteBuffer(bytes: CanonicalJSON.encode(attestation.jsonValue)))
                response = try await client.execute(request, timeout: .seconds(30))
                body = try await response.body.collect(upTo: 1 << 20)
                guard response.status == .ok else { throw BenchError("attest \(response.status.code)") }
                result.stages["attest", default: Samples()].add(seconds(since: start))

                // resource
                start = ContinuousClock.now
                request = HTTPClientRequest(url: "\(base)/kbs/v0/resource/\(secretPath)")
                request.headers.add(name: "Cookie", value: String(cookie))
                response = try await client.execute(request, timeout: .seconds(30))
                body = try await response.body.collect(upTo: 1 << 20)
                guard response.status == .ok else { throw BenchError("resource \(response.status.code)") }
                result.stages["resource", default: Samples()].add(seconds(since: start))
                if decryptEvery > 0, result.completed % decryptEvery == 0 {
                    let opened = try KBSResourceRelease.decrypt(responseBody: Array(buffer: body), with: teeKey)
                    guard opened.unsafeCopy() == secret else { throw BenchError("resource decrypts to the wrong secret") }
                }
                result.stages["flow", default: Samples()].add(seconds(since: flowStart))
                result.completed += 1
            } catch {
                result.errors["\(error)".prefix(60).description, default: 0] += 1
            }
        }
        return result
    }

    static func seconds(since start: ContinuousClock.Instant) -> Double {
        let elapsed = ContinuousClock.now - start
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }
}

/// Where the load goes: a `custos serve` this bench starts (the default) or one at `--url`.
struct BenchServerOptions: ParsableArguments {
    @Option(help: "Base URL of a running service.") var url: String?
    @Option(help: "Admin token file (with --url).") var token: String?
    @Option(help: "State directory (hierarchy, collateral).") var state = ".build/bench-kbs"
    @Option(help: "The custos executable to start (without --url).") var custos: String?
    @Option(help: "The policies directory the started server uses.") var policies = "Policies"
}

/// A service under load. When the bench started it, it knows its process (CPU time and RSS from /proc) and stops it
/// and removes its data directory at the end.
struct BenchServer {
    let base: String
    let adminToken: String
    let process: Process?
    let dataDirectory: URL?

    static func start(_ options: BenchServerOptions, state: BenchState) async throws -> BenchServer {
        if let url = options.url {
            guard let token = options.token else { throw BenchError("--url needs --token FILE (an admin token)") }
            let adminToken = try String(contentsOfFile: token, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            return BenchServer(base: url, adminToken: adminToken, process: nil, dataDirectory: nil)
        }
        let port = 20_000 + Int.random(in: 0..<20_000)
        let data = FileManager.default.temporaryDirectory.appendingPathComponent("custos-bench-\(UUID().uuidString)")
        let executable =
            options.custos
            ?? URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("custos").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = [
            "serve", "--listen", "127.0.0.1:\(port)", "--data", data.path, "--policies", options.policies, "--collateral",
            state.collateralDirectory.path, "--tdx-root", state.rootPEM.path,
        ]
        var environment = ProcessInfo.processInfo.environment
        environment["LOG_LEVEL"] = "warning"
        process.environment = environment
        try process.run()
        let server = BenchServer(base: "http://127.0.0.1:\(port)", adminToken: "", process: process, dataDirectory: data)
        do {
            let token = try await Self.waitForToken(data.appendingPathComponent("bootstrap-admin.token"), process: process)
            return BenchServer(base: server.base, adminToken: token, process: process, dataDirectory: data)
        } catch {
            server.stop()
            throw error
        }
    }

    /// SIGTERM to a server this bench started, then its data directory goes.
    func stop() {
        if let process, process.isRunning {
            kill(process.processIdentifier, SIGTERM)
            process.waitUntilExit()
        }
        if let dataDirectory { try? FileManager.default.removeItem(at: dataDirectory) }
    }

    func cpuSeconds() -> Double? { process.flatMap { Self.cpuSeconds($0.processIdentifier) } }
    func rssKiB() -> Int? { process.flatMap { Self.rssKiB($0.processIdentifier) } }

    static func waitForToken(_ file: URL, process: Process) async throws -> String {
        for _ in 0..<300 {
            if !process.isRunning { throw BenchError("custos serve exited with status \(process.terminationStatus)") }
            if let text = try? String(contentsOf: file, encoding: .utf8), !text.isEmpty {
                try await Task.sleep(for: .milliseconds(200))
                return text.trimmingCharacters(in: .whitespacesAndNewlines)
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw BenchError("custos serve did not start within 30 s")
    }

    /// utime + stime of `pid`, in seconds (/proc/PID/stat fields 14 and 15).
    static func cpuSeconds(_ pid: Int32) -> Double? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = text.lastIndex(of: ")")
        else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    static func rssKiB(_ pid: Int32) -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
        }
        return nil
    }
}
