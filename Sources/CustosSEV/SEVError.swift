import CustosCrypto

/// The one error type of ``CustosSEV``.
///
/// Equal by ``code`` only (as `CertificateError` in swift-certificates), so tests compare against
/// `SEVError.Code` values while the ``reason`` and the byte ``offset`` still reach the user.
public struct SEVError: Error, Hashable, Sendable, CustomStringConvertible {
    /// An extensible error code: a struct of `static let` values, not an enum, so new codes do not break users.
    public struct Code: Hashable, Sendable, CustomStringConvertible, Codable {
        public let name: String
        public init(_ name: String) { self.name = name }
        public var description: String { name }

        // MARK: Parsing (status of swift-binary-parsing's ParsingError)
        /// The input ended before a field it must contain.
        public static let truncated = Code("truncated")
        /// A field holds a value the format does not allow.
        public static let invalidValue = Code("invalidValue")
        /// A VERSION field other than the one the AMD SEV API defines.
        public static let unsupportedVersion = Code("unsupportedVersion")
        /// A length or size from the input does not fit, or arithmetic on it would overflow.
        public static let lengthOverflow = Code("lengthOverflow")
        /// Bytes follow the end of the structure.
        public static let trailingBytes = Code("trailingBytes")
        /// A key type, curve or signature algorithm this module does not handle.
        public static let unsupportedAlgorithm = Code("unsupportedAlgorithm")

        // MARK: Certificates and chains
        /// A signature did not verify under the key that should have made it.
        public static let signatureInvalid = Code("signatureInvalid")
        /// The certificate carries no signature where one is required (the Naples ARK quirk, an empty slot).
        public static let signatureMissing = Code("signatureMissing")
        /// A certifying ID, key usage or algorithm does not match the link it is used for.
        public static let chainMismatch = Code("chainMismatch")
        /// No pinned product line's ASK signed the CEK.
        public static let unknownProductLine = Code("unknownProductLine")
        /// The platform's OCA is not the one the guest owner pinned.
        public static let untrustedOCA = Code("untrustedOCA")

        // MARK: Launch
        /// A parameter (key, nonce, TIK/TEK, policy, vCPU count…) is out of range.
        public static let invalidParameter = Code("invalidParameter")
        /// The firmware image has no OVMF footer table, or lacks an entry the launch needs.
        public static let firmwareFooterMissing = Code("firmwareFooterMissing")
        /// A kernel was given but the firmware has no SEV hashes area (not an AmdSev OVMF build).
        public static let kernelHashesUnsupported = Code("kernelHashesUnsupported")
        /// The secret table does not fit the firmware's secret area or the packet limits.
        public static let secretTooLarge = Code("secretTooLarge")
        /// An OpenSSL operation failed (reported by CustosCrypto).
        public static let cryptoFailure = Code("cryptoFailure")
    }

    public let code: Code
    /// A sentence for a human: what failed and why.
    public let reason: String
    /// The byte offset in the input the error concerns, when there is one.
    public let offset: Int?
    public let file: String
    public let line: Int

    public init(_ code: Code, _ reason: String, offset: Int? = nil, file: String = #fileID, line: Int = #line) {
        self.code = code
        self.reason = reason
        self.offset = offset
        self.file = file
        self.line = line
    }

    public static func == (lhs: SEVError, rhs: SEVError) -> Bool { lhs.code == rhs.code }
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }

    public var description: String {
        if let offset { return "\(code) at offset 0x\(String(offset, radix: 16)): \(reason)" }
        return "\(code): \(reason)"
    }
}

// MARK: - Byte reader

/// CustosCrypto's shared ``CustosCrypto/ByteReader`` with ``SEVError``s.
///
/// Every read checks the bytes exist and throws ``SEVError/Code-swift.struct/truncated`` with the offset otherwise;
/// the offset only moves on success. AMD SEV structures are little-endian throughout (SEV API spec §1.3).
struct ByteReader {
    private var base: CustosCrypto.ByteReader

    init(_ bytes: [UInt8], offset: Int = 0) { base = CustosCrypto.ByteReader(bytes, offset: offset) }

    var bytes: [UInt8] { base.bytes }
    var offset: Int { base.offset }
    var remaining: Int { base.remaining }

    private func mapped(_ error: ByteReaderError) -> SEVError {
        SEVError(.truncated, "\(error.field): need \(error.needed) bytes, \(error.remaining) left", offset: error.offset)
    }

    mutating func readBytes(_ count: Int, field: String) throws(SEVError) -> [UInt8] {
        do { return try base.read(count, field) } catch { throw mapped(error) }
    }

    mutating func readUInt32LE(field: String) throws(SEVError) -> UInt32 {
        do { return try base.readUInt32LE(field) } catch { throw mapped(error) }
    }

    mutating func readUInt16LE(field: String) throws(SEVError) -> UInt16 {
        do { return try base.readUInt16LE(field) } catch { throw mapped(error) }
    }

    mutating func readUInt8(field: String) throws(SEVError) -> UInt8 {
        do { return try base.readUInt8(field) } catch { throw mapped(error) }
    }

    func expectEnd(_ what: String) throws(SEVError) {
        guard remaining == 0 else { throw SEVError(.trailingBytes, "\(remaining) bytes follow the \(what)", offset: offset) }
    }
}

// MARK: - Little-endian writers

extension Array where Element == UInt8 {
    mutating func appendLE(_ value: UInt32) {
        append(contentsOf: [UInt8(value & 0xff), UInt8(value >> 8 & 0xff), UInt8(value >> 16 & 0xff), UInt8(value >> 24 & 0xff)])
    }
    mutating func appendLE(_ value: UInt16) { append(contentsOf: [UInt8(value & 0xff), UInt8(value >> 8)]) }
    mutating func appendLE(_ value: UInt64) {
        for shift in stride(from: 0, to: 64, by: 8) { append(UInt8(value >> UInt64(shift) & 0xff)) }
    }

    mutating func storeLE(_ value: UInt64, at offset: Int, size: Int) {
        for index in 0..<size { self[offset + index] = UInt8(value >> UInt64(8 * index) & 0xff) }
    }
}

func littleEndianUInt32(_ bytes: ArraySlice<UInt8>) -> UInt32 {
    var value: UInt32 = 0
    for (index, byte) in bytes.prefix(4).enumerated() { value |= UInt32(byte) << (8 * UInt32(index)) }
    return value
}

/// Little-endian integer field → big-endian without leading zeros (what OpenSSL's `BN_bin2bn` wants).
func bigEndianTrimmed(fromLittleEndian bytes: some BidirectionalCollection<UInt8>) -> [UInt8] {
    Array(bytes.reversed().drop(while: { $0 == 0 }))
}

/// Big-endian integer → little-endian field of exactly `size` bytes (nil if it does not fit).
func littleEndianField(fromBigEndian bytes: [UInt8], size: Int) -> [UInt8]? {
    let trimmed = bytes.drop(while: { $0 == 0 })
    guard trimmed.count <= size else { return nil }
    return Array(trimmed.reversed()) + [UInt8](repeating: 0, count: size - trimmed.count)
}
