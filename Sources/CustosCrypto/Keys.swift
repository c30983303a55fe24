/// The NIST curves Custos uses.
public enum ECCurve: String, Sendable, CaseIterable, Codable {
    case p256 = "P-256"
    case p384 = "P-384"
    case p521 = "P-521"

    /// Bytes in one coordinate, in the scalar and in each of ECDSA's r and s.
    public var coordinateByteCount: Int {
        switch self {
        case .p256: 32
        case .p384: 48
        case .p521: 66
        }
    }

    /// The digest that matches the curve's strength (for our own signatures).
    public var defaultDigest: DigestAlgorithm {
        switch self {
        case .p256: .sha256
        case .p384: .sha384
        case .p521: .sha512
        }
    }
}

/// A JSON Web Key (RFC 7517/7518) for EC and RSA keys; `d` is present only for private EC keys.
public struct JWK: Codable, Sendable, Equatable {
    public var kty: String
    public var crv: String?
    public var x: String?
    public var y: String?
    public var d: String?
    public var n: String?
    public var e: String?
    public var alg: String?
    public var kid: String?

    public init(
        kty: String, crv: String? = nil, x: String? = nil, y: String? = nil, d: String? = nil,
        n: String? = nil, e: String? = nil, alg: String? = nil, kid: String? = nil
    ) {
        self.kty = kty
        self.crv = crv
        self.x = x
        self.y = y
        self.d = d
        self.n = n
        self.e = e
        self.alg = alg
        self.kid = kid
    }
}

/// An ECDSA signature as its two big-endian integers.
///
/// Vendors encode it three ways: DER `SEQUENCE { r, s }` (X.509, CMS), raw big-endian `r ‖ s` (Intel DCAP quotes,
/// JWS ES256/ES384) and little-endian zero-padded fields (AMD SEV certificates). All three meet here.
public struct ECDSASignature: Sendable, Equatable {
    /// r, big-endian, without leading zeros.
    public let r: [UInt8]
    /// s, big-endian, without leading zeros.
    public let s: [UInt8]

    /// From big-endian integers (leading zeros allowed).
    public init(r: [UInt8], s: [UInt8]) throws(CryptoError) {
        let r = minimalBigEndian(r)
        let s = minimalBigEndian(s)
        guard r.count <= 66, s.count <= 66, r != [0], s != [0] else {
            throw CryptoError(.malformedInput, "ECDSA r and s must be non-zero and at most 66 bytes")
        }
        self.r = r
        self.s = s
    }

    /// From raw `r ‖ s`, each half big-endian (Intel DCAP, JWS).
    public init(rawBigEndian bytes: some Collection<UInt8>) throws(CryptoError) {
        let bytes = Array(bytes)
        guard !bytes.isEmpty, bytes.count % 2 == 0 else {
            throw CryptoError(.malformedInput, "raw ECDSA signature must have an even, non-zero length, got \(bytes.count)")
        }
        let half = bytes.count / 2
        try self.init(r: Array(bytes[..<half]), s: Array(bytes[half...]))
    }

    /// From raw `r ‖ s`, each half little-endian.
    public init(rawLittleEndian bytes: some Collection<UInt8>) throws(CryptoError) {
        let bytes = Array(bytes)
        guard !bytes.isEmpty, bytes.count % 2 == 0 else {
            throw CryptoError(.malformedInput, "raw ECDSA signature must have an even, non-zero length, got \(bytes.count)")
        }
        let half = bytes.count / 2
        try self.init(r: Array(bytes[..<half].reversed()), s: Array(bytes[half...].reversed()))
    }

    /// From separate little-endian, zero-padded fields (AMD SEV certificate signature slots: `R[72]`, `S[72]`).
    public init(rLittleEndian: some Collection<UInt8>, sLittleEndian: some Collection<UInt8>) throws(CryptoError) {
        try self.init(r: Array(rLittleEndian.reversed()), s: Array(sLittleEndian.reversed()))
    }

    /// `r ‖ s`, each left-padded big-endian to `componentByteCount` (JWS, DCAP).
    public func rawBigEndian(componentByteCount: Int) throws(CryptoError) -> [UInt8] {
        guard r.count <= componentByteCount, s.count <= componentByteCount else {
            throw CryptoError(.invalidParameter, "signature component does not fit in \(componentByteCount) bytes")
        }
        return [UInt8](repeating: 0, count: componentByteCount - r.count) + r
            + [UInt8](repeating: 0, count: componentByteCount - s.count) + s
    }

    /// `r` and `s` little-endian, each zero-padded to `componentByteCount` (AMD's layout).
    public func littleEndianComponents(componentByteCount: Int) throws(CryptoError) -> (r: [UInt8], s: [UInt8]) {
        let raw = try rawBigEndian(componentByteCount: componentByteCount)
        return (Array(raw[..<componentByteCount].reversed()), Array(raw[componentByteCount...].reversed()))
    }
}

/// RSA signature paddings.
public enum RSAPadding: Sendable, Equatable {
    /// PKCS #1 v1.5.
    case pkcs1v15
    /// RSASSA-PSS with an explicit MGF1 hash and salt length in bytes.
    case pss(mgf1: DigestAlgorithm, saltLength: Int)
}
