internal import COpenSSL
public import Foundation

// MARK: - Public key

/// An Ed25519 public key (RFC 8032 §5.1.5: the 32-byte encoding of the point A).
public struct Ed25519PublicKey: Sendable, Equatable {
    /// The raw 32-byte public key.
    public let rawRepresentation: [UInt8]
    let box: PKeyBox

    public static func == (lhs: Ed25519PublicKey, rhs: Ed25519PublicKey) -> Bool {
        lhs.rawRepresentation == rhs.rawRepresentation
    }

    /// From the raw 32-byte public key.
    /// - Throws: ``CryptoError/Code-swift.struct/malformedInput`` when `raw` is not 32 bytes or OpenSSL refuses it.
    public init(rawRepresentation raw: some Collection<UInt8>) throws(CryptoError) {
        let raw = Array(raw)
        guard raw.count == Ed25519.keyByteCount else {
            throw CryptoError(.malformedInput, "an Ed25519 public key is 32 bytes, got \(raw.count)")
        }
        let made = raw.withUnsafeBufferPointer { EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nil, $0.baseAddress, $0.count) }
        guard let made else { throw .openSSL(.malformedInput, "OpenSSL refused the Ed25519 public key") }
        self.box = PKeyBox(takingOwnership: made)
        self.rawRepresentation = raw
    }

    init(box: PKeyBox) throws(CryptoError) {
        var length = Ed25519.keyByteCount
        var out = [UInt8](repeating: 0, count: length)
        guard EVP_PKEY_get_raw_public_key(box.pointer, &out, &length) == 1, length == Ed25519.keyByteCount else {
            throw .openSSL(.internalFailure, "could not read the Ed25519 public key")
        }
        self.box = box
        self.rawRepresentation = out
    }

    /// Whether `signature` is a valid RFC 8032 Ed25519 signature of `message` under this key.
    ///
    /// A signature of the wrong length is invalid (not an error): the verifier's answer is the same either way.
    public func isValidSignature(_ signature: some Collection<UInt8>, for message: some ContiguousBytes) -> Bool {
        let signature = Array(signature)
        guard signature.count == Ed25519.signatureByteCount else { return false }
        guard let mctx = EVP_MD_CTX_new() else { return false }
        defer {
            EVP_MD_CTX_free(mctx)
            _ = drainOpenSSLErrors()
        }
        // Pure Ed25519: no digest (NULL), so OpenSSL does not pre-hash (RFC 8032 §5.1.7; specs/audit.md Trap 13).
        guard EVP_DigestVerifyInit(mctx, nil, nil, nil, box.pointer) == 1 else { return false }
        return message.withNonNilBytes { buffer in
            EVP_DigestVerify(mctx, signature, signature.count, buffer.baseAddress?.assumingMemoryBound(to: UInt8.self), buffer.count)
                == 1
        }
    }
}

// MARK: - Private key

/// An Ed25519 private key: the 32-byte seed of RFC 8032 §5.1.5, held in OpenSSL and, as raw bytes, only in
/// ``SecretBytes``.
public struct Ed25519PrivateKey: Sendable {
    let box: PKeyBox
    /// The matching public key.
    public let publicKey: Ed25519PublicKey

    /// A fresh random key from OpenSSL's DRBG.
    public init() throws(CryptoError) {
        guard let ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nil) else {
            throw .openSSL(.internalFailure, "EVP_PKEY_CTX_new_id failed")
        }
        defer { EVP_PKEY_CTX_free(ctx) }
        var key: OpaquePointer? = nil
        guard EVP_PKEY_keygen_init(ctx) == 1, EVP_PKEY_generate(ctx, &key) == 1, let key else {
            throw .openSSL(.internalFailure, "Ed25519 key generation failed")
        }
        let box = PKeyBox(takingOwnership: key)
        self.box = box
        self.publicKey = try Ed25519PublicKey(box: box)
    }

    /// From the raw 32-byte seed.
    /// - Throws: ``CryptoError/Code-swift.struct/malformedInput`` when the seed is not 32 bytes.
    public init(rawRepresentation seed: SecretBytes) throws(CryptoError) {
        guard seed.count == Ed25519.keyByteCount else {
            throw CryptoError(.malformedInput, "an Ed25519 private key (seed) is 32 bytes, got \(seed.count)")
        }
        let made = seed.withBytes { bytes in
            bytes.withUnsafeBufferPointer { EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nil, $0.baseAddress, $0.count) }
        }
        guard let made else { throw .openSSL(.malformedInput, "OpenSSL refused the Ed25519 private key") }
        let box = PKeyBox(takingOwnership: made)
        self.box = box
        self.publicKey = try Ed25519PublicKey(box: box)
    }

    /// The raw 32-byte seed.
    public var rawRepresentation: SecretBytes {
        get throws(CryptoError) {
            var length = Ed25519.keyByteCount
            var out = [UInt8](repeating: 0, count: length)
            defer { secureZero(&out) }
            guard EVP_PKEY_get_raw_private_key(box.pointer, &out, &length) == 1, length == Ed25519.keyByteCount else {
                throw .openSSL(.internalFailure, "could not read the Ed25519 private key")
            }
            return SecretBytes(out)
        }
    }

    /// The 64-byte RFC 8032 signature of `message` (deterministic: the same key and message give the same bytes).
    public func signature(for message: some ContiguousBytes) throws(CryptoError) -> [UInt8] {
        guard let mctx = EVP_MD_CTX_new() else { throw .openSSL(.internalFailure, "EVP_MD_CTX_new failed") }
        defer { EVP_MD_CTX_free(mctx) }
        guard EVP_DigestSignInit(mctx, nil, nil, nil, box.pointer) == 1 else {
            throw .openSSL(.internalFailure, "Ed25519 signing setup failed")
        }
        let result: Result<[UInt8], CryptoError> = message.withNonNilBytes { buffer in
            var length = Ed25519.signatureByteCount
            var out = [UInt8](repeating: 0, count: length)
            guard
                EVP_DigestSign(mctx, &out, &length, buffer.baseAddress?.assumingMemoryBound(to: UInt8.self), buffer.count) == 1,
                length == Ed25519.signatureByteCount
            else {
                return .failure(.openSSL(.internalFailure, "Ed25519 signing failed"))
            }
            return .success(out)
        }
        return try result.get()
    }
}
