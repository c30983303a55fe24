import ArgumentParser
import CustosCrypto
import CustosTDX
import Foundation

/// The output of `custos bench tdx-verify --json`.
struct BenchJSON: Codable {
    let iterations: Int
    let cold: Bool
    let threads: Int
    let opsPerSecond: Double
    let p50Micros: Double
    let p99Micros: Double
    let multiCoreOpsPerSecond: Double?
    /// Median time of one OpenSSL ECDSA P-256 verification (the quote's own signature, key imported once): the unit
    /// of a verification's floor. A cold verification needs ``signatureChecksCold`` of them, a warm one two.
    let p256VerifyMicros: Double
    /// ECDSA verifications in a cold verification: Root CA CRL, TCB signing certificate, TCB Info, QE Identity, PCK
    /// Platform CA, PCK CRL, PCK leaf, QE report, quote.
    let signatureChecksCold: Int
}

/// `custos bench tdx-verify`: single-threaded verify throughput and latency percentiles (warm or `--cold` caches),
/// plus multi-core throughput with `--threads`.
struct TDXBenchVerify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tdx-verify", abstract: "Benchmark TDX quote verification (warm collateral cache by default).")

    @Option(name: .long, help: "The quote file.") var quote: String
    @Option(name: .long, help: "Collateral directory or QuoteCollateralV3 JSON.") var collateral: String
    @Option(name: .long, help: "Verification time, ISO 8601 (default: now).") var at: String?
    @Option(name: .long, help: "Iterations.") var iterations = 1000
    @Flag(name: .long, help: "Drop every cache between iterations.") var cold = false
    @Flag(name: .long, help: "Accept debug TDs.") var allowDebug = false
    @Option(name: .long, help: "Also measure throughput on this many threads (default: the core count).") var threads: Int?
    @Option(name: .long, help: "Root CA instead of the pinned Intel one.") var root: String?
    @OptionGroup var global: GlobalOptions

    func validate() throws {
        guard iterations > 0 else { throw ValidationError("--iterations must be positive") }
        if let threads, !(1...1024).contains(threads) { throw ValidationError("--threads must be 1…1024") }
    }

    func run() async throws {
        let time = try parseVerificationTime(at)
        let anchor = try TDXTrustAnchor.load(root: root)
        let bytes = try readInputFile(quote, kind: .quote)
        let loaded = try loadCollateralInput(collateral)
        let options = VerificationOptions(allowDebug: allowDebug)
        let cache = VerificationCache()
        let verifier = QuoteVerifier(trustedRoot: anchor.certificate, cache: cache)
        guard verifier.verify(quote: bytes, collateral: loaded, at: time, options: options).verifiedQuote != nil else {
            throw CLIError("the quote does not verify with this collateral at this time; nothing to benchmark", exitCode: 1)
        }
        var samples: [Double] = []
        samples.reserveCapacity(iterations)
        let clock = ContinuousClock()
        let start = clock.now
        for _ in 0..<iterations {
            if cold { cache.removeAll() }
            let t0 = clock.now
            _ = verifier.verify(quote: bytes, collateral: loaded, at: time, options: options)
            samples.append(micros(clock.now - t0))
        }
        let total = micros(clock.now - start)
        samples.sort()
        let p50 = samples[samples.count / 2]
        let p99 = samples[min(samples.count - 1, Int(Double(samples.count) * 0.99))]
        let threadCount = threads ?? ProcessInfo.processInfo.activeProcessorCount
        var multi: Double? = nil
        if threadCount > 1 {
            let perThread = max(1, iterations / threadCount)
            let coldRun = cold
            let t0 = clock.now
            await withTaskGroup(of: Void.self) { group in
                for _ in 0..<threadCount {
                    group.addTask {
                        let local = VerificationCache()
                        let v = QuoteVerifier(trustedRoot: anchor.certificate, cache: local)
                        for _ in 0..<perThread {
                            if coldRun { local.removeAll() }
                            _ = v.verify(quote: bytes, collateral: loaded, at: time, options: options)
                        }
                    }
                }
            }
            multi = Double(perThread * threadCount) / (micros(clock.now - t0) / 1e6)
        }
        let result = BenchJSON(
            iterations: iterations, cold: cold, threads: threadCount, opsPerSecond: Double(iterations) / (total / 1e6), p50Micros: p50,
            p99Micros: p99, multiCoreOpsPerSecond: multi, p256VerifyMicros: try p256Verify(bytes), signatureChecksCold: 9)
        if global.json {
            try Output.printJSON(result)
        } else {
            print(
                "tdx-verify (\(cold ? "cold" : "warm"), \(iterations) iterations): \(Int(result.opsPerSecond)) ops/s single-threaded, p50 \(String(format: "%.1f", p50)) µs, p99 \(String(format: "%.1f", p99)) µs"
            )
            if let multi { print("  \(threadCount) threads: \(Int(multi)) ops/s") }
            print(
                "  one ECDSA P-256 verification: \(String(format: "%.1f", result.p256VerifyMicros)) µs (a cold verification needs \(result.signatureChecksCold))"
            )
        }
    }

    /// p50 of 500 verifications of the quote's signature with its attestation key.
    private func p256Verify(_ bytes: [UInt8]) throws -> Double {
        let quote = try Quote(parsing: bytes)
        let key = try ECPublicKey(curve: .p256, x: Array(quote.attestationKey[0..<32]), y: Array(quote.attestationKey[32...]))
        let signature = try ECDSASignature(rawBigEndian: quote.signature)
        let region = quote.signedRegion
        let clock = ContinuousClock()
        var samples: [Double] = []
        for _ in 0..<500 {
            let t0 = clock.now
            guard key.isValidSignature(signature, for: region, digest: .sha256) else {
                throw CLIError("the quote signature does not verify", exitCode: 1)
            }
            samples.append(micros(clock.now - t0))
        }
        samples.sort()
        return samples[samples.count / 2]
    }

    private func micros(_ duration: Duration) -> Double {
        let parts = duration.components
        return Double(parts.seconds) * 1e6 + Double(parts.attoseconds) / 1e12
    }
}
