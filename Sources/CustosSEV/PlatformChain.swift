public import CustosCrypto

/// The platform half of the chain as the host exports it: PDH, PEK, OCA, CEK (not yet verified).
public struct PlatformCertificates: Sendable, Equatable {
    public let pdh: SEVCertificate
    public let pek: SEVCertificate
    public let oca: SEVCertificate
    public let cek: SEVCertificate

    public init(pdh: SEVCertificate, pek: SEVCertificate, oca: SEVCertificate, cek: SEVCertificate) {
        self.pdh = pdh
        self.pek = pek
        self.oca = oca
        self.cek = cek
    }

    /// From the PDH and the `PDH_CERT_EXPORT` CERTS buffer, PEK ‖ OCA ‖ CEK (3 × 0x824 bytes).
    /// - Throws: ``SEVError``: `.truncated`/`.trailingBytes` if the buffer is not exactly 6252 bytes, or a parse
    ///   error of one certificate (its offset is relative to the buffer).
    public init(pdh: [UInt8], certChain: [UInt8]) throws(SEVError) {
        let size = SEVCertificate.size
        guard certChain.count >= 3 * size else {
            throw SEVError(
                .truncated, "cert-chain must be PEK ‖ OCA ‖ CEK = \(3 * size) bytes, got \(certChain.count)", offset: certChain.count)
        }
        guard certChain.count == 3 * size else {
            throw SEVError(.trailingBytes, "cert-chain has \(certChain.count - 3 * size) bytes after PEK ‖ OCA ‖ CEK", offset: 3 * size)
        }
        func parse(_ index: Int, _ name: String) throws(SEVError) -> SEVCertificate {
            do throws(SEVError) { return try SEVCertificate(bytes: Array(certChain[index * size..<(index + 1) * size])) } catch {
                throw SEVError(error.code, "\(name) in cert-chain: \(error.reason)", offset: error.offset.map { $0 + index * size })
            }
        }
        let pdhCert: SEVCertificate
        do throws(SEVError) { pdhCert = try SEVCertificate(bytes: pdh) } catch {
            throw SEVError(error.code, "PDH: \(error.reason)", offset: error.offset)
        }
        self.init(pdh: pdhCert, pek: try parse(0, "PEK"), oca: try parse(1, "OCA"), cek: try parse(2, "CEK"))
    }

    /// From libvirt's `virNodeGetSEVInfo` parameters: base64 `pdh` and base64 `cert-chain` (PEK ‖ OCA ‖ CEK).
    public init(libvirtPDH pdh: String, certChain: String) throws(SEVError) {
        let pdhBytes: [UInt8]
        let chainBytes: [UInt8]
        do { pdhBytes = try Base64.decode(pdh) } catch { throw SEVError(.invalidValue, "pdh is not base64") }
        do { chainBytes = try Base64.decode(certChain) } catch { throw SEVError(.invalidValue, "cert-chain is not base64") }
        try self.init(pdh: pdhBytes, certChain: chainBytes)
    }

    /// The `cert-chain` buffer, PEK ‖ OCA ‖ CEK.
    public var certChain: [UInt8] { pek.bytes + oca.bytes + cek.bytes }
}

/// A link of the SEV chain, named in failures and diagnostics.
public enum ChainLink: String, Sendable, Hashable, Codable, CaseIterable {
    case arkSelfSignature = "ARK self-signature"
    case askByARK = "ARK → ASK"
    case cekByASK = "ASK → CEK"
    case ocaSelfSignature = "OCA self-signature"
    case ocaPinned = "OCA pinned"
    case pekByOCA = "OCA → PEK"
    case pekByCEK = "CEK → PEK"
    case pdhByPEK = "PEK → PDH"
    case usage = "key usage"
}

/// Why a chain was rejected: the link that broke and the error.
public struct ChainFailure: Error, Sendable, Hashable, CustomStringConvertible {
    public let link: ChainLink
    public let error: SEVError
    public init(link: ChainLink, error: SEVError) {
        self.link = link
        self.error = error
    }
    public var description: String { "\(link.rawValue): \(error)" }
}

/// What the verifier did, step by step (for the audit log).
public enum ChainDiagnostic: Sendable, Hashable {
    case rootsVerified(ProductLine)
    case rootsRejected(ProductLine, SEVError.Code)
    case cekTried(ProductLine, verified: Bool)
    case linkVerified(ChainLink)
}

/// A platform chain that verified: only ``SEVChainVerifier`` makes one.
public struct ValidatedPlatformChain: Sendable, Equatable {
    /// The product line whose ASK signed the CEK.
    public let productLine: ProductLine
    public let roots: AMDRoots
    public let platform: PlatformCertificates
    /// The trusted PDH: the ECDH peer for the launch session.
    public var pdh: SEVCertificate { platform.pdh }

    init(productLine: ProductLine, roots: AMDRoots, platform: PlatformCertificates) {
        self.productLine = productLine
        self.roots = roots
        self.platform = platform
    }

    /// - Warning: skips every check; for tests and tools that build chains they already trust.
    public init(uncheckedProductLine productLine: ProductLine, roots: AMDRoots, platform: PlatformCertificates) {
        self.init(productLine: productLine, roots: roots, platform: platform)
    }
}

/// The outcome of chain verification.
public enum ChainVerificationResult: Sendable, Equatable {
    case verified(ValidatedPlatformChain)
    case rejected(ChainFailure)
}

/// Verifies PDH ← PEK ← CEK ← ASK ← ARK and PEK ← OCA (virtee `Chain::verify`, `sevctl verify`; sev.md §1.2).
public enum SEVChainVerifier {
    /// Verifies a platform chain against pinned roots and detects its product line.
    ///
    /// The CEK is tried against each product line's ASK in order (virtee `Generation::try_from`); the one that
    /// verifies names the product line. Roots that do not verify themselves are skipped and reported.
    /// - Parameters:
    ///   - platform: the host's PDH, PEK, OCA, CEK.
    ///   - roots: pinned ARK/ASK pairs, one per product line to accept.
    ///   - pinnedOCA: for an externally owned platform, the owner's OCA; the platform's must equal it. When nil,
    ///     a self-signed OCA is accepted (self-owned platform).
    ///   - diagnostics: receives each step.
    /// - Returns: `.verified` with the product line, or `.rejected` naming the first broken link.
    public static func verify(
        _ platform: PlatformCertificates, roots: [AMDRoots], pinnedOCA: SEVCertificate? = nil,
        diagnostics: ((ChainDiagnostic) -> Void)? = nil
    ) -> ChainVerificationResult {
        func fail(_ link: ChainLink, _ error: SEVError) -> ChainVerificationResult { .rejected(ChainFailure(link: link, error: error)) }

        // Usages first: a PDH passed as a PEK must not get as far as a signature check.
        let expected: [(SEVCertificate, SEVCertificate.Usage)] = [
            (platform.pdh, .pdh), (platform.pek, .pek), (platform.oca, .oca), (platform.cek, .cek),
        ]
        for (cert, usage) in expected where cert.usage != usage {
            return fail(.usage, SEVError(.chainMismatch, "expected a \(usage) certificate, got \(cert.usage)"))
        }
        guard platform.pdh.algorithm.isECDH else {
            return fail(.usage, SEVError(.chainMismatch, "PDH algorithm is \(platform.pdh.algorithm), expected ECDH"))
        }
        // The GODH is made on the PDH's curve, and the launch session is specified on P-384 (sev.md §1.2, §2.1): every
        // AMD firmware's PDH is.
        guard platform.pdh.publicKey.curve == .p384 else {
            return fail(.usage, SEVError(.chainMismatch, "the PDH key is on \(platform.pdh.publicKey.curve), not P-384"))
        }

        // ARK/ASK, then which ASK signed the CEK.
        var lastRootError: (ChainLink, SEVError)? = nil
        var chosen: AMDRoots? = nil
        for candidate in roots {
            do throws(ChainFailure) {
                try candidate.verifyLinks()
                diagnostics?(.rootsVerified(candidate.productLine))
            } catch {
                diagnostics?(.rootsRejected(candidate.productLine, error.error.code))
                lastRootError = (error.link, error.error)
                continue
            }
            do throws(SEVError) {
                try platform.cek.verifySignature(by: candidate.ask)
                diagnostics?(.cekTried(candidate.productLine, verified: true))
                chosen = candidate
                break
            } catch {
                diagnostics?(.cekTried(candidate.productLine, verified: false))
                lastRootError = (.cekByASK, error)
            }
        }
        guard let chosen else {
            if roots.count == 1, let lastRootError { return fail(lastRootError.0, lastRootError.1) }
            let tried = roots.map(\.productLine.name).joined(separator: ", ")
            return fail(
                .cekByASK,
                SEVError(
                    .unknownProductLine, "the CEK is not signed by the ASK of any product line tried (\(tried.isEmpty ? "none" : tried))"))
        }
        diagnostics?(.linkVerified(.arkSelfSignature))
        diagnostics?(.linkVerified(.askByARK))
        diagnostics?(.linkVerified(.cekByASK))

        if let pinnedOCA {
            guard pinnedOCA.bytes == platform.oca.bytes else {
                return fail(
                    .ocaPinned, SEVError(.untrustedOCA, "the platform OCA (\(Hex.encode(platform.oca.displayHash))) is not the pinned OCA"))
            }
            diagnostics?(.linkVerified(.ocaPinned))
        } else {
            do throws(SEVError) { try platform.oca.verifySignature(by: platform.oca) } catch { return fail(.ocaSelfSignature, error) }
            diagnostics?(.linkVerified(.ocaSelfSignature))
        }
        do throws(SEVError) { try platform.pek.verifySignature(by: platform.oca) } catch { return fail(.pekByOCA, error) }
        diagnostics?(.linkVerified(.pekByOCA))
        do throws(SEVError) { try platform.pek.verifySignature(by: platform.cek) } catch { return fail(.pekByCEK, error) }
        diagnostics?(.linkVerified(.pekByCEK))
        do throws(SEVError) { try platform.pdh.verifySignature(by: platform.pek) } catch { return fail(.pdhByPEK, error) }
        diagnostics?(.linkVerified(.pdhByPEK))
        return .verified(ValidatedPlatformChain(productLine: chosen.productLine, roots: chosen, platform: platform))
    }
}
