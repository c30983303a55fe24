import CustosCrypto
import CustosTDX
import CustosTestSupport
import Foundation
import Testing

/// Quotes from the private test hierarchy drive every status and failure check (spec §2.4, §2.5) through a custom
/// trust anchor. Expected statuses come from the spec's merge rules, not from our output.
@Suite struct GeneratedQuoteTests {
    static let hierarchy = Result { try TDXTestHierarchy() }
    static let time = Date(timeIntervalSince1970: 1_736_000_000)  // 2025-01-04, inside the default collateral window

    func verify(_ spec: TDXQuoteSpec, allowDebug: Bool = false) throws -> QuoteVerificationResult {
        let hierarchy = try Self.hierarchy.get()
        let made = try hierarchy.make(spec)
        return QuoteVerifier(trustedRoot: made.root).verify(
            quote: made.quote, collateral: made.collateral, at: Self.time, options: .init(allowDebug: allowDebug))
    }

    static let base = TDXQuoteSpec()
    static func with(_ change: (inout TDXQuoteSpec) -> Void) -> TDXQuoteSpec {
        var spec = TDXQuoteSpec()
        change(&spec)
        return spec
    }
    static let up = TDXQuoteSpec.level(sgx: [4, 4, 2, 2, 4, 1, 0, 5], pcesvn: 13, tdx: [5, 0, 3], status: "UpToDate")
    static func older(_ status: String, _ advisories: [String]) -> String {
        TDXQuoteSpec.level(
            sgx: [3, 3, 2, 2, 4, 1, 0, 5], pcesvn: 11, tdx: [3, 0, 2], status: status, date: "2024-03-13T00:00:00Z", advisories: advisories)
    }

    @Test(
        "status merge (spec §2.5)",
        arguments: [
            // (description, spec, expected status)
            ("v4 UpToDate", base, TCBStatus.upToDate),
            ("v5 TD10", with { $0.version = 5 }, .upToDate),
            (
                "v5 TD15",
                with {
                    $0.version = 5; $0.bodyType = .td15
                }, .upToDate
            ),
            (
                "platform OutOfDate",
                with {
                    $0.pckComponents[0] = 3; $0.pckPCESVN = 11; $0.tcbLevels = [up, older("OutOfDate", ["INTEL-SA-1"])]
                }, .outOfDate
            ),
            (
                "platform ConfigurationNeeded",
                with { $0.tcbLevels = [TDXQuoteSpec.level(sgx: [4], pcesvn: 13, tdx: [0, 0, 3], status: "ConfigurationNeeded")] },
                .configurationNeeded
            ),
            (
                "SWHardeningNeeded",
                with { $0.tcbLevels = [TDXQuoteSpec.level(sgx: [4], pcesvn: 13, tdx: [0, 0, 3], status: "SWHardeningNeeded")] },
                .swHardeningNeeded
            ),
            (
                "module OutOfDate + Configuration = OutOfDateConfigurationNeeded",
                with {
                    $0.tcbLevels = [TDXQuoteSpec.level(sgx: [4], pcesvn: 13, tdx: [0, 0, 3], status: "ConfigurationNeeded")]
                    $0.moduleLevels = [(9, "UpToDate", []), (3, "OutOfDate", ["INTEL-SA-MOD"])]
                }, .outOfDateConfigurationNeeded
            ),
            (
                "QE OutOfDate + SWHardening = OutOfDate",
                with {
                    $0.tcbLevels = [TDXQuoteSpec.level(sgx: [4], pcesvn: 13, tdx: [0, 0, 3], status: "SWHardeningNeeded")]
                    $0.qeLevels = [(8, "UpToDate", []), (4, "OutOfDate", [])]
                }, .outOfDate
            ),
            (
                "TD15 relaunch advised",
                with {
                    $0.version = 5; $0.bodyType = .td15
                    $0.teeTCBSVN = [3, 1, 3] + [UInt8](repeating: 0, count: 13)
                    $0.teeTCBSVN2 = [9, 1, 3] + [UInt8](repeating: 0, count: 13)
                    $0.moduleLevels = [(9, "UpToDate", []), (3, "OutOfDate", [])]
                }, .tdRelaunchAdvised
            ),
            (
                "TD10 never relaunch",
                with {
                    $0.teeTCBSVN = [3, 1, 3] + [UInt8](repeating: 0, count: 13)
                    $0.moduleLevels = [(9, "UpToDate", []), (3, "OutOfDate", [])]
                }, .outOfDate
            ),
            (
                "TEE_TCB_SVN[1] = 0 uses indexes 0…15 and tdxModule",
                with {
                    $0.teeTCBSVN = [5, 0, 3] + [UInt8](repeating: 0, count: 13)
                }, .upToDate
            ),
        ] as [(String, TDXQuoteSpec, TCBStatus)])
    func statuses(name: String, spec: TDXQuoteSpec, expected: TCBStatus) throws {
        let result = try verify(spec)
        let verified = try #require(result.verifiedQuote, "\(name): \(String(describing: result.error))")
        #expect(verified.tcbStatus == expected, "\(name)")
    }

    @Test("advisory IDs are the union of platform, module and QE levels, platform first")
    func advisories() throws {
        let spec = Self.with {
            $0.pckComponents[0] = 3
            $0.pckPCESVN = 11
            $0.tcbLevels = [Self.up, Self.older("OutOfDate", ["INTEL-SA-00001", "INTEL-SA-00002"])]
            $0.moduleLevels = [(9, "UpToDate", []), (3, "OutOfDate", ["INTEL-SA-00002", "INTEL-SA-00003"])]
            $0.qeLevels = [(8, "UpToDate", []), (4, "OutOfDate", ["INTEL-SA-00004"])]
        }
        let verified = try #require(try verify(spec).verifiedQuote)
        #expect(verified.advisoryIDs == ["INTEL-SA-00001", "INTEL-SA-00002", "INTEL-SA-00003", "INTEL-SA-00004"])
        #expect(verified.tcbStatus == .outOfDate)
    }

    @Test(
        "failure checks",
        arguments: [
            ("no SGX level", with { $0.pckComponents[0] = 1 }, TDXError.Code.tcbNotSupported),
            ("no TDX level", with { $0.teeTCBSVN[2] = 1 }, .tcbNotSupported),
            (
                "platform Revoked", with { $0.tcbLevels = [TDXQuoteSpec.level(sgx: [4], pcesvn: 13, tdx: [0, 0, 3], status: "Revoked")] },
                .tcbRevoked
            ),
            ("module Revoked", with { $0.moduleLevels = [(3, "Revoked", [])] }, .tcbRevoked),
            ("QE Revoked", with { $0.qeLevels = [(4, "Revoked", [])] }, .tcbRevoked),
            ("QE not supported", with { $0.qeLevels = [(9, "UpToDate", [])] }, .tcbNotSupported),
            (
                "unknown status", with { $0.tcbLevels = [TDXQuoteSpec.level(sgx: [4], pcesvn: 13, tdx: [0, 0, 3], status: "Bogus")] },
                .tcbUnrecognizedStatus
            ),
            ("module identity missing", with { $0.teeTCBSVN[1] = 2 }, .tdxModuleMismatch),
            ("SEAMATTRIBUTES non-zero", with { $0.seamAttributes[0] = 1 }, .tdxModuleMismatch),
            ("MRSIGNERSEAM non-zero", with { $0.mrSignerSeam[0] = 1 }, .tdxModuleMismatch),
            ("QE report data", with { $0.breakQEReportData = true }, .qeReportDataMismatch),
            ("PCK revoked", with { $0.revokePCK = true }, .pckRevoked),
            ("Platform CA revoked", with { $0.revokePlatformCA = true }, .intermediateCARevoked),
            ("TCB signing certificate revoked", with { $0.revokeTCBSigning = true }, .tcbSigningChainInvalid),
            ("debug TD", with { $0.tdAttributes = 1 }, .debugTD),
            ("expired collateral", with { $0.nextUpdate = "2025-01-02T00:00:00Z" }, .collateralExpired),
            ("future issueDate", with { $0.issueDate = "2025-01-05T00:00:00Z" }, .collateralNotYetValid),
        ] as [(String, TDXQuoteSpec, TDXError.Code)])
    func failures(name: String, spec: TDXQuoteSpec, expected: TDXError.Code) throws {
        let error = try #require(try verify(spec).error, "\(name) was accepted")
        #expect(error.code == expected, "\(name): \(error)")
    }

    @Test("a generated quote does not verify against the Intel root, and vice versa")
    func anchorsAreSeparate() throws {
        let made = try Self.hierarchy.get().make(TDXQuoteSpec())
        let other = try TDXTestHierarchy()
        let error = QuoteVerifier(trustedRoot: other.root).verify(quote: made.quote, collateral: made.collateral, at: Self.time).error
        #expect([TDXError.Code.crlInvalid, .untrustedRoot].contains(error?.code))
    }
}
