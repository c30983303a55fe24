/// The one error type of ``CustosCrypto``.
///
/// Errors are equal by ``code`` only, so tests can compare against `CryptoError.Code` values while the
/// ``reason``, the certificate concerned and OpenSSL's error queue still reach the user.
public struct CryptoError: Error, Hashable, Sendable, CustomStringConvertible {
    /// An extensible error code (a struct of `static let` values, not an enum, so new codes do not break users).
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        public init(_ name: String) { self.name = name }
        public var description: String { name }

        /// Bytes that should be DER, PEM, a key or a signature could not be decoded.
        public static let malformedInput = Code("malformedInput")
        /// A key, IV, nonce or parameter has an unsupported length or value.
        public static let invalidParameter = Code("invalidParameter")
        /// An algorithm, curve or key type that this module does not support.
        public static let unsupportedAlgorithm = Code("unsupportedAlgorithm")
        /// Authenticated decryption failed: wrong key, nonce, AAD or a tampered ciphertext/tag.
        public static let authenticationFailure = Code("authenticationFailure")
        /// A signature did not verify.
        public static let signatureInvalid = Code("signatureInvalid")
        /// An OpenSSL call failed for a reason other than bad input (allocation, internal state).
        public static let internalFailure = Code("internalFailure")

        // Chain verification (X509_verify_cert mapped to our codes).
        /// A certificate in the chain is past its notAfter at the verification time.
        public static let certificateExpired = Code("certificateExpired")
        /// A certificate in the chain is before its notBefore at the verification time.
        public static let certificateNotYetValid = Code("certificateNotYetValid")
        /// A certificate in the chain is listed in its issuer's CRL.
        public static let certificateRevoked = Code("certificateRevoked")
        /// A certificate's signature does not verify under its issuer's key.
        public static let certificateSignatureInvalid = Code("certificateSignatureInvalid")
        /// No issuer certificate was found for a certificate, or the chain does not end at a trust anchor.
        public static let untrustedChain = Code("untrustedChain")
        /// An issuer is not allowed to act as a CA (basic constraints, key usage, path length).
        public static let invalidIssuer = Code("invalidIssuer")
        /// A CRL is past its nextUpdate at the verification time.
        public static let crlExpired = Code("crlExpired")
        /// A CRL's thisUpdate is after the verification time.
        public static let crlNotYetValid = Code("crlNotYetValid")
        /// A required CRL is missing.
        public static let crlMissing = Code("crlMissing")
        /// A CRL's signature does not verify under its issuer's key.
        public static let crlSignatureInvalid = Code("crlSignatureInvalid")
        /// The chain failed for another reason OpenSSL reported.
        public static let chainInvalid = Code("chainInvalid")
        /// The signed content's digest does not match what the signature covers (PKCS#7 / Authenticode).
        public static let digestMismatch = Code("digestMismatch")
    }

    public let code: Code
    /// A sentence for a human: what failed and why.
    public let reason: String
    /// The subject of the certificate the failure concerns, when there is one.
    public let certificate: String?
    /// OpenSSL's error queue at the time of failure, oldest first.
    public let openSSLErrors: [String]
    public let file: String
    public let line: Int

    public init(
        _ code: Code, _ reason: String, certificate: String? = nil, openSSLErrors: [String] = [],
        file: String = #fileID, line: Int = #line
    ) {
        self.code = code
        self.reason = reason
        self.certificate = certificate
        self.openSSLErrors = openSSLErrors
        self.file = file
        self.line = line
    }

    public static func == (lhs: CryptoError, rhs: CryptoError) -> Bool { lhs.code == rhs.code }
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }

    public var description: String {
        var text = "\(code): \(reason)"
        if let certificate { text += " [certificate: \(certificate)]" }
        if !openSSLErrors.isEmpty { text += " (OpenSSL: \(openSSLErrors.joined(separator: "; ")))" }
        return text
    }
}
