public import Foundation

/// The hash functions Custos uses (SHA-1 only to read old Authenticode signatures).
public enum DigestAlgorithm: String, Sendable, CaseIterable, Codable {
    case sha1, sha256, sha384, sha512

    /// The digest length in bytes.
    public var byteCount: Int {
        switch self {
        case .sha1: 20
        case .sha256: 32
        case .sha384: 48
        case .sha512: 64
        }
    }

    /// The algorithm's dotted OID (as used in DigestInfo / AlgorithmIdentifier).
    public var oid: String {
        switch self {
        case .sha1: "1.3.14.3.2.26"
        case .sha256: "2.16.840.1.101.3.4.2.1"
        case .sha384: "2.16.840.1.101.3.4.2.2"
        case .sha512: "2.16.840.1.101.3.4.2.3"
        }
    }

    /// The algorithm for a dotted OID, if known.
    public init?(oid: String) {
        guard let match = Self.allCases.first(where: { $0.oid == oid }) else { return nil }
        self = match
    }
}

/// One-shot hashing.
public enum Digest {
    /// Hashes `data` with `algorithm`.
    public static func hash(_ algorithm: DigestAlgorithm, _ data: some ContiguousBytes) -> [UInt8] {
        var hasher = StreamingDigest(algorithm)
        hasher.update(data)
        return hasher.finalize()
    }

    public static func sha256(_ data: some ContiguousBytes) -> [UInt8] { hash(.sha256, data) }
    public static func sha384(_ data: some ContiguousBytes) -> [UInt8] { hash(.sha384, data) }
    public static func sha512(_ data: some ContiguousBytes) -> [UInt8] { hash(.sha512, data) }
}

/// Compares two byte strings in constant time (for equal lengths); different lengths compare unequal.
public func constantTimeEqual(_ lhs: some ContiguousBytes, _ rhs: some ContiguousBytes) -> Bool {
    lhs.withUnsafeBytes { a in
        rhs.withUnsafeBytes { b in
            guard a.count == b.count else { return false }
            var difference: UInt8 = 0
            for index in 0..<a.count { difference |= a[index] ^ b[index] }
            return difference == 0
        }
    }
}
