import ArgumentParser
import AsyncHTTPClient
import CustosCrypto
import CustosTDX
import CustosTestSupport
import Foundation
import NIOCore
import NIOHTTP1

/// The CPU a full KBS flow cannot avoid on this machine, measured beside the load so each report carries the floor
/// its figures are compared with.
enum FlowFloor {
    /// p50 (µs) of the public-key operations the server makes per flow: one ECDSA P-256 verification (the quote's
    /// signature; the QE report's is cached per platform), one ES256 signature (the EAR) and one ECDH-ES+A256KW JWE
    /// to a P-256 key (ephemeral key generation, ECDH, Concat KDF, AES key wrap, AES-GCM), through the same
    /// CustosCrypto calls the server makes.
    static func cryptoMicros(factory: TDXQuoteFactory, iterations: Int = 300) throws -> Double {
        let quote = try Quote(parsing: factory.quote(reportData: [UInt8](repeating: 0, count: 64)))
        let attestationKey = try ECPublicKey(
            curve: .p256, x: Array(quote.attestationKey[0..<32]), y: Array(quote.attestationKey[32...]))
        let signature = try ECDSASignature(rawBigEndian: quote.signature)
        let region = quote.signedRegion
        let tokenKey = try ECPrivateKey(generating: .p256)
        let recipient = JSONWebKey(.ec(try ECPrivateKey(generating: .p256).publicKey))
        let secret = SecretBytes(Array("custos bench secret".utf8))
        let claims = [UInt8](repeating: 0x61, count: 1_500)
        let clock = ContinuousClock()
        var samples: [Double] = []
        samples.reserveCapacity(iterations)
        for _ in 0..<iterations {
            let start = clock.now
            guard attestationKey.isValidSignature(signature, for: region, digest: .sha256) else {
                throw BenchError("the bench quote's signature does not verify")
            }
            _ = try tokenKey.signature(for: claims, digest: .sha256)
            _ = try FlattenedJWE.Sealer(to: recipient).seal(secret)
            samples.append(KBSBench.seconds(since: start) * 1e6)
        }
        samples.sort()
        return samples[samples.count / 2]
    }
}

/// `custos-bench http`: the server's CPU per HTTP request on a route that does no work (`/healthz` by default), at
/// the same concurrency as `kbs`: what the HTTP stack, routing and middleware (request id, metrics, logging) cost.
/// A full KBS flow is three requests.
struct HTTPBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "http",
        abstract: "GET one path of a service at a concurrency and report the server's CPU time per request.",
        discussion: """
            Starts `custos serve` like `kbs` does (or targets --url, whose server's CPU is then not read). Measures \
            what a request costs the server before any route logic: the HTTP floor of a KBS flow is three of these.
            """)

    @OptionGroup var server: BenchServerOptions
    @Option(help: "The path to GET.") var path = "/healthz"
    @Option(help: "Concurrent requests (one HTTP/1.1 keep-alive connection each).") var concurrency = 64
    @Option(help: "Seconds of load.") var duration = 10
    @Flag(help: "JSON output.") var json = false

    func validate() throws {
        guard path.hasPrefix("/") else { throw ValidationError("--path must start with /") }
        guard (1...4096).contains(concurrency) else { throw ValidationError("--concurrency must be 1…4096") }
        guard (1...3600).contains(duration) else { throw ValidationError("--duration must be 1…3600 seconds") }
    }

    func run() async throws {
        let state = try BenchState.open(URL(fileURLWithPath: server.state))
        let running = try await BenchServer.start(server, state: state)
        defer { running.stop() }
        let client = HTTPClient(
            eventLoopGroupProvider: .singleton,
            configuration: .init(connectionPool: .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: concurrency)))
        let url = running.base + path
        let cpuBefore = running.cpuSeconds()
        let started = Date()
        let deadline = started.addingTimeInterval(TimeInterval(duration))
        let results = try await withThrowingTaskGroup(of: (Samples, [String: Int]).self) { group in
            for _ in 0..<concurrency {
                group.addTask {
                    var samples = Samples()
                    var statuses: [String: Int] = [:]
                    while Date() < deadline {
                        let start = ContinuousClock.now
                        do {
                            let response = try await client.execute(HTTPClientRequest(url: url), timeout: .seconds(30))
                            _ = try await response.body.collect(upTo: 1 << 20)
                            statuses["\(response.status.code)", default: 0] += 1
                            samples.add(KBSBench.seconds(since: start))
                        } catch {
                            statuses["\(error)".prefix(60).description, default: 0] += 1
                        }
                    }
                    return (samples, statuses)
                }
            }
            var samples = Samples()
            var statuses: [String: Int] = [:]
            for try await (part, counts) in group {
                samples.values += part.values
                for (status, count) in counts { statuses[status, default: 0] += count }
            }
            return (samples, statuses)
        }
        let elapsed = Date().timeIntervalSince(started)
        try? await client.shutdown()
        let cpuAfter = running.cpuSeconds()
        let (samples, statuses) = results
        let completed = samples.values.count
        let cpuPerRequest = (cpuBefore != nil && cpuAfter != nil && completed > 0) ? (cpuAfter! - cpuBefore!) / Double(completed) : nil
        if json {
            var document: [String: JSONValue] = [
                "path": .string(path), "requests": .integer(Int64(completed)), "seconds": .integer(Int64(elapsed.rounded())),
                "requests_per_second": .integer(Int64(Double(completed) / elapsed)), "concurrency": .integer(Int64(concurrency)),
                "p50_us": .integer(Int64(samples.percentile(0.5) * 1e6)), "p99_us": .integer(Int64(samples.percentile(0.99) * 1e6)),
                "responses": .object(statuses.mapValues { .integer(Int64($0)) }),
            ]
            if let cpuPerRequest { document["server_cpu_us_per_request"] = .integer(Int64(cpuPerRequest * 1e6)) }
            print(String(decoding: CanonicalJSON.encode(.object(document)), as: UTF8.self))
            return
        }
        print(
            "\(completed) GET \(path) in \(String(format: "%.1f", elapsed)) s at concurrency \(concurrency): "
                + "\(String(format: "%.0f", Double(completed) / elapsed)) requests/s, p50 \(String(format: "%.2f", samples.percentile(0.5) * 1e3)) ms, "
                + "p99 \(String(format: "%.2f", samples.percentile(0.99) * 1e3)) ms")
        if let cpuPerRequest { print("  server CPU per request: \(String(format: "%.1f", cpuPerRequest * 1e6)) µs (user+sys / requests)") }
        print("  responses: \(statuses.map { "\($0.key) \($0.value)" }.sorted().joined(separator: ", "))")
    }
}
