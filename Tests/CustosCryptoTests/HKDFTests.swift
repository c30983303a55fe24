import CustosCrypto
import Testing

/// RFC 5869 Appendix A, test cases 1 and 3 (SHA-256).
@Suite struct HKDFTests {
    @Test func rfc5869TestCase1() throws {
        let ikm = [UInt8](repeating: 0x0b, count: 22)
        let salt = try Hex.decode("000102030405060708090a0b0c")
        let info = try Hex.decode("f0f1f2f3f4f5f6f7f8f9")
        let prk = HKDF.extract(.sha256, salt: salt, inputKeyMaterial: ikm)
        #expect(prk.unsafeCopy().hexString == "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5")
        let okm = try HKDF.expand(.sha256, pseudoRandomKey: prk, info: info, length: 42)
        #expect(okm.unsafeCopy().hexString == "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865")
    }

    @Test func rfc5869TestCase3EmptySaltAndInfo() throws {
        let ikm = [UInt8](repeating: 0x0b, count: 22)
        let okm = try HKDF.deriveKey(.sha256, inputKeyMaterial: ikm, salt: [], info: [], length: 42)
        #expect(okm.unsafeCopy().hexString == "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8")
    }

    @Test func rejectsOverlongOutput() {
        #expect(throws: CryptoError(.invalidParameter, "")) {
            try HKDF.deriveKey(.sha256, inputKeyMaterial: [1], salt: [], info: [], length: 255 * 32 + 1)
        }
    }
}
