public import CustosCrypto
public import Foundation

// MARK: - Issuing EAR tokens (service.md §10)

/// Signs EAR tokens: ES256 (or ES384 with a P-384 key), `kid` = the key's RFC 7638 thumbprint, a 5-minute lifetime.
public struct EARIssuer: Sendable {
    /// The default token lifetime in seconds.
    public static let defaultLifetime: Int64 = 300
    /// Tokens must stay under this size (service.md §10: no raw event logs; Bearer headers stay small).
    public static let maximumTokenBytes = 8 * 1024

    public let signingKey: ECPrivateKey
    public let issuer: String
    public let audience: String
    public let lifetime: Int64
    public let verifierDeveloper: String
    public let verifierBuild: String
    public let profile: String

    /// - Parameters:
    ///   - signingKey: a P-256 (ES256) or P-384 (ES384) key.
    ///   - issuer: `iss`, e.g. `https://attest.example`.
    ///   - audience: `aud`; Custos's own tokens use the issuer.
    ///   - lifetime: seconds from `iat` to `exp` (1…3600).
    /// - Throws: ``KBSError`` for a P-521 key or a lifetime out of range.
    public init(
        signingKey: ECPrivateKey, issuer: String, audience: String? = nil, lifetime: Int64 = EARIssuer.defaultLifetime,
        verifierDeveloper: String = "https://custos.dev", verifierBuild: String = "custos", profile: String = EARClaims.custosProfile
    ) throws(KBSError) {
        guard signingKey.curve == .p256 || signingKey.curve == .p384 else {
            throw KBSError(.tokenVerifierError, "EAR signing keys must be P-256 (ES256) or P-384 (ES384)")
        }
        guard (1...3600).contains(lifetime) else { throw KBSError(.tokenVerifierError, "EAR lifetime must be 1 to 3600 seconds") }
        self.signingKey = signingKey
        self.issuer = issuer
        self.audience = audience ?? issuer
        self.lifetime = lifetime
        self.verifierDeveloper = verifierDeveloper
        self.verifierBuild = verifierBuild
        self.profile = profile
    }

    /// The JWS algorithm of the signing key.
    public var algorithm: JWSAlgorithm { JWSAlgorithm(curve: signingKey.curve) }

    /// The signing key's `kid`: its RFC 7638 SHA-256 thumbprint.
    public var keyID: String { JSONWebKey(.ec(signingKey.publicKey)).thumbprintBase64URL }

    /// The public key as published in the JWKS (`kid`, `alg`, `use: sig`).
    public var publicJWK: JSONWebKey {
        JSONWebKey(.ec(signingKey.publicKey), algorithm: algorithm.rawValue, keyID: keyID, use: "sig")
    }

    /// Builds and signs a token.
    /// - Parameters:
    ///   - submods: the appraisals (`cpu0` carries the TEE key in its annotated evidence).
    ///   - now: the issue time, Unix seconds (`iat` = `nbf` = now, `exp` = now + lifetime).
    ///   - tokenID: `jti`; a random UUID when `nil`.
    /// - Returns: the compact JWS and the claims it carries.
    /// - Throws: ``KBSError`` `TokenVerifierError` when signing fails or the token exceeds ``maximumTokenBytes``.
    public func issue(
        submods: [String: EARSubmod], nonce: String? = nil, auditLog: String? = nil, auditIndex: Int64? = nil, tenant: String? = nil,
        collateral: JSONValue? = nil, extensions: [String: JSONValue] = [:], now: Int64, tokenID: String? = nil
    ) throws(KBSError) -> (token: String, claims: EARClaims) {
        let claims = EARClaims(
            profile: profile, issuer: issuer, audience: audience, issuedAt: now, notBefore: now, expiresAt: now + lifetime,
            tokenID: tokenID ?? UUID().uuidString.lowercased(), nonce: nonce, verifierDeveloper: verifierDeveloper,
            verifierBuild: verifierBuild, submods: submods, auditLog: auditLog, auditIndex: auditIndex, tenant: tenant,
            collateral: collateral, extensions: extensions)
        let token: String
        do throws(CryptoError) {
            token = try CompactJWS.sign(
                payload: CanonicalJSON.encode(claims.jsonValue), extraHeader: ["typ": "JWT", "kid": .string(keyID)], key: signingKey)
        } catch {
            throw KBSError(.tokenVerifierError, "EAR signing failed: \(error)")
        }
        guard token.utf8.count <= Self.maximumTokenBytes else {
            throw KBSError(
                .tokenVerifierError,
                "EAR token would be \(token.utf8.count) bytes; the limit is \(Self.maximumTokenBytes) (drop raw evidence)")
        }
        return (token, claims)
    }
}
