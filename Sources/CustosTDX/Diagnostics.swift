public import Foundation

/// One step of a quote verification, emitted in the order the checks ran (STYLE §8, after swift-certificates'
/// `VerificationDiagnostic`). The log says *why* a quote was accepted or rejected; the audit log records it.
///
/// Values only: a diagnostic carries no key material and no secret, only what a reviewer needs to retrace the
/// decision.
public enum VerificationDiagnostic: Hashable, Sendable, CustomStringConvertible {
    /// The collateral was verified earlier against the same trust anchor and is still inside its validity window.
    case collateralFromCache(validUntil: Date)
    /// Collateral dates, both CRLs, both issuer chains, and the TCB Info and QE Identity signatures checked.
    case collateralVerified(fmspc: String, tcbEvaluationDataNumber: Int, validFrom: Date, validUntil: Date)
    /// The PCK chain leads to the trust anchor at the verification time and neither the leaf nor its CA is revoked;
    /// `fromCache` when the same chain was checked against the same collateral before.
    case pckChainVerified(fmspc: String, pceSVN: Int, fromCache: Bool)
    /// The TDX module identity used: `TDX_xx` from `tdxModuleIdentities`, or `tdxModule` when TEE_TCB_SVN[1] = 0.
    case tdxModuleIdentityMatched(id: String)
    /// The QE report is signed by the PCK key.
    case qeReportSignatureVerified
    /// QE REPORTDATA binds the attestation key and QE authentication data.
    case attestationKeyBound
    /// The QE report matches the TD_QE identity; its ISVSVN falls in a level with this status.
    case qeIdentityMatched(isvSVN: Int, status: QETCBStatus)
    /// The quote (header and TD report) is signed by the attestation key.
    case quoteSignatureVerified
    /// The platform TCB level matched (by its `tcbDate`), with the platform and TDX module statuses.
    case tcbLevelMatched(tcbDate: String, platformStatus: String, moduleStatus: String?)
    /// TDATTRIBUTES.DEBUG is set and the caller allowed debug TDs.
    case debugTDAllowed
    /// The verdict: verified with this merged status and these advisories.
    case verified(tcbStatus: TCBStatus, advisoryIDs: [String])
    /// The verdict: rejected by this check (equal by code, as ``TDXError`` is).
    case rejected(TDXError)

    /// A stable name for JSON (`collateralVerified`, `rejected`, …).
    public var name: String {
        switch self {
        case .collateralFromCache: "collateralFromCache"
        case .collateralVerified: "collateralVerified"
        case .pckChainVerified: "pckChainVerified"
        case .tdxModuleIdentityMatched: "tdxModuleIdentityMatched"
        case .qeReportSignatureVerified: "qeReportSignatureVerified"
        case .attestationKeyBound: "attestationKeyBound"
        case .qeIdentityMatched: "qeIdentityMatched"
        case .quoteSignatureVerified: "quoteSignatureVerified"
        case .tcbLevelMatched: "tcbLevelMatched"
        case .debugTDAllowed: "debugTDAllowed"
        case .verified: "verified"
        case .rejected: "rejected"
        }
    }

    /// One human-readable line.
    public var description: String {
        switch self {
        case .collateralFromCache(let until):
            "collateral reused from the cache (valid until \(Self.iso(until)))"
        case .collateralVerified(let fmspc, let number, let from, let until):
            "collateral verified: FMSPC \(fmspc), TCB evaluation data number \(number), valid \(Self.iso(from)) – \(Self.iso(until))"
        case .pckChainVerified(let fmspc, let pceSVN, let cached):
            "PCK chain verified to the trust anchor, not revoked: FMSPC \(fmspc), PCESVN \(pceSVN)\(cached ? " (cached)" : "")"
        case .tdxModuleIdentityMatched(let id): "TDX module identity \(id): MRSIGNERSEAM and SEAMATTRIBUTES match"
        case .qeReportSignatureVerified: "QE report signed by the PCK key"
        case .attestationKeyBound: "QE REPORTDATA = SHA-256(attestation key ‖ QE auth data) ‖ 0^32"
        case .qeIdentityMatched(let svn, let status): "QE matches the TD_QE identity: ISVSVN \(svn), \(status.rawValue)"
        case .quoteSignatureVerified: "quote signed by the attestation key"
        case .tcbLevelMatched(let date, let platform, let module):
            "TCB level \(date): platform \(platform)" + (module.map { ", TDX module \($0)" } ?? "")
        case .debugTDAllowed: "debug TD accepted (allowDebug)"
        case .verified(let status, let advisories):
            "VERIFIED: \(status.rawValue)" + (advisories.isEmpty ? "" : " (\(advisories.joined(separator: ", ")))")
        case .rejected(let error): "REJECTED: \(error)"
        }
    }

    private static func iso(_ date: Date) -> String { date.formatted(.iso8601) }
}

/// Receives ``VerificationDiagnostic``s synchronously, on the verifying thread.
public typealias VerificationDiagnosticCallback = (VerificationDiagnostic) -> Void
