import ArgumentParser
import CustosCrypto
import CustosPolicy
import CustosTDX
import Foundation

extension BenchCommand {
    /// The policy benchmarks (`custos bench …`).
    static let policyBenchmarks: [any ParsableCommand.Type] = [PolicyBenchEval.self]
}

/// The output of `custos bench policy-eval --json`.
struct PolicyBenchJSON: Codable {
    let policy: String
    let decision: String
    let status: String
    let traceLines: Int
    let iterations: Int
    let p50Micros: Double
    let p99Micros: Double
    let opsPerSecond: Double
}

/// `custos bench policy-eval`: latency of evaluating one policy on one claims document (goal: the default TDX
/// appraisal policy under 20 µs p50).
struct PolicyBenchEval: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy-eval",
        abstract: "Benchmark policy evaluation (default: Policies/tdx/default.yaml on the claims of the q01 sample quote).")

    @Option(name: .long, help: "The policy directory (default: $CUSTOS_POLICIES or ./Policies).") var policies: String?
    @Option(name: .long, help: "The policy id.") var policy = "tdx-default"
    @Option(
        name: .long,
        help: "Claims JSON (default: verify $CUSTOS_TESTDATA/tdx q01 with collateral c1 at 2025-07-01 and use its claims).")
    var claims: String?
    @Option(name: .long, help: "Evaluation time, ISO 8601 (default: now).") var at: String?
    @Option(name: .long, help: "Iterations.") var iterations = 20_000
    @OptionGroup var global: GlobalOptions

    func validate() throws {
        guard iterations > 0 else { throw ValidationError("--iterations must be positive") }
    }

    func run() throws {
        let time = try parseVerificationTime(at)
        let set = try PolicyCLI.load(policies ?? PolicyCLI.defaultDirectory, at: time)
        guard let loaded = set.policy(id: policy) else { throw CLIError("no policy with id '\(policy)'") }
        let document = try claims.map(PolicyCLI.readClaims) ?? sampleClaims()
        let references = set.referenceValues
        guard let first = loaded.evaluate(claims: document, referenceValues: references, at: time) else {
            throw CLIError("\(policy) is a release policy; benchmark an appraisal or launch policy")
        }
        // Warm-up, then timed runs.
        for _ in 0..<min(iterations, 1000) { _ = loaded.evaluate(claims: document, referenceValues: references, at: time) }
        let clock = ContinuousClock()
        var samples: [Double] = []
        samples.reserveCapacity(iterations)
        let start = clock.now
        for _ in 0..<iterations {
            let t0 = clock.now
            _ = loaded.evaluate(claims: document, referenceValues: references, at: time)
            samples.append(micros(clock.now - t0))
        }
        let total = micros(clock.now - start)
        samples.sort()
        let result = PolicyBenchJSON(
            policy: first.policy, decision: first.decision.rawValue, status: first.status.rawValue, traceLines: first.trace.count,
            iterations: iterations, p50Micros: samples[samples.count / 2],
            p99Micros: samples[min(samples.count - 1, Int(Double(samples.count) * 0.99))], opsPerSecond: Double(iterations) / (total / 1e6))
        if global.json {
            try Output.printJSON(result)
        } else {
            print(
                "policy-eval \(result.policy) (\(iterations) iterations, \(result.decision), \(result.status), \(result.traceLines) conditions): p50 \(String(format: "%.2f", result.p50Micros)) µs, p99 \(String(format: "%.2f", result.p99Micros)) µs, \(Int(result.opsPerSecond)) ops/s"
            )
        }
    }

    /// The claims of the q01 sample quote, verified with collateral c1 at 2025-07-01 against the testdata root.
    private func sampleClaims() throws -> JSONValue {
        let root: URL
        if let env = ProcessInfo.processInfo.environment["CUSTOS_TESTDATA"], !env.isEmpty {
            root = URL(fileURLWithPath: env)
        } else {
            root = URL(fileURLWithPath: "../shared/testdata")
        }
        let tdx = root.appendingPathComponent("tdx")
        guard FileManager.default.fileExists(atPath: tdx.path) else {
            throw CLIError("no --claims and no vendor test data at \(root.path) (set CUSTOS_TESTDATA)")
        }
        let quote = try readInputFile(tdx.appendingPathComponent("quotes/q01_dcapqvl_tdx_v4.bin").path, kind: .quote)
        let collateral = try loadCollateralInput(tdx.appendingPathComponent("collateral/c1_dcapqvl_2025-06_B0C06F").path)
        let anchor: Certificate
        do {
            anchor = try Certificate(
                derOrPEM: readInputFile(tdx.appendingPathComponent("root/intel_sgx_root_ca.pem").path, kind: .certificate))
        } catch {
            throw CLIError("testdata root CA: \(error)")
        }
        let when = try parseVerificationTime("2025-07-01T00:00:00Z")
        guard let verified = QuoteVerifier(trustedRoot: anchor).verify(quote: quote, collateral: collateral, at: when).verifiedQuote else {
            throw CLIError("the sample quote does not verify", exitCode: 1)
        }
        return TDXClaims.document(verified, at: when)
    }

    private func micros(_ duration: Duration) -> Double {
        let parts = duration.components
        return Double(parts.seconds) * 1e6 + Double(parts.attoseconds) / 1e12
    }
}
