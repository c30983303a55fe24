public import CustosCrypto

// MARK: - Header (spec §1.1)

/// The 48-byte quote header (spec §1.1).
///
/// | off | len | field |
/// |---:|---:|---|
/// | 0 | 2 | version (u16 LE): 4 or 5 |
/// | 2 | 2 | attestation key type (u16 LE): 2 = ECDSA-256 P-256 |
/// | 4 | 4 | TEE type (u32 LE): 0x81 = TDX |
/// | 8 | 2 | reserved (u16 LE) |
/// | 10 | 2 | reserved (u16 LE) |
/// | 12 | 16 | QE vendor ID |
/// | 28 | 20 | user data (bytes 0..16 = QE ID) |
public struct QuoteHeader: Sendable, Equatable {
    public let version: UInt16
    public let attestationKeyType: UInt16
    public let teeType: UInt32
    public let reserved1: UInt16
    public let reserved2: UInt16
    public let qeVendorID: [UInt8]
    public let userData: [UInt8]

    /// The size of the header.
    public static let size = 48
    /// TEE type of TDX.
    public static let teeTypeTDX: UInt32 = 0x81
    /// Intel's QE vendor ID, the only one QVL accepts (spec §1.1).
    public static let intelQEVendorID: [UInt8] = [
        0x93, 0x9a, 0x72, 0x33, 0xf7, 0x9c, 0x4c, 0xa9, 0x94, 0x0a, 0x0d, 0xb3, 0x95, 0x7f, 0x06, 0x07,
    ]

    init(parsing reader: inout ByteReader) throws(TDXError) {
        version = try reader.u16("header.version")
        attestationKeyType = try reader.u16("header.attestationKeyType")
        teeType = try reader.u32("header.teeType")
        reserved1 = try reader.u16("header.reserved1")
        reserved2 = try reader.u16("header.reserved2")
        qeVendorID = try reader.read(16, "header.qeVendorID")
        userData = try reader.read(20, "header.userData")
    }
}

// MARK: - TD report body (spec §1.3)

/// Which TD report body a quote carries (spec §1.2).
public enum TDReportBodyType: String, Sendable, Codable, Equatable {
    /// TDX 1.0 body, 584 bytes (v4 quotes, v5 body type 2).
    case td10 = "TD10"
    /// TDX 1.5 body, 648 bytes (v5 body type 3): adds TEE_TCB_SVN2 and MRSERVICETD.
    case td15 = "TD15"

    /// The body's size in bytes.
    public var size: Int {
        switch self {
        case .td10: 584
        case .td15: 648
        }
    }
}

/// A TD report body (spec §1.3; offsets relative to the body start).
///
/// | rel | len | field |
/// |---:|---:|---|
/// | 0 | 16 | TEE_TCB_SVN |
/// | 16 | 48 | MRSEAM |
/// | 64 | 48 | MRSIGNERSEAM |
/// | 112 | 8 | SEAMATTRIBUTES |
/// | 120 | 8 | TDATTRIBUTES (u64 LE) |
/// | 128 | 8 | XFAM (u64 LE) |
/// | 136 | 48 | MRTD |
/// | 184 | 48 | MRCONFIGID |
/// | 232 | 48 | MROWNER |
/// | 280 | 48 | MROWNERCONFIG |
/// | 328 | 4×48 | RTMR0..3 |
/// | 520 | 64 | REPORTDATA |
/// | 584 | 16 | TEE_TCB_SVN2 (TD15 only) |
/// | 600 | 48 | MRSERVICETD (TD15 only) |
public struct TDReport: Sendable, Equatable {
    public let bodyType: TDReportBodyType
    public let teeTCBSVN: [UInt8]
    public let mrSeam: [UInt8]
    public let mrSignerSeam: [UInt8]
    public let seamAttributes: [UInt8]
    public let tdAttributes: [UInt8]
    public let xfam: [UInt8]
    public let mrTD: [UInt8]
    public let mrConfigID: [UInt8]
    public let mrOwner: [UInt8]
    public let mrOwnerConfig: [UInt8]
    /// RTMR0..RTMR3.
    public let rtmrs: [[UInt8]]
    public let reportData: [UInt8]
    /// TD15 only.
    public let teeTCBSVN2: [UInt8]?
    /// TD15 only.
    public let mrServiceTD: [UInt8]?

    init(parsing reader: inout ByteReader, type: TDReportBodyType) throws(TDXError) {
        bodyType = type
        teeTCBSVN = try reader.read(16, "td.teeTcbSvn")
        mrSeam = try reader.read(48, "td.mrSeam")
        mrSignerSeam = try reader.read(48, "td.mrSignerSeam")
        seamAttributes = try reader.read(8, "td.seamAttributes")
        tdAttributes = try reader.read(8, "td.tdAttributes")
        xfam = try reader.read(8, "td.xfam")
        mrTD = try reader.read(48, "td.mrTd")
        mrConfigID = try reader.read(48, "td.mrConfigId")
        mrOwner = try reader.read(48, "td.mrOwner")
        mrOwnerConfig = try reader.read(48, "td.mrOwnerConfig")
        var rtmrs: [[UInt8]] = []
        for index in 0..<4 { rtmrs.append(try reader.read(48, "td.rtmr\(index)")) }
        self.rtmrs = rtmrs
        reportData = try reader.read(64, "td.reportData")
        if type == .td15 {
            teeTCBSVN2 = try reader.read(16, "td.teeTcbSvn2")
            mrServiceTD = try reader.read(48, "td.mrServiceTd")
        } else {
            teeTCBSVN2 = nil
            mrServiceTD = nil
        }
    }

    /// TDATTRIBUTES as a little-endian u64.
    public var tdAttributesValue: UInt64 { littleEndianUInt64(tdAttributes) }
    /// TDATTRIBUTES bit 0 (TUD.DEBUG): the TD's memory and state are visible to the host.
    public var isDebug: Bool { tdAttributesValue & 1 != 0 }
    /// TDATTRIBUTES bit 28: SEPT_VE_DISABLE.
    public var septVEDisabled: Bool { tdAttributesValue & (1 << 28) != 0 }
}

// MARK: - QE report (spec §1.4)

/// The SGX report body of the TD Quoting Enclave (384 bytes, spec §1.4).
///
/// | off | len | field |
/// |---:|---:|---|
/// | 0 | 16 | CPUSVN |
/// | 16 | 4 | MISCSELECT (u32 LE) |
/// | 48 | 16 | ATTRIBUTES |
/// | 64 | 32 | MRENCLAVE |
/// | 128 | 32 | MRSIGNER |
/// | 256 | 2 | ISVPRODID (u16 LE) |
/// | 258 | 2 | ISVSVN (u16 LE) |
/// | 320 | 64 | REPORTDATA |
public struct EnclaveReport: Sendable, Equatable {
    /// All 384 bytes (the QE report signature covers exactly these).
    public let raw: [UInt8]
    public let cpuSVN: [UInt8]
    public let miscSelect: UInt32
    public let attributes: [UInt8]
    public let mrEnclave: [UInt8]
    public let mrSigner: [UInt8]
    public let isvProdID: UInt16
    public let isvSVN: UInt16
    public let reportData: [UInt8]

    /// Size of an SGX report body.
    public static let size = 384

    init(parsing reader: inout ByteReader) throws(TDXError) {
        let start = reader.offset
        var r = reader
        raw = try reader.read(Self.size, "qeReport")
        cpuSVN = try r.read(16, "qeReport.cpuSvn")
        miscSelect = try r.u32("qeReport.miscSelect")
        try r.skip(28, "qeReport.reserved1")
        attributes = try r.read(16, "qeReport.attributes")
        mrEnclave = try r.read(32, "qeReport.mrEnclave")
        try r.skip(32, "qeReport.reserved2")
        mrSigner = try r.read(32, "qeReport.mrSigner")
        try r.skip(96, "qeReport.reserved3")
        isvProdID = try r.u16("qeReport.isvProdId")
        isvSVN = try r.u16("qeReport.isvSvn")
        try r.skip(60, "qeReport.reserved4")
        reportData = try r.read(64, "qeReport.reportData")
        _ = start
    }
}

// MARK: - Quote (spec §1.2, §1.4)

/// A parsed TDX DCAP quote, version 4 (TD10 body) or 5 (TD10 or TD15 body).
///
/// Parsing follows the declared lengths only (spec §8 trap 4): bytes after the signature data are ignored and never
/// treated as authenticated. Nothing here is verified; see ``QuoteVerifier``.
public struct Quote: Sendable, Equatable {
    public let header: QuoteHeader
    /// v5 body descriptor type (1 SGX, 2 TD10, 3 TD15); `nil` for v4.
    public let bodyDescriptorType: UInt16?
    public let body: TDReport
    /// The bytes the quote signature covers: header (+ v5 body descriptor) + body (spec §1.2).
    public let signedRegion: [UInt8]
    /// Declared signature-data length L.
    public let signatureDataLength: Int
    /// ECDSA P-256 raw r‖s over SHA-256(signedRegion).
    public let signature: [UInt8]
    /// The attestation public key, raw X‖Y (no 0x04 prefix).
    public let attestationKey: [UInt8]
    /// Outer certification data type (6).
    public let certificationDataType: UInt16
    public let qeReport: EnclaveReport
    /// Raw r‖s by the PCK key over the 384-byte QE report.
    public let qeReportSignature: [UInt8]
    public let qeAuthData: [UInt8]
    /// Inner certification data type (5 = PCK chain PEM).
    public let innerCertificationDataType: UInt16
    /// Inner certification data (for type 5, the PEM chain, possibly NUL-terminated).
    public let innerCertificationData: [UInt8]
    /// One past the last byte of the quote proper (bytes after it were ignored).
    public let length: Int

    /// Maximum accepted signature-data length (real quotes use 4300 bytes; PEM chains are a few KiB).
    public static let maximumSignatureDataLength = 64 * 1024

    /// Parses a quote.
    /// - Parameter bytes: the quote, possibly followed by padding or other bytes (ignored).
    /// - Throws: ``TDXError`` with code ``TDXError/Code/malformedQuote`` (naming the field and offset) when a field is
    ///   truncated or inconsistent, ``TDXError/Code/unsupportedQuoteFormat`` for a well-formed quote Custos does not
    ///   verify (not version 4/5, not ECDSA P-256, not TDX, not Intel's QE, certification data type ≠ 6).
    public init(parsing bytes: [UInt8]) throws(TDXError) {
        var reader = ByteReader(bytes)
        header = try QuoteHeader(parsing: &reader)
        guard header.version == 4 || header.version == 5 else {
            throw TDXError(.unsupportedQuoteFormat, "quote version \(header.version) is not 4 or 5", field: "header.version", offset: 0)
        }
        guard header.attestationKeyType == 2 else {
            throw TDXError(
                .unsupportedQuoteFormat, "attestation key type \(header.attestationKeyType) is not 2 (ECDSA P-256)",
                field: "header.attestationKeyType", offset: 2)
        }
        guard header.teeType == QuoteHeader.teeTypeTDX else {
            throw TDXError(
                .unsupportedQuoteFormat, "TEE type 0x\(String(header.teeType, radix: 16)) is not TDX (0x81)", field: "header.teeType",
                offset: 4)
        }
        guard header.qeVendorID == QuoteHeader.intelQEVendorID else {
            throw TDXError(.unsupportedQuoteFormat, "QE vendor ID is not Intel's", field: "header.qeVendorID", offset: 12)
        }
        let bodyType: TDReportBodyType
        if header.version == 5 {
            let descriptorOffset = reader.offset
            let type = try reader.u16("bodyDescriptor.type")
            let size = try reader.u32("bodyDescriptor.size")
            switch type {
            case 2: bodyType = .td10
            case 3: bodyType = .td15
            default:
                throw TDXError(
                    .unsupportedQuoteFormat, "v5 body type \(type) is not a TD report (2 or 3)", field: "bodyDescriptor.type",
                    offset: descriptorOffset)
            }
            guard Int(size) == bodyType.size else {
                throw TDXError(
                    .malformedQuote, "v5 body size \(size) does not match body type \(type) (\(bodyType.size))",
                    field: "bodyDescriptor.size", offset: descriptorOffset + 2)
            }
            bodyDescriptorType = type
        } else {
            bodyType = .td10
            bodyDescriptorType = nil
        }
        body = try TDReport(parsing: &reader, type: bodyType)
        signedRegion = Array(bytes[0..<reader.offset])

        let lengthOffset = reader.offset
        let declared = try reader.u32("signatureData.length")
        guard let signatureLength = Int(exactly: declared), signatureLength <= Self.maximumSignatureDataLength else {
            throw TDXError(
                .malformedQuote, "signature data length \(declared) is too large", field: "signatureData.length", offset: lengthOffset)
        }
        guard signatureLength <= reader.remaining else {
            throw reader.fail("signatureData", "truncated: signature data declares \(signatureLength) bytes, \(reader.remaining) remain")
        }
        signatureDataLength = signatureLength
        var sig = ByteReader(bytes, offset: reader.offset, end: reader.offset + signatureLength)
        signature = try sig.read(64, "signatureData.quoteSignature")
        attestationKey = try sig.read(64, "signatureData.attestationKey")
        let certTypeOffset = sig.offset
        certificationDataType = try sig.u16("certificationData.type")
        let certSize = Int(try sig.u32("certificationData.size"))
        guard certSize <= sig.remaining else {
            throw sig.fail("certificationData", "truncated: certification data declares \(certSize) bytes, \(sig.remaining) remain")
        }
        guard certificationDataType == 6 else {
            throw TDXError(
                .unsupportedQuoteFormat, "certification data type \(certificationDataType) is not 6 (QE report certification data)",
                field: "certificationData.type", offset: certTypeOffset)
        }
        var cert = ByteReader(bytes, offset: sig.offset, end: sig.offset + certSize)
        qeReport = try EnclaveReport(parsing: &cert)
        qeReportSignature = try cert.read(64, "qeReportSignature")
        let authSize = Int(try cert.u16("qeAuthData.size"))
        qeAuthData = try cert.read(authSize, "qeAuthData")
        let innerTypeOffset = cert.offset
        innerCertificationDataType = try cert.u16("pckCertificationData.type")
        let innerSize = Int(try cert.u32("pckCertificationData.size"))
        innerCertificationData = try cert.read(innerSize, "pckCertificationData")
        guard (1...5).contains(innerCertificationDataType) else {
            throw TDXError(
                .unsupportedQuoteFormat, "inner certification data type \(innerCertificationDataType) is not 1…5",
                field: "pckCertificationData.type", offset: innerTypeOffset)
        }
        guard cert.remaining == 0 else {
            throw cert.fail(
                "certificationData", "certification data declares \(certSize) bytes but its content uses \(certSize - cert.remaining)")
        }
        guard cert.offset == sig.end, sig.end == reader.offset + signatureLength else {
            throw TDXError(
                .malformedQuote, "signature data declares \(signatureLength) bytes but its content uses \(cert.offset - reader.offset)",
                field: "signatureData.length", offset: lengthOffset)
        }
        length = reader.offset + signatureLength
    }

    /// Whether this is a v5 quote.
    public var version: Int { Int(header.version) }

    /// The PCK certificate chain from type-5 certification data, in the order found (spec §8 trap 5: a trailing
    /// NUL is stripped; order is not guaranteed).
    /// - Throws: ``TDXError/Code/unsupportedQuoteFormat`` for inner types other than 5,
    ///   ``TDXError/Code/invalidPCKCertificate`` when the PEM does not parse.
    public func pckCertificateChain() throws(TDXError) -> [Certificate] { try pckCertificateChain(reusing: []) }

    /// The PCK chain, reusing already-parsed certificates with the same DER (the trusted root, the collateral's
    /// Platform CA) instead of parsing them again.
    public func pckCertificateChain(reusing known: [Certificate]) throws(TDXError) -> [Certificate] {
        guard innerCertificationDataType == 5 else {
            throw TDXError(
                .unsupportedQuoteFormat,
                "certification data type \(innerCertificationDataType) carries no PCK chain (only type 5 is usable)")
        }
        var pem = innerCertificationData
        while pem.last == 0 { pem.removeLast() }
        guard !pem.contains(0) else { throw TDXError(.invalidPCKCertificate, "NUL byte inside the PCK PEM chain") }
        do {
            return try Certificate.parsePEMChain(pemBytes: pem, reusing: known)
        } catch {
            throw TDXError(.invalidPCKCertificate, "PCK chain does not parse: \(error.reason)")
        }
    }
}
