import ArgumentParser
import CustosTDX
import CustosTestSupport
import Foundation
import Testing

@testable import CustosCLI

/// The `custos tdx` commands' exit codes: 0 verified/matching, 1 verification failure (incl. malformed input),
/// 2 usage error.
@Suite(Requirement.testData)
struct TDXCLITests {
    func run(_ arguments: [String]) throws -> Int32 { CustosCommand.exitStatus(running: arguments) }

    func path(_ relative: String) -> String { TestData.url("tdx/" + relative).path }

    @Test("tdx verify exit codes")
    func verifyExitCodes() throws {
        let root = path("root/intel_sgx_root_ca.pem")
        let q01 = path("quotes/q01_dcapqvl_tdx_v4.bin")
        let c1 = path("collateral/c1_dcapqvl_2025-06_B0C06F")
        #expect(
            try run(["tdx", "verify", "--quote", q01, "--collateral", c1, "--at", "2025-07-01T00:00:00Z", "--root", root, "--json"]) == 0)
        #expect(
            try run([
                "tdx", "verify", "--quote", q01, "--collateral", c1 + "/collateral.json", "--at", "2025-07-20T00:00:00Z", "--root", root,
            ]) == 1)
        // A malformed quote is a verification failure (1).
        let truncated = FileManager.default.temporaryDirectory.appendingPathComponent("custos-tdx-truncated-\(UUID()).bin")
        try Data(try TestData.bytes("tdx/quotes/q01_dcapqvl_tdx_v4.bin").prefix(700)).write(to: truncated)
        defer { try? FileManager.default.removeItem(at: truncated) }
        #expect(
            try run(["tdx", "verify", "--quote", truncated.path, "--collateral", c1, "--at", "2025-07-01T00:00:00Z", "--root", root]) == 1)
        #expect(try run(["tdx", "inspect", "--quote", truncated.path]) == 1)
        // Usage errors (2).
        #expect(try run(["tdx", "verify", "--quote", "/nonexistent", "--collateral", c1, "--root", root]) == 2)
        #expect(try run(["tdx", "verify", "--quote", q01, "--collateral", c1, "--at", "yesterday", "--root", root]) == 2)
        #expect(try run(["tdx", "verify", "--quote", q01]) != 0)
    }

    @Test(
        "tdx verify --json lists the checks in order, ending with the verdict",
        Requirement.skipOrFail(unless: CustosExecutable.isBuilt, "needs the custos executable (swift build --build-tests)"))
    func verifyChecks() throws {
        let root = path("root/intel_sgx_root_ca.pem")
        let q01 = path("quotes/q01_dcapqvl_tdx_v4.bin")
        let c1 = path("collateral/c1_dcapqvl_2025-06_B0C06F")
        let ok = try CustosExecutable.run([
            "tdx", "verify", "--quote", q01, "--collateral", c1, "--at", "2025-07-01T00:00:00Z", "--root", root, "--json",
        ])
        #expect(ok.status == 0)
        let verified = try JSONDecoder().decode(VerifyJSON.self, from: Data(ok.stdout.utf8))
        #expect(
            verified.checks.map(\.check) == [
                "collateralVerified", "pckChainVerified", "tdxModuleIdentityMatched", "qeReportSignatureVerified", "attestationKeyBound",
                "qeIdentityMatched", "quoteSignatureVerified", "tcbLevelMatched", "verified",
            ])
        // The real collateral's FMSPC (MANIFEST: c1 is for B0C06F000000).
        #expect(verified.checks.first?.detail.contains("B0C06F000000") == true)
        // Expired collateral: nothing passed, the verdict names the failed check.
        let expired = try CustosExecutable.run([
            "tdx", "verify", "--quote", q01, "--collateral", c1, "--at", "2025-07-20T00:00:00Z", "--root", root, "--json",
        ])
        #expect(expired.status == 1)
        let rejected = try JSONDecoder().decode(VerifyJSON.self, from: Data(expired.stdout.utf8))
        #expect(rejected.checks.map(\.check) == ["rejected"])
        #expect(rejected.error?.code == "collateralExpired")
    }

    /// `tdx inspect` / `tdx verify` name the PCK CA that picks the PCK CRL, as dcap-qvl names it; a Processor CA
    /// quote of the test hierarchy says `processor`.
    @Test func quoteJSONNamesThePCKCA() throws {
        #expect(!Fixtures.pairs.isEmpty)
        for pair in Fixtures.pairs {
            #expect(QuoteJSON(try Quote(parsing: try Fixtures.quote(pair.quote))).pckCa == pair.parsed.pck_ca, "\(pair.quote)")
        }
        let processor = try TDXTestHierarchy().withProcessorCA()
        #expect(QuoteJSON(try Quote(parsing: try processor.make(TDXQuoteSpec()).quote)).pckCa == "processor")
    }

    @Test("tdx inspect and eventlog")
    func inspectAndEventLog() throws {
        #expect(try run(["tdx", "inspect", "--quote", path("quotes/q06_gotdx_v5_sample.bin"), "--json"]) == 0)
        let log = path("eventlog/gotdx_ccel_data.dat")
        #expect(
            try run([
                "tdx", "eventlog", "--log", log, "--table", path("eventlog/gotdx_ccel_table.dat"), "--quote",
                path("quotes/q10_gotdx_cos113_v4.bin"), "--json",
            ]) == 0)
        #expect(
            try run([
                "tdx", "eventlog", "--log", path("eventlog/trustee_CCEL_data_directboot.dat"), "--quote",
                path("quotes/q09_trustee_tdx_quote_4_v4.bin"),
            ]) == 1)
    }
}
