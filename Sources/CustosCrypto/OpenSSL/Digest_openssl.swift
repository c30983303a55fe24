internal import COpenSSL
public import Foundation

/// An incremental hash: feed bytes with ``update(_:)``, read the digest with ``finalize()``.
///
/// A value type: copying it forks the running state (so a prefix can be hashed once and finished twice).
public struct StreamingDigest: Sendable {
    public let algorithm: DigestAlgorithm
    private var context: DigestContextBox

    public init(_ algorithm: DigestAlgorithm) {
        self.algorithm = algorithm
        self.context = DigestContextBox(algorithm)
    }

    /// Adds `data` to the running hash.
    public mutating func update(_ data: some ContiguousBytes) {
        if !isKnownUniquelyReferenced(&context) { context = context.copy() }
        data.withUnsafeBytes { buffer in
            guard let base = buffer.baseAddress, buffer.count > 0 else { return }
            // EVP_DigestUpdate on an initialised context cannot fail for the built-in SHA family.
            _ = EVP_DigestUpdate(context.pointer, base, buffer.count)
        }
    }

    /// The digest of everything added so far. The value can keep being updated afterwards.
    public func finalize() -> [UInt8] {
        let finishing = context.copy()
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        _ = EVP_DigestFinal_ex(finishing.pointer, &out, &length)
        return Array(out.prefix(Int(length)))
    }
}

/// Owns an `EVP_MD_CTX`. Only mutated through a uniquely referenced ``StreamingDigest``, hence `@unchecked Sendable`.
final class DigestContextBox: @unchecked Sendable {
    let pointer: OpaquePointer

    init(_ algorithm: DigestAlgorithm) {
        // Allocation failure is the only way these fail; there is nothing input-dependent to report.
        guard let made = EVP_MD_CTX_new(), EVP_DigestInit_ex(made, algorithm.evpMD, nil) == 1 else {
            fatalError("OpenSSL could not allocate a digest context: \(drainOpenSSLErrors())")
        }
        pointer = made
    }

    private init(copying other: OpaquePointer) {
        guard let made = EVP_MD_CTX_new(), EVP_MD_CTX_copy_ex(made, other) == 1 else {
            fatalError("OpenSSL could not copy a digest context: \(drainOpenSSLErrors())")
        }
        pointer = made
    }

    func copy() -> DigestContextBox { DigestContextBox(copying: pointer) }

    deinit { EVP_MD_CTX_free(pointer) }
}

/// A hasher that keeps one `EVP_MD_CTX` and re-initialises it for every digest: no context allocation or copy per
/// hash, for hot loops (the audit log's leaf and node hashes). Not thread-safe: give each thread its own.
public final class ReusableDigest {
    public let algorithm: DigestAlgorithm
    private let context: OpaquePointer

    public init(_ algorithm: DigestAlgorithm) {
        // Allocation failure is the only way this fails; there is nothing input-dependent to report.
        guard let made = EVP_MD_CTX_new() else { fatalError("OpenSSL could not allocate a digest context: \(drainOpenSSLErrors())") }
        self.algorithm = algorithm
        context = made
    }

    deinit { EVP_MD_CTX_free(context) }

    /// The digest of `prefix ‖ first ‖ second` (`prefix` is one domain-separation byte, e.g. RFC 6962's 0x00/0x01).
    public func hash(prefix: UInt8, bytes first: UnsafeRawBufferPointer, _ second: UnsafeRawBufferPointer? = nil) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: Int(EVP_MAX_MD_SIZE)) { buffer, count in
            // Init/Update/Final cannot fail for the built-in SHA family on an allocated context.
            _ = EVP_DigestInit_ex(context, algorithm.evpMD, nil)
            var byte = prefix
            _ = EVP_DigestUpdate(context, &byte, 1)
            if let base = first.baseAddress, first.count > 0 { _ = EVP_DigestUpdate(context, base, first.count) }
            if let second, let base = second.baseAddress, second.count > 0 { _ = EVP_DigestUpdate(context, base, second.count) }
            var length: UInt32 = 0
            _ = EVP_DigestFinal_ex(context, buffer.baseAddress, &length)
            count = Int(length)
        }
    }

    /// The digest of `prefix ‖ first ‖ second`.
    public func hash(prefix: UInt8, _ first: some ContiguousBytes, _ second: some ContiguousBytes) -> [UInt8] {
        first.withUnsafeBytes { a in second.withUnsafeBytes { b in hash(prefix: prefix, bytes: a, b) } }
    }

    /// The digest of `prefix ‖ data`.
    public func hash(prefix: UInt8, _ data: some ContiguousBytes) -> [UInt8] {
        data.withUnsafeBytes { hash(prefix: prefix, bytes: $0) }
    }
}

// MARK: - HMAC

/// HMAC (RFC 2104) over the SHA-2 family.
public enum HMAC {
    /// The MAC of `data` under `key`.
    public static func authenticationCode(
        _ algorithm: DigestAlgorithm, key: some ContiguousBytes, data: some ContiguousBytes
    ) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        key.withNonNilBytes { k in
            data.withNonNilBytes { d in
                _ = COpenSSL.HMAC(
                    algorithm.evpMD, k.baseAddress, Int32(k.count),
                    d.baseAddress?.assumingMemoryBound(to: UInt8.self), d.count, &out, &length)
            }
        }
        return Array(out.prefix(Int(length)))
    }

    /// Whether `mac` is the MAC of `data` under `key`, compared in constant time.
    public static func isValid(
        _ mac: some ContiguousBytes, _ algorithm: DigestAlgorithm, key: some ContiguousBytes, data: some ContiguousBytes
    ) -> Bool {
        constantTimeEqual(authenticationCode(algorithm, key: key, data: data), mac)
    }
}

// MARK: - Randomness and zeroization

/// Cryptographically secure random bytes from OpenSSL's DRBG.
public enum SecureRandom {
    public static func bytes(_ count: Int) throws(CryptoError) -> [UInt8] {
        guard count >= 0, count <= 1 << 20 else { throw CryptoError(.invalidParameter, "random length \(count) out of range") }
        var out = [UInt8](repeating: 0, count: count)
        if count == 0 { return out }
        guard RAND_bytes(&out, Int32(count)) == 1 else { throw .openSSL(.internalFailure, "RAND_bytes failed") }
        return out
    }
}

/// Overwrites `bytes` with zeros in a way the optimiser cannot remove (`OPENSSL_cleanse`).
public func secureZero(_ bytes: inout [UInt8]) {
    bytes.withUnsafeMutableBytes { buffer in
        guard let base = buffer.baseAddress else { return }
        OPENSSL_cleanse(base, buffer.count)
    }
}

/// Secret key material that is zeroed when the last copy is dropped.
///
/// Use for TEK/TIK, sealing keys and private scalars. The bytes are lent out only through ``withBytes(_:)``
/// or copied out explicitly with ``unsafeCopy()``.
public struct SecretBytes: Sendable, Equatable {
    private let storage: Storage

    public init(_ bytes: [UInt8]) { storage = Storage(bytes) }

    /// Fresh random secret of `count` bytes.
    public static func random(_ count: Int) throws(CryptoError) -> SecretBytes { SecretBytes(try SecureRandom.bytes(count)) }

    public var count: Int { storage.bytes.count }

    /// Lends the secret to `body`.
    public func withBytes<R, E: Error>(_ body: ([UInt8]) throws(E) -> R) throws(E) -> R { try body(storage.bytes) }

    /// A plain copy that the caller now has to protect.
    public func unsafeCopy() -> [UInt8] { storage.bytes }

    /// Constant-time equality.
    public static func == (lhs: SecretBytes, rhs: SecretBytes) -> Bool {
        constantTimeEqual(lhs.storage.bytes, rhs.storage.bytes)
    }

    /// Immutable after init (the deinit zeroes it once no one can read it), hence `@unchecked Sendable`.
    private final class Storage: @unchecked Sendable {
        var bytes: [UInt8]
        init(_ bytes: [UInt8]) { self.bytes = bytes }
        deinit { secureZero(&bytes) }
    }
}
