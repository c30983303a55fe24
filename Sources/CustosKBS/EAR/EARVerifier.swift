public import CustosCrypto

// MARK: - Verifying EAR tokens

/// Why an EAR token was refused.
public enum EARFailure: Sendable, Hashable, CustomStringConvertible {
    /// The token is not a compact JWS with a JSON claim set of the EAR shape.
    case malformed(String)
    /// `alg` is not one the verifier accepts (`none`, HS256, RS256, …) or does not fit the key.
    case algorithmRefused(String)
    /// The header has no `kid`, or one that is not in the key set.
    case unknownKeyID(String?)
    /// The signature does not verify under the key named by `kid`.
    case signatureInvalid
    /// `now` is at or after `exp`.
    case expired(expiresAt: Int64, now: Int64)
    /// `now` is before `nbf` (or `iat`).
    case notYetValid(notBefore: Int64, now: Int64)
    /// `iss` is not the expected issuer.
    case wrongIssuer(String)
    /// `aud` is not the expected audience.
    case wrongAudience(String)
    /// The token carries no TEE key at any of Trustee's paths, or one that is not an acceptable JWK.
    case teeKeyInvalid(String)

    public var description: String {
        switch self {
        case .malformed(let why): "malformed token: \(why)"
        case .algorithmRefused(let why): "algorithm refused: \(why)"
        case .unknownKeyID(let kid): "unknown signing key \(kid.map { "\"\($0)\"" } ?? "(no kid)")"
        case .signatureInvalid: "signature does not verify"
        case .expired(let exp, let now): "expired at \(exp) (now \(now))"
        case .notYetValid(let nbf, let now): "not valid before \(nbf) (now \(now))"
        case .wrongIssuer(let iss): "issued by \"\(iss)\", not this service"
        case .wrongAudience(let aud): "audience \"\(aud)\" is not this service"
        case .teeKeyInvalid(let why): "TEE key: \(why)"
        }
    }
}

/// A token that passed ``EARVerifier/verify(_:at:)``. Only the verifier makes these.
public struct VerifiedEAR: Sendable, Equatable {
    public let token: String
    public let claims: EARClaims
    /// The `kid` of the key that signed it.
    public let keyID: String
    /// The TEE key a released secret is encrypted to.
    public let teePubkey: JSONWebKey

    fileprivate init(token: String, claims: EARClaims, keyID: String, teePubkey: JSONWebKey) {
        self.token = token
        self.claims = claims
        self.keyID = keyID
        self.teePubkey = teePubkey
    }
}

/// The outcome of ``EARVerifier/verify(_:at:)``.
public enum EARVerificationResult: Sendable, Equatable {
    case verified(VerifiedEAR)
    case rejected([EARFailure])

    /// The verified token, or a ``KBSError`` `TokenVerifierError` listing the failures.
    public func get() throws(KBSError) -> VerifiedEAR {
        switch self {
        case .verified(let token): return token
        case .rejected(let failures):
            throw KBSError(.tokenVerifierError, "attestation token refused: " + failures.map(\.description).joined(separator: "; "))
        }
    }
}

/// Checks Bearer EAR tokens: signature under a key of the set (current and retired keys, looked up by `kid`),
/// `alg` one of ``allowedAlgorithms`` and matching the key, `nbf ≤ now < exp`, `iss` and `aud`, and a usable TEE key.
public struct EARVerifier: Sendable {
    public let keys: JSONWebKeySet
    public let issuer: String
    public let audience: String
    public let allowedAlgorithms: Set<JWSAlgorithm>
    /// Seconds of clock skew tolerated on `nbf` and `exp` (0 by default: the issuer is this service).
    public let leeway: Int64

    public init(
        keys: JSONWebKeySet, issuer: String, audience: String? = nil, allowedAlgorithms: Set<JWSAlgorithm> = [.es256, .es384],
        leeway: Int64 = 0
    ) {
        self.keys = keys
        self.issuer = issuer
        self.audience = audience ?? issuer
        self.allowedAlgorithms = allowedAlgorithms
        self.leeway = max(0, leeway)
    }

    /// Verifies `token` at `now` (Unix seconds).
    public func verify(_ token: String, at now: Int64) -> EARVerificationResult {
        let jws: CompactJWS
        do throws(CryptoError) {
            jws = try CompactJWS(parsing: token)
        } catch {
            if error.code == .unsupportedAlgorithm { return .rejected([.algorithmRefused(error.reason)]) }
            return .rejected([.malformed(error.reason)])
        }
        guard allowedAlgorithms.contains(jws.algorithm) else {
            return .rejected([.algorithmRefused("\(jws.algorithm.rawValue) is not allowed")])
        }
        if let typ = jws.header["typ"], typ != "JWT" { return .rejected([.malformed("typ must be JWT")]) }
        guard let kid = jws.keyID, let key = keys.key(withID: kid) else { return .rejected([.unknownKeyID(jws.keyID)]) }
        do throws(CryptoError) {
            try jws.verify(with: key)
        } catch {
            if error.code == .algorithmMismatch { return .rejected([.algorithmRefused(error.reason)]) }
            return .rejected([.signatureInvalid])
        }
        // The signature holds: the claims are the issuer's. Now check them, reporting every failure.
        let claims: EARClaims
        do throws(KBSError) {
            let json = try WireJSON.parse(jws.payload, what: "EAR claims", maximumBytes: JOSELimits.maximumCompactJWSBytes)
            claims = try EARClaims(json: json)
        } catch {
            return .rejected([.malformed(error.reason + (error.field.map { " [\($0)]" } ?? ""))])
        }
        var failures: [EARFailure] = []
        if now >= claims.expiresAt + leeway { failures.append(.expired(expiresAt: claims.expiresAt, now: now)) }
        let start = max(claims.notBefore, claims.issuedAt)
        if now + leeway < start { failures.append(.notYetValid(notBefore: start, now: now)) }
        if claims.issuer != issuer { failures.append(.wrongIssuer(claims.issuer)) }
        if claims.audience != audience { failures.append(.wrongAudience(claims.audience)) }
        var teeKey: JSONWebKey? = nil
        if let keyJSON = claims.teePubkeyJSON {
            do throws(CryptoError) {
                teeKey = try JSONWebKey(json: keyJSON)
            } catch {
                failures.append(.teeKeyInvalid(error.reason))
            }
        } else {
            failures.append(.teeKeyInvalid("no tee-pubkey in the token"))
        }
        guard failures.isEmpty, let teeKey else { return .rejected(failures) }
        return .verified(VerifiedEAR(token: token, claims: claims, keyID: kid, teePubkey: teeKey))
    }
}
