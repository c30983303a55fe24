import CustosCrypto
import Testing

/// Ed25519 through OpenSSL against the RFC 8032 §7.1 test vectors (TEST 1–3), plus the refusals a verifier needs.
@Suite struct Ed25519Tests {
    struct Vector: Sendable, CustomTestStringConvertible {
        let name: String
        let secret: String
        let publicKey: String
        let message: String
        let signature: String
        var testDescription: String { name }
    }

    /// RFC 8032 §7.1 (also re-checked with PyPI `cryptography` while writing this file).
    static let rfc8032: [Vector] = [
        Vector(
            name: "TEST 1", secret: "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
            publicKey: "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", message: "",
            signature: "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
                + "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
        Vector(
            name: "TEST 2", secret: "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
            publicKey: "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", message: "72",
            signature: "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
                + "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
        Vector(
            name: "TEST 3", secret: "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
            publicKey: "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", message: "af82",
            signature: "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac"
                + "18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"),
    ]

    @Test(arguments: rfc8032) func signsAndVerifiesRFC8032Vector(_ vector: Vector) throws {
        let key = try Ed25519PrivateKey(rawRepresentation: SecretBytes(try Hex.decode(vector.secret)))
        #expect(key.publicKey.rawRepresentation.hexString == vector.publicKey)
        let message = try Hex.decode(vector.message)
        #expect(try key.signature(for: message).hexString == vector.signature)
        let publicKey = try Ed25519PublicKey(rawRepresentation: try Hex.decode(vector.publicKey))
        #expect(publicKey.isValidSignature(try Hex.decode(vector.signature), for: message))
        #expect(try key.rawRepresentation.unsafeCopy().hexString == vector.secret)
    }

    @Test(arguments: rfc8032) func rejectsAlteredSignaturesAndMessages(_ vector: Vector) throws {
        let publicKey = try Ed25519PublicKey(rawRepresentation: try Hex.decode(vector.publicKey))
        let signature = try Hex.decode(vector.signature)
        let message = try Hex.decode(vector.message)
        for index in [0, 31, 32, 63] {
            var flipped = signature
            flipped[index] ^= 0x01
            #expect(!publicKey.isValidSignature(flipped, for: message), "bit flip in byte \(index) accepted")
        }
        #expect(!publicKey.isValidSignature(signature, for: message + [0]))
        #expect(!publicKey.isValidSignature(signature.dropLast(), for: message))
        #expect(!publicKey.isValidSignature(signature + [0], for: message))
        #expect(!publicKey.isValidSignature([], for: message))
    }

    @Test func generatedKeysRoundTrip() throws {
        let key = try Ed25519PrivateKey()
        let again = try Ed25519PrivateKey(rawRepresentation: try key.rawRepresentation)
        #expect(again.publicKey == key.publicKey)
        let message = Array("checkpoint".utf8)
        let signature = try key.signature(for: message)
        #expect(signature.count == 64)
        #expect(key.publicKey.isValidSignature(signature, for: message))
        let other = try Ed25519PrivateKey()
        #expect(!other.publicKey.isValidSignature(signature, for: message))
    }

    @Test(arguments: [0, 31, 33, 64]) func rejectsKeysOfTheWrongLength(_ count: Int) {
        let bytes = [UInt8](repeating: 7, count: count)
        let publicError = #expect(throws: CryptoError.self) { try Ed25519PublicKey(rawRepresentation: bytes) }
        #expect(publicError?.code == .malformedInput)
        let privateError = #expect(throws: CryptoError.self) { try Ed25519PrivateKey(rawRepresentation: SecretBytes(bytes)) }
        #expect(privateError?.code == .malformedInput)
    }
}
