import CustosCrypto
import CustosTDX
import CustosTestSupport
import Foundation
import Testing

/// The expiry rule on both TDX paths (README "Expiry rule"): collateral, certificates and CRLs are valid through
/// their nextUpdate/notAfter second and expired one second later — freshly verified and from the cache alike.
@Suite struct TDXExpiryBoundaryTests {
    /// Verifies at `boundary` and `boundary + 1`, fresh and with a cache warmed a day earlier.
    func check(_ made: TDXTestCase, boundary: Date) {
        for cached in [false, true] {
            let cache = VerificationCache()
            let verifier = QuoteVerifier(trustedRoot: made.root, cache: cached ? cache : nil)
            let path = cached ? "cached" : "fresh"
            if cached {
                let warm = verifier.verify(quote: made.quote, collateral: made.collateral, at: boundary - 86400)
                #expect(warm.error == nil, "warming the cache: \(String(describing: warm.error))")
                #expect(cache.counts.collateral == 1)
            }
            let at = verifier.verify(quote: made.quote, collateral: made.collateral, at: boundary)
            #expect(at.error == nil, "\(path) at the boundary: \(String(describing: at.error))")
            let after = verifier.verify(quote: made.quote, collateral: made.collateral, at: boundary + 1)
            #expect(after.error?.code == .collateralExpired, "\(path) one second after: \(String(describing: after.error))")
        }
    }

    @Test("TCB Info and QE Identity nextUpdate")
    func collateralNextUpdate() throws {
        let spec = TDXQuoteSpec()  // nextUpdate 2025-02-01T00:00:00Z
        check(try TDXTestHierarchy().make(spec), boundary: Date(timeIntervalSince1970: 1_738_368_000))
    }

    @Test("certificates' notAfter and the CRLs' nextUpdate")
    func certificatesAndCRLs() throws {
        let end = Date(timeIntervalSince1970: 1_740_000_000)  // 2025-02-19T21:20:00Z
        var spec = TDXQuoteSpec()
        spec.nextUpdate = "2025-03-01T00:00:00Z"  // later than the certificates and CRLs
        check(try TDXTestHierarchy(notAfter: end).make(spec), boundary: end)
    }
}
