import CustosCrypto
import CustosTestSupport
import Foundation
import Testing

// MARK: - The jwcrypto / PyJWT peer (PyPI), run from a git-ignored venv

// MARK: - Interop

/// Our JOSE against jwcrypto and PyJWT, both directions, for every supported algorithm and curve.
@Suite(.enabled(if: JOSEPeer.shouldRun, Comment(rawValue: JOSEPeer.skipReason)))
struct JOSEInteropTests {
    enum Recipient: String, CaseIterable, Sendable {
        case p256, p384, p521, rsa2048, rsa3072
    }

    static func makeKey(_ recipient: Recipient) throws -> JWEDecryptionKey {
        switch recipient {
        case .p256: .ec(try ECPrivateKey(generating: .p256))
        case .p384: .ec(try ECPrivateKey(generating: .p384))
        case .p521: .ec(try ECPrivateKey(generating: .p521))
        case .rsa2048: .rsa(try RSAPrivateKey(generatingBits: 2048))
        case .rsa3072: .rsa(try RSAPrivateKey(generatingBits: 3072))
        }
    }

    static func peerPrivateKey(_ key: JWEDecryptionKey) throws -> (String, JSONValue) {
        switch key {
        case .ec(let k): ("jwk", JOSEPeer.privateJWK(k))
        case .rsa(let k): ("pem", .string(try k.pkcs8PEM()))
        }
    }

    @Test(arguments: Recipient.allCases)
    func ourJWEDecryptsWithJwcrypto(recipient: Recipient) throws {
        let key = try Self.makeKey(recipient)
        let (keyMember, keyValue) = try Self.peerPrivateKey(key)
        var requests: [JSONValue] = []
        var plaintexts: [[UInt8]] = []
        for (index, party) in [([UInt8](), [UInt8]()), (Array("Alice".utf8), Array("Bob".utf8))].enumerated() {
            let plaintext = try SecureRandom.bytes(1 + index * 300)
            plaintexts.append(plaintext)
            let jwe = try FlattenedJWE.encrypt(SecretBytes(plaintext), to: key.publicJWK, partyUInfo: party.0, partyVInfo: party.1)
            requests.append([
                "op": "jwe_decrypt", .init(stringLiteral: keyMember): keyValue,
                "jwe": .string(String(decoding: jwe.jsonBytes, as: UTF8.self)),
            ])
        }
        let results = try JOSEPeer.call(requests)
        for (result, plaintext) in zip(results, plaintexts) {
            #expect(try Base64URL.decode(JOSEPeer.string(result, "plaintext_b64u")) == plaintext)
        }
    }

    @Test(arguments: Recipient.allCases)
    func jwcryptoJWEDecryptsWithUs(recipient: Recipient) throws {
        let key = try Self.makeKey(recipient)
        let publicJWK = key.publicJWK
        let alg = publicJWK.algorithm ?? ""
        let plaintext = try SecureRandom.bytes(77)
        var requests: [JSONValue] = [
            [
                "op": "jwe_encrypt", "jwk": publicJWK.jsonValue, "alg": .string(alg), "enc": "A256GCM",
                "plaintext_b64u": .string(Base64URL.encode(plaintext)),
            ]
        ]
        if case .ec = key {
            requests.append([
                "op": "jwe_encrypt", "jwk": publicJWK.jsonValue, "alg": .string(alg), "enc": "A256GCM",
                "plaintext_b64u": .string(Base64URL.encode(plaintext)), "apu": .string(Base64URL.encode(Array("Alice".utf8))),
                "apv": .string(Base64URL.encode(Array("Bob".utf8))),
            ])
        }
        for result in try JOSEPeer.call(requests) {
            let jwe = try FlattenedJWE(jsonBytes: Array(JOSEPeer.string(result, "jwe").utf8))
            #expect(jwe.keyAlgorithm.rawValue == alg)
            #expect(try jwe.decrypt(with: key).unsafeCopy() == plaintext)
            // jwcrypto sends epk unprotected: another valid epk derives another KEK, and the unwrap fails.
            guard case .ec(let ecKey) = key, case .object(var members) = jwe.jsonValue else { continue }
            members["header"] = ["epk": JSONWebKey(.ec(try ECPrivateKey(generating: ecKey.curve).publicKey)).jsonValue]
            #expect(throws: CryptoError(.authenticationFailure, "")) { try FlattenedJWE(json: .object(members)).decrypt(with: key) }
        }
    }

    @Test func peerRefusesOurTamperedJWE() throws {
        // The peer must fail on a JWE we altered, or the decrypt tests above would prove nothing.
        let key = JWEDecryptionKey.ec(try ECPrivateKey(generating: .p256))
        let (keyMember, keyValue) = try Self.peerPrivateKey(key)
        let jwe = try FlattenedJWE.encrypt(SecretBytes([1, 2, 3, 4]), to: key.publicJWK)
        guard case .object(var members) = jwe.jsonValue else { return }
        var tag = jwe.tag
        tag[0] ^= 0x80
        members["tag"] = .string(Base64URL.encode(tag))
        let results = try JOSEPeer.call([
            ["op": "jwe_decrypt", .init(stringLiteral: keyMember): keyValue, "jwe": .string(CanonicalJSON.string(.object(members)))]
        ])
        #expect(results[0]["error"] != nil)
    }

    @Test(arguments: ECCurve.allCases)
    func jwsBothWays(curve: ECCurve) throws {
        let key = try ECPrivateKey(generating: curve)
        let alg = JWSAlgorithm(curve: curve).rawValue
        let payload = Array("{\"iss\":\"custos\",\"n\":42}".utf8)
        let ours = try CompactJWS.sign(payload: payload, extraHeader: ["typ": "JWT"], key: key)
        var tampered = Array(ours.utf8)
        tampered[tampered.count - 3] = tampered[tampered.count - 3] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        let publicJWK = JSONWebKey(.ec(key.publicKey)).jsonValue
        let results = try JOSEPeer.call([
            ["op": "jws_verify", "token": .string(ours), "jwk": publicJWK, "alg": .string(alg)],
            ["op": "jws_verify", "token": .string(String(decoding: tampered, as: UTF8.self)), "jwk": publicJWK, "alg": .string(alg)],
            ["op": "jws_sign", "jwk": JOSEPeer.privateJWK(key), "alg": .string(alg), "payload_b64u": .string(Base64URL.encode(payload))],
        ])
        #expect(try Base64URL.decode(JOSEPeer.string(results[0], "payload_b64u")) == payload)
        #expect(results[1]["error"] != nil)
        let theirs = try CompactJWS(parsing: JOSEPeer.string(results[2], "token"))
        try theirs.verify(with: JSONWebKey(.ec(key.publicKey)))
        #expect(theirs.payload == payload)
    }

    @Test func thumbprintsAgreeWithJwcrypto() throws {
        var keys: [JSONWebKey] = []
        for curve in ECCurve.allCases { keys.append(JSONWebKey(.ec(try ECPrivateKey(generating: curve).publicKey))) }
        keys.append(JSONWebKey(.rsa(try RSAPrivateKey(generatingBits: 2048).publicKey)))
        let results = try JOSEPeer.call(keys.map { ["op": "thumbprint", "jwk": $0.jsonValue] })
        for (key, result) in zip(keys, results) {
            #expect(try JOSEPeer.string(result, "thumbprint") == key.thumbprintBase64URL)
        }
    }
}
