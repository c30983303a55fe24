public import CustosCrypto
public import Foundation

// MARK: - Results

/// The final TCB status of a verified quote (spec §2.0 step 7, §2.5). Revoked and unsupported TCBs are rejections,
/// so they are not cases here.
public enum TCBStatus: String, Sendable, Codable, CaseIterable {
    case upToDate = "UpToDate"
    case swHardeningNeeded = "SWHardeningNeeded"
    case configurationNeeded = "ConfigurationNeeded"
    case configurationAndSWHardeningNeeded = "ConfigurationAndSWHardeningNeeded"
    case outOfDate = "OutOfDate"
    case outOfDateConfigurationNeeded = "OutOfDateConfigurationNeeded"
    case tdRelaunchAdvised = "TDRelaunchAdvised"
    case tdRelaunchAdvisedConfigurationNeeded = "TDRelaunchAdvisedConfigurationNeeded"
}

/// The TCB status of the Quoting Enclave against the QE Identity (spec §2.4 step 4.1.2.4.15).
public enum QETCBStatus: String, Sendable, Codable {
    case upToDate = "UpToDate"
    case outOfDate = "OutOfDate"
    case revoked = "Revoked"
    case notSupported = "NotSupported"
}

/// A quote that ``QuoteVerifier`` verified, with the claims a policy evaluates.
///
/// Only the verifier makes these; there is no public initializer.
public struct VerifiedQuote: Sendable {
    /// The parsed quote (its TD report holds MRTD, RTMRs, REPORTDATA, …).
    public let quote: Quote
    /// The merged status (spec §2.5 step 7).
    public let tcbStatus: TCBStatus
    /// Union of platform, TDX module and QE advisory IDs, platform first (spec §2.6).
    public let advisoryIDs: [String]
    /// Status of the matched platform TCB level (after the TDX module merge, spec §2.5 step 5).
    public let platformStatus: String
    public let platformAdvisoryIDs: [String]
    /// Status of the TDX module identity level, `nil` when TEE_TCB_SVN[1] = 0 (no module identity used).
    public let moduleStatus: String?
    public let moduleAdvisoryIDs: [String]
    public let qeStatus: QETCBStatus
    public let qeAdvisoryIDs: [String]
    /// The `tcbDate` of the matched platform level.
    public let tcbDate: String
    /// The PCK certificate's SGX extension (FMSPC, PCE-ID, SVNs).
    public let pck: PCKExtension
    /// The earliest nextUpdate/notAfter over all collateral and certificates (spec §2.0 step 4).
    public let collateralExpiry: Date
    /// SHA-256 of the trust anchor's DER.
    public let trustAnchorFingerprint: [UInt8]

    /// The TD report.
    public var td: TDReport { quote.body }
}

/// The outcome of ``QuoteVerifier/verify(quote:collateral:at:options:)``.
public enum QuoteVerificationResult: Sendable {
    case verified(VerifiedQuote)
    case rejected(TDXError)

    /// The verified quote, or `nil`.
    public var verifiedQuote: VerifiedQuote? {
        if case .verified(let quote) = self { return quote }
        return nil
    }

    /// The error, or `nil`.
    public var error: TDXError? {
        if case .rejected(let error) = self { return error }
        return nil
    }
}

/// Options of a verification.
public struct VerificationOptions: Sendable {
    /// Accept TDs with TDATTRIBUTES.DEBUG set (Intel QVL does; dcap-qvl and Custos by default do not).
    public var allowDebug: Bool

    public init(allowDebug: Bool = false) { self.allowDebug = allowDebug }
}

// MARK: - Verified collateral

/// Collateral whose signatures and chains were checked against a trust anchor, valid for ``validFrom``…``validUntil``.
public struct VerifiedCollateral: Sendable {
    public let collateral: Collateral
    /// The latest issueDate/thisUpdate/notBefore: before this the checks do not hold.
    public let validFrom: Date
    /// The earliest nextUpdate/notAfter: after this the checks do not hold.
    public let validUntil: Date
    let anchorDER: [UInt8]

    /// Whether the verification result holds at `time`.
    public func isValid(at time: Date) -> Bool { validFrom <= time && time <= validUntil }
}

// MARK: - Verifier

/// Verifies TDX DCAP quotes as Intel QVL does (spec §2), with dcap-qvl's stricter choices where they differ
/// (issue 3: reject expired collateral, future issueDate and debug TDs).
///
/// Pure: bytes, collateral and time in, a typed result out. An optional ``VerificationCache`` lets repeated
/// verifications skip re-checking collateral and PCK chains that have not changed.
public struct QuoteVerifier: Sendable {
    /// The trust anchor (the pinned Intel SGX Root CA, or a private test root).
    public let trustedRoot: Certificate
    /// Caches verified collateral and PCK chains; `nil` re-verifies everything each time.
    public let cache: VerificationCache?

    /// - Parameters:
    ///   - trustedRoot: the root CA every chain must end in (compared by signature bytes and key, spec §2.1 step 8).
    ///   - cache: an optional cache shared between verifications.
    public init(trustedRoot: Certificate, cache: VerificationCache? = nil) {
        self.trustedRoot = trustedRoot
        self.cache = cache
    }

    /// Parses and verifies a quote.
    /// - Parameters:
    ///   - quote: the quote bytes (trailing bytes ignored).
    ///   - collateral: the collateral for the quote's FMSPC.
    ///   - time: the verification time ("now").
    ///   - options: see ``VerificationOptions``.
    ///   - diagnosticCallback: receives each check as it passes, then the verdict (``VerificationDiagnostic``).
    /// - Returns: ``QuoteVerificationResult/verified(_:)`` or ``QuoteVerificationResult/rejected(_:)`` whose code names
    ///   the failed check.
    public func verify(
        quote: [UInt8], collateral: Collateral, at time: Date, options: VerificationOptions = .init(),
        diagnosticCallback: VerificationDiagnosticCallback? = nil
    ) -> QuoteVerificationResult {
        let parsed: Quote
        do { parsed = try Quote(parsing: quote) } catch {
            diagnosticCallback?(.rejected(error))
            return .rejected(error)
        }
        return verify(parsed: parsed, collateral: collateral, at: time, options: options, diagnosticCallback: diagnosticCallback)
    }

    /// Verifies a quote parsed by the caller (``Quote/init(parsing:)``), as ``verify(quote:collateral:at:options:diagnosticCallback:)``
    /// does for its bytes.
    public func verify(
        parsed quote: Quote, collateral: Collateral, at time: Date, options: VerificationOptions = .init(),
        diagnosticCallback: VerificationDiagnosticCallback? = nil
    ) -> QuoteVerificationResult {
        do {
            let verified = try checkCollateral(collateral, at: time, report: diagnosticCallback)
            let result = try checkQuote(quote, collateral: verified, at: time, options: options, report: diagnosticCallback)
            diagnosticCallback?(.verified(tcbStatus: result.tcbStatus, advisoryIDs: result.advisoryIDs))
            return .verified(result)
        } catch {
            diagnosticCallback?(.rejected(error))
            return .rejected(error)
        }
    }

    /// The FMSPC in the quote's PCK certificate (the first of its chain), to pick the platform's collateral before
    /// verifying. See ``pckPlatform(of:)``.
    public func platformFMSPC(of quote: Quote) throws(TDXError) -> [UInt8] { try pckPlatform(of: quote).fmspc }

    /// The FMSPC in the quote's PCK certificate (the first of its chain) and the PCK CA that issued it, to pick the
    /// platform's collateral before verifying. Only the chain's signatures are checked here: the PCK certificate must
    /// be signed by a CA of the chain that the trusted root signed (dates and revocation need the collateral, and are
    /// checked with it). Without this, a self-made certificate with a made-up FMSPC had the service fetch collateral
    /// from Intel PCS for it. Cached by the quote's certification data when the verifier has a cache.
    /// - Throws: ``TDXError`` `invalidPCKCertificate` (no or unreadable PCK certificate), `pckChainInvalid` (not signed
    ///   by way of the trusted root).
    public func pckPlatform(of quote: Quote) throws(TDXError) -> PCKPlatform {
        let key = Digest.sha256(quote.innerCertificationData)
        if let hit = cache?.platform(key) { return hit }
        let chain = try quote.pckCertificateChain()
        guard let leaf = chain.first else {
            throw TDXError(.invalidPCKCertificate, "the quote carries no PCK certificate")
        }
        guard let issuer = chain.dropFirst().first(where: { leaf.isSigned(by: $0) && $0.isSigned(by: trustedRoot) }) else {
            throw TDXError(.pckChainInvalid, "the PCK certificate is not signed by a CA of the trusted Intel SGX Root CA")
        }
        let platform = PCKPlatform(
            fmspc: try PCKExtension(certificate: leaf).fmspc, ca: PCKCertificateAuthority(commonName: issuer.commonName) ?? .platform)
        cache?.store(platform: platform, for: key)
        return platform
    }

    // MARK: Collateral (spec §2.2, §2.3)

    /// Checks collateral dates, issuer chains, CRL signatures and the TCB Info / QE Identity signatures at `time`.
    /// - Parameter diagnosticCallback: receives ``VerificationDiagnostic/collateralVerified(fmspc:tcbEvaluationDataNumber:validFrom:validUntil:)``
    ///   (or ``VerificationDiagnostic/collateralFromCache(validUntil:)``), or ``VerificationDiagnostic/rejected(_:)``.
    /// - Throws: ``TDXError`` (``TDXError/Code/collateralExpired``, ``TDXError/Code/tcbInfoSignatureInvalid``, …).
    public func verifyCollateral(
        _ collateral: Collateral, at time: Date, diagnosticCallback: VerificationDiagnosticCallback? = nil
    ) throws(TDXError) -> VerifiedCollateral {
        do {
            return try checkCollateral(collateral, at: time, report: diagnosticCallback)
        } catch {
            diagnosticCallback?(.rejected(error))
            throw error
        }
    }

    private func checkCollateral(_ collateral: Collateral, at time: Date, report: VerificationDiagnosticCallback?) throws(TDXError)
        -> VerifiedCollateral
    {
        if let cached = cache?.collateral(collateral.contentHash), cached.anchorDER == trustedRoot.der, cached.isValid(at: time) {
            report?(.collateralFromCache(validUntil: cached.validUntil))
            return cached
        }
        let tcb = collateral.tcbInfo
        let qe = collateral.qeIdentity
        // dcap-qvl order (its messages are the expected results): TCB Info dates, then QE Identity dates.
        guard time <= tcb.nextUpdate else { throw TDXError(.collateralExpired, "TCB Info expired at \(tcb.nextUpdate)") }
        guard time >= tcb.issueDate else { throw TDXError(.collateralNotYetValid, "TCB Info issue date \(tcb.issueDate) is in the future") }
        guard time <= qe.nextUpdate else { throw TDXError(.collateralExpired, "QE Identity expired at \(qe.nextUpdate)") }
        guard time >= qe.issueDate else {
            throw TDXError(.collateralNotYetValid, "QE Identity issue date \(qe.issueDate) is in the future")
        }

        // Both CRLs in their validity window (spec §2.1 step 14, QVL 79). Checked here, before OpenSSL path validation,
        // so that an expired CRL is reported as such whatever OpenSSL's CRL selection does with it.
        for (crl, name) in [(collateral.rootCACRL, "Root CA CRL"), (collateral.pckCRL, "PCK CRL")] {
            guard time >= crl.thisUpdate else {
                throw TDXError(.collateralNotYetValid, "\(name) thisUpdate \(crl.thisUpdate) is in the future")
            }
            // Inclusive, as every expiry in Custos (README "Expiry rule"): valid through the nextUpdate second.
            guard let next = crl.nextUpdate, time <= next else {
                throw TDXError(.collateralExpired, "\(name) expired at \(crl.nextUpdate.map { "\($0)" } ?? "(no nextUpdate)")")
            }
        }
        // Root CA CRL: issued and signed by the trusted root, with the required extensions (spec §2.1 step 9). Each
        // CRL's signature is checked once here; the chain checks below look serials up in the verified CRLs instead
        // of letting OpenSSL re-verify every CRL for every certificate.
        try checkCRL(collateral.rootCACRL, issuedBy: trustedRoot, name: "Root CA CRL")
        let tcbSigner = try signingCertificate(
            collateral.tcbInfoIssuerChain, name: "TCB Info issuer chain", crl: collateral.rootCACRL, at: time)
        guard case .ec(let tcbKey) = tcbSigner.publicKey,
            let tcbSignature = try? ECDSASignature(rawBigEndian: tcb.signature),
            tcbKey.isValidSignature(tcbSignature, for: tcb.signedBytes, digest: .sha256)
        else { throw TDXError(.tcbInfoSignatureInvalid, "the TCB Info signature does not verify over its exact bytes") }

        let qeSigner =
            collateral.qeIdentityIssuerChain == collateral.tcbInfoIssuerChain
            ? tcbSigner
            : try signingCertificate(
                collateral.qeIdentityIssuerChain, name: "QE Identity issuer chain", crl: collateral.rootCACRL, at: time)
        guard case .ec(let qeKey) = qeSigner.publicKey,
            let qeSignature = try? ECDSASignature(rawBigEndian: qe.signature),
            qeKey.isValidSignature(qeSignature, for: qe.signedBytes, digest: .sha256)
        else { throw TDXError(.qeIdentitySignatureInvalid, "the QE Identity signature does not verify over its exact bytes") }

        // PCK CRL issuer chain: the Platform/Processor CA to the root; the PCK CRL signed by it.
        guard let pckCA = collateral.pckCRLIssuerChain.first(where: { !isSelfIssued($0) }) else {
            throw TDXError(.crlInvalid, "the PCK CRL issuer chain has no CA certificate")
        }
        try checkRoot(of: collateral.pckCRLIssuerChain, name: "PCK CRL issuer chain")
        try verifyChain(pckCA, intermediates: [], at: time, failure: .crlInvalid, what: "PCK CRL issuer")
        guard !collateral.rootCACRL.lists(pckCA) else {
            throw TDXError(.intermediateCARevoked, "the PCK CRL issuer \(pckCA.subject) is revoked by the Root CA CRL")
        }
        try checkCRL(collateral.pckCRL, issuedBy: pckCA, name: "PCK CRL")

        var from = [tcb.issueDate, qe.issueDate, collateral.rootCACRL.thisUpdate, collateral.pckCRL.thisUpdate]
        var until = [
            tcb.nextUpdate, qe.nextUpdate, collateral.rootCACRL.nextUpdate ?? .distantPast, collateral.pckCRL.nextUpdate ?? .distantPast,
        ]
        for certificate in [tcbSigner, qeSigner, pckCA, trustedRoot] {
            from.append(certificate.notBefore)
            until.append(certificate.notAfter)
        }
        let verified = VerifiedCollateral(
            collateral: collateral, validFrom: from.max() ?? time, validUntil: until.min() ?? time, anchorDER: trustedRoot.der)
        cache?.store(verified)
        report?(
            .collateralVerified(
                fmspc: Hex.encode(tcb.fmspc).uppercased(), tcbEvaluationDataNumber: tcb.tcbEvaluationDataNumber,
                validFrom: verified.validFrom,
                validUntil: verified.validUntil))
        return verified
    }

    private func isSelfIssued(_ certificate: Certificate) -> Bool { certificate.isSelfIssued }

    /// The chain's self-issued root must be the trusted root: same signature bytes and key (spec §2.1 step 8).
    private func checkRoot(of chain: [Certificate], name: String) throws(TDXError) {
        guard let root = chain.first(where: isSelfIssued) else {
            throw TDXError(.untrustedRoot, "\(name) has no root certificate")
        }
        // The same DER is the same certificate; otherwise compare what QVL compares (cheap check first).
        guard root.der == trustedRoot.der || (root.signature == trustedRoot.signature && root.publicKey == trustedRoot.publicKey) else {
            throw TDXError(.untrustedRoot, "\(name) ends in \(root.subject), which is not the trusted root")
        }
    }

    /// Finds and checks the TCB signing certificate of an issuer chain (spec §2.2 step 1).
    private func signingCertificate(_ chain: [Certificate], name: String, crl: CertificateRevocationList, at time: Date) throws(TDXError)
        -> Certificate
    {
        guard chain.count == 2 else { throw TDXError(.tcbSigningChainInvalid, "\(name) has \(chain.count) certificates, not 2") }
        guard let signer = chain.first(where: { !isSelfIssued($0) && ($0.commonName ?? "").contains("SGX TCB Signing") }) else {
            throw TDXError(.tcbSigningChainInvalid, "\(name) has no Intel SGX TCB Signing certificate")
        }
        try checkRoot(of: chain, name: name)
        try verifyChain(signer, intermediates: [], at: time, failure: .tcbSigningChainInvalid, what: name)
        // QVL 27 TCB_SIGNING_CERT_REVOKED (the Root CA CRL itself was checked once in verifyCollateral).
        guard !crl.lists(signer) else { throw TDXError(.tcbSigningChainInvalid, "\(name): the TCB signing certificate is revoked") }
        return signer
    }

    /// A CRL from `issuer`: same issuer DN, cRLNumber and authorityKeyIdentifier present, no critical extension we do
    /// not understand, signature by `issuer`'s key (spec §2.1 steps 9–10: QVL 29, 31, 32). Validity dates are checked
    /// by the caller.
    private func checkCRL(_ crl: CertificateRevocationList, issuedBy issuer: Certificate, name: String) throws(TDXError) {
        guard crl.isIssued(bySubjectOf: issuer) else {
            throw TDXError(.crlInvalid, "\(name) is issued by \(crl.issuer), not \(issuer.subject)")
        }
        let extensions = crl.extensions
        let known: Set<String> = ["2.5.29.20", "2.5.29.35", "2.5.29.28"]  // cRLNumber, AKI, issuingDistributionPoint
        guard extensions.contains(where: { $0.oid == "2.5.29.20" }), extensions.contains(where: { $0.oid == "2.5.29.35" }) else {
            throw TDXError(.crlInvalid, "\(name) lacks the cRLNumber or authorityKeyIdentifier extension")
        }
        if let unknown = extensions.first(where: { $0.critical && !known.contains($0.oid) }) {
            throw TDXError(.crlInvalid, "\(name) has an unhandled critical extension \(unknown.oid)")
        }
        guard crl.isSigned(by: issuer) else { throw TDXError(.crlInvalid, "\(name) is not signed by \(issuer.subject)") }
    }

    /// OpenSSL path validation to the trusted root at `time`, mapping failures. Revocation is checked by the callers
    /// against CRLs whose signatures were verified once (``checkCRL(_:issuedBy:name:)``).
    ///
    /// `verifiedIssuer` is a CA already verified to the trusted root at `time` in this verification: the path then stops
    /// there (OpenSSL's partial chain), so its signature is not checked a second time.
    private func verifyChain(
        _ leaf: Certificate, intermediates: [Certificate], at time: Date, failure: TDXError.Code, what: String,
        revokedCode: TDXError.Code? = nil, verifiedIssuer: Certificate? = nil
    ) throws(TDXError) {
        do {
            if let verifiedIssuer {
                _ = try ChainVerifier.verify(
                    leaf, trustAnchors: [verifiedIssuer], options: .init(time: time, revocation: .none, allowPartialChain: true))
            } else {
                _ = try ChainVerifier.verify(
                    leaf, intermediates: intermediates, trustAnchors: [trustedRoot], options: .init(time: time, revocation: .none))
            }
        } catch {
            let code: TDXError.Code
            switch error.code {
            case .certificateExpired, .crlExpired: code = .collateralExpired
            case .certificateNotYetValid, .crlNotYetValid: code = .collateralNotYetValid
            case .certificateRevoked: code = revokedCode ?? failure
            case .crlSignatureInvalid, .crlMissing: code = .crlInvalid
            default: code = failure
            }
            throw TDXError(code, "\(what): \(error.reason)" + (error.certificate.map { " (\($0))" } ?? ""))
        }
    }

    // MARK: PCK chain (spec §2.1)

    /// The checked PCK leaf of a quote: its key and SGX extension.
    struct CheckedPCK: Sendable {
        let key: ECPublicKey
        let pckExtension: PCKExtension
        let validFrom: Date
        let validUntil: Date
    }

    func checkPCK(_ quote: Quote, collateral: VerifiedCollateral, at time: Date, report: VerificationDiagnosticCallback?) throws(TDXError)
        -> CheckedPCK
    {
        guard quote.innerCertificationDataType == 5 else {
            throw TDXError(
                .unsupportedQuoteFormat,
                "certification data type \(quote.innerCertificationDataType) carries no PCK chain (only type 5 is usable)")
        }
        let cacheKey = Digest.sha256(quote.innerCertificationData) + collateral.collateral.contentHash
        if let cached = cache?.pck(cacheKey), cached.validFrom <= time, time <= cached.validUntil {
            report?(
                .pckChainVerified(
                    fmspc: Hex.encode(cached.pckExtension.fmspc).uppercased(), pceSVN: cached.pckExtension.pceSVN, fromCache: true))
            return cached
        }
        let chain = try quote.pckCertificateChain(reusing: [trustedRoot] + collateral.collateral.pckCRLIssuerChain)
        guard chain.count == 3 else { throw TDXError(.pckChainInvalid, "the PCK chain has \(chain.count) certificates, not 3") }
        guard let root = chain.first(where: { isSelfIssued($0) && ($0.commonName ?? "").contains("SGX Root CA") }) else {
            throw TDXError(.pckChainInvalid, "the PCK chain has no Intel SGX Root CA")
        }
        guard let leaf = chain.first(where: { ($0.commonName ?? "").contains("SGX PCK Certificate") }) else {
            throw TDXError(.invalidPCKCertificate, "the PCK chain has no SGX PCK Certificate")
        }
        guard let intermediate = chain.first(where: { $0 != root && $0 != leaf && ($0.commonName ?? "").contains("CA") }) else {
            throw TDXError(.pckChainInvalid, "the PCK chain has no intermediate CA")
        }
        try checkRoot(of: [root], name: "PCK chain")
        let crls = collateral.collateral
        // The collateral's PCK CRL issuer was verified to the root at `time` (verifyCollateral); when the quote's
        // intermediate is that certificate, only the leaf's signature is left to check.
        let verifiedCA = crls.pckCRLIssuerChain.first { !isSelfIssued($0) && $0 == intermediate }
        try verifyChain(
            leaf, intermediates: [intermediate], at: time, failure: .pckChainInvalid, what: "PCK chain", revokedCode: .pckRevoked,
            verifiedIssuer: verifiedCA)
        // 4.1.2.4.6: the PCK CRL is the one of the leaf's issuer (checked after the chain, as QVL does), signed by the
        // quote's intermediate (already checked when it is the collateral's PCK CRL issuer, as it normally is).
        guard crls.pckCRL.isIssued(byIssuerOf: leaf) else {
            throw TDXError(.crlInvalid, "the PCK CRL is issued by \(crls.pckCRL.issuer), the PCK by \(leaf.issuer)")
        }
        if !crls.pckCRLIssuerChain.contains(intermediate) {
            try checkCRL(crls.pckCRL, issuedBy: intermediate, name: "PCK CRL")
        }
        // Spec §2.1 steps 11–12 (QVL 11, 16).
        guard !crls.rootCACRL.lists(intermediate) else {
            throw TDXError(.intermediateCARevoked, "the PCK chain's intermediate CA \(intermediate.subject) is revoked by the Root CA CRL")
        }
        guard !crls.pckCRL.lists(leaf) else { throw TDXError(.pckRevoked, "the PCK certificate is revoked") }
        let pckExtension = try PCKExtension(certificate: leaf)
        guard case .ec(let key) = leaf.publicKey, key.curve == .p256 else {
            throw TDXError(.invalidPCKCertificate, "the PCK key is not an EC P-256 key")
        }
        let checked = CheckedPCK(
            key: key, pckExtension: pckExtension,
            validFrom: max(collateral.validFrom, leaf.notBefore, intermediate.notBefore),
            validUntil: min(collateral.validUntil, leaf.notAfter, intermediate.notAfter))
        cache?.store(checked, for: cacheKey)
        report?(.pckChainVerified(fmspc: Hex.encode(pckExtension.fmspc).uppercased(), pceSVN: pckExtension.pceSVN, fromCache: false))
        return checked
    }

    // MARK: Quote (spec §2.4, §2.5)

    /// Verifies a parsed quote against verified collateral.
    /// - Parameter diagnosticCallback: receives each check as it passes, then the verdict (``VerificationDiagnostic``).
    /// - Throws: ``TDXError`` whose code names the failed check.
    public func verify(
        _ quote: Quote, collateral: VerifiedCollateral, at time: Date, options: VerificationOptions = .init(),
        diagnosticCallback: VerificationDiagnosticCallback? = nil
    ) throws(TDXError) -> VerifiedQuote {
        do {
            let result = try checkQuote(quote, collateral: collateral, at: time, options: options, report: diagnosticCallback)
            diagnosticCallback?(.verified(tcbStatus: result.tcbStatus, advisoryIDs: result.advisoryIDs))
            return result
        } catch {
            diagnosticCallback?(.rejected(error))
            throw error
        }
    }

    private func checkQuote(
        _ quote: Quote, collateral: VerifiedCollateral, at time: Date, options: VerificationOptions, report: VerificationDiagnosticCallback?
    ) throws(TDXError) -> VerifiedQuote {
        var collateral = collateral
        if collateral.anchorDER != trustedRoot.der || !collateral.isValid(at: time) {
            // Re-check at this time (a cached result from another time or anchor proves nothing here). Re-checking
            // happens once: a result still not valid at `time` is an error, never a reason to recurse.
            collateral = try checkCollateral(collateral.collateral, at: time, report: report)
            guard collateral.anchorDER == trustedRoot.der, collateral.isValid(at: time) else {
                throw TDXError(.collateralExpired, "the collateral is not valid at \(time)")
            }
        }
        let pck = try checkPCK(quote, collateral: collateral, at: time, report: report)
        let tcbInfo = collateral.collateral.tcbInfo
        let qeIdentity = collateral.collateral.qeIdentity
        let body = quote.body
        let svn = body.teeTCBSVN

        // 4.1.2.4.10: FMSPC and PCE-ID.
        guard pck.pckExtension.fmspc == tcbInfo.fmspc, pck.pckExtension.pceID == tcbInfo.pceID else {
            throw TDXError(
                .tcbInfoMismatch,
                "PCK FMSPC \(Hex.encode(pck.pckExtension.fmspc)) / PCE-ID \(Hex.encode(pck.pckExtension.pceID)) differ from the TCB Info's "
                    + "\(Hex.encode(tcbInfo.fmspc)) / \(Hex.encode(tcbInfo.pceID))")
        }
        // 4.1.2.4.11: TDX module identity, MRSIGNERSEAM and SEAMATTRIBUTES.
        let module: TDXModuleIdentity
        if svn[1] > 0 {
            guard tcbInfo.tdxModuleIdentities != nil else {
                throw TDXError(.tcbInfoMismatch, "TEE_TCB_SVN[1] = \(svn[1]) but the TCB Info has no tdxModuleIdentities")
            }
            guard let identity = tcbInfo.moduleIdentity(majorVersion: svn[1]) else {
                throw TDXError(.tdxModuleMismatch, "no TDX module identity for major version \(svn[1])")
            }
            module = identity
        } else {
            module = tcbInfo.tdxModule
        }
        guard body.mrSignerSeam == module.mrSigner else {
            throw TDXError(.tdxModuleMismatch, "MRSIGNERSEAM differs from the TDX module identity's mrsigner")
        }
        guard body.seamAttributes.allSatisfy({ $0 == 0 }), body.seamAttributes == module.attributes else {
            throw TDXError(.tdxModuleMismatch, "SEAMATTRIBUTES \(Hex.encode(body.seamAttributes)) are not zero")
        }
        report?(.tdxModuleIdentityMatched(id: svn[1] > 0 ? module.id : "tdxModule"))
        // 4.1.2.4.12: QE report signed by the PCK key.
        let qeSignatureKey = cache.map { _ in Digest.sha256(pck.key.x + pck.key.y + quote.qeReport.raw + quote.qeReportSignature) }
        if let qeSignatureKey, cache?.qeReportSignatureVerified(qeSignatureKey) == true {
            // The same key, report and signature verified before (see VerificationCache).
        } else {
            guard let qeSignature = try? ECDSASignature(rawBigEndian: quote.qeReportSignature),
                pck.key.isValidSignature(qeSignature, for: quote.qeReport.raw, digest: .sha256)
            else { throw TDXError(.qeReportSignatureInvalid, "the QE report signature does not verify with the PCK key") }
            if let qeSignatureKey { cache?.storeQEReportSignatureVerified(qeSignatureKey) }
        }
        report?(.qeReportSignatureVerified)
        // 4.1.2.4.13: QE REPORTDATA = SHA-256(attestation key ‖ QE auth data) ‖ 32 zero bytes.
        let binding = Digest.sha256(quote.attestationKey + quote.qeAuthData)
        let reportData = quote.qeReport.reportData
        guard constantTimeEqual(Array(reportData[0..<32]), binding), reportData[32...].allSatisfy({ $0 == 0 }) else {
            throw TDXError(.qeReportDataMismatch, "QE REPORTDATA is not SHA-256(attestation key ‖ QE auth data) ‖ 0^32")
        }
        report?(.attestationKeyBound)
        // 4.1.2.4.14/15: QE identity.
        let qe = quote.qeReport
        guard qeIdentity.id == "TD_QE", qeIdentity.version == 2 else {
            throw TDXError(.qeIdentityMismatch, "QE identity \(qeIdentity.id) v\(qeIdentity.version) is not TD_QE v2")
        }
        guard qe.miscSelect & qeIdentity.miscSelectMask == qeIdentity.miscSelect else {
            throw TDXError(.qeIdentityMismatch, "QE MISCSELECT does not match the QE identity")
        }
        guard zip(qe.attributes, qeIdentity.attributesMask).map({ $0 & $1 }) == qeIdentity.attributes else {
            throw TDXError(.qeIdentityMismatch, "QE ATTRIBUTES do not match the QE identity")
        }
        guard qe.mrSigner == qeIdentity.mrSigner else { throw TDXError(.qeIdentityMismatch, "QE MRSIGNER does not match the QE identity") }
        guard Int(qe.isvProdID) == qeIdentity.isvProdID else {
            throw TDXError(.qeIdentityMismatch, "QE ISVPRODID \(qe.isvProdID) ≠ \(qeIdentity.isvProdID)")
        }
        let qeLevel = qeIdentity.tcbLevels.first { $0.isvSVN <= Int(qe.isvSVN) }
        let qeStatus: QETCBStatus =
            switch qeLevel?.tcbStatus {
            case nil: .notSupported
            case "UpToDate": .upToDate
            case "Revoked": .revoked
            default: .outOfDate
            }
        report?(.qeIdentityMatched(isvSVN: Int(qe.isvSVN), status: qeStatus))
        // Attestation key and quote signature (4.1.2.4.16).
        let attestationKey: ECPublicKey
        if let cached = cache?.attestationKey(quote.attestationKey) {
            attestationKey = cached
        } else {
            guard
                let parsed = try? ECPublicKey(
                    curve: .p256, x: Array(quote.attestationKey[0..<32]), y: Array(quote.attestationKey[32...]))
            else { throw TDXError(.unsupportedQuoteFormat, "the attestation key is not a P-256 point") }
            cache?.store(attestationKey: parsed, for: quote.attestationKey)
            attestationKey = parsed
        }
        guard let quoteSignature = try? ECDSASignature(rawBigEndian: quote.signature),
            attestationKey.isValidSignature(quoteSignature, for: quote.signedRegion, digest: .sha256)
        else { throw TDXError(.quoteSignatureInvalid, "the quote signature does not verify with the attestation key") }
        report?(.quoteSignatureVerified)

        // 4.1.2.4.17: TCB level matching and merge (spec §2.5).
        let evaluation = try TCBEvaluation(quote: quote, pck: pck.pckExtension, tcbInfo: tcbInfo, qeStatus: qeStatus)
        report?(
            .tcbLevelMatched(tcbDate: evaluation.tcbDate, platformStatus: evaluation.platformStatus, moduleStatus: evaluation.moduleStatus))

        if body.isDebug {
            guard options.allowDebug else { throw TDXError(.debugTD, "TDATTRIBUTES.DEBUG is set: the TD is a debug TD") }
            report?(.debugTDAllowed)
        }
        var advisories: [String] = []
        for id in evaluation.platformAdvisoryIDs + evaluation.moduleAdvisoryIDs + (qeLevel?.advisoryIDs ?? [])
        where !advisories.contains(id) {
            advisories.append(id)
        }
        return VerifiedQuote(
            quote: quote, tcbStatus: evaluation.status, advisoryIDs: advisories, platformStatus: evaluation.platformStatus,
            platformAdvisoryIDs: evaluation.platformAdvisoryIDs, moduleStatus: evaluation.moduleStatus,
            moduleAdvisoryIDs: evaluation.moduleAdvisoryIDs, qeStatus: qeStatus, qeAdvisoryIDs: qeLevel?.advisoryIDs ?? [],
            tcbDate: evaluation.tcbDate, pck: pck.pckExtension, collateralExpiry: pck.validUntil,
            trustAnchorFingerprint: trustedRoot.fingerprintSHA256)
    }
}
