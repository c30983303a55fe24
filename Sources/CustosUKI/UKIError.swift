// MARK: - Parse errors

/// Why a PE/COFF image (or a part of it) could not be parsed, and where.
///
/// Every parser in this module takes untrusted bytes and reports failures through this type (typed throws), never
/// by trapping. Errors are equal by ``status`` only, as `ASN1Error` is by code, so tests compare against a status
/// while the offset and reason still reach the user.
public struct PEParseError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What kind of problem the parser hit.
    public struct Status: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        public init(_ name: String) { self.name = name }
        public var description: String { name }

        /// The input ended before a structure it announces.
        public static let truncated = Status("truncated")
        /// A field holds a value the format does not allow (a bad magic, an out-of-range offset).
        public static let invalidValue = Status("invalidValue")
        /// A well-formed structure this module does not handle (a PE32 ROM image, an unknown certificate type).
        public static let unsupported = Status("unsupported")
        /// A length or offset overflows, or exceeds one of this module's hard caps.
        public static let lengthOverflow = Status("lengthOverflow")
    }

    public let status: Status
    /// The byte offset in the file where the problem was found.
    public let offset: Int
    /// A sentence for a human.
    public let reason: String
    public let file: String
    public let line: Int

    public init(_ status: Status, at offset: Int, _ reason: String, file: String = #fileID, line: Int = #line) {
        self.status = status
        self.offset = offset
        self.reason = reason
        self.file = file
        self.line = line
    }

    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.status == rhs.status }
    public func hash(into hasher: inout Hasher) { hasher.combine(status) }

    public var description: String { "\(status) at offset \(offset) (0x\(String(offset, radix: 16))): \(reason)" }
}

// MARK: - Module error

/// The one error type of ``CustosUKI`` for everything that is not a parse failure: signature verification verdicts,
/// unsupported stub versions, malformed section contents.
///
/// Equal by ``code`` only (as `CertificateError`), with an extensible code.
public struct UKIError: Error, Hashable, Sendable, CustomStringConvertible {
    /// An extensible error code.
    public struct Code: Hashable, Sendable, CustomStringConvertible, Codable {
        public let name: String
        public init(_ name: String) { self.name = name }
        public var description: String { name }
        public init(from decoder: any Decoder) throws { name = try decoder.singleValueContainer().decode(String.self) }
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            try container.encode(name)
        }

        /// The file is not a PE/COFF image this module can read (see the underlying ``PEParseError``).
        public static let malformedImage = Code("malformedImage")
        /// The image carries no Authenticode signature (empty certificate table).
        public static let unsigned = Code("unsigned")
        /// A `WIN_CERTIFICATE` or its PKCS #7 could not be decoded.
        public static let malformedSignature = Code("malformedSignature")
        /// The signature uses a certificate type or digest algorithm this module does not check.
        public static let unsupportedAlgorithm = Code("unsupportedAlgorithm")
        /// The image's Authenticode digest differs from the one the signer committed to: the image was changed.
        public static let digestMismatch = Code("digestMismatch")
        /// The PKCS #7 signature itself does not verify.
        public static let signatureInvalid = Code("signatureInvalid")
        /// The signature is intact but the signer is not, and does not chain to, a trusted certificate.
        public static let untrustedSigner = Code("untrustedSigner")
        /// No trusted certificate was given.
        public static let noTrustAnchors = Code("noTrustAnchors")
        /// The image has no `.sdmagic` section of a systemd-stub whose measurement rules we know.
        public static let unsupportedStub = Code("unsupportedStub")
    }

    public let code: Code
    /// A sentence for a human: what failed and why.
    public let reason: String
    public let file: String
    public let line: Int

    public init(_ code: Code, _ reason: String, file: String = #fileID, line: Int = #line) {
        self.code = code
        self.reason = reason
        self.file = file
        self.line = line
    }

    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.code == rhs.code }
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }

    public var description: String { "\(code): \(reason)" }
}
