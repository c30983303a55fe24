import ArgumentParser
public import AsyncHTTPClient
import CustosCrypto
import CustosTDX
public import Foundation
import NIOCore
import NIOHTTP1

/// `custos tdx collateral …`.
struct TDXCollateralCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "collateral", abstract: "TDX collateral (TCB Info, QE Identity, CRLs).", subcommands: [TDXCollateralFetch.self])
}

/// Downloads collateral from Intel PCS or a PCCS into a PCS-layout directory (spec §3).
public enum TDXCollateralFetcher {
    /// Intel PCS.
    public static let pcsBase = "https://api.trustedservices.intel.com"
    /// Intel's Root CA CRL (the CRL distribution point of the root).
    public static let intelRootCRL = "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der"

    /// What was fetched.
    public struct Summary: Codable, Sendable {
        public let fmspc: String
        public let source: String
        public let fetchedAt: String
        public let tcbInfoIssueDate: String
        public let tcbInfoNextUpdate: String
        public let qeIdentityNextUpdate: String
        public let tcbEvaluationDataNumber: Int
        public let files: [String]
    }

    /// Fetches the seven collateral parts for `fmspc` and writes them to `out` in PCS layout.
    /// - Parameters:
    ///   - base: PCS or PCCS base URL (paths `/sgx/certification/v4/…`, `/tdx/certification/v4/…` are appended).
    ///   - rootCRLURL: where the Root CA CRL is (PCS: Intel's CDP; PCCS: `<base>/sgx/certification/v4/rootcacrl`).
    ///   - ca: `platform` or `processor`.
    public static func fetch(
        fmspc: String, base: String, rootCRLURL: String, ca: String, out: URL, client: HTTPClient
    ) async throws -> Summary {
        func get(_ url: String, chainHeaders: [String]) async throws -> (body: [UInt8], chain: String?) {
            var request = HTTPClientRequest(url: url)
            request.method = .GET
            let response = try await client.execute(request, timeout: .seconds(30))
            let body = try await response.body.collect(upTo: 16 << 20)
            guard response.status == .ok else {
                throw CLIError("GET \(url): HTTP \(response.status.code)", exitCode: 1)
            }
            var chain: String? = nil
            for name in chainHeaders {
                if let value = response.headers.first(name: name) {
                    guard let decoded = value.removingPercentEncoding else {
                        throw CLIError("GET \(url): \(name) is not URL-encoded PEM", exitCode: 1)
                    }
                    chain = decoded
                    break
                }
            }
            if !chainHeaders.isEmpty, chain == nil {
                throw CLIError("GET \(url): no \(chainHeaders.joined(separator: "/")) header", exitCode: 1)
            }
            return (Array(body.readableBytesView), chain)
        }
        let base = base.hasSuffix("/") ? String(base.dropLast()) : base
        let tcb = try await get(
            "\(base)/tdx/certification/v4/tcb?fmspc=\(fmspc)", chainHeaders: ["TCB-Info-Issuer-Chain", "SGX-TCB-Info-Issuer-Chain"])
        let qe = try await get("\(base)/tdx/certification/v4/qe/identity", chainHeaders: ["SGX-Enclave-Identity-Issuer-Chain"])
        let pckCRL = try await get("\(base)/sgx/certification/v4/pckcrl?ca=\(ca)&encoding=der", chainHeaders: ["SGX-PCK-CRL-Issuer-Chain"])
        let rootCRL = try await get(rootCRLURL, chainHeaders: [])
        // Normalize CRLs to DER (PCCS may serve hex or PEM, spec §3); the JSON bodies are stored verbatim.
        let pckDER = try CertificateRevocationList(anyEncoding: pckCRL.body).der
        let rootDER = try CertificateRevocationList(anyEncoding: rootCRL.body).der
        let collateral = try Collateral(
            tcbInfoBody: tcb.body, tcbInfoIssuerChain: tcb.chain ?? "", qeIdentityBody: qe.body, qeIdentityIssuerChain: qe.chain ?? "",
            pckCRL: pckDER, pckCRLIssuerChain: pckCRL.chain ?? "", rootCACRL: rootDER)
        guard Hex.encode(collateral.tcbInfo.fmspc).uppercased() == fmspc.uppercased() else {
            throw CLIError("the TCB Info served is for FMSPC \(Hex.encode(collateral.tcbInfo.fmspc)), not \(fmspc)", exitCode: 1)
        }
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        let files: [(String, [UInt8])] = [
            ("tcb_info.json", tcb.body), ("tcb_info_issuer_chain.pem", Array((tcb.chain ?? "").utf8)), ("qe_identity.json", qe.body),
            ("qe_identity_issuer_chain.pem", Array((qe.chain ?? "").utf8)), ("pck_crl.der", pckDER),
            ("pck_crl_issuer_chain.pem", Array((pckCRL.chain ?? "").utf8)), ("root_ca_crl.der", rootDER),
        ]
        for (name, bytes) in files { try Data(bytes).write(to: out.appendingPathComponent(name), options: .atomic) }
        let iso = ISO8601DateFormatter()
        let summary = Summary(
            fmspc: fmspc.uppercased(), source: base, fetchedAt: iso.string(from: Date()),
            tcbInfoIssueDate: iso.string(from: collateral.tcbInfo.issueDate),
            tcbInfoNextUpdate: iso.string(from: collateral.tcbInfo.nextUpdate),
            qeIdentityNextUpdate: iso.string(from: collateral.qeIdentity.nextUpdate),
            tcbEvaluationDataNumber: collateral.tcbInfo.tcbEvaluationDataNumber, files: files.map(\.0))
        try Output.encoder().encode(summary).write(to: out.appendingPathComponent("fetch.json"), options: .atomic)
        return summary
    }
}

struct TDXCollateralFetch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fetch", abstract: "Download TDX collateral for an FMSPC from Intel PCS or a PCCS into a PCS-layout directory.")

    @Option(name: .long, help: "The platform's FMSPC (12 hex digits).") var fmspc: String
    @Option(name: .long, help: "A PCCS base URL (e.g. https://pccs.local:8081).") var pccs: String?
    @Flag(name: .long, help: "Use Intel PCS (api.trustedservices.intel.com).") var pcs = false
    @Option(name: .long, help: "PCK CA type: platform or processor.") var ca = "platform"
    @Option(name: .long, help: "Root CA CRL URL (default: Intel's CDP for --pcs, <pccs>/sgx/certification/v4/rootcacrl for --pccs).")
    var rootCrlUrl: String?
    @Option(name: .long, help: "Output directory.") var out: String
    @OptionGroup var global: GlobalOptions

    func validate() throws {
        guard fmspc.utf8.count == 12, (try? Hex.decode(fmspc)) != nil else { throw ValidationError("--fmspc must be 12 hex digits") }
        guard (pccs != nil) != pcs else { throw ValidationError("give exactly one of --pccs URL or --pcs") }
        guard ca == "platform" || ca == "processor" else { throw ValidationError("--ca must be platform or processor") }
    }

    func run() async throws {
        let base = pccs ?? TDXCollateralFetcher.pcsBase
        let rootURL = rootCrlUrl ?? (pcs ? TDXCollateralFetcher.intelRootCRL : "\(base)/sgx/certification/v4/rootcacrl")
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        let summary: TDXCollateralFetcher.Summary
        do {
            summary = try await TDXCollateralFetcher.fetch(
                fmspc: fmspc, base: base, rootCRLURL: rootURL, ca: ca, out: URL(fileURLWithPath: out), client: client)
        } catch {
            try? await client.shutdown()
            if let error = error as? CLIError { throw error }
            throw CLIError("collateral fetch failed: \(error)", exitCode: 1)
        }
        try await client.shutdown()
        if global.json {
            try Output.printJSON(summary)
        } else {
            print("fetched TDX collateral for FMSPC \(summary.fmspc) from \(summary.source) into \(out)")
            print(
                "  TCB Info \(summary.tcbInfoIssueDate) … \(summary.tcbInfoNextUpdate) (eval \(summary.tcbEvaluationDataNumber)); QE Identity until \(summary.qeIdentityNextUpdate)"
            )
        }
    }
}
