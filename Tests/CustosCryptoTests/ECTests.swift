import CustosCrypto
import Testing

@Suite struct ECTests {
    // NIST CAVP KAS ECC CDH primitive test vectors (SP 800-56A), COUNT = 0 for P-256 and P-384.
    @Test(arguments: [
        (
            ECCurve.p256,
            "700c48f77f56584c5cc632ca65640db91b6bacce3a4df6b42ce7cc838833d287",
            "db71e509e3fd9b060ddb20ba5c51dcc5948d46fbf640dfe0441782cab85fa4ac",
            "7d7dc5f71eb29ddaf80d6214632eeae03d9058af1fb6d22ed80badb62bc1a534",
            "ead218590119e8876b29146ff89ca61770c4edbbf97d38ce385ed281d8a6b230",
            "28af61281fd35e2fa7002523acc85a429cb06ee6648325389f59edfce1405141",
            "46fc62106420ff012e54a434fbdd2d25ccc5852060561e68040dd7778997bd7b"
        ),
        (
            ECCurve.p384,
            "a7c76b970c3b5fe8b05d2838ae04ab47697b9eaf52e764592efda27fe7513272734466b400091adbf2d68c58e0c50066",
            "ac68f19f2e1cb879aed43a9969b91a0839c4c38a49749b661efedf243451915ed0905a32b060992b468c64766fc8437a",
            "3cc3122a68f0d95027ad38c067916ba0eb8c38894d22e1b15618b6818a661774ad463b205da88cf699ab4d43c9cf98a1",
            "9803807f2f6d2fd966cdd0290bd410c0190352fbec7ff6247de1302df86f25d34fe4a97bef60cff548355c015dbb3e5f",
            "ba26ca69ec2f5b5d9dad20cc9da711383a9dbe34ea3fa5a2af75b46502629ad54dd8b7d73a8abb06a3a3be47d650cc99",
            "5f9d29dc5e31a163060356213669c8ce132e22f57c9a04f40ba7fcead493b457e5621e766c40a2e3d4d6a04b25e533f1"
        ),
    ])
    func ecdhCAVP(curve: ECCurve, peerX: String, peerY: String, d: String, qx: String, qy: String, z: String) throws {
        let peer = try ECPublicKey(curve: curve, x: Hex.decode(peerX), y: Hex.decode(peerY))
        let key = try ECPrivateKey(curve: curve, rawScalar: Hex.decode(d))
        #expect(key.publicKey.x.hexString == qx)
        #expect(key.publicKey.y.hexString == qy)
        #expect(try key.sharedSecret(with: peer).unsafeCopy().hexString == z)
        #expect(key.rawScalar.unsafeCopy().hexString == d)
    }

    // RFC 6979 §A.2.5 (P-256/SHA-256) and §A.2.6 (P-384/SHA-384), message "sample".
    static let rfc6979: [(ECCurve, DigestAlgorithm, String, String, String, String)] = [
        (
            .p256, .sha256,
            "60fed4ba255a9d31c961eb74c6356d68c049b8923b61fa6ce669622e60f29fb6",
            "7903fe1008b8bc99a41ae9e95628bc64f2f1b20c2d7e9f5177a3c294d4462299",
            "efd48b2aacb6a8fd1140dd9cd45e81d69d2c877b56aaf991c34d0ea84eaf3716",
            "f7cb1c942d657c41d436c7a1b6e29f65f3e900dbb9aff4064dc4ab2f843acda8"
        ),
        (
            .p384, .sha384,
            "ec3a4e415b4e19a4568618029f427fa5da9a8bc4ae92e02e06aae5286b300c64def8f0ea9055866064a254515480bc13",
            "8015d9b72d7d57244ea8ef9ac0c621896708a59367f9dfb9f54ca84b3f1c9db1288b231c3ae0d4fe7344fd2533264720",
            "94edbb92a5ecb8aad4736e56c691916b3f88140666ce9fa73d64c4ea95ad133c81a648152e44acf96e36dd1e80fabe46",
            "99ef4aeb15f178cea1fe40db2603138f130e740a19624526203b6351d0a3a94fa329c145786e679e7b82c71a38628ac8"
        ),
    ]

    @Test(arguments: rfc6979)
    func ecdsaVerifyAllEncodings(curve: ECCurve, digest: DigestAlgorithm, ux: String, uy: String, r: String, s: String) throws {
        let key = try ECPublicKey(curve: curve, x: Hex.decode(ux), y: Hex.decode(uy))
        let message = Array("sample".utf8)
        let rBE = try Hex.decode(r)
        let sBE = try Hex.decode(s)

        // Raw big-endian r‖s (Intel DCAP).
        let raw = try ECDSASignature(rawBigEndian: rBE + sBE)
        #expect(key.isValidSignature(raw, for: message, digest: digest))
        // DER round trip (X.509/CMS).
        let der = try raw.derRepresentation()
        #expect(try ECDSASignature(derEncoded: der) == raw)
        #expect(key.isValidSignature(try ECDSASignature(derEncoded: der), for: message, digest: digest))
        // Little-endian r‖s and AMD's separate zero-padded 72-byte fields.
        let little = try ECDSASignature(rawLittleEndian: Array(rBE.reversed()) + Array(sBE.reversed()))
        #expect(key.isValidSignature(little, for: message, digest: digest))
        let padding = [UInt8](repeating: 0, count: 72 - rBE.count)
        let amd = try ECDSASignature(rLittleEndian: Array(rBE.reversed()) + padding, sLittleEndian: Array(sBE.reversed()) + padding)
        #expect(key.isValidSignature(amd, for: message, digest: digest))
        let fields = try amd.littleEndianComponents(componentByteCount: 72)
        #expect(fields.r == Array(rBE.reversed()) + padding)
        // Prehashed digest.
        #expect(key.isValidSignature(raw, forDigest: Digest.hash(digest, message)))

        // The wrong byte order, a swapped r/s, another message: all fail.
        let wrongOrder = try ECDSASignature(rawLittleEndian: rBE + sBE)
        #expect(!key.isValidSignature(wrongOrder, for: message, digest: digest))
        #expect(!key.isValidSignature(try ECDSASignature(rawBigEndian: sBE + rBE), for: message, digest: digest))
        #expect(!key.isValidSignature(raw, for: Array("samplf".utf8), digest: digest))
    }

    @Test(arguments: ECCurve.allCases)
    func signVerifyAndExportRoundTrips(curve: ECCurve) throws {
        let key = try ECPrivateKey(generating: curve)
        let message = Array("custos".utf8)
        let signature = try key.signature(for: message)
        #expect(key.publicKey.isValidSignature(signature, for: message, digest: curve.defaultDigest))
        let raw = try signature.rawBigEndian(componentByteCount: curve.coordinateByteCount)
        #expect(raw.count == 2 * curve.coordinateByteCount)

        // SEC 1 point, SPKI DER, PEM, JWK.
        #expect(try ECPublicKey(curve: curve, sec1: key.publicKey.uncompressedPoint) == key.publicKey)
        #expect(try ECPublicKey(derSPKI: key.publicKey.derSPKI) == key.publicKey)
        #expect(try ECPublicKey(pem: key.publicKey.pem) == key.publicKey)
        #expect(try ECPublicKey(jwk: key.publicKey.jwk) == key.publicKey)
        #expect(key.publicKey.jwk.crv == curve.rawValue)
        #expect(key.jwk.d != nil)
        // Private key exports re-import to the same key.
        #expect(try ECPrivateKey(pem: key.pkcs8PEM()).publicKey == key.publicKey)
        #expect(try ECPrivateKey(der: key.sec1DER().unsafeCopy()).publicKey == key.publicKey)
        #expect(try ECPrivateKey(der: key.pkcs8DER().unsafeCopy()).publicKey == key.publicKey)
        #expect(try ECPrivateKey(curve: curve, rawScalar: key.rawScalar.unsafeCopy()).publicKey == key.publicKey)
        // ECDH is symmetric.
        let other = try ECPrivateKey(generating: curve)
        #expect(try key.sharedSecret(with: other.publicKey) == other.sharedSecret(with: key.publicKey))
    }

    /// The public half of a private key makes its OpenSSL key on first use: concurrent first uses all verify and
    /// all derive the same secret.
    @Test func publicHalfIsUsableConcurrentlyOnFirstUse() async throws {
        let key = try ECPrivateKey(generating: .p256)
        let peer = try ECPrivateKey(generating: .p256)
        let message = Array("first use".utf8)
        let signature = try key.signature(for: message)
        let expected = try key.sharedSecret(with: peer.publicKey)
        let results = await withTaskGroup(of: Bool.self) { group in
            for index in 0..<16 {
                group.addTask {
                    if index % 2 == 0 { return key.publicKey.isValidSignature(signature, for: message, digest: .sha256) }
                    return (try? peer.sharedSecret(with: key.publicKey)) == expected
                }
            }
            return await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        #expect(results.count == 16 && results.allSatisfy { $0 })
        #expect(!key.publicKey.isValidSignature(signature, for: Array("other".utf8), digest: .sha256))
    }

    @Test func rejectsPointsOffTheCurveAndBadScalars() throws {
        let x = try Hex.decode("700c48f77f56584c5cc632ca65640db91b6bacce3a4df6b42ce7cc838833d287")
        let y = try Hex.decode("db71e509e3fd9b060ddb20ba5c51dcc5948d46fbf640dfe0441782cab85fa4ad")  // last nibble changed
        #expect(throws: CryptoError(.malformedInput, "")) { try ECPublicKey(curve: .p256, x: x, y: y) }
        #expect(throws: CryptoError(.malformedInput, "")) { try ECPublicKey(curve: .p256, x: x + [1], y: y) }
        #expect(throws: CryptoError(.malformedInput, "")) { try ECPrivateKey(curve: .p256, rawScalar: [0, 0]) }
        #expect(throws: CryptoError(.malformedInput, "")) {
            try ECPrivateKey(curve: .p256, rawScalar: [UInt8](repeating: 0xff, count: 32))
        }
        // SEC 1 encodings that are not a key on the curve: the point at infinity (0x00), empty, an off-curve point,
        // a P-256 point given as P-384, a truncated point, an unknown prefix.
        let valid = try Hex.decode(
            "04" + "700c48f77f56584c5cc632ca65640db91b6bacce3a4df6b42ce7cc838833d287"
                + "db71e509e3fd9b060ddb20ba5c51dcc5948d46fbf640dfe0441782cab85fa4ac")
        for bad in [[0x00], [], [0x04] + x + y, valid, Array(valid.dropLast()), [0x05] + valid.dropFirst()] as [[UInt8]] {
            let curve: ECCurve = bad == valid ? .p384 : .p256
            #expect(throws: CryptoError(.malformedInput, ""), "\(bad.count) bytes on \(curve)") {
                try ECPublicKey(curve: curve, sec1: bad)
            }
        }
        // The compressed form of the same point is the same key.
        let compressed = [UInt8(0x02 | (valid[64] & 1))] + valid[1...32]
        #expect(try ECPublicKey(curve: .p256, sec1: compressed) == ECPublicKey(curve: .p256, sec1: valid))
        let a = try ECPrivateKey(generating: .p256)
        let b = try ECPrivateKey(generating: .p384)
        #expect(throws: CryptoError(.invalidParameter, "")) { try a.sharedSecret(with: b.publicKey) }
    }
}
