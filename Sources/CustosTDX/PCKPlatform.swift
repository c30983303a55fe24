public import CustosCrypto

/// Which Intel PCK CA issued a platform's PCK certificate. The PCK CRL of the platform's collateral must be that CA's
/// (PCS `GET /sgx/certification/v4/pckcrl?ca=platform|processor`): Intel issues PCK certificates of multi-package
/// platforms from the PCK Platform CA and those of single-package platforms from the PCK Processor CA, and the verifier
/// refuses a PCK CRL whose issuer is not the PCK certificate's (spec §2.1 step 10).
public enum PCKCertificateAuthority: String, Sendable, Hashable, CaseIterable, Codable {
    case platform
    case processor

    /// From a PCK CA certificate's common name (`Intel SGX PCK Platform CA`, `Intel SGX PCK Processor CA`); nil when it
    /// names neither.
    public init?(commonName: String?) {
        guard let commonName else { return nil }
        if commonName.hasSuffix("PCK Processor CA") {
            self = .processor
        } else if commonName.hasSuffix("PCK Platform CA") {
            self = .platform
        } else {
            return nil
        }
    }
}

/// What picks a platform's collateral: the FMSPC of its PCK certificate and the CA that issued it.
public struct PCKPlatform: Sendable, Hashable {
    /// The 6-byte FMSPC.
    public let fmspc: [UInt8]
    /// The issuing CA; ``PCKCertificateAuthority/platform`` when the CA's name is neither of Intel's two (the
    /// verifier then decides on the CRL's issuer).
    public let ca: PCKCertificateAuthority

    public init(fmspc: [UInt8], ca: PCKCertificateAuthority) {
        self.fmspc = fmspc
        self.ca = ca
    }

    /// The FMSPC in upper-case hex, then `-processor` for the Processor CA: the collateral cache's directory name
    /// (`DATA/collateral/<key>/`; the Platform CA's keeps the bare FMSPC of earlier releases).
    public var cacheKey: String {
        let fmspc = Hex.encode(fmspc).uppercased()
        return ca == .platform ? fmspc : "\(fmspc)-\(ca.rawValue)"
    }
}

extension Collateral {
    /// The CA whose CRL this collateral's PCK CRL is, from the CA certificate of its issuer chain; nil when the chain
    /// names neither of Intel's PCK CAs.
    public var pckCRLAuthority: PCKCertificateAuthority? {
        PCKCertificateAuthority(commonName: pckCRLIssuerChain.first { !$0.isSelfIssued }?.commonName)
    }
}
