import ArgumentParser
import CustosCrypto
import CustosTDX
import Foundation

/// `custos tdx verify`: verifies a quote against collateral and prints a report or JSON.
/// Exit 0 when verified, 1 when verification fails (including a malformed quote), 2 on bad usage or unreadable input.
struct TDXVerify: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify", abstract: "Verify a TDX DCAP quote (v4/v5) against Intel collateral, as Intel QVL does.")

    @Option(name: .long, help: "The quote file (raw bytes).") var quote: String
    @Option(name: .long, help: "Collateral: a PCS-layout directory or a QuoteCollateralV3 JSON file.") var collateral: String
    @Option(name: .long, help: "Verification time, ISO 8601 (default: now).") var at: String?
    @Flag(name: .long, help: "Accept debug TDs (TDATTRIBUTES.DEBUG).") var allowDebug = false
    @Option(name: .long, help: "Verify against this root CA (PEM/DER) instead of the pinned Intel SGX Root CA.") var root: String?
    @OptionGroup var global: GlobalOptions

    func run() throws {
        let time = try parseVerificationTime(at)
        let anchor = try TDXTrustAnchor.load(root: root)
        let bytes = try readInputFile(quote, kind: .quote)
        let loaded = try loadCollateralInput(collateral)
        var checks: [CheckJSON] = []
        let result = QuoteVerifier(trustedRoot: anchor.certificate).verify(
            quote: bytes, collateral: loaded, at: time, options: .init(allowDebug: allowDebug),
            diagnosticCallback: { checks.append(CheckJSON($0)) })
        let parsed = try? Quote(parsing: bytes)
        let verified = result.verifiedQuote
        let report = VerifyJSON(
            verified: verified != nil, tcbStatus: verified?.tcbStatus.rawValue, advisoryIDs: verified?.advisoryIDs ?? [],
            platformStatus: verified?.platformStatus, moduleStatus: verified?.moduleStatus, qeStatus: verified?.qeStatus.rawValue,
            tcbDate: verified?.tcbDate, collateralExpiry: verified.map { Output.iso($0.collateralExpiry) }, verifiedAt: Output.iso(time),
            trustAnchor: anchor.label, error: result.error.map(ErrorJSON.init), quote: parsed.map(QuoteJSON.init), checks: checks)
        if global.json {
            try Output.printJSON(VerifyOutputJSON(report: report, claims: verified.map { TDXClaims.document($0, at: time) }))
        } else {
            printReport(report, custom: anchor.customPath != nil)
        }
        if verified == nil { throw ExitCode(1) }
    }

    private func printReport(_ report: VerifyJSON, custom: Bool) {
        let prefix = custom ? "[custom root] " : ""
        var lines: [String] = []
        if report.verified {
            lines.append("VERIFIED: TDX quote, TCB status \(report.tcbStatus ?? "-")")
        } else {
            lines.append("REJECTED: \(report.error?.code ?? "error"): \(report.error?.message ?? "")")
        }
        lines.append("trust anchor:  \(report.trustAnchor)")
        lines.append("time:          \(report.verifiedAt)")
        if let quote = report.quote {
            lines.append("quote:         v\(quote.version) \(quote.bodyType), FMSPC \(quote.fmspc ?? "-"), PCK CA \(quote.pckCa ?? "-")")
            lines.append("MRTD:          \(quote.td.mrtd)")
            lines.append("RTMR0:         \(quote.td.rtmr0)")
            lines.append("RTMR1:         \(quote.td.rtmr1)")
            lines.append("RTMR2:         \(quote.td.rtmr2)")
            lines.append("RTMR3:         \(quote.td.rtmr3)")
            lines.append("REPORTDATA:    \(quote.td.reportData)")
            lines.append("TDATTRIBUTES:  \(quote.td.tdAttributes)\(quote.td.debug ? " (DEBUG)" : "")")
        }
        // The checks that passed, in order (the verdict is the first line).
        for check in report.checks where check.check != "verified" && check.check != "rejected" {
            lines.append("  ✓ \(check.detail)")
        }
        if report.verified {
            lines.append(
                "platform/module/QE status: \(report.platformStatus ?? "-") / \(report.moduleStatus ?? "-") / \(report.qeStatus ?? "-")")
            lines.append("advisories:    \(report.advisoryIDs.isEmpty ? "none" : report.advisoryIDs.joined(separator: ", "))")
            lines.append("collateral valid until: \(report.collateralExpiry ?? "-")")
        }
        for line in lines { print(prefix + line) }
    }
}

/// `custos tdx inspect`: parses a quote without verifying it.
struct TDXInspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect", abstract: "Parse a TDX quote and print its fields (no verification).")

    @Option(name: .long, help: "The quote file (raw bytes).") var quote: String
    @OptionGroup var global: GlobalOptions

    func run() throws {
        let bytes = try readInputFile(quote, kind: .quote)
        // A malformed quote is rejected evidence: the top-level handler reports the TDXError (exit 1).
        let parsed = try Quote(parsing: bytes)
        let json = QuoteJSON(parsed)
        if global.json {
            try Output.printJSON(json)
            return
        }
        print(
            "TDX quote v\(json.version), body \(json.bodyType), TEE \(json.teeType), \(json.length) bytes (\(bytes.count - json.length) trailing bytes ignored)"
        )
        print("signed region: \(json.signedLength) bytes; signature data: \(json.signatureDataLength) bytes; QE ISVSVN \(json.qeIsvSvn)")
        if let pck = json.pck {
            print(
                "PCK: FMSPC \(pck.fmspc), PCE-ID \(pck.pceId), PCESVN \(pck.pceSvn), CPUSVN \(pck.cpuSvn), SGX type \(pck.sgxType), CA \(json.pckCa ?? "unknown")"
            )
        } else {
            print("PCK: \(json.pckChainError ?? "-")")
        }
        let td = json.td
        for (name, value) in [
            ("TEE_TCB_SVN", td.teeTcbSvn), ("MRSEAM", td.mrSeam), ("MRSIGNERSEAM", td.mrSignerSeam), ("SEAMATTRIBUTES", td.seamAttributes),
            ("TDATTRIBUTES", td.tdAttributes + (td.debug ? " (DEBUG)" : "")), ("XFAM", td.xfam), ("MRTD", td.mrtd),
            ("MRCONFIGID", td.mrConfigId), ("MROWNER", td.mrOwner), ("MROWNERCONFIG", td.mrOwnerConfig), ("RTMR0", td.rtmr0),
            ("RTMR1", td.rtmr1), ("RTMR2", td.rtmr2), ("RTMR3", td.rtmr3), ("REPORTDATA", td.reportData),
        ] {
            print("\(name.padding(toLength: 15, withPad: " ", startingAt: 0))\(value)")
        }
        if let svn2 = td.teeTcbSvn2 { print("TEE_TCB_SVN2   \(svn2)") }
        if let service = td.mrServiceTd { print("MRSERVICETD    \(service)") }
    }
}
