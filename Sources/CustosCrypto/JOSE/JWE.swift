import Synchronization

// MARK: - JWE algorithms (RFC 7518 §4, §5)

/// The JWE key-management algorithms Custos supports. `RSA1_5` (Bleichenbacher-prone, RFC 8725 §3.2), `dir`,
/// plain `ECDH-ES` and everything else are refused with ``CryptoError/Code-swift.struct/unsupportedAlgorithm``.
public enum JWEKeyAlgorithm: String, Sendable, CaseIterable, Hashable {
    /// ECDH-ES key agreement, Concat KDF to a 256-bit KEK, AES Key Wrap of the CEK (RFC 7518 §4.6).
    case ecdhESA256KW = "ECDH-ES+A256KW"
    /// RSAES-OAEP with SHA-256 and MGF1-SHA-256 (RFC 7518 §4.3).
    case rsaOAEP256 = "RSA-OAEP-256"
}

/// The JWE content encryption Custos supports: AES-256-GCM (RFC 7518 §5.3).
public enum JWEContentEncryption: String, Sendable, CaseIterable, Hashable {
    case a256gcm = "A256GCM"
}

/// A private key a JWE recipient decrypts with.
public enum JWEDecryptionKey: Sendable {
    case ec(ECPrivateKey)
    case rsa(RSAPrivateKey)

    /// The matching public JWK (to send as `tee-pubkey`), with `alg` set to the key-management algorithm.
    public var publicJWK: JSONWebKey {
        switch self {
        case .ec(let key): JSONWebKey(.ec(key.publicKey), algorithm: JWEKeyAlgorithm.ecdhESA256KW.rawValue)
        case .rsa(let key): JSONWebKey(.rsa(key.publicKey), algorithm: JWEKeyAlgorithm.rsaOAEP256.rawValue)
        }
    }
}

// MARK: - Flattened JWE JSON serialization (RFC 7516 §7.2.2)

/// A JWE in the flattened JSON serialization.
///
/// This is the shape Trustee's KBS returns for a resource (service.md §4.2): `protected`, `encrypted_key`, `iv`,
/// `ciphertext`, `tag`, optionally `aad`; Custos puts every header member in `protected`. Other implementations
/// (jwcrypto) put the ECDH `epk` in the per-recipient `header`, so unprotected headers are read too, with RFC 7516
/// §7.2.1's rule that the three header objects are disjoint, and Custos's rule that `enc` must be protected (`zip`
/// and `crit` are refused anywhere). An unprotected `epk` cannot be swapped usefully: another key derives another
/// KEK and the key unwrap fails. The general serialization (`recipients`) is refused.
public struct FlattenedJWE: Sendable, Equatable {
    /// The `protected` member exactly as sent (its ASCII bytes are the GCM AAD).
    public let protectedBase64URL: String
    /// The JOSE header: the protected header joined with the unprotected ones (they are disjoint).
    public let header: [String: JSONValue]
    /// The shared unprotected header (`unprotected`), if any.
    public let sharedUnprotectedHeader: [String: JSONValue]?
    /// The per-recipient unprotected header (`header`), if any.
    public let recipientHeader: [String: JSONValue]?
    public let keyAlgorithm: JWEKeyAlgorithm
    public let contentEncryption: JWEContentEncryption
    public let encryptedKey: [UInt8]
    public let iv: [UInt8]
    public let ciphertext: [UInt8]
    public let tag: [UInt8]
    /// The `aad` member exactly as sent, if any.
    public let aadBase64URL: String?

    private static let members: Set<String> = ["protected", "unprotected", "header", "encrypted_key", "iv", "ciphertext", "tag", "aad"]
    private static let protectedOnly: Set<String> = ["enc", "zip", "crit"]

    /// Parses a flattened JWE.
    /// - Throws: ``CryptoError`` with `malformedInput` (shape, encoding, lengths) or `unsupportedAlgorithm`
    ///   (`RSA1_5` and any other `alg`, any `enc` but A256GCM, `zip`, `crit`).
    public init(json: JSONValue) throws(CryptoError) {
        let members = try joseObject(json, what: "JWE")
        if members["recipients"] != nil {
            throw CryptoError(.malformedInput, "JWE uses the general serialization; only the flattened one is accepted")
        }
        for name in members.keys where !Self.members.contains(name) {
            throw CryptoError(.malformedInput, "JWE has the unknown member \"\(name)\"")
        }
        let protected = try joseRequiredString(members, "protected", in: "JWE")
        let headerBytes = try Base64URL.decode(protected, field: "JWE protected")
        let protectedHeader = try joseObject(joseParseJSON(headerBytes, what: "JWE protected header"), what: "JWE protected header")
        var header = protectedHeader
        var unprotectedHeaders: [String: [String: JSONValue]] = [:]
        for name in ["unprotected", "header"] {
            guard let value = members[name] else { continue }
            let object = try joseObject(value, what: "JWE \(name)")
            for (key, member) in object {
                guard !Self.protectedOnly.contains(key) else {
                    throw CryptoError(.malformedInput, "JWE header member \"\(key)\" must be in the protected header")
                }
                guard header.updateValue(member, forKey: key) == nil else {
                    throw CryptoError(.malformedInput, "JWE header member \"\(key)\" appears in more than one header")
                }
            }
            unprotectedHeaders[name] = object
        }
        let (keyAlgorithm, contentEncryption) = try Self.algorithms(of: header)
        let encryptedKey = try Base64URL.decode(joseRequiredString(members, "encrypted_key", in: "JWE"), field: "JWE encrypted_key")
        let iv = try Base64URL.decode(joseRequiredString(members, "iv", in: "JWE"), field: "JWE iv")
        let ciphertext = try Base64URL.decode(joseRequiredString(members, "ciphertext", in: "JWE"), field: "JWE ciphertext")
        let tag = try Base64URL.decode(joseRequiredString(members, "tag", in: "JWE"), field: "JWE tag")
        let aad = try joseOptionalString(members, "aad", in: "JWE")
        if let aad { _ = try Base64URL.decode(aad, field: "JWE aad") }
        guard iv.count == 12 else { throw CryptoError(.malformedInput, "JWE iv must be 12 bytes for A256GCM, got \(iv.count)") }
        guard tag.count == 16 else { throw CryptoError(.malformedInput, "JWE tag must be 16 bytes for A256GCM, got \(tag.count)") }
        switch keyAlgorithm {
        case .ecdhESA256KW:
            guard encryptedKey.count == 40 else {
                throw CryptoError(.malformedInput, "JWE encrypted_key must be 40 bytes for ECDH-ES+A256KW, got \(encryptedKey.count)")
            }
            guard header["epk"] != nil else { throw CryptoError(.malformedInput, "JWE ECDH-ES+A256KW header lacks \"epk\"") }
        case .rsaOAEP256:
            guard !encryptedKey.isEmpty, encryptedKey.count <= JOSELimits.maximumRSABits / 8 else {
                throw CryptoError(.malformedInput, "JWE encrypted_key has an impossible length \(encryptedKey.count) for RSA-OAEP-256")
            }
        }
        self.protectedBase64URL = protected
        self.header = header
        self.sharedUnprotectedHeader = unprotectedHeaders["unprotected"]
        self.recipientHeader = unprotectedHeaders["header"]
        self.keyAlgorithm = keyAlgorithm
        self.contentEncryption = contentEncryption
        self.encryptedKey = encryptedKey
        self.iv = iv
        self.ciphertext = ciphertext
        self.tag = tag
        self.aadBase64URL = aad
    }

    /// Parses a flattened JWE from JSON text (at most ``JOSELimits/maximumJWEBytes``).
    public init(jsonBytes: some Collection<UInt8>) throws(CryptoError) {
        guard jsonBytes.count <= JOSELimits.maximumJWEBytes else {
            throw CryptoError(.malformedInput, "JWE is \(jsonBytes.count) bytes; at most \(JOSELimits.maximumJWEBytes) are accepted")
        }
        try self.init(json: joseParseJSON(jsonBytes, what: "JWE"))
    }

    private static func algorithms(of header: [String: JSONValue]) throws(CryptoError) -> (JWEKeyAlgorithm, JWEContentEncryption) {
        let alg = try joseRequiredString(header, "alg", in: "JWE protected header")
        let enc = try joseRequiredString(header, "enc", in: "JWE protected header")
        if alg == "RSA1_5" {
            throw CryptoError(
                .unsupportedAlgorithm, "JWE alg RSA1_5 is refused (PKCS #1 v1.5 encryption is open to padding-oracle attacks)")
        }
        guard let keyAlgorithm = JWEKeyAlgorithm(rawValue: alg) else {
            throw CryptoError(.unsupportedAlgorithm, "JWE alg \"\(alg)\" is refused (ECDH-ES+A256KW and RSA-OAEP-256 are accepted)")
        }
        guard let contentEncryption = JWEContentEncryption(rawValue: enc) else {
            throw CryptoError(.unsupportedAlgorithm, "JWE enc \"\(enc)\" is refused (A256GCM is accepted)")
        }
        guard header["zip"] == nil else { throw CryptoError(.unsupportedAlgorithm, "JWE compression (zip) is refused") }
        guard header["crit"] == nil else {
            throw CryptoError(.unsupportedAlgorithm, "JWE header has crit parameters, none of which is understood")
        }
        return (keyAlgorithm, contentEncryption)
    }

    /// The JWE as a JSON object (base64url members).
    public var jsonValue: JSONValue {
        var members: [String: JSONValue] = [
            "protected": .string(protectedBase64URL), "encrypted_key": .string(Base64URL.encode(encryptedKey)),
            "iv": .string(Base64URL.encode(iv)), "ciphertext": .string(Base64URL.encode(ciphertext)),
            "tag": .string(Base64URL.encode(tag)),
        ]
        if let aadBase64URL { members["aad"] = .string(aadBase64URL) }
        if let sharedUnprotectedHeader { members["unprotected"] = .object(sharedUnprotectedHeader) }
        if let recipientHeader { members["header"] = .object(recipientHeader) }
        return .object(members)
    }

    /// The canonical JSON text of ``jsonValue``.
    public var jsonBytes: [UInt8] { CanonicalJSON.encode(jsonValue) }

    /// The GCM additional data: `ASCII(protected)`, then `"." ‖ ASCII(aad)` when `aad` is present (RFC 7516 §5.1).
    fileprivate static func gcmAAD(protected: String, aad: String?) -> [UInt8] {
        var bytes = Array(protected.utf8)
        if let aad { bytes += [UInt8(ascii: ".")] + Array(aad.utf8) }
        return bytes
    }

    // MARK: Encryption

    /// Encrypts `plaintext` to `recipient`.
    ///
    /// The key-management algorithm is `keyAlgorithm` when given; otherwise the recipient's `alg` member; otherwise
    /// ECDH-ES+A256KW for EC keys and RSA-OAEP-256 for RSA keys. A recipient `alg` of `RSA1_5` or any other
    /// unsupported value is refused, as is a mismatch between the key type and the algorithm.
    /// - Parameters:
    ///   - plaintext: the secret.
    ///   - recipient: the recipient's public key (for KBS, the `tee-pubkey` from the token).
    ///   - keyAlgorithm: forces an algorithm (must agree with the recipient's `alg`, if any).
    ///   - partyUInfo: `apu` for ECDH-ES (sent in the header when non-empty).
    ///   - partyVInfo: `apv` for ECDH-ES (sent in the header when non-empty).
    ///   - extraHeader: further protected header members (`kid`, `typ`, …); the algorithm members win.
    /// - Throws: ``CryptoError`` with `unsupportedAlgorithm`, `algorithmMismatch` or `weakKey`.
    public static func encrypt(
        _ plaintext: SecretBytes, to recipient: JSONWebKey, keyAlgorithm: JWEKeyAlgorithm? = nil,
        partyUInfo: [UInt8] = [], partyVInfo: [UInt8] = [], extraHeader: [String: JSONValue] = [:]
    ) throws(CryptoError) -> FlattenedJWE {
        try Sealer(
            to: recipient, keyAlgorithm: keyAlgorithm, partyUInfo: partyUInfo, partyVInfo: partyVInfo, extraHeader: extraHeader
        ).seal(plaintext)
    }

    /// A JWE to one recipient with everything but the plaintext ready: the algorithm is chosen, the content key
    /// made and wrapped (the ephemeral ECDH or RSA-OAEP done), the protected header encoded. Every check that can
    /// refuse the recipient happens in `init`, so a caller can decide and record a release before it reads the
    /// secret, and ``seal(_:)`` (AES-GCM only) is left. One sealer seals one plaintext: the content key is fresh
    /// per sealer, and a second ``seal(_:)`` is refused.
    public final class Sealer: Sendable {
        /// The key-management algorithm (`alg`).
        public let keyAlgorithm: JWEKeyAlgorithm
        private let header: [String: JSONValue]
        private let protected: String
        private let encryptedKey: [UInt8]
        private let cek: Mutex<SecretBytes?>

        /// Prepares a JWE to `recipient`; the parameters are those of ``FlattenedJWE/encrypt(_:to:keyAlgorithm:partyUInfo:partyVInfo:extraHeader:)``.
        /// - Throws: ``CryptoError`` with `unsupportedAlgorithm`, `algorithmMismatch` or `weakKey`.
        public init(
            to recipient: JSONWebKey, keyAlgorithm: JWEKeyAlgorithm? = nil, partyUInfo: [UInt8] = [], partyVInfo: [UInt8] = [],
            extraHeader: [String: JSONValue] = [:]
        ) throws(CryptoError) {
            let algorithm = try FlattenedJWE.chooseAlgorithm(recipient: recipient, requested: keyAlgorithm)
            var header = extraHeader
            header["alg"] = .string(algorithm.rawValue)
            header["enc"] = .string(JWEContentEncryption.a256gcm.rawValue)
            let cek = try SecretBytes.random(32)
            let encryptedKey: [UInt8]
            switch (algorithm, recipient.publicKey) {
            case (.ecdhESA256KW, .ec(let peer)):
                let ephemeral = try ECPrivateKey(generating: peer.curve)
                header["epk"] = JSONWebKey(.ec(ephemeral.publicKey)).jsonValue
                if !partyUInfo.isEmpty { header["apu"] = .string(Base64URL.encode(partyUInfo)) }
                if !partyVInfo.isEmpty { header["apv"] = .string(Base64URL.encode(partyVInfo)) }
                let kek = try ConcatKDF.deriveKey(
                    z: ephemeral.sharedSecret(with: peer), algorithmID: algorithm.rawValue, partyUInfo: partyUInfo,
                    partyVInfo: partyVInfo, keyBitLength: 256)
                encryptedKey = try AESKeyWrap.wrap(kek: kek, keyData: cek)
            case (.rsaOAEP256, .rsa(let peer)):
                guard peer.bitCount >= JOSELimits.minimumRSABits else {
                    throw CryptoError(
                        .weakKey, "RSA recipient key has \(peer.bitCount) bits; at least \(JOSELimits.minimumRSABits) are required")
                }
                encryptedKey = try peer.encryptOAEP(cek, digest: .sha256)
            default:
                throw CryptoError(.algorithmMismatch, "JWE alg \(algorithm.rawValue) does not fit the recipient's key type")
            }
            self.keyAlgorithm = algorithm
            self.header = header
            self.protected = Base64URL.encode(CanonicalJSON.encode(.object(header)))
            self.encryptedKey = encryptedKey
            self.cek = Mutex(cek)
        }

        /// The JWE of `plaintext` (A256GCM under the prepared content key, which is then dropped).
        /// - Throws: ``CryptoError`` `invalidParameter` when this sealer has sealed before.
        public func seal(_ plaintext: SecretBytes) throws(CryptoError) -> FlattenedJWE {
            guard
                let cek = self.cek.withLock({ key -> SecretBytes? in
                    defer { key = nil }
                    return key
                })
            else { throw CryptoError(.invalidParameter, "a JWE sealer seals one plaintext") }
            let protected = self.protected
            let sealed = try cek.withBytes { (key: [UInt8]) throws(CryptoError) -> AES.GCM.SealedBox in
                try plaintext.withBytes { (text: [UInt8]) throws(CryptoError) -> AES.GCM.SealedBox in
                    try AES.GCM.seal(key: key, plaintext: text, aad: FlattenedJWE.gcmAAD(protected: protected, aad: nil))
                }
            }
            return FlattenedJWE(
                protectedBase64URL: protected, header: header, keyAlgorithm: keyAlgorithm, contentEncryption: .a256gcm,
                encryptedKey: encryptedKey, iv: sealed.nonce, ciphertext: sealed.ciphertext, tag: sealed.tag, aadBase64URL: nil)
        }
    }

    private init(
        protectedBase64URL: String, header: [String: JSONValue], keyAlgorithm: JWEKeyAlgorithm, contentEncryption: JWEContentEncryption,
        encryptedKey: [UInt8], iv: [UInt8], ciphertext: [UInt8], tag: [UInt8], aadBase64URL: String?
    ) {
        self.protectedBase64URL = protectedBase64URL
        self.header = header
        self.sharedUnprotectedHeader = nil
        self.recipientHeader = nil
        self.keyAlgorithm = keyAlgorithm
        self.contentEncryption = contentEncryption
        self.encryptedKey = encryptedKey
        self.iv = iv
        self.ciphertext = ciphertext
        self.tag = tag
        self.aadBase64URL = aadBase64URL
    }

    fileprivate static func chooseAlgorithm(recipient: JSONWebKey, requested: JWEKeyAlgorithm?) throws(CryptoError) -> JWEKeyAlgorithm {
        var fromKey: JWEKeyAlgorithm? = nil
        if let alg = recipient.algorithm {
            if alg == "RSA1_5" {
                throw CryptoError(.unsupportedAlgorithm, "recipient key alg RSA1_5 is refused (padding-oracle prone); use RSA-OAEP-256")
            }
            guard let known = JWEKeyAlgorithm(rawValue: alg) else {
                throw CryptoError(.unsupportedAlgorithm, "recipient key alg \"\(alg)\" is not ECDH-ES+A256KW or RSA-OAEP-256")
            }
            fromKey = known
        }
        if let requested, let fromKey, requested != fromKey {
            throw CryptoError(.algorithmMismatch, "requested JWE alg \(requested.rawValue) but the recipient key says \(fromKey.rawValue)")
        }
        if let chosen = requested ?? fromKey { return chosen }
        switch recipient.publicKey {
        case .ec: return .ecdhESA256KW
        case .rsa: return .rsaOAEP256
        }
    }

    // MARK: Decryption

    /// Decrypts with the recipient's private key.
    ///
    /// With RSA-OAEP-256, a padding failure is not reported separately: a random CEK is used instead and the GCM
    /// check fails, so the two cases look the same (RFC 7516 §11.5).
    /// - Throws: ``CryptoError`` with `algorithmMismatch` (the header's `alg` or `epk` curve does not fit the key),
    ///   `malformedInput` (bad `epk`, `apu`, `apv`) or `authenticationFailure` (wrong key or tampered JWE).
    public func decrypt(with key: JWEDecryptionKey) throws(CryptoError) -> SecretBytes {
        let cek: SecretBytes
        switch (keyAlgorithm, key) {
        case (.ecdhESA256KW, .ec(let privateKey)):
            guard let epkValue = header["epk"] else { throw CryptoError(.malformedInput, "JWE header lacks \"epk\"") }
            let epk = try JSONWebKey(json: epkValue)
            guard case .ec(let ephemeral) = epk.publicKey else {
                throw CryptoError(.algorithmMismatch, "JWE epk must be an EC key for ECDH-ES+A256KW")
            }
            guard ephemeral.curve == privateKey.curve else {
                throw CryptoError(
                    .algorithmMismatch, "JWE epk is on \(ephemeral.curve.rawValue), the recipient key on \(privateKey.curve.rawValue)")
            }
            let apu = try joseOptionalString(header, "apu", in: "JWE protected header").map { (t: String) throws(CryptoError) in
                try Base64URL.decode(t, field: "JWE apu")
            }
            let apv = try joseOptionalString(header, "apv", in: "JWE protected header").map { (t: String) throws(CryptoError) in
                try Base64URL.decode(t, field: "JWE apv")
            }
            let kek = try ConcatKDF.deriveKey(
                z: privateKey.sharedSecret(with: ephemeral), algorithmID: keyAlgorithm.rawValue, partyUInfo: apu ?? [],
                partyVInfo: apv ?? [], keyBitLength: 256)
            cek = try AESKeyWrap.unwrap(kek: kek, wrapped: encryptedKey)
        case (.rsaOAEP256, .rsa(let privateKey)):
            let modulusBytes = (privateKey.publicKey.bitCount + 7) / 8
            var decrypted: SecretBytes? = nil
            if encryptedKey.count == modulusBytes { decrypted = try? privateKey.decryptOAEP(encryptedKey, digest: .sha256) }
            if let decrypted, decrypted.count == 32 {
                cek = decrypted
            } else {
                cek = try SecretBytes.random(32)
            }
        case (_, .ec):
            throw CryptoError(.algorithmMismatch, "JWE alg \(keyAlgorithm.rawValue) cannot be decrypted with an EC key")
        case (_, .rsa):
            throw CryptoError(.algorithmMismatch, "JWE alg \(keyAlgorithm.rawValue) cannot be decrypted with an RSA key")
        }
        guard cek.count == 32 else { throw CryptoError(.authenticationFailure, "JWE content key is not 32 bytes") }
        let box = AES.GCM.SealedBox(nonce: iv, ciphertext: ciphertext, tag: tag)
        let aad = Self.gcmAAD(protected: protectedBase64URL, aad: aadBase64URL)
        do throws(CryptoError) {
            var plaintext = try cek.withBytes { (k: [UInt8]) throws(CryptoError) -> [UInt8] in try AES.GCM.open(key: k, box: box, aad: aad)
            }
            defer { secureZero(&plaintext) }
            return SecretBytes(plaintext)
        } catch {
            throw CryptoError(.authenticationFailure, "JWE does not decrypt: wrong key, or the JWE was altered")
        }
    }
}
