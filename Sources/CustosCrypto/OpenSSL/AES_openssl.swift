internal import COpenSSL
public import Foundation

/// AES in the two modes Custos needs: CTR (SEV's TEK wrapping and secret packets) and GCM (sealing, KBS responses).
public enum AES {
    /// AES-CTR (NIST SP 800-38A; RFC 3686 counter block supplied whole as `iv`).
    public enum CTR {
        /// Encrypts or decrypts (the same operation) with a 16- or 32-byte key and a 16-byte initial counter block.
        public static func apply(key: some ContiguousBytes, iv: [UInt8], data: some ContiguousBytes) throws(CryptoError) -> [UInt8] {
            let keyLength = key.withUnsafeBytes { $0.count }
            let cipher: OpaquePointer
            switch keyLength {
            case 16: cipher = fetchedCiphers.aes128CTR ?? EVP_aes_128_ctr()
            case 32: cipher = fetchedCiphers.aes256CTR ?? EVP_aes_256_ctr()
            default: throw CryptoError(.invalidParameter, "AES-CTR key must be 16 or 32 bytes, got \(keyLength)")
            }
            guard iv.count == 16 else { throw CryptoError(.invalidParameter, "AES-CTR IV must be 16 bytes, got \(iv.count)") }
            return try runCipher(cipher, key: key, iv: iv, data: data, encrypt: true)
        }
    }

    /// AES-GCM (NIST SP 800-38D) with a 16-byte tag.
    public enum GCM {
        public struct SealedBox: Sendable, Equatable {
            public let nonce: [UInt8]
            public let ciphertext: [UInt8]
            public let tag: [UInt8]
            public init(nonce: [UInt8], ciphertext: [UInt8], tag: [UInt8]) {
                self.nonce = nonce
                self.ciphertext = ciphertext
                self.tag = tag
            }
        }

        /// Encrypts `plaintext` under a 16- or 32-byte key. A fresh random 12-byte nonce is used when none is given.
        public static func seal(
            key: some ContiguousBytes, nonce: [UInt8]? = nil, plaintext: some ContiguousBytes, aad: [UInt8] = []
        ) throws(CryptoError) -> SealedBox {
            let usedNonce: [UInt8]
            if let nonce { usedNonce = nonce } else { usedNonce = try SecureRandom.bytes(12) }
            let (ciphertext, tag) = try gcm(key: key, nonce: usedNonce, input: plaintext, aad: aad, tag: nil)
            return SealedBox(nonce: usedNonce, ciphertext: ciphertext, tag: tag)
        }

        /// Decrypts and authenticates.
        /// - Throws: ``CryptoError/Code-swift.struct/authenticationFailure`` when the tag does not verify.
        public static func open(key: some ContiguousBytes, box: SealedBox, aad: [UInt8] = []) throws(CryptoError) -> [UInt8] {
            guard box.tag.count == 16 else { throw CryptoError(.invalidParameter, "AES-GCM tag must be 16 bytes, got \(box.tag.count)") }
            return try gcm(key: key, nonce: box.nonce, input: box.ciphertext, aad: aad, tag: box.tag).0
        }

        private static func gcm(
            key: some ContiguousBytes, nonce: [UInt8], input: some ContiguousBytes, aad: [UInt8], tag: [UInt8]?
        ) throws(CryptoError) -> ([UInt8], [UInt8]) {
            let keyLength = key.withUnsafeBytes { $0.count }
            let cipher: OpaquePointer
            switch keyLength {
            case 16: cipher = fetchedCiphers.aes128GCM ?? EVP_aes_128_gcm()
            case 32: cipher = fetchedCiphers.aes256GCM ?? EVP_aes_256_gcm()
            default: throw CryptoError(.invalidParameter, "AES-GCM key must be 16 or 32 bytes, got \(keyLength)")
            }
            guard (1...128).contains(nonce.count) else {
                throw CryptoError(.invalidParameter, "AES-GCM nonce length \(nonce.count) out of range")
            }
            let encrypt = tag == nil
            guard let ctx = EVP_CIPHER_CTX_new() else { throw .openSSL(.internalFailure, "EVP_CIPHER_CTX_new failed") }
            defer { EVP_CIPHER_CTX_free(ctx) }
            guard EVP_CipherInit_ex(ctx, cipher, nil, nil, nil, encrypt ? 1 : 0) == 1,
                EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, Int32(nonce.count), nil) == 1
            else { throw .openSSL(.internalFailure, "AES-GCM init failed") }
            let initOK = key.withNonNilBytes { k in
                EVP_CipherInit_ex(ctx, nil, nil, k.baseAddress?.assumingMemoryBound(to: UInt8.self), nonce, encrypt ? 1 : 0)
            }
            guard initOK == 1 else { throw .openSSL(.internalFailure, "AES-GCM key setup failed") }
            var outLength: Int32 = 0
            if !aad.isEmpty {
                guard EVP_CipherUpdate(ctx, nil, &outLength, aad, Int32(aad.count)) == 1 else {
                    throw .openSSL(.internalFailure, "AES-GCM AAD failed")
                }
            }
            var output = try update(ctx, input)
            if var tag {
                guard EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, &tag) == 1 else {
                    throw .openSSL(.internalFailure, "AES-GCM set tag failed")
                }
            }
            var final = [UInt8](repeating: 0, count: 32)
            guard EVP_CipherFinal_ex(ctx, &final, &outLength) == 1 else {
                _ = drainOpenSSLErrors()
                secureZero(&output)
                throw CryptoError(.authenticationFailure, "AES-GCM tag does not verify")
            }
            output += final.prefix(Int(outLength))
            if encrypt {
                var newTag = [UInt8](repeating: 0, count: 16)
                guard EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, &newTag) == 1 else {
                    throw .openSSL(.internalFailure, "AES-GCM get tag failed")
                }
                return (output, newTag)
            }
            return (output, tag ?? [])
        }
    }

    static func runCipher(
        _ cipher: OpaquePointer, key: some ContiguousBytes, iv: [UInt8], data: some ContiguousBytes, encrypt: Bool
    ) throws(CryptoError) -> [UInt8] {
        guard let ctx = EVP_CIPHER_CTX_new() else { throw .openSSL(.internalFailure, "EVP_CIPHER_CTX_new failed") }
        defer { EVP_CIPHER_CTX_free(ctx) }
        let initOK = key.withNonNilBytes { k in
            EVP_CipherInit_ex(ctx, cipher, nil, k.baseAddress?.assumingMemoryBound(to: UInt8.self), iv, encrypt ? 1 : 0)
        }
        guard initOK == 1 else { throw .openSSL(.internalFailure, "cipher init failed") }
        var output = try update(ctx, data)
        var final = [UInt8](repeating: 0, count: 32)
        var finalLength: Int32 = 0
        guard EVP_CipherFinal_ex(ctx, &final, &finalLength) == 1 else { throw .openSSL(.internalFailure, "cipher final failed") }
        output += final.prefix(Int(finalLength))
        return output
    }

    /// Runs `EVP_CipherUpdate` in chunks that fit its `int` length.
    private static func update(_ ctx: OpaquePointer, _ data: some ContiguousBytes) throws(CryptoError) -> [UInt8] {
        let result: Result<[UInt8], CryptoError> = data.withUnsafeBytes { buffer in
            var output = [UInt8](repeating: 0, count: buffer.count + 32)
            guard let input = buffer.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return .success([]) }
            var written = 0
            var offset = 0
            let chunk = 1 << 30
            while offset < buffer.count {
                let length = min(chunk, buffer.count - offset)
                var outLength: Int32 = 0
                let ok = output.withUnsafeMutableBufferPointer { out -> Int32 in
                    guard let base = out.baseAddress else { return 0 }
                    return EVP_CipherUpdate(ctx, base + written, &outLength, input + offset, Int32(length))
                }
                guard ok == 1 else { return .failure(.openSSL(.internalFailure, "cipher update failed")) }
                written += Int(outLength)
                offset += length
            }
            output.removeSubrange(written...)
            return .success(output)
        }
        return try result.get()
    }
}
