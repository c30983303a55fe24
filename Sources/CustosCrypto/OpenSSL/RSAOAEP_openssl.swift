internal import COpenSSL

// MARK: - RSAES-OAEP (RFC 8017 §7.1), as JWE's RSA-OAEP-256 uses it

extension RSAPublicKey {
    /// Encrypts `plaintext` with RSAES-OAEP, `digest` as both the OAEP hash and the MGF1 hash, empty label
    /// (RFC 7518 §4.3: RSA-OAEP-256 is SHA-256 for both).
    /// - Throws: ``CryptoError/Code-swift.struct/invalidParameter`` when the plaintext is too long for the key.
    public func encryptOAEP(_ plaintext: SecretBytes, digest: DigestAlgorithm = .sha256) throws(CryptoError) -> [UInt8] {
        guard let ctx = EVP_PKEY_CTX_new(box.pointer, nil) else { throw .openSSL(.internalFailure, "EVP_PKEY_CTX_new failed") }
        defer { EVP_PKEY_CTX_free(ctx) }
        guard EVP_PKEY_encrypt_init(ctx) == 1, configureOAEP(ctx, digest: digest) else {
            throw .openSSL(.internalFailure, "RSA-OAEP setup failed")
        }
        return try plaintext.withBytes { (input: [UInt8]) throws(CryptoError) -> [UInt8] in
            var length = 0
            guard EVP_PKEY_encrypt(ctx, nil, &length, input, input.count) == 1 else {
                throw .openSSL(.invalidParameter, "RSA-OAEP encryption failed (plaintext too long for the key?)")
            }
            var out = [UInt8](repeating: 0, count: length)
            guard EVP_PKEY_encrypt(ctx, &out, &length, input, input.count) == 1 else {
                throw .openSSL(.invalidParameter, "RSA-OAEP encryption failed (plaintext too long for the key?)")
            }
            return Array(out.prefix(length))
        }
    }
}

extension RSAPrivateKey {
    /// Decrypts an RSAES-OAEP ciphertext (see ``RSAPublicKey/encryptOAEP(_:digest:)``).
    /// - Throws: ``CryptoError/Code-swift.struct/authenticationFailure`` when the padding does not check; the
    ///   message does not say why, as OAEP decoding errors must not be told apart (RFC 8017 §7.1.2 note).
    public func decryptOAEP(_ ciphertext: [UInt8], digest: DigestAlgorithm = .sha256) throws(CryptoError) -> SecretBytes {
        guard let ctx = EVP_PKEY_CTX_new(box.pointer, nil) else { throw .openSSL(.internalFailure, "EVP_PKEY_CTX_new failed") }
        defer { EVP_PKEY_CTX_free(ctx) }
        guard EVP_PKEY_decrypt_init(ctx) == 1, configureOAEP(ctx, digest: digest) else {
            throw .openSSL(.internalFailure, "RSA-OAEP setup failed")
        }
        var length = 0
        guard EVP_PKEY_decrypt(ctx, nil, &length, ciphertext, ciphertext.count) == 1, length > 0 else {
            _ = drainOpenSSLErrors()
            throw CryptoError(.authenticationFailure, "RSA-OAEP decryption failed")
        }
        var out = [UInt8](repeating: 0, count: length)
        defer { secureZero(&out) }
        guard EVP_PKEY_decrypt(ctx, &out, &length, ciphertext, ciphertext.count) == 1 else {
            _ = drainOpenSSLErrors()
            throw CryptoError(.authenticationFailure, "RSA-OAEP decryption failed")
        }
        return SecretBytes(Array(out.prefix(length)))
    }
}

private func configureOAEP(_ ctx: OpaquePointer, digest: DigestAlgorithm) -> Bool {
    EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) > 0
        && EVP_PKEY_CTX_set_rsa_oaep_md(ctx, digest.evpMD) > 0
        && EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, digest.evpMD) > 0
}
