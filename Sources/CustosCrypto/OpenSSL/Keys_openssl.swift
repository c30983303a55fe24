internal import COpenSSL
public import Foundation

// MARK: - Building keys from parameters

/// Collects OSSL_PARAM values in memory that stays valid until `OSSL_PARAM_BLD_to_param` has copied it.
///
/// `OSSL_PARAM_BLD_push_*` keep the *key* pointer and (for strings and octets) read the value only in
/// `to_param`, so Swift's temporary bridged pointers must not be used for either.
private final class ParamBuilder {
    let builder: OpaquePointer
    /// Copies of keys and values (private scalars among them), zeroed before they are deallocated.
    private var allocations: [(pointer: UnsafeMutableRawPointer, count: Int)] = []

    init() throws(CryptoError) {
        guard let builder = OSSL_PARAM_BLD_new() else { throw .openSSL(.internalFailure, "OSSL_PARAM_BLD_new failed") }
        self.builder = builder
    }

    deinit {
        OSSL_PARAM_BLD_free(builder)
        for allocation in allocations {
            OPENSSL_cleanse(allocation.pointer, allocation.count)
            allocation.pointer.deallocate()
        }
    }

    private func stable(_ bytes: [UInt8], terminate: Bool) -> UnsafeMutablePointer<CChar> {
        let count = bytes.count + (terminate ? 1 : 0)
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1), alignment: 1)
        allocations.append((raw, max(count, 1)))
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: max(count, 1))
        bytes.withUnsafeBytes { if let base = $0.baseAddress { raw.copyMemory(from: base, byteCount: bytes.count) } }
        return raw.assumingMemoryBound(to: CChar.self)
    }

    func utf8(_ key: String, _ value: String) throws(CryptoError) {
        let v = stable(Array(value.utf8), terminate: true)
        guard OSSL_PARAM_BLD_push_utf8_string(builder, stable(Array(key.utf8), terminate: true), v, 0) == 1 else {
            throw .openSSL(.internalFailure, "could not add parameter \(key)")
        }
    }

    func octets(_ key: String, _ value: [UInt8]) throws(CryptoError) {
        let v = stable(value, terminate: false)
        guard OSSL_PARAM_BLD_push_octet_string(builder, stable(Array(key.utf8), terminate: true), v, value.count) == 1 else {
            throw .openSSL(.internalFailure, "could not add parameter \(key)")
        }
    }

    func bignum(_ key: String, _ value: BigNum) throws(CryptoError) {
        guard OSSL_PARAM_BLD_push_BN(builder, stable(Array(key.utf8), terminate: true), value.pointer) == 1 else {
            throw .openSSL(.internalFailure, "could not add parameter \(key)")
        }
    }
}

/// Zeroes every value of an `OSSL_PARAM` array (private key parameters among them) and frees it: OpenSSL 3.0 has no
/// `OSSL_PARAM_clear_free`, and `OSSL_PARAM_free` clears only the secure-heap block.
private func clearAndFree(_ params: UnsafeMutablePointer<OSSL_PARAM>) {
    var cursor = params
    while cursor.pointee.key != nil {
        if let data = cursor.pointee.data, cursor.pointee.data_size > 0 { OPENSSL_cleanse(data, cursor.pointee.data_size) }
        cursor += 1
    }
    OSSL_PARAM_free(params)
}

private func pkeyFromParameters(
    type: String, selection: Int32, _ push: (ParamBuilder) throws(CryptoError) -> Void
) throws(CryptoError) -> PKeyBox {
    let builder = try ParamBuilder()
    try push(builder)
    guard let params = OSSL_PARAM_BLD_to_param(builder.builder) else { throw .openSSL(.internalFailure, "OSSL_PARAM_BLD_to_param failed") }
    defer { clearAndFree(params) }
    guard let ctx = EVP_PKEY_CTX_new_from_name(nil, type, nil) else {
        throw .openSSL(.internalFailure, "EVP_PKEY_CTX_new_from_name failed")
    }
    defer { EVP_PKEY_CTX_free(ctx) }
    var key: OpaquePointer? = nil
    guard EVP_PKEY_fromdata_init(ctx) == 1, EVP_PKEY_fromdata(ctx, &key, selection, params) == 1, let key else {
        throw .openSSL(.malformedInput, "the key parameters are not a valid \(type) key")
    }
    return PKeyBox(takingOwnership: key)
}

private func generateKey(type: String, configure: (OpaquePointer) -> Int32) throws(CryptoError) -> PKeyBox {
    guard let ctx = EVP_PKEY_CTX_new_from_name(nil, type, nil) else {
        throw .openSSL(.internalFailure, "EVP_PKEY_CTX_new_from_name failed")
    }
    defer { EVP_PKEY_CTX_free(ctx) }
    var key: OpaquePointer? = nil
    guard EVP_PKEY_keygen_init(ctx) == 1, configure(ctx) > 0, EVP_PKEY_generate(ctx, &key) == 1, let key else {
        throw .openSSL(.internalFailure, "\(type) key generation failed")
    }
    return PKeyBox(takingOwnership: key)
}

extension ECCurve {
    var groupName: String {
        switch self {
        case .p256: "P-256"
        case .p384: "P-384"
        case .p521: "P-521"
        }
    }
    var nid: Int32 {
        switch self {
        case .p256: NID_X9_62_prime256v1
        case .p384: NID_secp384r1
        case .p521: NID_secp521r1
        }
    }

    static func of(_ key: PKeyBox) throws(CryptoError) -> ECCurve {
        guard key.baseID == EVP_PKEY_EC else { throw CryptoError(.unsupportedAlgorithm, "not an EC key") }
        var name = [CChar](repeating: 0, count: 64)
        var length = 0
        guard EVP_PKEY_get_utf8_string_param(key.pointer, OSSL_PKEY_PARAM_GROUP_NAME, &name, name.count, &length) == 1 else {
            throw .openSSL(.unsupportedAlgorithm, "EC key without a named curve")
        }
        let text = String(decoding: name.prefix(length).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        switch text {
        case "prime256v1", "P-256", "secp256r1": return .p256
        case "secp384r1", "P-384": return .p384
        case "secp521r1", "P-521": return .p521
        default: throw CryptoError(.unsupportedAlgorithm, "unsupported curve \(text)")
        }
    }
}

// MARK: - EC public keys

/// An EC public key on P-256 or P-384, validated to lie on its curve.
public struct ECPublicKey: Sendable, Equatable {
    public let curve: ECCurve
    /// The affine x coordinate, big-endian, padded to the curve size.
    public let x: [UInt8]
    /// The affine y coordinate, big-endian, padded to the curve size.
    public let y: [UInt8]
    let box: PKeyBox

    public static func == (lhs: ECPublicKey, rhs: ECPublicKey) -> Bool {
        lhs.curve == rhs.curve && lhs.x == rhs.x && lhs.y == rhs.y
    }

    /// From big-endian affine coordinates (shorter values are left-padded).
    public init(curve: ECCurve, x: [UInt8], y: [UInt8]) throws(CryptoError) {
        let size = curve.coordinateByteCount
        let x = minimalBigEndian(x)
        let y = minimalBigEndian(y)
        guard x.count <= size, y.count <= size else {
            throw CryptoError(.malformedInput, "EC coordinate longer than \(size) bytes for \(curve.rawValue)")
        }
        let point = [0x04] + [UInt8](repeating: 0, count: size - x.count) + x + [UInt8](repeating: 0, count: size - y.count) + y
        try self.init(curve: curve, sec1: point)
    }

    /// From an SEC 1 / X9.63 encoded point (uncompressed `04 ‖ X ‖ Y`, or compressed).
    public init(curve: ECCurve, sec1 point: [UInt8]) throws(CryptoError) {
        let box = try pkeyFromParameters(type: "EC", selection: COpenSSL_EVP_PKEY_PUBLIC_KEY) { builder throws(CryptoError) in
            try builder.utf8(OSSL_PKEY_PARAM_GROUP_NAME, curve.groupName)
            try builder.octets(OSSL_PKEY_PARAM_PUB_KEY, point)
        }
        let size = curve.coordinateByteCount
        if point.count == 1 + 2 * size, point[0] == 0x04 {
            // OpenSSL accepted the uncompressed point (on the curve, coordinates in range): it is the key, so reading
            // it back from the EVP_PKEY would only cost time.
            self.init(curve: curve, x: Array(point[1...size]), y: Array(point[(1 + size)...]), box: box)
        } else {
            try self.init(box: box)
        }
    }

    private init(curve: ECCurve, x: [UInt8], y: [UInt8], box: PKeyBox) {
        self.curve = curve
        self.x = x
        self.y = y
        self.box = box
    }

    /// From DER SubjectPublicKeyInfo.
    public init(derSPKI: [UInt8]) throws(CryptoError) { try self.init(box: PKeyBox.parsePublic(der: derSPKI)) }

    /// From a PEM `PUBLIC KEY`.
    public init(pem: String) throws(CryptoError) { try self.init(box: PKeyBox.parsePublic(pem: pem)) }

    init(box: PKeyBox) throws(CryptoError) {
        let curve = try ECCurve.of(box)
        var point = [UInt8](repeating: 0, count: 1 + 2 * curve.coordinateByteCount)
        var length = 0
        guard EVP_PKEY_get_octet_string_param(box.pointer, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, &point, point.count, &length) == 1,
            length == point.count, point.first == 0x04
        else { throw .openSSL(.malformedInput, "could not read the EC public point") }
        self.curve = curve
        self.box = box
        self.x = Array(point[1...curve.coordinateByteCount])
        self.y = Array(point[(1 + curve.coordinateByteCount)...])
    }

    /// `04 ‖ X ‖ Y`.
    public var uncompressedPoint: [UInt8] { [0x04] + x + y }

    /// DER SubjectPublicKeyInfo.
    public var derSPKI: [UInt8] { (try? box.spkiDER()) ?? [] }

    /// PEM `PUBLIC KEY`.
    public var pem: String { pemArmor(derSPKI, label: "PUBLIC KEY") }

    /// The key as a JWK (RFC 7518 §6.2).
    public var jwk: JWK { JWK(kty: "EC", crv: curve.rawValue, x: Base64.urlEncode(x), y: Base64.urlEncode(y)) }

    /// From a JWK with `kty` EC.
    public init(jwk: JWK) throws(CryptoError) {
        guard jwk.kty == "EC", let crv = jwk.crv, let curve = ECCurve(rawValue: crv), let xs = jwk.x, let ys = jwk.y else {
            throw CryptoError(.malformedInput, "JWK is not an EC P-256/P-384 public key")
        }
        try self.init(curve: curve, x: Base64.decode(xs), y: Base64.decode(ys))
    }

    /// Verifies an ECDSA signature over `message` hashed with `digest`.
    public func isValidSignature(_ signature: ECDSASignature, for message: some ContiguousBytes, digest: DigestAlgorithm) -> Bool {
        guard let der = try? signature.derRepresentation() else { return false }
        return digestVerify(box, signature: der, message: message, digest: digest, padding: nil)
    }

    /// Verifies an ECDSA signature over an already computed digest.
    public func isValidSignature(_ signature: ECDSASignature, forDigest digestValue: [UInt8]) -> Bool {
        guard let der = try? signature.derRepresentation(), let ctx = EVP_PKEY_CTX_new(box.pointer, nil) else { return false }
        defer { EVP_PKEY_CTX_free(ctx) }
        guard EVP_PKEY_verify_init(ctx) == 1 else {
            _ = drainOpenSSLErrors()
            return false
        }
        let ok = EVP_PKEY_verify(ctx, der, der.count, digestValue, digestValue.count) == 1
        _ = drainOpenSSLErrors()
        return ok
    }
}

// MARK: - EC private keys

/// An EC private key on P-256 or P-384.
public struct ECPrivateKey: Sendable {
    public let curve: ECCurve
    public let publicKey: ECPublicKey
    let box: PKeyBox

    /// A fresh random key.
    public init(generating curve: ECCurve) throws(CryptoError) {
        let box = try generateKey(type: "EC") { EVP_PKEY_CTX_set_group_name($0, curve.groupName) }
        try self.init(box: box)
    }

    /// From the private scalar, big-endian (shorter values are left-padded). The public point is derived.
    public init(curve: ECCurve, rawScalar: [UInt8]) throws(CryptoError) {
        guard rawScalar.count <= curve.coordinateByteCount, rawScalar.contains(where: { $0 != 0 }) else {
            throw CryptoError(.malformedInput, "EC scalar must be non-zero and at most \(curve.coordinateByteCount) bytes")
        }
        let scalar = try BigNum(bigEndian: rawScalar)
        guard let group = EC_GROUP_new_by_curve_name(curve.nid) else { throw .openSSL(.internalFailure, "EC_GROUP_new failed") }
        defer { EC_GROUP_free(group) }
        guard let order = BN_new() else { throw .openSSL(.internalFailure, "BN_new failed") }
        defer { BN_free(order) }
        guard EC_GROUP_get_order(group, order, nil) == 1 else { throw .openSSL(.internalFailure, "EC_GROUP_get_order failed") }
        guard BN_cmp(scalar.pointer, order) < 0 else { throw CryptoError(.malformedInput, "EC scalar is not below the group order") }
        guard let point = EC_POINT_new(group) else { throw .openSSL(.internalFailure, "EC_POINT_new failed") }
        defer { EC_POINT_free(point) }
        guard EC_POINT_mul(group, point, scalar.pointer, nil, nil, nil) == 1 else {
            throw .openSSL(.internalFailure, "EC_POINT_mul failed")
        }
        var encoded = [UInt8](repeating: 0, count: 1 + 2 * curve.coordinateByteCount)
        guard EC_POINT_point2oct(group, point, POINT_CONVERSION_UNCOMPRESSED, &encoded, encoded.count, nil) == encoded.count else {
            throw .openSSL(.internalFailure, "EC_POINT_point2oct failed")
        }
        let box = try pkeyFromParameters(type: "EC", selection: COpenSSL_EVP_PKEY_KEYPAIR) { builder throws(CryptoError) in
            try builder.utf8(OSSL_PKEY_PARAM_GROUP_NAME, curve.groupName)
            try builder.octets(OSSL_PKEY_PARAM_PUB_KEY, encoded)
            try builder.bignum(OSSL_PKEY_PARAM_PRIV_KEY, scalar)
        }
        try self.init(box: box)
    }

    /// From PEM (PKCS #8 `PRIVATE KEY` or SEC 1 `EC PRIVATE KEY`).
    public init(pem: String) throws(CryptoError) { try self.init(box: PKeyBox.parsePrivate(pem: pem)) }

    /// From DER (PKCS #8 or SEC 1).
    public init(der: [UInt8]) throws(CryptoError) { try self.init(box: PKeyBox.parsePrivate(der: der)) }

    init(box: PKeyBox) throws(CryptoError) {
        guard EVP_PKEY_get_base_id(box.pointer) == EVP_PKEY_EC else { throw CryptoError(.unsupportedAlgorithm, "not an EC private key") }
        self.curve = try ECCurve.of(box)
        self.box = box
        // The public half is a separate key object so that it can be handed out without the scalar.
        var point = [UInt8](repeating: 0, count: 1 + 2 * curve.coordinateByteCount)
        var length = 0
        guard EVP_PKEY_get_octet_string_param(box.pointer, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, &point, point.count, &length) == 1,
            length == point.count
        else { throw .openSSL(.malformedInput, "EC private key without a public point") }
        self.publicKey = try ECPublicKey(curve: curve, sec1: point)
    }

    /// The private scalar, big-endian, padded to the curve size.
    public var rawScalar: SecretBytes {
        var bn: OpaquePointer? = nil
        guard EVP_PKEY_get_bn_param(box.pointer, OSSL_PKEY_PARAM_PRIV_KEY, &bn) == 1, let bn else { return SecretBytes([]) }
        let owned = BigNum(takingOwnership: bn)
        return SecretBytes((try? owned.bytes(paddedTo: curve.coordinateByteCount)) ?? [])
    }

    /// DER PKCS #8 PrivateKeyInfo.
    public func pkcs8DER() throws(CryptoError) -> SecretBytes { SecretBytes(try box.pkcs8DER()) }

    /// PEM PKCS #8 `PRIVATE KEY`.
    public func pkcs8PEM() throws(CryptoError) -> String { pemArmor(try box.pkcs8DER(), label: "PRIVATE KEY") }

    /// DER SEC 1 `ECPrivateKey` (RFC 5915), with the curve OID and the public key.
    public func sec1DER() throws(CryptoError) -> SecretBytes {
        let bytes = try withWriteBIO { bio throws(CryptoError) in
            guard let ctx = OSSL_ENCODER_CTX_new_for_pkey(box.pointer, COpenSSL_EVP_PKEY_KEYPAIR, "DER", "type-specific", nil) else {
                throw .openSSL(.internalFailure, "no SEC 1 encoder")
            }
            defer { OSSL_ENCODER_CTX_free(ctx) }
            guard OSSL_ENCODER_to_bio(ctx, bio) == 1 else { throw .openSSL(.internalFailure, "SEC 1 encoding failed") }
        }
        return SecretBytes(bytes)
    }

    /// The key as a private JWK (with `d`).
    public var jwk: JWK {
        var jwk = publicKey.jwk
        jwk.d = Base64.urlEncode(rawScalar.unsafeCopy())
        return jwk
    }

    /// Signs `message` (hashed with `digest`, default: the curve's matching hash).
    public func signature(for message: some ContiguousBytes, digest: DigestAlgorithm? = nil) throws(CryptoError) -> ECDSASignature {
        let der = try digestSign(box, message: message, digest: digest ?? curve.defaultDigest, padding: nil)
        return try ECDSASignature(derEncoded: der)
    }

    /// ECDH (SP 800-56A): the shared secret is the x coordinate of d·Q, big-endian.
    public func sharedSecret(with peer: ECPublicKey) throws(CryptoError) -> SecretBytes {
        guard peer.curve == curve else {
            throw CryptoError(.invalidParameter, "ECDH peer is on \(peer.curve.rawValue), key on \(curve.rawValue)")
        }
        guard let ctx = EVP_PKEY_CTX_new(box.pointer, nil) else { throw .openSSL(.internalFailure, "EVP_PKEY_CTX_new failed") }
        defer { EVP_PKEY_CTX_free(ctx) }
        var length = 0
        guard EVP_PKEY_derive_init(ctx) == 1, EVP_PKEY_derive_set_peer(ctx, peer.box.pointer) == 1,
            EVP_PKEY_derive(ctx, nil, &length) == 1
        else { throw .openSSL(.invalidParameter, "ECDH setup failed") }
        var secret = [UInt8](repeating: 0, count: length)
        defer { secureZero(&secret) }  // the shared secret: only the SecretBytes copy (zeroed on deinit) survives
        guard EVP_PKEY_derive(ctx, &secret, &length) == 1 else { throw .openSSL(.internalFailure, "ECDH derive failed") }
        return SecretBytes(Array(secret.prefix(length)))
    }
}

// MARK: - ECDSA signature encodings

extension ECDSASignature {
    /// Parses DER `SEQUENCE { INTEGER r, INTEGER s }`; non-canonical encodings and trailing bytes are rejected.
    public init(derEncoded der: [UInt8]) throws(CryptoError) {
        var parsed: OpaquePointer? = nil
        der.withNonNilBytes { buffer in
            var cursor: UnsafePointer<UInt8>? = buffer.baseAddress?.assumingMemoryBound(to: UInt8.self)
            parsed = d2i_ECDSA_SIG(nil, &cursor, buffer.count)
        }
        guard let parsed else { throw .openSSL(.malformedInput, "not a DER ECDSA signature") }
        defer { ECDSA_SIG_free(parsed) }
        guard let r = ECDSA_SIG_get0_r(parsed), let s = ECDSA_SIG_get0_s(parsed) else {
            throw CryptoError(.malformedInput, "ECDSA signature without r or s")
        }
        func bytes(_ bn: OpaquePointer) -> [UInt8] {
            var out = [UInt8](repeating: 0, count: Int(COpenSSL_BN_num_bytes(bn)))
            if !out.isEmpty { _ = BN_bn2bin(bn, &out) }
            return out
        }
        try self.init(r: bytes(r), s: bytes(s))
        guard try derRepresentation() == der else { throw CryptoError(.malformedInput, "ECDSA signature is not canonical DER") }
    }

    /// DER `SEQUENCE { INTEGER r, INTEGER s }`.
    public func derRepresentation() throws(CryptoError) -> [UInt8] {
        var writer = DERWriter()
        writer.sequence { body in
            body.integer(bigEndian: r)
            body.integer(bigEndian: s)
        }
        return writer.bytes
    }
}

// MARK: - RSA

/// An RSA public key.
public struct RSAPublicKey: Sendable, Equatable {
    /// The modulus, big-endian, without leading zeros.
    public let modulus: [UInt8]
    /// The public exponent, big-endian, without leading zeros.
    public let exponent: [UInt8]
    let box: PKeyBox

    public static func == (lhs: RSAPublicKey, rhs: RSAPublicKey) -> Bool { lhs.modulus == rhs.modulus && lhs.exponent == rhs.exponent }

    /// From big-endian modulus and exponent.
    public init(modulus: [UInt8], exponent: [UInt8]) throws(CryptoError) {
        let n = try BigNum(bigEndian: modulus)
        let e = try BigNum(bigEndian: exponent)
        guard modulus.contains(where: { $0 != 0 }), exponent.contains(where: { $0 != 0 }) else {
            throw CryptoError(.malformedInput, "RSA modulus and exponent must be non-zero")
        }
        let box = try pkeyFromParameters(type: "RSA", selection: COpenSSL_EVP_PKEY_PUBLIC_KEY) { builder throws(CryptoError) in
            try builder.bignum(OSSL_PKEY_PARAM_RSA_N, n)
            try builder.bignum(OSSL_PKEY_PARAM_RSA_E, e)
        }
        try self.init(box: box)
    }

    /// From DER SubjectPublicKeyInfo.
    public init(derSPKI: [UInt8]) throws(CryptoError) { try self.init(box: PKeyBox.parsePublic(der: derSPKI)) }

    /// From a PEM `PUBLIC KEY`.
    public init(pem: String) throws(CryptoError) { try self.init(box: PKeyBox.parsePublic(pem: pem)) }

    init(box: PKeyBox) throws(CryptoError) {
        guard box.baseID == EVP_PKEY_RSA || box.baseID == EVP_PKEY_RSA_PSS else {
            throw CryptoError(.unsupportedAlgorithm, "not an RSA key")
        }
        var n: OpaquePointer? = nil
        var e: OpaquePointer? = nil
        guard EVP_PKEY_get_bn_param(box.pointer, OSSL_PKEY_PARAM_RSA_N, &n) == 1, let n,
            EVP_PKEY_get_bn_param(box.pointer, OSSL_PKEY_PARAM_RSA_E, &e) == 1, let e
        else { throw .openSSL(.malformedInput, "RSA key without modulus or exponent") }
        let nBox = BigNum(takingOwnership: n)
        let eBox = BigNum(takingOwnership: e)
        self.modulus = try nBox.bytes()
        self.exponent = try eBox.bytes()
        self.box = box
    }

    /// The modulus size in bits.
    public var bitCount: Int { box.bits }

    /// DER SubjectPublicKeyInfo.
    public var derSPKI: [UInt8] { (try? box.spkiDER()) ?? [] }

    /// PEM `PUBLIC KEY`.
    public var pem: String { pemArmor(derSPKI, label: "PUBLIC KEY") }

    /// The key as a JWK (RFC 7518 §6.3).
    public var jwk: JWK { JWK(kty: "RSA", n: Base64.urlEncode(modulus), e: Base64.urlEncode(exponent)) }

    /// Verifies an RSA signature (big-endian, as PKCS #1 defines it) over `message`.
    public func isValidSignature(
        _ signature: [UInt8], for message: some ContiguousBytes, digest: DigestAlgorithm, padding: RSAPadding
    ) -> Bool {
        digestVerify(box, signature: signature, message: message, digest: digest, padding: padding)
    }
}

/// An RSA private key (for Custos's own tokens and test hierarchies).
public struct RSAPrivateKey: Sendable {
    public let publicKey: RSAPublicKey
    let box: PKeyBox

    /// A fresh key of `bits` (2048, 3072 or 4096).
    public init(generatingBits bits: Int) throws(CryptoError) {
        guard [2048, 3072, 4096].contains(bits) else {
            throw CryptoError(.invalidParameter, "RSA key size must be 2048, 3072 or 4096, got \(bits)")
        }
        let box = try generateKey(type: "RSA") { EVP_PKEY_CTX_set_rsa_keygen_bits($0, Int32(bits)) }
        try self.init(box: box)
    }

    /// From PEM (PKCS #8 or PKCS #1).
    public init(pem: String) throws(CryptoError) { try self.init(box: PKeyBox.parsePrivate(pem: pem)) }

    init(box: PKeyBox) throws(CryptoError) {
        self.publicKey = try RSAPublicKey(box: box)
        self.box = box
    }

    /// PEM PKCS #8 `PRIVATE KEY`.
    public func pkcs8PEM() throws(CryptoError) -> String { pemArmor(try box.pkcs8DER(), label: "PRIVATE KEY") }

    /// Signs `message`.
    public func signature(for message: some ContiguousBytes, digest: DigestAlgorithm, padding: RSAPadding) throws(CryptoError) -> [UInt8] {
        try digestSign(box, message: message, digest: digest, padding: padding)
    }
}

// MARK: - Shared sign/verify

private func configure(_ pctx: OpaquePointer?, padding: RSAPadding?) -> Bool {
    guard let padding, let pctx else { return true }
    switch padding {
    case .pkcs1v15:
        return EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) > 0
    case .pss(let mgf1, let saltLength):
        return EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) > 0
            && EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, Int32(saltLength)) > 0
            && EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, mgf1.evpMD) > 0
    }
}

func digestVerify(
    _ key: PKeyBox, signature: [UInt8], message: some ContiguousBytes, digest: DigestAlgorithm, padding: RSAPadding?
) -> Bool {
    guard let mctx = EVP_MD_CTX_new() else { return false }
    defer {
        EVP_MD_CTX_free(mctx)
        _ = drainOpenSSLErrors()
    }
    var pctx: OpaquePointer? = nil
    guard EVP_DigestVerifyInit(mctx, &pctx, digest.evpMD, nil, key.pointer) == 1, configure(pctx, padding: padding) else {
        return false
    }
    return message.withNonNilBytes { buffer in
        EVP_DigestVerify(mctx, signature, signature.count, buffer.baseAddress?.assumingMemoryBound(to: UInt8.self), buffer.count) == 1
    }
}

func digestSign(
    _ key: PKeyBox, message: some ContiguousBytes, digest: DigestAlgorithm, padding: RSAPadding?
) throws(CryptoError) -> [UInt8] {
    guard let mctx = EVP_MD_CTX_new() else { throw .openSSL(.internalFailure, "EVP_MD_CTX_new failed") }
    defer { EVP_MD_CTX_free(mctx) }
    var pctx: OpaquePointer? = nil
    guard EVP_DigestSignInit(mctx, &pctx, digest.evpMD, nil, key.pointer) == 1, configure(pctx, padding: padding) else {
        throw .openSSL(.invalidParameter, "signature setup failed")
    }
    let result: Result<[UInt8], CryptoError> = message.withNonNilBytes { buffer in
        let data = buffer.baseAddress?.assumingMemoryBound(to: UInt8.self)
        var length = 0
        guard EVP_DigestSign(mctx, nil, &length, data, buffer.count) == 1 else {
            return .failure(.openSSL(.internalFailure, "signing failed"))
        }
        var out = [UInt8](repeating: 0, count: length)
        guard EVP_DigestSign(mctx, &out, &length, data, buffer.count) == 1 else {
            return .failure(.openSSL(.internalFailure, "signing failed"))
        }
        return .success(Array(out.prefix(length)))
    }
    return try result.get()
}
