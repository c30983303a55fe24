// MARK: - JWS algorithms (RFC 7518 §3.4)

/// The JWS algorithms Custos signs and verifies: ECDSA with raw `r ‖ s` signatures. `none`, HMAC and RSA are
/// refused, so a token cannot be downgraded or verified with a key of another kind.
public enum JWSAlgorithm: String, Sendable, CaseIterable, Hashable {
    case es256 = "ES256"
    case es384 = "ES384"
    case es512 = "ES512"

    /// The only curve each algorithm may be used with (RFC 7518 §3.4).
    public var curve: ECCurve {
        switch self {
        case .es256: .p256
        case .es384: .p384
        case .es512: .p521
        }
    }

    /// The hash each algorithm uses.
    public var digest: DigestAlgorithm {
        switch self {
        case .es256: .sha256
        case .es384: .sha384
        case .es512: .sha512
        }
    }

    /// The algorithm for keys on `curve`.
    public init(curve: ECCurve) {
        switch curve {
        case .p256: self = .es256
        case .p384: self = .es384
        case .p521: self = .es512
        }
    }
}

// MARK: - JWS compact serialization (RFC 7515 §7.1)

/// A compact JWS, parsed but not yet verified.
///
/// Parsing checks the shape: three strict base64url parts, a JSON object header whose `alg` is one of
/// ``JWSAlgorithm`` (`none` and everything else is refused) and no `crit` (no extension is understood, so any is
/// refused, RFC 7515 §4.1.11). ``verify(with:)`` then checks the key against `alg` and the signature.
public struct CompactJWS: Sendable {
    /// The decoded protected header.
    public let header: [String: JSONValue]
    public let algorithm: JWSAlgorithm
    /// The `kid` header member, if any.
    public let keyID: String?
    /// The decoded payload. Do not trust it before ``verify(with:)`` succeeds.
    public let payload: [UInt8]
    /// `BASE64URL(header) "." BASE64URL(payload)`, the bytes the signature covers.
    let signingInput: [UInt8]
    let signature: [UInt8]

    /// Parses a compact JWS.
    /// - Throws: ``CryptoError`` with `malformedInput` or `unsupportedAlgorithm` (`none`, HS256, RS256, …, `crit`).
    public init(parsing compact: String) throws(CryptoError) {
        let bytes = Array(compact.utf8)
        guard bytes.count <= JOSELimits.maximumCompactJWSBytes else {
            throw CryptoError(.malformedInput, "JWS is \(bytes.count) bytes; at most \(JOSELimits.maximumCompactJWSBytes) are accepted")
        }
        let parts = bytes.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard parts.count == 3 else {
            throw CryptoError(.malformedInput, "compact JWS must have 3 dot-separated parts, has \(parts.count)")
        }
        let headerText = String(decoding: parts[0], as: UTF8.self)
        let headerBytes = try Base64URL.decode(headerText, field: "JWS header")
        let header = try joseObject(joseParseJSON(headerBytes, what: "JWS header"), what: "JWS header")
        let alg = try joseRequiredString(header, "alg", in: "JWS header")
        guard let algorithm = JWSAlgorithm(rawValue: alg) else {
            throw CryptoError(.unsupportedAlgorithm, "JWS alg \"\(alg)\" is refused (ES256, ES384 and ES512 are accepted)")
        }
        guard header["crit"] == nil else {
            throw CryptoError(.unsupportedAlgorithm, "JWS header has crit parameters, none of which is understood")
        }
        self.header = header
        self.algorithm = algorithm
        self.keyID = try joseOptionalString(header, "kid", in: "JWS header")
        self.payload = try Base64URL.decode(String(decoding: parts[1], as: UTF8.self), field: "JWS payload")
        self.signature = try Base64URL.decode(String(decoding: parts[2], as: UTF8.self), field: "JWS signature")
        self.signingInput = Array(parts[0]) + [UInt8(ascii: ".")] + Array(parts[1])
    }

    /// Verifies the signature with `key`.
    ///
    /// The key must be an EC key on the curve `alg` names, and its `alg` member, when present, must equal the
    /// header's; the signature must be exactly `2 × coordinate size` bytes.
    /// - Throws: ``CryptoError`` with `algorithmMismatch` or `signatureInvalid`.
    public func verify(with key: JSONWebKey) throws(CryptoError) {
        guard case .ec(let ecKey) = key.publicKey else {
            throw CryptoError(.algorithmMismatch, "JWS alg \(algorithm.rawValue) needs an EC key, the key is RSA")
        }
        guard ecKey.curve == algorithm.curve else {
            throw CryptoError(
                .algorithmMismatch,
                "JWS alg \(algorithm.rawValue) needs a \(algorithm.curve.rawValue) key, the key is on \(ecKey.curve.rawValue)")
        }
        if let keyAlg = key.algorithm, keyAlg != algorithm.rawValue {
            throw CryptoError(.algorithmMismatch, "JWS alg \(algorithm.rawValue) differs from the key's alg \(keyAlg)")
        }
        try Self.verifySignature(signature, over: signingInput, key: ecKey, algorithm: algorithm)
    }

    private static func verifySignature(_ raw: [UInt8], over input: [UInt8], key: ECPublicKey, algorithm: JWSAlgorithm) throws(CryptoError)
    {
        guard raw.count == 2 * algorithm.curve.coordinateByteCount else {
            throw CryptoError(
                .signatureInvalid,
                "\(algorithm.rawValue) signature must be \(2 * algorithm.curve.coordinateByteCount) bytes, got \(raw.count)")
        }
        let parsed: ECDSASignature
        do throws(CryptoError) {
            parsed = try ECDSASignature(rawBigEndian: raw)
        } catch {
            throw CryptoError(.signatureInvalid, "JWS signature has a zero r or s")
        }
        guard key.isValidSignature(parsed, for: input, digest: algorithm.digest) else {
            throw CryptoError(.signatureInvalid, "JWS signature does not verify")
        }
    }

    /// Signs `payload` with `key` and returns the compact JWS.
    ///
    /// The header is `extraHeader` plus `alg` for the key's curve (``JWSAlgorithm/init(curve:)``), serialized as
    /// canonical JSON; an `alg` in `extraHeader` is overwritten.
    public static func sign(payload: [UInt8], extraHeader: [String: JSONValue] = [:], key: ECPrivateKey) throws(CryptoError) -> String {
        let algorithm = JWSAlgorithm(curve: key.curve)
        var header = extraHeader
        header["alg"] = .string(algorithm.rawValue)
        let signingInput = Base64URL.encode(CanonicalJSON.encode(.object(header))) + "." + Base64URL.encode(payload)
        let signature = try key.signature(for: Array(signingInput.utf8), digest: algorithm.digest)
        let raw = try signature.rawBigEndian(componentByteCount: key.curve.coordinateByteCount)
        return signingInput + "." + Base64URL.encode(raw)
    }
}
