import CustosCrypto
import CustosTestSupport
import Testing

/// Bad input never crashes: it throws a typed error.
@Suite struct MalformedInputTests {
    static let garbage: [[UInt8]] = [
        [], [0x30], [0x30, 0x82], [0x30, 0x84, 0xff, 0xff, 0xff, 0xff], [0x30, 0x80, 0x00, 0x00], [0x02, 0x01],
        Array(repeating: 0xff, count: 64), Array("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".utf8),
    ]

    @Test(arguments: garbage)
    func garbageDERIsRejected(bytes: [UInt8]) {
        #expect(throws: CryptoError(.malformedInput, "")) { try Certificate(derEncoded: bytes) }
        #expect(throws: CryptoError(.malformedInput, "")) { try CertificateRevocationList(derEncoded: bytes) }
        #expect(throws: CryptoError(.malformedInput, "")) { try ECDSASignature(derEncoded: bytes) }
        #expect(throws: CryptoError(.malformedInput, "")) { try ECPublicKey(derSPKI: bytes) }
        #expect(throws: CryptoError(.malformedInput, "")) { try ECPrivateKey(der: bytes) }
        #expect(throws: CryptoError(.malformedInput, "")) { try PKCS7SignedData(derEncoded: bytes) }
        #expect(throws: CryptoError(.malformedInput, "")) { try AuthenticodeSignature(derEncoded: bytes) }
        #expect(throws: CryptoError.self) { try ECPublicKey(curve: .p384, sec1: bytes) }
    }

    @Test func garbagePEMAndText() {
        #expect(throws: CryptoError(.malformedInput, "")) { try Certificate.parsePEMChain("") }
        #expect(throws: CryptoError(.malformedInput, "")) {
            try Certificate.parsePEMChain("-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----")
        }
        #expect(throws: CryptoError(.malformedInput, "")) { try Certificate.parsePEMChain("-----BEGIN CERTIFICATE-----\nAAAA\n") }
        #expect(throws: CryptoError(.malformedInput, "")) { try ECPublicKey(pem: "not a key") }
        #expect(throws: CryptoError(.malformedInput, "")) {
            try ECPrivateKey(pem: "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
        }
        #expect(throws: CryptoError(.malformedInput, "")) { try RSAPublicKey(pem: "") }
        #expect(throws: CryptoError(.malformedInput, "")) { try CertificateRevocationList(pemEncoded: "nothing") }
        #expect(throws: CryptoError(.malformedInput, "")) { try Hex.decode("abc") }
        #expect(throws: CryptoError(.malformedInput, "")) { try Hex.decode("zz") }
        #expect(throws: CryptoError(.malformedInput, "")) { try Base64.decode("a") }
        #expect(throws: CryptoError(.malformedInput, "")) { try Base64.decode("ab=c") }
        #expect(throws: CryptoError(.malformedInput, "")) { try ECDSASignature(rawBigEndian: [1, 2, 3]) }
        #expect(throws: CryptoError(.malformedInput, "")) { try ECDSASignature(rawBigEndian: [0, 0]) }
        #expect(throws: CryptoError(.malformedInput, "")) { try ECPublicKey(jwk: JWK(kty: "RSA")) }
        #expect(throws: CryptoError(.malformedInput, "")) { try RSAPublicKey(modulus: [0], exponent: [3]) }
    }

    @Test(Requirement.testData)
    func everyTruncationOfARealCertificateAndCRLThrows() throws {
        let cert = try TestData.bytes("tdx/root/intel_sgx_root_ca.der")
        for length in 0..<cert.count {
            #expect(throws: CryptoError.self) { try Certificate(derEncoded: Array(cert[..<length])) }
        }
        #expect(throws: CryptoError(.malformedInput, "")) { try Certificate(derEncoded: cert + [0]) }
        let crl = try TestData.bytes("tdx/collateral/c4_gotdx_2023-06_50806F/pck_crl.der")
        for length in stride(from: 0, to: crl.count, by: 7) {
            #expect(throws: CryptoError.self) { try CertificateRevocationList(derEncoded: Array(crl[..<length])) }
        }
    }

    @Test(Requirement.testData)
    func randomByteFlipsInACertificateNeverCrash() throws {
        let cert = try TestData.bytes("tdx/root/intel_sgx_root_ca.der")
        let root = try Certificate(derEncoded: cert)
        var generator = SeededRandom("MalformedInputTests.randomByteFlipsInACertificate")
        var rejected = 0
        for _ in 0..<300 {
            var bytes = cert
            let index = Int.random(in: 0..<bytes.count, using: &generator)
            bytes[index] ^= UInt8.random(in: 1...255, using: &generator)
            // Either it fails to parse, or it parses and no longer verifies as the same self-signed root.
            if let parsed = try? Certificate(derEncoded: bytes) {
                if parsed != root && !(parsed.isSelfSigned && parsed.publicKey == root.publicKey) { rejected += 1 }
                _ = parsed.subject
                _ = parsed.extensions
            } else {
                rejected += 1
            }
        }
        #expect(rejected > 250)
    }
}

@Suite struct DERTests {
    @Test func oidEncodingMatchesX690Example() throws {
        var writer = DERWriter()
        let written = writer.objectIdentifier("1.2.840.113741.1.13.1")
        #expect(written)
        // X.690 §8.19: 1.2 → 42 (0x2a); 840 → 86 48; 113741 → 86 f8 4d; then 1, 13, 1.
        #expect(writer.bytes == [0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf8, 0x4d, 0x01, 0x0d, 0x01])
        #expect(try DERReader.parseSingle(writer.bytes).objectIdentifier() == "1.2.840.113741.1.13.1")
        var bad = DERWriter()
        let rejected = bad.objectIdentifier("x.y")
        #expect(!rejected)
        #expect(bad.bytes.isEmpty)
    }

    @Test func readerRejectsLiesAboutLength() {
        #expect(throws: CryptoError(.malformedInput, "")) { try DERReader.parseSingle([0x04, 0x05, 0x01]) }
        #expect(throws: CryptoError(.malformedInput, "")) { try DERReader.parseSingle([0x04, 0x81, 0x01, 0x00]) }  // non-minimal
        #expect(throws: CryptoError(.malformedInput, "")) { try DERReader.parseSingle([0x04, 0x01, 0x00, 0x00]) }  // trailing
        #expect(throws: CryptoError(.malformedInput, "")) { try DERReader.parseSingle([0x1f, 0x01, 0x00]) }  // multi-byte tag
        #expect(throws: CryptoError(.malformedInput, "")) { try DERReader.parseSingle([0x02, 0x01, 0x80]).integerValue() }
    }

    @Test func roundTripsNestedStructures() throws {
        var writer = DERWriter()
        writer.sequence { seq in
            seq.integer(300)
            seq.octetString([1, 2, 3])
            seq.constructed(DERNode.Tag.context(0)) { $0.boolean(true) }
            seq.octetString([UInt8](repeating: 7, count: 200))
        }
        let root = try DERReader.parseSingle(writer.bytes)
        let children = try root.children()
        #expect(children.count == 4)
        #expect(try children[0].integerValue() == 300)
        #expect(Array(children[1].content) == [1, 2, 3])
        #expect(children[2].tag == 0xa0)
        #expect(children[3].content.count == 200)
    }
}
