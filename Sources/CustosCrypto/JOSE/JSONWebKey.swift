// MARK: - JSON Web Key (RFC 7517, RFC 7518 §6)

/// A public JSON Web Key: EC on P-256/P-384/P-521 (RFC 7518 §6.2) or RSA (§6.3), parsed strictly.
///
/// Strict means: `kty` and the key's required members present and strings; coordinates in strict base64url and
/// exactly the curve's size (§6.2.1.2–3); the point on the curve (OpenSSL checks it when the key is built); RSA `n`
/// and `e` minimal (no leading zero octet), `e` odd and above 1, the modulus at least
/// ``JOSELimits/minimumRSABits``; and no private members (`d`, `p`, `q`, `dp`, `dq`, `qi`, `oth`, `k`), so a
/// private key sent by mistake is refused rather than stored. Unknown members are ignored (RFC 7517 §4).
public struct JSONWebKey: Sendable, Equatable {
    /// The key material.
    public enum PublicKey: Sendable, Equatable {
        case ec(ECPublicKey)
        case rsa(RSAPublicKey)
    }

    public let publicKey: PublicKey
    /// The `alg` member, when present.
    public var algorithm: String?
    /// The `kid` member, when present.
    public var keyID: String?
    /// The `use` member (`sig` or `enc`), when present.
    public var use: String?

    /// A JWK for `publicKey` with optional metadata.
    public init(_ publicKey: PublicKey, algorithm: String? = nil, keyID: String? = nil, use: String? = nil) {
        self.publicKey = publicKey
        self.algorithm = algorithm
        self.keyID = keyID
        self.use = use
    }

    private static let privateMembers = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"]

    /// Parses a JWK from a JSON value.
    /// - Throws: ``CryptoError`` with `malformedInput` (shape, encoding, off-curve point), `unsupportedAlgorithm`
    ///   (another `kty` or curve) or `weakKey` (short RSA modulus).
    public init(json: JSONValue) throws(CryptoError) {
        let members = try joseObject(json, what: "JWK")
        let kty = try joseRequiredString(members, "kty", in: "JWK")
        for name in Self.privateMembers where members[name] != nil {
            throw CryptoError(.malformedInput, "JWK carries the private member \"\(name)\"; only public keys are accepted")
        }
        algorithm = try joseOptionalString(members, "alg", in: "JWK")
        keyID = try joseOptionalString(members, "kid", in: "JWK")
        use = try joseOptionalString(members, "use", in: "JWK")
        switch kty {
        case "EC":
            let crv = try joseRequiredString(members, "crv", in: "EC JWK")
            guard let curve = ECCurve(rawValue: crv) else {
                throw CryptoError(.unsupportedAlgorithm, "EC JWK curve \"\(crv)\" is not P-256, P-384 or P-521")
            }
            let x = try Base64URL.decode(joseRequiredString(members, "x", in: "EC JWK"), field: "JWK x")
            let y = try Base64URL.decode(joseRequiredString(members, "y", in: "EC JWK"), field: "JWK y")
            let size = curve.coordinateByteCount
            guard x.count == size, y.count == size else {
                throw CryptoError(
                    .malformedInput, "EC JWK coordinates must be \(size) bytes each on \(crv), got \(x.count) and \(y.count)")
            }
            // Built from the uncompressed point: OpenSSL refuses coordinates out of range or off the curve.
            publicKey = .ec(try ECPublicKey(curve: curve, sec1: [0x04] + x + y))
        case "RSA":
            let n = try Base64URL.decode(joseRequiredString(members, "n", in: "RSA JWK"), field: "JWK n")
            let e = try Base64URL.decode(joseRequiredString(members, "e", in: "RSA JWK"), field: "JWK e")
            guard let nFirst = n.first, nFirst != 0, let eFirst = e.first, eFirst != 0 else {
                throw CryptoError(.malformedInput, "RSA JWK n and e must be non-empty without leading zero octets")
            }
            guard e.count <= 8, let eLast = e.last, eLast & 1 == 1, e != [1] else {
                throw CryptoError(.malformedInput, "RSA JWK exponent must be odd, above 1 and at most 64 bits")
            }
            let bits = n.count * 8 - nFirst.leadingZeroBitCount
            guard bits >= JOSELimits.minimumRSABits else {
                throw CryptoError(.weakKey, "RSA JWK modulus has \(bits) bits; at least \(JOSELimits.minimumRSABits) are required")
            }
            guard bits <= JOSELimits.maximumRSABits else {
                throw CryptoError(.malformedInput, "RSA JWK modulus has \(bits) bits; at most \(JOSELimits.maximumRSABits) are accepted")
            }
            publicKey = .rsa(try RSAPublicKey(modulus: n, exponent: e))
        default:
            throw CryptoError(.unsupportedAlgorithm, "JWK kty \"\(kty)\" is not supported (EC and RSA are)")
        }
    }

    /// Parses a JWK from JSON text.
    public init(jsonBytes: some Collection<UInt8>) throws(CryptoError) {
        try self.init(json: joseParseJSON(jsonBytes, what: "JWK"))
    }

    /// The members RFC 7638 §3.2 hashes: `crv, kty, x, y` for EC and `e, kty, n` for RSA.
    public var requiredMembers: [String: JSONValue] {
        switch publicKey {
        case .ec(let key):
            ["crv": .string(key.curve.rawValue), "kty": "EC", "x": .string(Base64URL.encode(key.x)), "y": .string(Base64URL.encode(key.y))]
        case .rsa(let key):
            ["e": .string(Base64URL.encode(key.exponent)), "kty": "RSA", "n": .string(Base64URL.encode(key.modulus))]
        }
    }

    /// The JWK as JSON: the required members plus `alg`, `kid` and `use` when set.
    public var jsonValue: JSONValue {
        var members = requiredMembers
        if let algorithm { members["alg"] = .string(algorithm) }
        if let keyID { members["kid"] = .string(keyID) }
        if let use { members["use"] = .string(use) }
        return .object(members)
    }

    /// The RFC 7638 thumbprint: `digest` of the canonical JSON of ``requiredMembers`` (all ASCII strings, so JCS
    /// gives exactly RFC 7638's "lexicographic order, no whitespace").
    public func thumbprint(_ digest: DigestAlgorithm = .sha256) -> [UInt8] {
        Digest.hash(digest, CanonicalJSON.encode(.object(requiredMembers)))
    }

    /// The base64url SHA-256 thumbprint, as Custos uses it for `kid`.
    public var thumbprintBase64URL: String { Base64URL.encode(thumbprint()) }

    /// Whether two keys are the same key material (metadata ignored).
    public func hasSameKey(as other: JSONWebKey) -> Bool { publicKey == other.publicKey }
}

// MARK: - JWK Set (RFC 7517 §5)

/// A JWK Set, as published at `/.well-known/jwks.json`.
public struct JSONWebKeySet: Sendable, Equatable {
    public var keys: [JSONWebKey]

    public init(keys: [JSONWebKey]) { self.keys = keys }

    /// Parses `{"keys":[…]}`. Keys of a type or curve Custos does not support are skipped (RFC 7517 §5 says to
    /// ignore them); malformed keys and two keys with one `kid` are errors.
    public init(json: JSONValue) throws(CryptoError) {
        let members = try joseObject(json, what: "JWK Set")
        guard case .array(let entries)? = members["keys"] else {
            throw CryptoError(.malformedInput, "JWK Set lacks the \"keys\" array")
        }
        var keys: [JSONWebKey] = []
        var seen: Set<String> = []
        for entry in entries {
            let key: JSONWebKey
            do throws(CryptoError) {
                key = try JSONWebKey(json: entry)
            } catch  where error.code == .unsupportedAlgorithm {
                continue
            }
            if let kid = key.keyID {
                guard seen.insert(kid).inserted else { throw CryptoError(.malformedInput, "JWK Set has two keys with kid \"\(kid)\"") }
            }
            keys.append(key)
        }
        self.keys = keys
    }

    /// Parses a JWK Set from JSON text.
    public init(jsonBytes: some Collection<UInt8>) throws(CryptoError) {
        try self.init(json: joseParseJSON(jsonBytes, what: "JWK Set"))
    }

    /// `{"keys":[…]}`.
    public var jsonValue: JSONValue { .object(["keys": .array(keys.map(\.jsonValue))]) }

    /// The key with `kid`, if any.
    public func key(withID kid: String) -> JSONWebKey? { keys.first { $0.keyID == kid } }
}
