public import CustosCrypto

// MARK: - Resource release (GET /kbs/v0/resource/…)

/// Encrypts a released secret to the TEE key of a verified token, as Trustee's KBS does: a flattened JWE with
/// ECDH-ES+A256KW (EC keys) or RSA-OAEP-256 (RSA keys) and A256GCM. The agent side decrypts with its private key.
public enum KBSResourceRelease {
    /// The JWE for `secret`, to the token's TEE key.
    /// - Throws: ``KBSError`` `JweError` when the key's `alg` is refused (RSA1_5, …) or encryption fails.
    public static func encrypt(_ secret: SecretBytes, for token: VerifiedEAR) throws(KBSError) -> FlattenedJWE {
        try encrypt(secret, to: token.teePubkey)
    }

    /// The JWE for `secret`, to `teePubkey`.
    public static func encrypt(_ secret: SecretBytes, to teePubkey: JSONWebKey) throws(KBSError) -> FlattenedJWE {
        do throws(CryptoError) {
            return try FlattenedJWE.encrypt(secret, to: teePubkey)
        } catch {
            throw KBSError(.jweError, "cannot encrypt the resource to the TEE key: \(error.reason)")
        }
    }

    /// A sealer for a JWE to `teePubkey`, prepared before the secret is read: every refusal of the key (type,
    /// `alg`, RSA size) happens here, so a release can be recorded before the secret is sealed.
    /// - Throws: ``KBSError`` `JweError`.
    public static func sealer(to teePubkey: JSONWebKey) throws(KBSError) -> FlattenedJWE.Sealer {
        do throws(CryptoError) {
            return try FlattenedJWE.Sealer(to: teePubkey)
        } catch {
            throw KBSError(.jweError, "cannot encrypt the resource to the TEE key: \(error.reason)")
        }
    }

    /// Decrypts a resource response with the TEE's private key (the guest agent's side).
    /// - Throws: ``KBSError`` `JweError` for a malformed, refused or undecryptable JWE.
    public static func decrypt(responseBody: some Collection<UInt8>, with key: JWEDecryptionKey) throws(KBSError) -> SecretBytes {
        do throws(CryptoError) {
            return try FlattenedJWE(jsonBytes: responseBody).decrypt(with: key)
        } catch {
            throw KBSError(.jweError, "cannot decrypt the resource: \(error.reason)")
        }
    }
}
