internal import COpenSSL

// MARK: - AES Key Wrap (RFC 3394)

/// AES Key Wrap (RFC 3394, NIST SP 800-38F "KW") with the default IV `A6A6A6A6A6A6A6A6`, as JWE's `A256KW` uses it.
public enum AESKeyWrap {
    /// Wraps `keyData` (a multiple of 8 bytes, at least 16) under a 16-, 24- or 32-byte `kek`.
    /// - Returns: `keyData.count + 8` bytes.
    /// - Throws: ``CryptoError/Code-swift.struct/invalidParameter`` for bad lengths.
    public static func wrap(kek: SecretBytes, keyData: SecretBytes) throws(CryptoError) -> [UInt8] {
        guard keyData.count >= 16, keyData.count % 8 == 0, keyData.count <= 4096 else {
            throw CryptoError(.invalidParameter, "AES key wrap input must be 16 to 4096 bytes in steps of 8, got \(keyData.count)")
        }
        return try keyData.withBytes { (input: [UInt8]) throws(CryptoError) -> [UInt8] in
            try run(kek: kek, input: input, encrypt: true)
        }
    }

    /// Unwraps and checks the integrity value.
    /// - Returns: `wrapped.count − 8` bytes of key data.
    /// - Throws: ``CryptoError/Code-swift.struct/authenticationFailure`` when the integrity check fails (wrong
    ///   KEK or tampered data); `invalidParameter` for bad lengths.
    public static func unwrap(kek: SecretBytes, wrapped: [UInt8]) throws(CryptoError) -> SecretBytes {
        guard wrapped.count >= 24, wrapped.count % 8 == 0, wrapped.count <= 4104 else {
            throw CryptoError(.invalidParameter, "AES key wrap ciphertext must be 24 to 4104 bytes in steps of 8, got \(wrapped.count)")
        }
        var output = try run(kek: kek, input: wrapped, encrypt: false)
        defer { secureZero(&output) }
        return SecretBytes(output)
    }

    private static func run(kek: SecretBytes, input: [UInt8], encrypt: Bool) throws(CryptoError) -> [UInt8] {
        let name: String
        let fetched: OpaquePointer?
        switch kek.count {
        case 16: (name, fetched) = ("AES-128-WRAP", fetchedCiphers.aes128Wrap)
        case 24: (name, fetched) = ("AES-192-WRAP", fetchedCiphers.aes192Wrap)
        case 32: (name, fetched) = ("AES-256-WRAP", fetchedCiphers.aes256Wrap)
        default: throw CryptoError(.invalidParameter, "AES key wrap KEK must be 16, 24 or 32 bytes, got \(kek.count)")
        }
        guard let cipher = fetched else { throw .openSSL(.internalFailure, "\(name) is not available") }
        guard let ctx = EVP_CIPHER_CTX_new() else { throw .openSSL(.internalFailure, "EVP_CIPHER_CTX_new failed") }
        defer { EVP_CIPHER_CTX_free(ctx) }
        // Needed by the legacy EVP interface for wrap modes; harmless with the provider implementation.
        EVP_CIPHER_CTX_set_flags(ctx, Int32(EVP_CIPHER_CTX_FLAG_WRAP_ALLOW))
        let initOK = kek.withBytes { key in EVP_CipherInit_ex2(ctx, cipher, key, nil, encrypt ? 1 : 0, nil) }
        guard initOK == 1 else { throw .openSSL(.internalFailure, "\(name) init failed") }
        var output = [UInt8](repeating: 0, count: input.count + 16)
        var written: Int32 = 0
        guard EVP_CipherUpdate(ctx, &output, &written, input, Int32(input.count)) == 1, written >= 0 else {
            secureZero(&output)
            if encrypt { throw .openSSL(.internalFailure, "\(name) failed") }
            _ = drainOpenSSLErrors()
            throw CryptoError(.authenticationFailure, "AES key unwrap integrity check failed (wrong key or tampered data)")
        }
        var finalLength: Int32 = 0
        var tail = [UInt8](repeating: 0, count: 16)
        guard EVP_CipherFinal_ex(ctx, &tail, &finalLength) == 1 else {
            secureZero(&output)
            if encrypt { throw .openSSL(.internalFailure, "\(name) final failed") }
            _ = drainOpenSSLErrors()
            throw CryptoError(.authenticationFailure, "AES key unwrap integrity check failed (wrong key or tampered data)")
        }
        let expected = encrypt ? input.count + 8 : input.count - 8
        let total = Int(written) + Int(finalLength)
        output.replaceSubrange(Int(written)..<Int(written) + Int(finalLength), with: tail.prefix(Int(finalLength)))
        guard total == expected else {
            secureZero(&output)
            throw CryptoError(.internalFailure, "\(name) produced \(total) bytes, expected \(expected)")
        }
        let result = Array(output.prefix(expected))
        secureZero(&output)
        return result
    }
}
