import CustosCrypto
import Foundation
import Testing

/// JOSE building blocks against published vectors (RFC 7638, RFC 3394, RFC 7518 Appendix C) and the strictness
/// rules: every malformed or refused input gets a typed error.
@Suite struct JOSEVectorTests {
    // MARK: RFC 7638 §3.1

    static let rfc7638Modulus =
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknj"
        + "hMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQ"
        + "vRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzK"
        + "nqDKgw"

    @Test func rfc7638ThumbprintExample() throws {
        let key = try JSONWebKey(json: ["kty": "RSA", "n": .string(Self.rfc7638Modulus), "e": "AQAB", "alg": "RS256", "kid": "2011-04-29"])
        #expect(key.thumbprintBase64URL == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
        // The hashed text is RFC 7638's: required members only, sorted, no whitespace.
        #expect(CanonicalJSON.string(.object(key.requiredMembers)) == "{\"e\":\"AQAB\",\"kty\":\"RSA\",\"n\":\"\(Self.rfc7638Modulus)\"}")
        // Export keeps alg and kid; re-parsing gives the same key.
        #expect(try JSONWebKey(json: key.jsonValue) == key)
    }

    // MARK: RFC 3394 §4.1–4.6

    @Test(arguments: [
        ("000102030405060708090A0B0C0D0E0F", "00112233445566778899AABBCCDDEEFF", "1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5"),
        (
            "000102030405060708090A0B0C0D0E0F1011121314151617", "00112233445566778899AABBCCDDEEFF",
            "96778B25AE6CA435F92B5B97C050AED2468AB8A17AD84E5D"
        ),
        (
            "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F", "00112233445566778899AABBCCDDEEFF",
            "64E8C3F9CE0F5BA263E9777905818A2A93C8191E7D6E8AE7"
        ),
        (
            "000102030405060708090A0B0C0D0E0F1011121314151617", "00112233445566778899AABBCCDDEEFF0001020304050607",
            "031D33264E15D33268F24EC260743EDCE1C6C7DDEE725A936BA814915C6762D2"
        ),
        (
            "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F", "00112233445566778899AABBCCDDEEFF0001020304050607",
            "A8F9BC1612C68B3FF6E6F4FBE30E71E4769C8B80A32CB8958CD5D17D6B254DA1"
        ),
        (
            "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F",
            "00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F",
            "28C9F404C4B810F4CBCCB35CFB87F8263F5786E2D80ED326CBC7F0E71A99F43BFB988B9B7A02DD21"
        ),
    ])
    func rfc3394KeyWrap(kek: String, keyData: String, wrapped: String) throws {
        let kek = SecretBytes(try Hex.decode(kek))
        let out = try AESKeyWrap.wrap(kek: kek, keyData: SecretBytes(try Hex.decode(keyData)))
        #expect(out.hexString == wrapped.lowercased())
        #expect(try AESKeyWrap.unwrap(kek: kek, wrapped: Hex.decode(wrapped)).unsafeCopy().hexString == keyData.lowercased())
        // Any flipped bit fails the integrity check.
        var tampered = try Hex.decode(wrapped)
        tampered[tampered.count - 1] ^= 1
        #expect(throws: CryptoError(.authenticationFailure, "")) { try AESKeyWrap.unwrap(kek: kek, wrapped: tampered) }
    }

    @Test func keyWrapRejectsBadLengths() {
        let kek = SecretBytes([UInt8](repeating: 7, count: 32))
        #expect(throws: CryptoError(.invalidParameter, "")) { try AESKeyWrap.wrap(kek: kek, keyData: SecretBytes([1, 2, 3])) }
        #expect(throws: CryptoError(.invalidParameter, "")) {
            try AESKeyWrap.wrap(kek: kek, keyData: SecretBytes([UInt8](repeating: 0, count: 20)))
        }
        #expect(throws: CryptoError(.invalidParameter, "")) { try AESKeyWrap.unwrap(kek: kek, wrapped: [UInt8](repeating: 0, count: 16)) }
        #expect(throws: CryptoError(.invalidParameter, "")) {
            try AESKeyWrap.wrap(kek: SecretBytes([1, 2, 3]), keyData: SecretBytes([UInt8](repeating: 0, count: 16)))
        }
    }

    // MARK: RFC 7518 Appendix C (ECDH-ES key agreement, Concat KDF)

    static let aliceEphemeral = (
        x: "gI0GAILBdu7T53akrFmMyGcsF3n5dO7MmwNBHKW5SV0", y: "SLW_xSffzlPWrHEVI30DHM_4egVwt3NQqeUD7nMFpps",
        d: "0_NxaRPUMQoAJt50Gz8YiTr8gRTwyEaCumd-MToTmIo"
    )
    static let bob = (
        x: "weNJy2HscCSM6AEDTDg04biOvhFhyyWvOHQfeF_PxMQ", y: "e8lnCO-AlStT-NJVX-crhB7QRYhiix03illJOVAOyck",
        d: "VEmDZpDXXK8p8N0Cndsxs924q6nS1RXFASRl6BfUqdw"
    )

    @Test func rfc7518AppendixC() throws {
        let alice = try ECPrivateKey(curve: .p256, rawScalar: Base64URL.decode(Self.aliceEphemeral.d))
        let bobPublic = try JSONWebKey(json: ["kty": "EC", "crv": "P-256", "x": .string(Self.bob.x), "y": .string(Self.bob.y)])
        guard case .ec(let bobKey) = bobPublic.publicKey else {
            Issue.record("not an EC key")
            return
        }
        #expect(Base64URL.encode(alice.publicKey.x) == Self.aliceEphemeral.x)
        let z = try alice.sharedSecret(with: bobKey)
        #expect(
            z.unsafeCopy() == [
                158, 86, 217, 29, 129, 113, 53, 211, 114, 131, 66, 131, 191, 132, 38, 156, 251, 49, 110, 163, 218, 128, 106, 72,
                246, 218, 167, 121, 140, 254, 144, 196,
            ])
        // Bob computes the same Z from the ephemeral public key.
        let bobPrivate = try ECPrivateKey(curve: .p256, rawScalar: Base64URL.decode(Self.bob.d))
        #expect(try bobPrivate.sharedSecret(with: alice.publicKey) == z)
        let key = try ConcatKDF.deriveKey(
            z: z, algorithmID: "A128GCM", partyUInfo: Array("Alice".utf8), partyVInfo: Array("Bob".utf8), keyBitLength: 128)
        #expect(Base64URL.encode(key.unsafeCopy()) == "VqqN6vgjbSBcIijNcacQGg")
        #expect(throws: CryptoError(.invalidParameter, "")) {
            try ConcatKDF.deriveKey(z: z, algorithmID: "A128GCM", partyUInfo: [], partyVInfo: [], keyBitLength: 12)
        }
    }

    // MARK: Strict base64url

    @Test(arguments: ["a+b", "a/b", "AA==", "AA A", "A", "AB", "AAB", "é"])
    func base64URLRefusals(text: String) {
        #expect(throws: CryptoError(.malformedInput, "")) { try Base64URL.decode(text) }
    }

    @Test func base64URLAccepts() throws {
        #expect(try Base64URL.decode("") == [])
        #expect(try Base64URL.decode("AA") == [0])
        #expect(try Base64URL.decode("_-8") == [0xff, 0xef])
        #expect(try Base64URL.decode("AQAB") == [1, 0, 1])
    }

    // MARK: JWK strictness

    static let goodEC: [String: JSONValue] = ["kty": "EC", "crv": "P-256", "x": .string(bob.x), "y": .string(bob.y)]

    static func ec(_ change: (inout [String: JSONValue]) -> Void) -> JSONValue {
        var members = goodEC
        change(&members)
        return .object(members)
    }

    @Test func jwkRefusals() throws {
        let malformed: [JSONValue] = [
            "not an object",
            Self.ec { $0["x"] = nil },
            Self.ec { $0["kty"] = nil },
            Self.ec { $0["x"] = .integer(5) },
            Self.ec { $0["x"] = .string(String(Self.bob.x.dropLast(2))) },  // 31 bytes
            Self.ec { $0["x"] = .string("A" + Self.bob.x) },  // 33 bytes
            Self.ec { $0["y"] = .string(String(Self.bob.y.dropLast()) + "A") },  // off the curve
            Self.ec { $0["d"] = .string(Self.bob.d) },  // private member
            Self.ec { $0["x"] = .string(Self.bob.x + "=") },
            ["kty": "RSA", "n": .string("AAAA" + Self.rfc7638Modulus), "e": "AQAB"],  // leading zero octets
            ["kty": "RSA", "n": .string(Self.rfc7638Modulus), "e": "AQAA"],  // even exponent
            ["kty": "RSA", "n": .string(Self.rfc7638Modulus)],
        ]
        for value in malformed {
            #expect(throws: CryptoError(.malformedInput, ""), "\(value)") { try JSONWebKey(json: value) }
        }
        let unsupported: [JSONValue] = [
            Self.ec { $0["crv"] = "P-192" }, Self.ec { $0["crv"] = "secp256k1" }, ["kty": "oct", "k": "AAAA"], ["kty": "OKP"],
        ]
        for value in unsupported {
            #expect(throws: CryptoError.self, "\(value)") { try JSONWebKey(json: value) }
        }
        #expect(throws: CryptoError(.unsupportedAlgorithm, "")) { try JSONWebKey(json: Self.ec { $0["crv"] = "P-192" }) }
        // A 1024-bit modulus is refused as weak.
        let short = Base64URL.encode(Array(try Base64URL.decode(Self.rfc7638Modulus).prefix(128)))
        #expect(throws: CryptoError(.weakKey, "")) { try JSONWebKey(json: ["kty": "RSA", "n": .string(short), "e": "AQAB"]) }
        #expect(throws: CryptoError(.malformedInput, "")) { try JSONWebKey(jsonBytes: Array("{\"kty\":\"EC\",\"kty\":\"EC\"}".utf8)) }
    }

    @Test func jwkSetParsing() throws {
        let a = JSONWebKey(try JSONWebKey(json: .object(Self.goodEC)).publicKey, keyID: "a")
        let set = JSONWebKeySet(keys: [a])
        var json = set.jsonValue
        #expect(try JSONWebKeySet(json: json) == set)
        #expect(try JSONWebKeySet(json: json).key(withID: "a") == a)
        // An unsupported key type is skipped, a duplicate kid is an error.
        json = .object(["keys": [a.jsonValue, ["kty": "OKP", "crv": "Ed25519", "x": "AAAA", "kid": "b"]]])
        #expect(try JSONWebKeySet(json: json).keys.count == 1)
        json = .object(["keys": [a.jsonValue, a.jsonValue]])
        #expect(throws: CryptoError(.malformedInput, "")) { try JSONWebKeySet(json: json) }
        #expect(throws: CryptoError(.malformedInput, "")) { try JSONWebKeySet(json: ["keys": "x"]) }
    }

    // MARK: JWS

    @Test(arguments: ECCurve.allCases)
    func jwsRoundTripAndRefusals(curve: ECCurve) throws {
        let key = try ECPrivateKey(generating: curve)
        let jwk = JSONWebKey(.ec(key.publicKey))
        let token = try CompactJWS.sign(payload: Array("{\"a\":1}".utf8), extraHeader: ["kid": "k1", "alg": "none"], key: key)
        let parsed = try CompactJWS(parsing: token)
        #expect(parsed.algorithm == JWSAlgorithm(curve: curve))
        #expect(parsed.keyID == "k1")
        #expect(parsed.payload == Array("{\"a\":1}".utf8))
        try parsed.verify(with: jwk)

        // Another key, a key on another curve, an RSA key, a key whose alg differs.
        #expect(throws: CryptoError(.signatureInvalid, "")) {
            try parsed.verify(with: JSONWebKey(.ec(ECPrivateKey(generating: curve).publicKey)))
        }
        let otherCurve: ECCurve = curve == .p256 ? .p384 : .p256
        #expect(throws: CryptoError(.algorithmMismatch, "")) {
            try parsed.verify(with: JSONWebKey(.ec(ECPrivateKey(generating: otherCurve).publicKey)))
        }
        #expect(throws: CryptoError(.algorithmMismatch, "")) {
            try parsed.verify(with: JSONWebKey(json: ["kty": "RSA", "n": .string(Self.rfc7638Modulus), "e": "AQAB"]))
        }
        #expect(throws: CryptoError(.algorithmMismatch, "")) {
            try parsed.verify(with: JSONWebKey(.ec(key.publicKey), algorithm: curve == .p256 ? "ES384" : "ES256"))
        }

        // A changed payload keeps the signature but fails it.
        let parts = token.split(separator: ".").map(String.init)
        let tampered = parts[0] + "." + Base64URL.encode(Array("{\"a\":2}".utf8)) + "." + parts[2]
        #expect(throws: CryptoError(.signatureInvalid, "")) { try CompactJWS(parsing: tampered).verify(with: jwk) }
        // A truncated signature.
        let short = parts[0] + "." + parts[1] + "." + Base64URL.encode(Array(try Base64URL.decode(parts[2]).dropLast(3)))
        #expect(throws: CryptoError(.signatureInvalid, "")) { try CompactJWS(parsing: short).verify(with: jwk) }
    }

    @Test func jwsRefusesNoneHmacCritAndBadShapes() throws {
        func header(_ json: String) -> String { Base64URL.encode(Array(json.utf8)) }
        let payload = Base64URL.encode(Array("{}".utf8))
        let refusedAlgorithms = [
            "{\"alg\":\"none\"}", "{\"alg\":\"HS256\"}", "{\"alg\":\"RS256\"}", "{\"alg\":\"ES256\",\"crit\":[\"b64\"]}",
        ]
        for json in refusedAlgorithms {
            #expect(throws: CryptoError(.unsupportedAlgorithm, ""), "\(json)") {
                try CompactJWS(parsing: header(json) + "." + payload + ".")
            }
        }
        let malformed = [
            "", "a.b", "a.b.c.d", header("{\"typ\":\"JWT\"}") + "." + payload + ".AA", header("[1]") + "." + payload + ".AA",
            header("{\"alg\":5}") + "." + payload + ".AA", "e30=." + payload + ".AA", header("{\"alg\":\"ES256\"}") + ".a+b.AA",
        ]
        for text in malformed {
            #expect(throws: CryptoError(.malformedInput, ""), "\(text)") { try CompactJWS(parsing: text) }
        }
        let huge = String(repeating: "A", count: JOSELimits.maximumCompactJWSBytes + 1)
        #expect(throws: CryptoError(.malformedInput, "")) { try CompactJWS(parsing: huge) }
    }

    // MARK: JWE

    static func decryptionKeys() throws -> [JWEDecryptionKey] {
        [
            .ec(try ECPrivateKey(generating: .p256)), .ec(try ECPrivateKey(generating: .p384)), .ec(try ECPrivateKey(generating: .p521)),
            .rsa(try RSAPrivateKey(generatingBits: 2048)),
        ]
    }

    @Test func jweRoundTripsAndTampering() throws {
        for key in try Self.decryptionKeys() {
            let secret = SecretBytes(Array("a secret for the TEE".utf8))
            let jwe = try FlattenedJWE.encrypt(secret, to: key.publicJWK, partyUInfo: [1, 2], partyVInfo: [3])
            let reparsed = try FlattenedJWE(jsonBytes: jwe.jsonBytes)
            #expect(reparsed == jwe)
            #expect(try reparsed.decrypt(with: key) == secret)
            #expect(jwe.header["enc"] == "A256GCM")
            switch key {
            case .ec:
                #expect(jwe.keyAlgorithm == .ecdhESA256KW)
                #expect(jwe.encryptedKey.count == 40)
                #expect(jwe.header["apu"] == "AQI")
            case .rsa:
                #expect(jwe.keyAlgorithm == .rsaOAEP256)
                #expect(jwe.header["epk"] == nil)
            }
            // Each member altered in turn fails authentication.
            for member in ["protected", "encrypted_key", "iv", "ciphertext", "tag"] {
                guard case .object(var members) = jwe.jsonValue, case .string(let text)? = members[member] else { continue }
                members[member] = .string(try Self.flipLastByte(text, member: member))
                let altered: FlattenedJWE
                do { altered = try FlattenedJWE(json: .object(members)) } catch { continue }  // the change broke the header JSON
                #expect(throws: CryptoError.self, "\(member)") { try altered.decrypt(with: key) }
            }
            // A wrong key of the same kind.
            let other: JWEDecryptionKey
            switch key {
            case .ec(let k): other = .ec(try ECPrivateKey(generating: k.curve))
            case .rsa: other = .rsa(try RSAPrivateKey(generatingBits: 2048))
            }
            #expect(throws: CryptoError(.authenticationFailure, "")) { try jwe.decrypt(with: other) }
        }
    }

    /// A sealer prepared before the plaintext exists: it seals exactly once, its JWE opens with the recipient's key,
    /// and two sealers to the same key use different content keys (and, for EC, different ephemeral keys).
    @Test func sealerSealsOnceWithItsOwnKeys() throws {
        for key in try Self.decryptionKeys() {
            let first = try FlattenedJWE.Sealer(to: key.publicJWK)
            let second = try FlattenedJWE.Sealer(to: key.publicJWK)
            let secret = SecretBytes(Array("sealed later".utf8))
            let jwe = try first.seal(secret)
            #expect(jwe.keyAlgorithm == first.keyAlgorithm)
            #expect(try jwe.decrypt(with: key) == secret)
            #expect(throws: CryptoError(.invalidParameter, "")) { try first.seal(secret) }
            let other = try second.seal(secret)
            #expect(try other.decrypt(with: key) == secret)
            #expect(other.encryptedKey != jwe.encryptedKey)
            if case .ec = key { #expect(other.header["epk"] != jwe.header["epk"]) }
        }
        // Refusals come from the sealer's init, before any plaintext: RSA1_5, and an alg that does not fit the key.
        let ec = try ECPrivateKey(generating: .p256)
        var refused = JWEDecryptionKey.ec(ec).publicJWK.jsonValue
        if case .object(var members) = refused {
            members["alg"] = "RSA1_5"
            refused = .object(members)
        }
        #expect(throws: CryptoError.self) { try FlattenedJWE.Sealer(to: JSONWebKey(json: refused)) }
        #expect(throws: CryptoError(.algorithmMismatch, "")) {
            try FlattenedJWE.Sealer(to: JWEDecryptionKey.ec(ec).publicJWK, keyAlgorithm: .rsaOAEP256)
        }
    }

    /// Flips the last decoded byte (re-encoding the protected header keeps it valid base64url).
    static func flipLastByte(_ text: String, member: String) throws -> String {
        var bytes = try Base64URL.decode(text)
        if member == "protected" {
            // Keep the header valid JSON: add a member instead of corrupting it.
            bytes.removeLast()
            bytes += Array(",\"x\":1}".utf8)
        } else {
            bytes[bytes.count - 1] ^= 0x01
        }
        return Base64URL.encode(bytes)
    }

    @Test func jweRefusals() throws {
        let ec = try ECPrivateKey(generating: .p256)
        let rsa = try RSAPrivateKey(generatingBits: 2048)
        let secret = SecretBytes([1, 2, 3])
        let good = try FlattenedJWE.encrypt(secret, to: JWEDecryptionKey.ec(ec).publicJWK)
        func withHeader(_ change: (inout [String: JSONValue]) -> Void) -> JSONValue {
            var header = good.header
            change(&header)
            guard case .object(var members) = good.jsonValue else { return .null }
            members["protected"] = .string(Base64URL.encode(CanonicalJSON.encode(.object(header))))
            return .object(members)
        }
        func withMember(_ name: String, _ value: JSONValue?) -> JSONValue {
            guard case .object(var members) = good.jsonValue else { return .null }
            members[name] = value
            return .object(members)
        }
        let unsupported: [JSONValue] = [
            withHeader { $0["alg"] = "RSA1_5" }, withHeader { $0["alg"] = "ECDH-ES" }, withHeader { $0["alg"] = "dir" },
            withHeader { $0["alg"] = "A256KW" }, withHeader { $0["enc"] = "A128GCM" }, withHeader { $0["enc"] = "A256CBC-HS512" },
            withHeader { $0["zip"] = "DEF" }, withHeader { $0["crit"] = ["exp"] },
        ]
        for value in unsupported {
            #expect(throws: CryptoError(.unsupportedAlgorithm, ""), "\(value)") { try FlattenedJWE(json: value) }
        }
        let malformed: [JSONValue] = [
            withHeader { $0["alg"] = nil }, withHeader { $0["epk"] = nil }, withMember("iv", "AAAA"), withMember("tag", "AAAA"),
            withMember("encrypted_key", "AAAA"), withMember("ciphertext", nil), withMember("unprotected", ["enc": "A256GCM"]),
            withMember("header", ["alg": "ECDH-ES+A256KW"]), withMember("header", ["zip": "DEF"]), withMember("header", "x"),
            withMember("recipients", []), withMember("extra", 1), withMember("aad", "a+b"),
            withMember("protected", "e30"), "x",
        ]
        for value in malformed {
            #expect(throws: CryptoError(.malformedInput, ""), "\(value)") { try FlattenedJWE(json: value) }
        }
        // Unprotected members that do not clash are read (and are not covered by the GCM tag).
        let withKid = try FlattenedJWE(json: withMember("header", ["kid": "tee"]))
        #expect(withKid.header["kid"] == "tee")
        #expect(try withKid.decrypt(with: .ec(ec)) == secret)
        #expect(try FlattenedJWE(jsonBytes: withKid.jsonBytes) == withKid)
        // An epk on another curve, or of another type, or off the curve.
        let p384 = try ECPrivateKey(generating: .p384)
        let otherCurve = try FlattenedJWE(json: withHeader { $0["epk"] = JSONWebKey(.ec(p384.publicKey)).jsonValue })
        #expect(throws: CryptoError(.algorithmMismatch, "")) { try otherCurve.decrypt(with: .ec(ec)) }
        let offCurve = try FlattenedJWE(
            json: withHeader { $0["epk"] = ["kty": "EC", "crv": "P-256", "x": .string(Self.bob.x), "y": .string(Self.aliceEphemeral.y)] })
        #expect(throws: CryptoError(.malformedInput, "")) { try offCurve.decrypt(with: .ec(ec)) }
        // Key-type confusion both ways.
        #expect(throws: CryptoError(.algorithmMismatch, "")) { try good.decrypt(with: .rsa(rsa)) }
        let toRSA = try FlattenedJWE.encrypt(secret, to: JWEDecryptionKey.rsa(rsa).publicJWK)
        #expect(throws: CryptoError(.algorithmMismatch, "")) { try toRSA.decrypt(with: .ec(ec)) }
        // Encryption refuses RSA1_5 recipients, unknown algs and mismatched requests.
        #expect(throws: CryptoError(.unsupportedAlgorithm, "")) {
            try FlattenedJWE.encrypt(secret, to: JSONWebKey(.rsa(rsa.publicKey), algorithm: "RSA1_5"))
        }
        #expect(throws: CryptoError(.unsupportedAlgorithm, "")) {
            try FlattenedJWE.encrypt(secret, to: JSONWebKey(.ec(ec.publicKey), algorithm: "ECDH-ES+A128KW"))
        }
        #expect(throws: CryptoError(.algorithmMismatch, "")) {
            try FlattenedJWE.encrypt(secret, to: JSONWebKey(.ec(ec.publicKey)), keyAlgorithm: .rsaOAEP256)
        }
        #expect(throws: CryptoError(.algorithmMismatch, "")) {
            try FlattenedJWE.encrypt(secret, to: JSONWebKey(.ec(ec.publicKey), algorithm: "ECDH-ES+A256KW"), keyAlgorithm: .rsaOAEP256)
        }
    }

    // MARK: Random mutations (seeded)

    @Test func mutatedJOSEInputsNeverCrash() throws {
        var rng = JOSESeededGenerator.fromEnvironment(testName: "JOSEVectorTests.mutatedJOSEInputsNeverCrash")
        let key = try ECPrivateKey(generating: .p256)
        let jwe = try FlattenedJWE.encrypt(SecretBytes([9, 9, 9]), to: JWEDecryptionKey.ec(key).publicJWK)
        let jweText = jwe.jsonBytes
        let jws = Array(try CompactJWS.sign(payload: [1, 2, 3], key: key).utf8)
        for round in 0..<400 {
            var bytes = round % 2 == 0 ? jweText : jws
            let edits = Int.random(in: 1...4, using: &rng)
            for _ in 0..<edits {
                let index = Int.random(in: 0..<bytes.count, using: &rng)
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: bytes[index] = UInt8.random(in: 0...255, using: &rng)
                case 1: bytes.remove(at: index)
                default: bytes.insert(UInt8.random(in: 0x20...0x7e, using: &rng), at: index)
                }
            }
            if round % 2 == 0 {
                if let parsed = try? FlattenedJWE(jsonBytes: bytes), let out = try? parsed.decrypt(with: .ec(key)) {
                    // Only an edit outside the authenticated data (JSON whitespace cannot occur in canonical text) may
                    // leave the JWE decryptable, and then the plaintext must be the original.
                    #expect(out.unsafeCopy() == [9, 9, 9])
                }
            } else if let parsed = try? CompactJWS(parsing: String(decoding: bytes, as: UTF8.self)),
                (try? parsed.verify(with: JSONWebKey(.ec(key.publicKey)))) != nil
            {
                #expect(parsed.payload == [1, 2, 3])
            }
        }
        // Every prefix of the JWE text is refused.
        for length in 0..<jweText.count {
            #expect(throws: CryptoError.self) { try FlattenedJWE(jsonBytes: jweText.prefix(length)) }
        }
    }
}

/// SplitMix64, seeded from `CUSTOS_TEST_SEED` or the clock; the seed is printed so a failure can be replayed.
struct JOSESeededGenerator: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    static func fromEnvironment(testName: String) -> JOSESeededGenerator {
        let seed =
            ProcessInfo.processInfo.environment["CUSTOS_TEST_SEED"].flatMap { UInt64($0) } ?? UInt64(Date().timeIntervalSince1970 * 1000)
        print("\(testName): seed \(seed) (replay with CUSTOS_TEST_SEED=\(seed))")
        return JOSESeededGenerator(seed: seed)
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
