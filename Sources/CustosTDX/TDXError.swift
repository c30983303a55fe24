/// The one error type of `CustosTDX`: a code saying which check failed, a reason, and for parse errors the field
/// and byte offset concerned.
///
/// Equal by ``code`` only (as swift-certificates' `CertificateError`), which keeps tests simple. Codes are an
/// extensible struct of `static let` values rather than an enum, so adding a check does not break callers.
public struct TDXError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Which check failed. Names follow Intel QVL's `STATUS_*` values where one exists (spec §2).
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The code's stable name (used in JSON output).
        public let name: String
        /// Makes a code.
        public init(_ name: String) { self.name = name }
        /// The name.
        public var description: String { name }

        // MARK: Parsing (QVL 37 UNSUPPORTED_QUOTE_FORMAT)
        /// The quote is truncated or internally inconsistent (spec §1); ``TDXError/field`` and ``TDXError/offset`` say where.
        public static let malformedQuote = Code("malformedQuote")
        /// The quote is well formed but of a kind Custos does not verify (version, key type, TEE type, QE vendor,
        /// certification data type).
        public static let unsupportedQuoteFormat = Code("unsupportedQuoteFormat")
        /// The PCK certificate is missing, unparseable, or its SGX extension is malformed (QVL 39 INVALID_PCK_CERT).
        public static let invalidPCKCertificate = Code("invalidPCKCertificate")

        // MARK: Collateral
        /// Collateral JSON, PEM or CRL could not be parsed, or a required field is missing or ill-formed (QVL 19/58).
        public static let malformedCollateral = Code("malformedCollateral")
        /// The TCB Info signature does not verify over its exact bytes (QVL 21).
        public static let tcbInfoSignatureInvalid = Code("tcbInfoSignatureInvalid")
        /// The QE Identity signature does not verify over its exact bytes (QVL 76).
        public static let qeIdentitySignatureInvalid = Code("qeIdentitySignatureInvalid")
        /// The TCB signing chain does not lead to the trusted root, or a certificate in it is revoked (QVL 22–27).
        public static let tcbSigningChainInvalid = Code("tcbSigningChainInvalid")
        /// A CRL is not signed by its issuer or has the wrong issuer (QVL 29–32, 41).
        public static let crlInvalid = Code("crlInvalid")
        /// Collateral or a certificate/CRL is past its `nextUpdate`/notAfter at the verification time (QVL 75, 78–81;
        /// Custos rejects, as dcap-qvl does).
        public static let collateralExpired = Code("collateralExpired")
        /// Collateral `issueDate`, a CRL's thisUpdate or a certificate's notBefore is after the verification time.
        public static let collateralNotYetValid = Code("collateralNotYetValid")

        // MARK: PCK chain (spec §2.1)
        /// The PCK chain does not verify to the trusted root (QVL 2–15, 18).
        public static let pckChainInvalid = Code("pckChainInvalid")
        /// The chain's root is not the trusted root (QVL 18 SGX_PCK_CERT_CHAIN_UNTRUSTED).
        public static let untrustedRoot = Code("untrustedRoot")
        /// The PCK leaf is listed in the PCK CRL (QVL 16 SGX_PCK_REVOKED).
        public static let pckRevoked = Code("pckRevoked")
        /// The PCK Platform/Processor CA is listed in the Root CA CRL (QVL 11 SGX_INTERMEDIATE_CA_REVOKED).
        public static let intermediateCARevoked = Code("intermediateCARevoked")

        // MARK: Quote (spec §2.4)
        /// FMSPC/PCE-ID differ between PCK and TCB Info, or the TCB Info is not a TDX v3 one (QVL 44).
        public static let tcbInfoMismatch = Code("tcbInfoMismatch")
        /// MRSIGNERSEAM/SEAMATTRIBUTES differ from the TDX module identity, or the identity is absent (QVL 85).
        public static let tdxModuleMismatch = Code("tdxModuleMismatch")
        /// The QE report signature does not verify with the PCK key (QVL 55).
        public static let qeReportSignatureInvalid = Code("qeReportSignatureInvalid")
        /// QE REPORTDATA ≠ SHA-256(attestation key ‖ QE auth data) ‖ 0³² (QVL 56).
        public static let qeReportDataMismatch = Code("qeReportDataMismatch")
        /// The QE report does not match the QE Identity (QVL 74).
        public static let qeIdentityMismatch = Code("qeIdentityMismatch")
        /// The quote signature does not verify with the attestation key (QVL 57).
        public static let quoteSignatureInvalid = Code("quoteSignatureInvalid")
        /// No TCB level matches the platform, or the QE TCB is not supported (QVL 49).
        public static let tcbNotSupported = Code("tcbNotSupported")
        /// The matched TCB level, TDX module level or QE level is Revoked (QVL 46).
        public static let tcbRevoked = Code("tcbRevoked")
        /// A TCB status string not defined by Intel (QVL 50).
        public static let tcbUnrecognizedStatus = Code("tcbUnrecognizedStatus")
        /// The TD runs with TDATTRIBUTES.DEBUG set and debug TDs are not allowed (dcap-qvl rule, spec §8 trap 14).
        public static let debugTD = Code("debugTD")

        // MARK: Event log (spec §4.3)
        /// The CCEL table or TCG2 event log is truncated or inconsistent.
        public static let malformedEventLog = Code("malformedEventLog")
    }

    /// Which check failed.
    public let code: Code
    /// A human-readable explanation.
    public let reason: String
    /// The quote/log field being parsed, for parse errors.
    public let field: String?
    /// The absolute byte offset of ``field``, for parse errors.
    public let offset: Int?
    public let file: String
    public let line: Int

    /// Makes an error.
    public init(
        _ code: Code, _ reason: String, field: String? = nil, offset: Int? = nil, file: String = #fileID, line: Int = #line
    ) {
        self.code = code
        self.reason = reason
        self.field = field
        self.offset = offset
        self.file = file
        self.line = line
    }

    public static func == (lhs: TDXError, rhs: TDXError) -> Bool { lhs.code == rhs.code }
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }

    /// `code: reason`, with field and offset when known.
    public var description: String {
        var text = "\(code): \(reason)"
        if let field { text += " [field \(field)" + (offset.map { " at offset \($0)" } ?? "") + "]" }
        return text
    }
}
