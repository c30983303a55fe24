import ArgumentParser
import AsyncHTTPClient
import CustosCrypto
import CustosServer
import CustosTDX
import Foundation

/// `custos tdx collateral …`.
struct TDXCollateralCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "collateral", abstract: "TDX collateral (TCB Info, QE Identity, CRLs).", subcommands: [TDXCollateralFetch.self])
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
        for (name, value) in [("--pccs", pccs), ("--root-crl-url", rootCrlUrl)] {
            guard let value else { continue }
            guard let url = URL(string: value), ["http", "https"].contains(url.scheme?.lowercased() ?? ""), url.host?.isEmpty == false
            else { throw ValidationError("\(name) must be an http(s) URL with a host, not \(value)") }
        }
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
            throw error
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
