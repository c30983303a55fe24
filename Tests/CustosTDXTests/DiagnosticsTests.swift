import CustosCrypto
import CustosTDX
import CustosTestSupport
import Foundation
import Testing

/// The diagnostics log (STYLE §8): every check that passed, in QVL order, then the verdict. Expected logs are written
/// from the generated quote's chosen fields and the spec's order, and compared whole.
@Suite struct DiagnosticsTests {
    static let hierarchy = Result { try TDXTestHierarchy() }
    static let time = Date(timeIntervalSince1970: 1_736_000_000)  // 2025-01-04
    static let issue = Date(timeIntervalSince1970: 1_735_689_600)  // 2025-01-01, the generator's issueDate
    static let next = Date(timeIntervalSince1970: 1_738_368_000)  // 2025-02-01, its nextUpdate
    static let fmspc = "00A06F000000"

    /// Collects diagnostics; the callback runs synchronously on the verifying thread.
    final class Log: @unchecked Sendable {
        var entries: [VerificationDiagnostic] = []
        func record(_ diagnostic: VerificationDiagnostic) { entries.append(diagnostic) }
    }

    func run(_ spec: TDXQuoteSpec, verifier: (Certificate) -> QuoteVerifier = { QuoteVerifier(trustedRoot: $0) }, allowDebug: Bool = false)
        throws -> (QuoteVerificationResult, [VerificationDiagnostic])
    {
        let made = try Self.hierarchy.get().make(spec)
        let log = Log()
        let result = verifier(made.root).verify(
            quote: made.quote, collateral: made.collateral, at: Self.time, options: .init(allowDebug: allowDebug),
            diagnosticCallback: log.record)
        return (result, log.entries)
    }

    static let passedChecks: [VerificationDiagnostic] = [
        .collateralVerified(fmspc: fmspc, tcbEvaluationDataNumber: 18, validFrom: issue, validUntil: next),
        .pckChainVerified(fmspc: fmspc, pceSVN: 13, fromCache: false),
        .tdxModuleIdentityMatched(id: "TDX_01"),
        .qeReportSignatureVerified,
        .attestationKeyBound,
        .qeIdentityMatched(isvSVN: 4, status: .upToDate),
        .quoteSignatureVerified,
        .tcbLevelMatched(tcbDate: "2024-11-13T00:00:00Z", platformStatus: "UpToDate", moduleStatus: "UpToDate"),
    ]

    @Test("a verified quote logs every check in QVL order, then the verdict")
    func verifiedLog() throws {
        let (result, log) = try run(TDXQuoteSpec())
        #expect(result.verifiedQuote != nil)
        #expect(log == Self.passedChecks + [.verified(tcbStatus: .upToDate, advisoryIDs: [])])
    }

    @Test("with TEE_TCB_SVN[1] = 0 the log names tdxModule; a debug TD allowed is logged")
    func moduleAndDebug() throws {
        var spec = TDXQuoteSpec()
        spec.teeTCBSVN[1] = 0
        spec.tdAttributes |= 1
        let (result, log) = try run(spec, allowDebug: true)
        #expect(result.verifiedQuote != nil)
        var expected = Self.passedChecks
        expected[2] = .tdxModuleIdentityMatched(id: "tdxModule")
        expected[7] = .tcbLevelMatched(tcbDate: "2024-11-13T00:00:00Z", platformStatus: "UpToDate", moduleStatus: nil)
        #expect(log == expected + [.debugTDAllowed, .verified(tcbStatus: .upToDate, advisoryIDs: [])])
    }

    @Test("a second verification with a cache logs the cached collateral and PCK chain")
    func cachedLog() throws {
        let made = try Self.hierarchy.get().make(TDXQuoteSpec())
        let verifier = QuoteVerifier(trustedRoot: made.root, cache: VerificationCache())
        let first = Log()
        let second = Log()
        _ = verifier.verify(quote: made.quote, collateral: made.collateral, at: Self.time, diagnosticCallback: first.record)
        let result = verifier.verify(quote: made.quote, collateral: made.collateral, at: Self.time, diagnosticCallback: second.record)
        #expect(result.verifiedQuote != nil)
        #expect(first.entries == Self.passedChecks + [.verified(tcbStatus: .upToDate, advisoryIDs: [])])
        var expected = Self.passedChecks
        expected[0] = .collateralFromCache(validUntil: Self.next)
        expected[1] = .pckChainVerified(fmspc: Self.fmspc, pceSVN: 13, fromCache: true)
        #expect(second.entries == expected + [.verified(tcbStatus: .upToDate, advisoryIDs: [])])
    }

    static func with(_ change: (inout TDXQuoteSpec) -> Void) -> TDXQuoteSpec {
        var spec = TDXQuoteSpec()
        change(&spec)
        return spec
    }

    @Test(
        "a rejected quote logs the checks that passed, then the failed one",
        arguments: [
            // (name, spec, how many of passedChecks pass first, expected code)
            ("expired", with { $0.nextUpdate = "2025-01-02T00:00:00Z" }, 0, TDXError.Code.collateralExpired),
            ("PCK revoked", with { $0.revokePCK = true }, 1, .pckRevoked),
            ("SEAMATTRIBUTES", with { $0.seamAttributes[0] = 1 }, 2, .tdxModuleMismatch),
            ("QE report data", with { $0.breakQEReportData = true }, 4, .qeReportDataMismatch),
            ("debug", with { $0.tdAttributes |= 1 }, 8, .debugTD),
        ] as [(String, TDXQuoteSpec, Int, TDXError.Code)])
    func rejectedLog(name: String, spec: TDXQuoteSpec, passed: Int, code: TDXError.Code) throws {
        let (result, log) = try run(spec)
        let error = try #require(result.error)
        #expect(error.code == code)
        #expect(log == Array(Self.passedChecks.prefix(passed)) + [.rejected(error)], "\(code)")
    }

    @Test("an unsupported QE level is logged as found (notSupported) before the TCB evaluation rejects it")
    func qeNotSupported() throws {
        let (result, log) = try run(Self.with { $0.qeLevels = [(9, "UpToDate", [])] })
        let error = try #require(result.error)
        #expect(error.code == .tcbNotSupported)
        var expected = Array(Self.passedChecks.prefix(7))
        expected[5] = .qeIdentityMatched(isvSVN: 4, status: .notSupported)
        #expect(log == expected + [.rejected(error)])
    }

    @Test("a malformed quote logs only the rejection")
    func malformed() throws {
        let made = try Self.hierarchy.get().make(TDXQuoteSpec())
        let log = Log()
        let result = QuoteVerifier(trustedRoot: made.root).verify(
            quote: Array(made.quote.prefix(100)), collateral: made.collateral, at: Self.time, diagnosticCallback: log.record)
        #expect(result.error?.code == .malformedQuote)
        #expect(log.entries.count == 1)
        #expect(log.entries.first?.name == "rejected")
    }
}
