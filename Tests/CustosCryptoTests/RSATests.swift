import CustosCrypto
import CustosTestSupport
import Testing

/// RSA-PSS with AMD's real ARK/ASK roots (AMD SEV API spec Appendix C; `specs/sev.md` §1.1): little-endian
/// exponent, modulus and signature; SHA-256/salt 32 for RSA-2048 (Naples), SHA-384/salt 48 for RSA-4096.
@Suite(Requirement.testData)
struct AMDRootRSATests {
    static let generations = ["naples", "rome", "milan", "genoa", "turin"]

    /// The minimal reading of an AMD-format key needed here (the full parser lives in CustosSEV).
    struct AMDKey {
        let key: RSAPublicKey
        let body: [UInt8]
        let signature: [UInt8]
        let digest: DigestAlgorithm
        let saltLength: Int

        init(_ bytes: [UInt8]) throws {
            func u32(_ offset: Int) -> Int {
                Int(bytes[offset]) | Int(bytes[offset + 1]) << 8 | Int(bytes[offset + 2]) << 16 | Int(bytes[offset + 3]) << 24
            }
            let exponentBytes = u32(0x38) / 8
            let modulusBytes = u32(0x3c) / 8
            let modulusEnd = 0x40 + exponentBytes + modulusBytes
            try #require(bytes.count == modulusEnd + modulusBytes)
            key = try RSAPublicKey(
                modulus: Array(bytes[(0x40 + exponentBytes)..<modulusEnd].reversed()),
                exponent: Array(bytes[0x40..<(0x40 + exponentBytes)].reversed()))
            body = Array(bytes[..<modulusEnd])
            signature = Array(bytes[modulusEnd...].reversed())
            digest = modulusBytes == 256 ? .sha256 : .sha384
            saltLength = digest.byteCount
        }

        func verifies(_ other: AMDKey) -> Bool {
            key.isValidSignature(other.signature, for: other.body, digest: digest, padding: .pss(mgf1: digest, saltLength: saltLength))
        }
    }

    static func load(_ generation: String, _ role: String) throws -> AMDKey {
        try AMDKey(TestData.bytes("sev/amd-roots/\(generation)/\(role).cert"))
    }

    @Test(arguments: generations)
    func arkIsSelfSignedAndSignsItsOwnASKOnly(generation: String) throws {
        let ark = try Self.load(generation, "ark")
        #expect(ark.key.bitCount == (generation == "naples" ? 2048 : 4096))
        #expect(ark.key.exponent == [0x01, 0x00, 0x01])
        #expect(ark.verifies(ark))
        let ask = try Self.load(generation, "ask")
        #expect(ark.verifies(ask))
        #expect(!ask.verifies(ark), "the ASK must not verify the ARK")
        for other in Self.generations where other != generation {
            #expect(!(try Self.load(other, "ark")).verifies(ask), "\(generation) ASK must fail under the \(other) ARK")
        }
    }

    @Test func wrongSaltOrUnreversedSignatureFails() throws {
        let ark = try Self.load("milan", "ark")
        let ask = try Self.load("milan", "ask")
        #expect(!ark.key.isValidSignature(ask.signature, for: ask.body, digest: .sha384, padding: .pss(mgf1: .sha384, saltLength: 32)))
        #expect(
            !ark.key.isValidSignature(
                Array(ask.signature.reversed()), for: ask.body, digest: .sha384, padding: .pss(mgf1: .sha384, saltLength: 48)))
        #expect(!ark.key.isValidSignature(ask.signature, for: ask.body, digest: .sha256, padding: .pss(mgf1: .sha256, saltLength: 32)))
    }
}

@Suite struct RSASigningTests {
    @Test func signAndVerifyBothPaddings() throws {
        let key = try RSAPrivateKey(generatingBits: 2048)
        let message = Array("token".utf8)
        let pss = try key.signature(for: message, digest: .sha256, padding: .pss(mgf1: .sha256, saltLength: 32))
        #expect(key.publicKey.isValidSignature(pss, for: message, digest: .sha256, padding: .pss(mgf1: .sha256, saltLength: 32)))
        #expect(!key.publicKey.isValidSignature(pss, for: message, digest: .sha256, padding: .pkcs1v15))
        let v15 = try key.signature(for: message, digest: .sha384, padding: .pkcs1v15)
        #expect(key.publicKey.isValidSignature(v15, for: message, digest: .sha384, padding: .pkcs1v15))
        #expect(!key.publicKey.isValidSignature(v15, for: Array("tokem".utf8), digest: .sha384, padding: .pkcs1v15))
        // Exports re-import to the same key.
        #expect(try RSAPublicKey(pem: key.publicKey.pem) == key.publicKey)
        #expect(try RSAPublicKey(derSPKI: key.publicKey.derSPKI) == key.publicKey)
        #expect(try RSAPrivateKey(pem: key.pkcs8PEM()).publicKey == key.publicKey)
        #expect(try RSAPublicKey(modulus: key.publicKey.modulus, exponent: key.publicKey.exponent) == key.publicKey)
        #expect(key.publicKey.jwk.kty == "RSA")
        #expect(throws: CryptoError(.invalidParameter, "")) { try RSAPrivateKey(generatingBits: 1024) }
    }
}
