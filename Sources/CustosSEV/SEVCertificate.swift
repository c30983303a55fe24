public import CustosCrypto

/// A SEV-format certificate (CEK, PEK, OCA, PDH, or the guest owner's GODH): always 0x824 = 2084 bytes.
///
/// Layout (SEV API spec 55766 Appendix B; sev.md §1.2), little-endian:
///
/// | off | size | field |
/// |---|---|---|
/// | 0x000 | 4 | VERSION = 1 |
/// | 0x004 | 1 | API_MAJOR (informational) |
/// | 0x005 | 1 | API_MINOR (informational) |
/// | 0x006 | 2 | RESERVED |
/// | 0x008 | 4 | PUBKEY_USAGE |
/// | 0x00C | 4 | PUBKEY_ALGO |
/// | 0x010 | 0x404 | PUBKEY: `CURVE u32`, `QX[72]` LE, `QY[72]` LE, 880 zero bytes (EC form) |
/// | 0x414 | 4 | SIG1_USAGE |
/// | 0x418 | 4 | SIG1_ALGO |
/// | 0x41C | 0x200 | SIG1: ECDSA `R[72]` ‖ `S[72]` LE ‖ 368 zero bytes, or an RSA signature LE |
/// | 0x61C | 4 | SIG2_USAGE |
/// | 0x620 | 4 | SIG2_ALGO |
/// | 0x624 | 0x200 | SIG2 |
///
/// Both signatures cover bytes `[0, 0x414)`. Slots are chosen by usage, never by position; an empty slot is
/// (0x1000, 0).
public struct SEVCertificate: Sendable, Equatable {
    /// Size of every SEV-format certificate.
    public static let size = 0x824
    /// Length of the signed prefix.
    public static let signedLength = 0x414
    static let fieldSize = 72
    static let slotSize = 0x200

    /// PUBKEY_USAGE / SIGx_USAGE values (SEV API spec Table "Key usage").
    public struct Usage: RawRepresentable, Hashable, Sendable, CustomStringConvertible, Codable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        public static let ark = Usage(rawValue: 0x00)
        public static let ask = Usage(rawValue: 0x13)
        public static let invalid = Usage(rawValue: 0x1000)
        public static let oca = Usage(rawValue: 0x1001)
        public static let pek = Usage(rawValue: 0x1002)
        public static let pdh = Usage(rawValue: 0x1003)
        public static let cek = Usage(rawValue: 0x1004)
        public var description: String {
            switch self {
            case .ark: "ARK"
            case .ask: "ASK"
            case .invalid: "none"
            case .oca: "OCA"
            case .pek: "PEK"
            case .pdh: "PDH"
            case .cek: "CEK"
            default: "usage 0x\(String(rawValue, radix: 16))"
            }
        }
    }

    /// PUBKEY_ALGO / SIGx_ALGO values.
    public struct Algorithm: RawRepresentable, Hashable, Sendable, CustomStringConvertible, Codable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        public static let none = Algorithm(rawValue: 0x0)
        public static let rsaSHA256 = Algorithm(rawValue: 0x1)
        public static let ecdsaSHA256 = Algorithm(rawValue: 0x2)
        public static let ecdhSHA256 = Algorithm(rawValue: 0x3)
        public static let rsaSHA384 = Algorithm(rawValue: 0x101)
        public static let ecdsaSHA384 = Algorithm(rawValue: 0x102)
        public static let ecdhSHA384 = Algorithm(rawValue: 0x103)
        static let known: Set<Algorithm> = [.none, .rsaSHA256, .ecdsaSHA256, .ecdhSHA256, .rsaSHA384, .ecdsaSHA384, .ecdhSHA384]

        /// The hash the algorithm names (the curve does not change it: ECDSA_SHA256 on P-384 is SHA-256).
        public var digest: DigestAlgorithm? {
            switch self {
            case .rsaSHA256, .ecdsaSHA256, .ecdhSHA256: .sha256
            case .rsaSHA384, .ecdsaSHA384, .ecdhSHA384: .sha384
            default: nil
            }
        }
        public var isRSA: Bool { self == .rsaSHA256 || self == .rsaSHA384 }
        public var isECDSA: Bool { self == .ecdsaSHA256 || self == .ecdsaSHA384 }
        public var isECDH: Bool { self == .ecdhSHA256 || self == .ecdhSHA384 }
        public var description: String {
            switch self {
            case .none: "none"
            case .rsaSHA256: "RSA_SHA256"
            case .ecdsaSHA256: "ECDSA_SHA256"
            case .ecdhSHA256: "ECDH_SHA256"
            case .rsaSHA384: "RSA_SHA384"
            case .ecdsaSHA384: "ECDSA_SHA384"
            case .ecdhSHA384: "ECDH_SHA384"
            default: "algo 0x\(String(rawValue, radix: 16))"
            }
        }
    }

    /// One signature slot.
    public struct SignatureSlot: Sendable, Equatable {
        public let usage: Usage
        public let algorithm: Algorithm
        /// The 0x200 slot bytes as stored.
        public let bytes: [UInt8]
        /// An empty slot: usage 0x1000 (or algorithm none).
        public var isEmpty: Bool { usage == .invalid || algorithm == .none }

        public init(usage: Usage, algorithm: Algorithm, bytes: [UInt8]) throws(SEVError) {
            guard bytes.count == SEVCertificate.slotSize else {
                throw SEVError(.invalidParameter, "a signature slot has 0x200 bytes, got \(bytes.count)")
            }
            self.usage = usage
            self.algorithm = algorithm
            self.bytes = bytes
        }

        /// An empty slot (0x1000, 0, zeros), as virtee and sevctl write it in a GODH.
        public static let empty = SignatureSlot(uncheckedUsage: .invalid, algorithm: .none, bytes: [UInt8](repeating: 0, count: 0x200))
        init(uncheckedUsage usage: Usage, algorithm: Algorithm, bytes: [UInt8]) {
            self.usage = usage
            self.algorithm = algorithm
            self.bytes = bytes
        }

        /// An ECDSA slot: `R[72]` ‖ `S[72]`, little-endian, zero-padded, then 368 zero bytes.
        public static func ecdsa(usage: Usage, algorithm: Algorithm = .ecdsaSHA256, signature: ECDSASignature) throws(SEVError)
            -> SignatureSlot
        {
            let parts: (r: [UInt8], s: [UInt8])
            do { parts = try signature.littleEndianComponents(componentByteCount: SEVCertificate.fieldSize) } catch {
                throw SEVError(.invalidParameter, "ECDSA signature does not fit 72-byte fields")
            }
            var bytes = parts.r + parts.s
            bytes += [UInt8](repeating: 0, count: SEVCertificate.slotSize - bytes.count)
            return try SignatureSlot(usage: usage, algorithm: algorithm, bytes: bytes)
        }

        /// An RSA slot: the big-endian signature reversed, zero-padded to 0x200.
        public static func rsa(usage: Usage, algorithm: Algorithm, bigEndianSignature: [UInt8]) throws(SEVError) -> SignatureSlot {
            guard bigEndianSignature.count <= SEVCertificate.slotSize else { throw SEVError(.invalidParameter, "RSA signature too long") }
            let bytes =
                Array(bigEndianSignature.reversed()) + [UInt8](repeating: 0, count: SEVCertificate.slotSize - bigEndianSignature.count)
            return try SignatureSlot(usage: usage, algorithm: algorithm, bytes: bytes)
        }
    }

    public let version: UInt32
    public let apiMajor: UInt8
    public let apiMinor: UInt8
    public let usage: Usage
    public let algorithm: Algorithm
    /// The certificate's EC public key (P-384 on every real platform; P-256 accepted).
    public let publicKey: ECPublicKey
    /// SIG1 and SIG2, in stored order.
    public let signatures: [SignatureSlot]
    /// The 2084 bytes.
    public let bytes: [UInt8]

    /// Parses a SEV-format certificate.
    /// - Throws: ``SEVError``: `.truncated`/`.trailingBytes` unless exactly 0x824 bytes, `.unsupportedVersion`,
    ///   `.invalidValue` (unknown usage/algorithm, non-zero padding, point not on the curve),
    ///   `.unsupportedAlgorithm` (RSA public keys), each with its offset.
    public init(bytes: [UInt8]) throws(SEVError) {
        var reader = ByteReader(bytes)
        version = try reader.readUInt32LE(field: "VERSION")
        guard version == 1 else { throw SEVError(.unsupportedVersion, "SEV certificate version \(version), expected 1", offset: 0) }
        apiMajor = try reader.readUInt8(field: "API_MAJOR")
        apiMinor = try reader.readUInt8(field: "API_MINOR")
        _ = try reader.readBytes(2, field: "RESERVED")
        usage = Usage(rawValue: try reader.readUInt32LE(field: "PUBKEY_USAGE"))
        guard [.oca, .pek, .pdh, .cek].contains(usage) else {
            throw SEVError(.invalidValue, "PUBKEY_USAGE 0x\(String(usage.rawValue, radix: 16)) is not OCA/PEK/PDH/CEK", offset: 0x08)
        }
        algorithm = Algorithm(rawValue: try reader.readUInt32LE(field: "PUBKEY_ALGO"))
        guard algorithm.isECDSA || algorithm.isECDH else {
            if algorithm.isRSA {
                throw SEVError(.unsupportedAlgorithm, "RSA platform keys are not supported (\(algorithm))", offset: 0x0C)
            }
            throw SEVError(.invalidValue, "PUBKEY_ALGO 0x\(String(algorithm.rawValue, radix: 16)) is not an EC algorithm", offset: 0x0C)
        }
        let curveID = try reader.readUInt32LE(field: "CURVE")
        let curve: ECCurve
        switch curveID {
        case 1: curve = .p256
        case 2: curve = .p384
        default: throw SEVError(.invalidValue, "CURVE \(curveID) is not P-256 (1) or P-384 (2)", offset: 0x10)
        }
        let qx = try reader.readBytes(Self.fieldSize, field: "QX")
        let qy = try reader.readBytes(Self.fieldSize, field: "QY")
        let rest = try reader.readBytes(0x404 - 4 - 2 * Self.fieldSize, field: "PUBKEY padding")
        let n = curve.coordinateByteCount
        if let bad = qx[n...].firstIndex(where: { $0 != 0 }) {
            throw SEVError(.invalidValue, "QX has non-zero padding", offset: 0x14 + bad)
        }
        if let bad = qy[n...].firstIndex(where: { $0 != 0 }) {
            throw SEVError(.invalidValue, "QY has non-zero padding", offset: 0x5C + bad)
        }
        if let bad = rest.firstIndex(where: { $0 != 0 }) { throw SEVError(.invalidValue, "PUBKEY padding is not zero", offset: 0xA4 + bad) }
        do {
            publicKey = try ECPublicKey(curve: curve, x: Array(qx[0..<n].reversed()), y: Array(qy[0..<n].reversed()))
        } catch {
            throw SEVError(.invalidValue, "public key is not a point on \(curve.rawValue): \(error)", offset: 0x14)
        }
        var slots: [SignatureSlot] = []
        for index in 0..<2 {
            let start = reader.offset
            let slotUsage = Usage(rawValue: try reader.readUInt32LE(field: "SIG\(index + 1)_USAGE"))
            let slotAlgorithm = Algorithm(rawValue: try reader.readUInt32LE(field: "SIG\(index + 1)_ALGO"))
            guard Algorithm.known.contains(slotAlgorithm) else {
                throw SEVError(
                    .invalidValue, "SIG\(index + 1)_ALGO 0x\(String(slotAlgorithm.rawValue, radix: 16)) is unknown", offset: start + 4)
            }
            let slot = try reader.readBytes(Self.slotSize, field: "SIG\(index + 1)")
            slots.append(SignatureSlot(uncheckedUsage: slotUsage, algorithm: slotAlgorithm, bytes: slot))
        }
        try reader.expectEnd("SEV certificate")
        signatures = slots
        self.bytes = bytes
    }

    /// Builds a certificate from its parts (the GODH; the emulated firmware's chain).
    /// - Parameters:
    ///   - usage: PUBKEY_USAGE.
    ///   - algorithm: PUBKEY_ALGO (ECDH_SHA256 for PDH/GODH, ECDSA_SHA256 for signing keys).
    ///   - publicKey: a P-256 or P-384 key.
    ///   - signatures: zero to two slots; missing ones are written empty.
    public init(
        usage: Usage, algorithm: Algorithm, publicKey: ECPublicKey, apiMajor: UInt8 = 0, apiMinor: UInt8 = 0,
        signatures: [SignatureSlot] = []
    ) throws(SEVError) {
        guard signatures.count <= 2 else { throw SEVError(.invalidParameter, "a SEV certificate has two signature slots") }
        var out = Self.unsignedBody(usage: usage, algorithm: algorithm, publicKey: publicKey, apiMajor: apiMajor, apiMinor: apiMinor)
        for slot in signatures + Array(repeating: SignatureSlot.empty, count: 2 - signatures.count) {
            out.appendLE(slot.usage.rawValue)
            out.appendLE(slot.algorithm.rawValue)
            out += slot.bytes
        }
        try self.init(bytes: out)
    }

    /// The 0x414 signed bytes of a certificate that is still to be signed.
    public static func unsignedBody(usage: Usage, algorithm: Algorithm, publicKey: ECPublicKey, apiMajor: UInt8 = 0, apiMinor: UInt8 = 0)
        -> [UInt8]
    {
        var out: [UInt8] = []
        out.reserveCapacity(size)
        out.appendLE(UInt32(1))
        out += [apiMajor, apiMinor, 0, 0]
        out.appendLE(usage.rawValue)
        out.appendLE(algorithm.rawValue)
        out.appendLE(UInt32(publicKey.curve == .p384 ? 2 : 1))
        let n = publicKey.curve.coordinateByteCount
        out += publicKey.x.reversed() + [UInt8](repeating: 0, count: fieldSize - n)
        out += publicKey.y.reversed() + [UInt8](repeating: 0, count: fieldSize - n)
        out += [UInt8](repeating: 0, count: 0x404 - 4 - 2 * fieldSize)
        return out
    }

    /// The signed bytes `[0, 0x414)`.
    public var body: ArraySlice<UInt8> { bytes[0..<Self.signedLength] }

    /// What `sevctl verify` prints: SHA-256 of the signed bytes.
    public var displayHash: [UInt8] { Digest.sha256(body) }

    /// The slot a key with `usage` signed, if any (chosen by SIGx_USAGE, not by position).
    public func signature(by usage: Usage) -> SignatureSlot? {
        signatures.first { !$0.isEmpty && $0.usage == usage }
    }

    /// Verifies the slot `signer` made (ECDSA, §1.2): the slot whose usage equals the signer's PUBKEY_USAGE.
    /// - Throws: `.chainMismatch` if the signer cannot sign, `.signatureMissing` if no slot names it,
    ///   `.signatureInvalid` if it does not verify.
    public func verifySignature(by signer: SEVCertificate) throws(SEVError) {
        guard signer.algorithm.isECDSA else {
            throw SEVError(.chainMismatch, "\(signer.usage) key has algorithm \(signer.algorithm) and cannot sign")
        }
        guard let slot = signature(by: signer.usage) else {
            throw SEVError(.signatureMissing, "\(usage) certificate has no signature slot by the \(signer.usage)")
        }
        guard slot.algorithm.isECDSA, let digest = slot.algorithm.digest else {
            throw SEVError(.chainMismatch, "\(usage) slot by \(signer.usage) has algorithm \(slot.algorithm), expected ECDSA")
        }
        let r = slot.bytes[0..<Self.fieldSize]
        let s = slot.bytes[Self.fieldSize..<2 * Self.fieldSize]
        guard let signature = try? ECDSASignature(rLittleEndian: r, sLittleEndian: s),
            signer.publicKey.isValidSignature(signature, for: Array(body), digest: digest)
        else {
            throw SEVError(.signatureInvalid, "\(usage) signature by the \(signer.usage) (\(slot.algorithm)) does not verify")
        }
    }

    /// Verifies the ASK's RSA-PSS signature on a CEK (§1.2 chain rule 3).
    /// - Throws: `.signatureMissing`, `.chainMismatch` (hash does not match the ASK's size) or `.signatureInvalid`.
    public func verifySignature(by ask: AMDCertificate) throws(SEVError) {
        guard let slot = signature(by: .ask) else {
            throw SEVError(.signatureMissing, "\(usage) certificate has no signature slot by the ASK (usage 0x13)")
        }
        let expected: Algorithm = ask.modulusBits == 2048 ? .rsaSHA256 : .rsaSHA384
        guard slot.algorithm == expected else {
            throw SEVError(
                .chainMismatch, "\(usage) slot by the ASK is \(slot.algorithm), an RSA-\(ask.modulusBits) ASK signs with \(expected)")
        }
        guard ask.isValidSignature(littleEndian: slot.bytes, over: Array(body)) else {
            throw SEVError(.signatureInvalid, "\(usage) RSA-PSS signature does not verify under ASK \(Hex.encode(ask.keyID))")
        }
    }
}
