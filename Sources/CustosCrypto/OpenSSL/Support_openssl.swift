internal import COpenSSL
import Foundation

// MARK: - Error queue

/// Drains OpenSSL's thread-local error queue into readable lines, oldest first.
func drainOpenSSLErrors() -> [String] {
    var lines: [String] = []
    while true {
        let code = ERR_get_error()
        if code == 0 { break }
        var buffer = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(code, &buffer, buffer.count)
        let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        lines.append(String(decoding: bytes, as: UTF8.self))
        if lines.count > 16 { break }
    }
    return lines
}

extension CryptoError {
    /// An error carrying OpenSSL's queue; the queue is emptied.
    static func openSSL(
        _ code: Code, _ reason: String, certificate: String? = nil, file: String = #fileID, line: Int = #line
    ) -> CryptoError {
        CryptoError(code, reason, certificate: certificate, openSSLErrors: drainOpenSSLErrors(), file: file, line: line)
    }
}

// MARK: - Byte plumbing

extension ContiguousBytes {
    /// Lends the bytes as a (possibly empty) buffer with a non-nil base address.
    func withNonNilBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try withUnsafeBytes { buffer in
            if buffer.baseAddress != nil { return try body(buffer) }
            var zero: UInt8 = 0
            return try Swift.withUnsafeBytes(of: &zero) { try body(UnsafeRawBufferPointer(rebasing: $0[0..<0])) }
        }
    }
}

/// Reads everything written into a memory BIO.
func bioContents(_ bio: OpaquePointer) -> [UInt8] {
    var pointer: UnsafeMutablePointer<CChar>? = nil
    let length = COpenSSL_BIO_get_mem_data(bio, &pointer)
    guard length > 0, let pointer else { return [] }
    return pointer.withMemoryRebound(to: UInt8.self, capacity: length) { Array(UnsafeBufferPointer(start: $0, count: length)) }
}

/// A read-only memory BIO over `bytes`, freed after `body`.
func withReadBIO<R>(_ bytes: [UInt8], _ body: (OpaquePointer) throws(CryptoError) -> R) throws(CryptoError) -> R {
    let result: Result<R, CryptoError> = bytes.withNonNilBytes { buffer in
        guard let bio = BIO_new_mem_buf(buffer.baseAddress, Int32(buffer.count)) else {
            return .failure(.openSSL(.internalFailure, "BIO_new_mem_buf failed"))
        }
        defer { BIO_free(bio) }
        do throws(CryptoError) { return .success(try body(bio)) } catch { return .failure(error) }
    }
    return try result.get()
}

/// A writable memory BIO, freed after its contents are read.
func withWriteBIO(_ body: (OpaquePointer) throws(CryptoError) -> Void) throws(CryptoError) -> [UInt8] {
    guard let bio = BIO_new(BIO_s_mem()) else { throw .openSSL(.internalFailure, "BIO_new failed") }
    defer { BIO_free(bio) }
    try body(bio)
    return bioContents(bio)
}

// MARK: - BIGNUM

/// An owned BIGNUM, freed on deinit.
final class BigNum {
    let pointer: OpaquePointer
    init(bigEndian bytes: [UInt8]) throws(CryptoError) {
        let made = bytes.withNonNilBytes { BN_bin2bn($0.baseAddress?.assumingMemoryBound(to: UInt8.self), Int32($0.count), nil) }
        guard let made else { throw .openSSL(.internalFailure, "BN_bin2bn failed") }
        pointer = made
    }
    init(takingOwnership pointer: OpaquePointer) { self.pointer = pointer }
    deinit { BN_clear_free(pointer) }

    /// Big-endian bytes, left-padded to `length` when given.
    func bytes(paddedTo length: Int? = nil) throws(CryptoError) -> [UInt8] {
        let count = length ?? Int(COpenSSL_BN_num_bytes(pointer))
        var out = [UInt8](repeating: 0, count: count)
        if count == 0 { return out }
        guard BN_bn2binpad(pointer, &out, Int32(count)) == Int32(count) else {
            throw .openSSL(.invalidParameter, "number does not fit in \(count) bytes")
        }
        return out
    }
}

/// Strips leading zero bytes (keeps one byte for zero).
func minimalBigEndian(_ bytes: some Collection<UInt8>) -> [UInt8] {
    let trimmed = Array(bytes.drop { $0 == 0 })
    return trimmed.isEmpty ? [0] : trimmed
}

// MARK: - EVP_PKEY

/// An owned `EVP_PKEY`.
///
/// Immutable after init, and OpenSSL 3 allows concurrent read-only use (verify, derive, sign with fresh contexts)
/// of one key, hence `@unchecked Sendable`.
final class PKeyBox: @unchecked Sendable {
    let pointer: OpaquePointer
    init(takingOwnership pointer: OpaquePointer) { self.pointer = pointer }
    deinit { EVP_PKEY_free(pointer) }

    /// DER SubjectPublicKeyInfo.
    func spkiDER() throws(CryptoError) -> [UInt8] {
        var out: UnsafeMutablePointer<UInt8>? = nil
        let length = i2d_PUBKEY(pointer, &out)
        guard length > 0, let out else { throw .openSSL(.internalFailure, "i2d_PUBKEY failed") }
        defer { COpenSSL_free(out) }
        return Array(UnsafeBufferPointer(start: out, count: Int(length)))
    }

    /// DER PKCS#8 PrivateKeyInfo.
    func pkcs8DER() throws(CryptoError) -> [UInt8] {
        try withWriteBIO { bio throws(CryptoError) in
            guard i2d_PKCS8PrivateKey_bio(bio, pointer, nil, nil, 0, nil, nil) == 1 else {
                throw .openSSL(.internalFailure, "i2d_PKCS8PrivateKey_bio failed")
            }
        }
    }

    static func parsePublic(der: [UInt8]) throws(CryptoError) -> PKeyBox {
        var made: OpaquePointer? = nil
        der.withNonNilBytes { buffer in
            var cursor: UnsafePointer<UInt8>? = buffer.baseAddress?.assumingMemoryBound(to: UInt8.self)
            made = d2i_PUBKEY(nil, &cursor, buffer.count)
        }
        guard let made else { throw .openSSL(.malformedInput, "not a DER SubjectPublicKeyInfo") }
        return PKeyBox(takingOwnership: made)
    }

    static func parsePublic(pem: String) throws(CryptoError) -> PKeyBox {
        try withReadBIO(Array(pem.utf8)) { bio throws(CryptoError) in
            guard let made = PEM_read_bio_PUBKEY(bio, nil, nil, nil) else {
                throw .openSSL(.malformedInput, "not a PEM public key")
            }
            return PKeyBox(takingOwnership: made)
        }
    }

    static func parsePrivate(der: [UInt8]) throws(CryptoError) -> PKeyBox {
        var made: OpaquePointer? = nil
        der.withNonNilBytes { buffer in
            var cursor: UnsafePointer<UInt8>? = buffer.baseAddress?.assumingMemoryBound(to: UInt8.self)
            made = d2i_AutoPrivateKey(nil, &cursor, buffer.count)
        }
        guard let made else { throw .openSSL(.malformedInput, "not a DER private key") }
        return PKeyBox(takingOwnership: made)
    }

    static func parsePrivate(pem: String) throws(CryptoError) -> PKeyBox {
        try withReadBIO(Array(pem.utf8)) { bio throws(CryptoError) in
            guard let made = PEM_read_bio_PrivateKey(bio, nil, nil, nil) else {
                throw .openSSL(.malformedInput, "not a PEM private key")
            }
            return PKeyBox(takingOwnership: made)
        }
    }

    var baseID: Int32 { EVP_PKEY_get_base_id(pointer) }
    var bits: Int { Int(EVP_PKEY_get_bits(pointer)) }
}

// MARK: - Message digests

/// Message digests fetched from the default provider once, for the life of the process. OpenSSL 3 re-fetches the
/// implementation of a legacy static `EVP_sha256()` on every `EVP_DigestInit`/`EVP_DigestVerifyInit`; a fetched
/// `EVP_MD` is immutable and may be shared between threads.
private final class FetchedDigests: @unchecked Sendable {
    let sha1 = EVP_MD_fetch(nil, "SHA1", nil)
    let sha256 = EVP_MD_fetch(nil, "SHA256", nil)
    let sha384 = EVP_MD_fetch(nil, "SHA384", nil)
    let sha512 = EVP_MD_fetch(nil, "SHA512", nil)
}

private let fetchedDigests = FetchedDigests()

extension DigestAlgorithm {
    /// The fetched EVP_MD (the static one when the fetch failed, which OpenSSL then fetches per call).
    var evpMD: OpaquePointer {
        switch self {
        case .sha1: fetchedDigests.sha1 ?? EVP_sha1()
        case .sha256: fetchedDigests.sha256 ?? EVP_sha256()
        case .sha384: fetchedDigests.sha384 ?? EVP_sha384()
        case .sha512: fetchedDigests.sha512 ?? EVP_sha512()
        }
    }
}

// MARK: - Ciphers

/// Ciphers fetched from the default provider once (as ``FetchedDigests``): the legacy statics (`EVP_aes_256_gcm()`)
/// make OpenSSL 3 look the implementation up by name on every init, and `EVP_CIPHER_fetch` per call does the same.
final class FetchedCiphers: @unchecked Sendable {
    let aes128GCM = EVP_CIPHER_fetch(nil, "AES-128-GCM", nil)
    let aes256GCM = EVP_CIPHER_fetch(nil, "AES-256-GCM", nil)
    let aes128CTR = EVP_CIPHER_fetch(nil, "AES-128-CTR", nil)
    let aes256CTR = EVP_CIPHER_fetch(nil, "AES-256-CTR", nil)
    let aes128Wrap = EVP_CIPHER_fetch(nil, "AES-128-WRAP", nil)
    let aes192Wrap = EVP_CIPHER_fetch(nil, "AES-192-WRAP", nil)
    let aes256Wrap = EVP_CIPHER_fetch(nil, "AES-256-WRAP", nil)
}

let fetchedCiphers = FetchedCiphers()

/// PEM armour for DER bytes.
func pemArmor(_ der: [UInt8], label: String) -> String {
    let body = Base64.encode(der)
    var lines: [String] = ["-----BEGIN \(label)-----"]
    var index = body.startIndex
    while index < body.endIndex {
        let end = body.index(index, offsetBy: 64, limitedBy: body.endIndex) ?? body.endIndex
        lines.append(String(body[index..<end]))
        index = end
    }
    lines.append("-----END \(label)-----")
    return lines.joined(separator: "\n") + "\n"
}

/// The OpenSSL library Custos runs on.
public enum OpenSSLInfo {
    /// e.g. `OpenSSL 3.0.19 27 Jan 2026`.
    public static var version: String { String(cString: OpenSSL_version(OPENSSL_VERSION)) }
}
