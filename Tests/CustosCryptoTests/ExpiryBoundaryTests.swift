import CustosCrypto
import Foundation
import Testing

/// Custos's expiry rule (README "Expiry rule"): valid while `notBefore <= at <= notAfter` and, for a CRL,
/// `thisUpdate <= at <= nextUpdate` — inclusive, as RFC 5280 §4.1.2.5 defines validity. Checked at the boundary
/// second and the one after.
@Suite struct ExpiryBoundaryTests {
    // 2030-01-01T00:00:00Z, written out (not computed by the code under test).
    static let end = Date(timeIntervalSince1970: 1_893_456_000)

    @Test("a certificate is valid through its notAfter second, expired one second later")
    func certificateNotAfter() throws {
        let h = try TestHierarchy.make(now: Self.end - 86400 * 30)  // the leaf's notAfter is now + 30 days = end
        #expect(h.leaf.notAfter == Self.end)
        #expect(h.leaf.isValid(at: Self.end))
        #expect(!h.leaf.isValid(at: Self.end + 1))
        _ = try ChainVerifier.verify(h.leaf, trustAnchors: [h.root], options: .init(time: Self.end))
        let error = #expect(throws: CryptoError.self) {
            try ChainVerifier.verify(h.leaf, trustAnchors: [h.root], options: .init(time: Self.end + 1))
        }
        #expect(error?.code == .certificateExpired)
    }

    @Test("a CRL is valid through its nextUpdate second, expired one second later")
    func crlNextUpdate() throws {
        let h = try TestHierarchy.make(now: Self.end - 86400)
        let crl = try CRLBuilder(thisUpdate: Self.end - 3600, nextUpdate: Self.end).sign(issuer: h.root, issuerKey: h.rootKey)
        #expect(crl.nextUpdate == Self.end)
        _ = try ChainVerifier.verify(h.leaf, trustAnchors: [h.root], options: .init(time: Self.end, crls: [crl], revocation: .leaf))
        let error = #expect(throws: CryptoError.self) {
            try ChainVerifier.verify(h.leaf, trustAnchors: [h.root], options: .init(time: Self.end + 1, crls: [crl], revocation: .leaf))
        }
        #expect(error?.code == .crlExpired)
    }

    @Test("notBefore and thisUpdate are inclusive too")
    func starts() throws {
        let h = try TestHierarchy.make(now: Self.end)  // the leaf's notBefore is now - 3600
        let start = Self.end - 3600
        let crl = try CRLBuilder(thisUpdate: start, nextUpdate: Self.end + 3600).sign(issuer: h.root, issuerKey: h.rootKey)
        _ = try ChainVerifier.verify(h.leaf, trustAnchors: [h.root], options: .init(time: start, crls: [crl], revocation: .leaf))
        let early = #expect(throws: CryptoError.self) {
            try ChainVerifier.verify(h.leaf, trustAnchors: [h.root], options: .init(time: start - 1, crls: [crl], revocation: .leaf))
        }
        #expect(early?.code == .certificateNotYetValid || early?.code == .crlNotYetValid)
    }
}
