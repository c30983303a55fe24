internal import COpenSSL
public import Foundation

/// A certificate chain that ``ChainVerifier`` verified: leaf first, trust anchor last.
public struct ValidatedChain: Sendable, Equatable {
    public let certificates: [Certificate]

    /// Only ``ChainVerifier`` makes these (there is no public initializer: a "validated" chain that was not validated
    /// is not expressible outside this module).
    init(verified certificates: [Certificate]) { self.certificates = certificates }

    public var leaf: Certificate? { certificates.first }
    public var anchor: Certificate? { certificates.last }
}

/// Custos's expiry rule (README "Expiry rule"): a certificate is valid while `notBefore <= at <= notAfter` and a CRL
/// while `thisUpdate <= at <= nextUpdate`, both ends inclusive as RFC 5280 §4.1.2.5 defines validity. OpenSSL's
/// `X509_cmp_time` counts the notAfter/nextUpdate second itself as expired; this callback accepts exactly that
/// second (and nothing else), so OpenSSL's checks and Custos's own date checks agree at the boundary.
private let inclusiveValidityCallback: @convention(c) (Int32, OpaquePointer?) -> Int32 = { ok, ctx in
    guard ok == 0, let ctx, let param = X509_STORE_CTX_get0_param(ctx) else { return ok }
    let time = X509_VERIFY_PARAM_get_time(param)
    switch X509_STORE_CTX_get_error(ctx) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
        guard let certificate = X509_STORE_CTX_get_current_cert(ctx), let notAfter = X509_get0_notAfter(certificate) else { return ok }
        return ASN1_TIME_cmp_time_t(notAfter, time) == 0 ? 1 : ok
    case X509_V_ERR_CRL_HAS_EXPIRED:
        guard let crl = X509_STORE_CTX_get0_current_crl(ctx), let nextUpdate = X509_CRL_get0_nextUpdate(crl) else { return ok }
        return ASN1_TIME_cmp_time_t(nextUpdate, time) == 0 ? 1 : ok
    default:
        return ok
    }
}

/// X.509 path validation by OpenSSL (`X509_verify_cert`) at a caller-given time, with CRLs.
public enum ChainVerifier {
    /// Which certificates must be covered by a CRL.
    public enum Revocation: Sendable, Equatable {
        /// No CRL checks.
        case none
        /// The leaf only (`X509_V_FLAG_CRL_CHECK`).
        case leaf
        /// Every certificate in the chain (`X509_V_FLAG_CRL_CHECK_ALL`).
        case all
    }

    public struct Options: Sendable {
        /// The verification time; `nil` skips validity-period checks (UEFI Secure Boot ignores time).
        public var time: Date?
        public var crls: [CertificateRevocationList]
        public var revocation: Revocation
        /// Accept a trust anchor that is not self-signed (an intermediate or the signer itself, as in a UEFI db).
        public var allowPartialChain: Bool
        /// Maximum chain depth (OpenSSL counts intermediates).
        public var maxDepth: Int

        public init(
            time: Date?, crls: [CertificateRevocationList] = [], revocation: Revocation = .none,
            allowPartialChain: Bool = false, maxDepth: Int = 8
        ) {
            self.time = time
            self.crls = crls
            self.revocation = revocation
            self.allowPartialChain = allowPartialChain
            self.maxDepth = maxDepth
        }
    }

    /// Verifies `leaf` up to one of `trustAnchors`.
    /// - Returns: the validated chain, leaf first.
    /// - Throws: ``CryptoError`` whose code says what failed and whose `certificate` names the certificate concerned.
    public static func verify(
        _ leaf: Certificate, intermediates: [Certificate] = [], trustAnchors: [Certificate], options: Options
    ) throws(CryptoError) -> ValidatedChain {
        guard !trustAnchors.isEmpty else { throw CryptoError(.untrustedChain, "no trust anchor given", certificate: leaf.subject) }
        guard let store = X509_STORE_new() else { throw .openSSL(.internalFailure, "X509_STORE_new failed") }
        defer { X509_STORE_free(store) }
        for anchor in trustAnchors {
            guard X509_STORE_add_cert(store, anchor.box.pointer) == 1 else {
                // Adding the same anchor twice is not an error worth failing for.
                _ = drainOpenSSLErrors()
                continue
            }
        }
        for crl in options.crls {
            guard X509_STORE_add_crl(store, crl.box.pointer) == 1 else {
                _ = drainOpenSSLErrors()
                continue
            }
        }
        guard let untrusted = COpenSSL_sk_X509_new_null() else { throw .openSSL(.internalFailure, "sk_X509_new_null failed") }
        defer { COpenSSL_sk_X509_free(untrusted) }
        for certificate in intermediates {
            guard COpenSSL_sk_X509_push(untrusted, certificate.box.pointer) > 0 else {
                throw .openSSL(.internalFailure, "sk_X509_push failed")
            }
        }
        guard let ctx = X509_STORE_CTX_new() else { throw .openSSL(.internalFailure, "X509_STORE_CTX_new failed") }
        defer { X509_STORE_CTX_free(ctx) }
        guard X509_STORE_CTX_init(ctx, store, leaf.box.pointer, untrusted) == 1, let param = X509_STORE_CTX_get0_param(ctx) else {
            throw .openSSL(.internalFailure, "X509_STORE_CTX_init failed")
        }
        var flags = UInt(0)
        if let time = options.time {
            X509_VERIFY_PARAM_set_time(param, time_t(time.timeIntervalSince1970.rounded(.down)))
        } else {
            flags |= UInt(X509_V_FLAG_NO_CHECK_TIME)
        }
        switch options.revocation {
        case .none: break
        case .leaf: flags |= UInt(X509_V_FLAG_CRL_CHECK)
        case .all: flags |= UInt(X509_V_FLAG_CRL_CHECK) | UInt(X509_V_FLAG_CRL_CHECK_ALL)
        }
        if options.allowPartialChain { flags |= UInt(X509_V_FLAG_PARTIAL_CHAIN) }
        X509_VERIFY_PARAM_set_flags(param, flags)
        X509_VERIFY_PARAM_set_depth(param, Int32(options.maxDepth))
        X509_STORE_CTX_set_verify_cb(ctx, inclusiveValidityCallback)

        guard X509_verify_cert(ctx) == 1 else {
            let error = X509_STORE_CTX_get_error(ctx)
            let depth = X509_STORE_CTX_get_error_depth(ctx)
            let subject = X509_STORE_CTX_get_current_cert(ctx).map { nameString(X509_get_subject_name($0)) } ?? leaf.subject
            let text = String(cString: X509_verify_cert_error_string(Int(error)))
            throw CryptoError(
                code(for: error), "\(text) (depth \(depth))", certificate: subject, openSSLErrors: drainOpenSSLErrors())
        }
        var chain: [Certificate] = []
        if let verified = X509_STORE_CTX_get0_chain(ctx) {
            for index in 0..<COpenSSL_sk_X509_num(verified) {
                guard let x509 = COpenSSL_sk_X509_value(verified, index) else { continue }
                // Share the verified X509 rather than re-parsing its DER (OpenSSL 3's key decoders made re-parsing the
                // largest cost of a cold TDX verification).
                chain.append(try Certificate(sharing: x509))
            }
        }
        return ValidatedChain(verified: chain)
    }

    static func code(for error: Int32) -> CryptoError.Code {
        switch error {
        case X509_V_ERR_CERT_HAS_EXPIRED: .certificateExpired
        case X509_V_ERR_CERT_NOT_YET_VALID: .certificateNotYetValid
        case X509_V_ERR_CERT_REVOKED: .certificateRevoked
        case X509_V_ERR_CERT_SIGNATURE_FAILURE, X509_V_ERR_UNABLE_TO_DECRYPT_CERT_SIGNATURE,
            X509_V_ERR_UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY:
            .certificateSignatureInvalid
        case X509_V_ERR_CRL_HAS_EXPIRED: .crlExpired
        case X509_V_ERR_CRL_NOT_YET_VALID: .crlNotYetValid
        case X509_V_ERR_UNABLE_TO_GET_CRL, X509_V_ERR_UNABLE_TO_GET_CRL_ISSUER: .crlMissing
        case X509_V_ERR_CRL_SIGNATURE_FAILURE, X509_V_ERR_UNABLE_TO_DECRYPT_CRL_SIGNATURE: .crlSignatureInvalid
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY,
            X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN, X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT, X509_V_ERR_CERT_UNTRUSTED,
            X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE, X509_V_ERR_CERT_CHAIN_TOO_LONG:
            .untrustedChain
        case X509_V_ERR_INVALID_CA, X509_V_ERR_PATH_LENGTH_EXCEEDED, X509_V_ERR_KEYUSAGE_NO_CERTSIGN,
            X509_V_ERR_KEYUSAGE_NO_CRL_SIGN:
            .invalidIssuer
        default: .chainInvalid
        }
    }
}
