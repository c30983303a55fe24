// MARK: - The one error type of CustosAgent

/// The one error type of ``CustosAgent``: which stage of the guest's work failed, how, and why.
///
/// The stage (`evidence`, `auth`, `attest`, `resource`, `write`, `secret`) is what an operator reads first in a boot
/// log; the kind says whether the service or the evidence said no (``Kind/rejected``: exit 1) or the agent could not
/// do its work (``Kind/unusable``, ``Kind/unreachable``: exit 2). Equal by stage and kind.
public struct AgentError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The step of the agent's work that failed.
    public enum Stage: String, Sendable, Hashable, CaseIterable {
        /// Getting the TD quote (configfs-tsm, `/dev/tdx_guest`) or the CCEL.
        case evidence
        /// `POST /kbs/v0/auth`.
        case auth
        /// `POST /kbs/v0/attest`.
        case attest
        /// `GET /kbs/v0/resource/…` and decrypting the JWE.
        case resource
        /// Writing a secret file (tmpfs check, temp file, rename).
        case write
        /// Reading or removing an injected SEV secret (efi_secret in securityfs).
        case secret
        /// The agent's own arguments (a URL, a resource path, a GUID).
        case usage
    }

    /// What kind of failure it is.
    public enum Kind: String, Sendable, Hashable {
        /// The service (or the evidence check) refused: attestation rejected, policy denial, unknown resource.
        case rejected
        /// The service could not be reached or kept failing after the bounded retries.
        case unreachable
        /// The agent could not do its work: no configfs-tsm, a tree that is not what the kernel provides, a disk
        /// directory, a missing GUID, a bad argument.
        case unusable
    }

    public let stage: Stage
    public let kind: Kind
    /// One sentence for a human (never secret material).
    public let reason: String
    /// The Trustee error kind (`PolicyDeny`, `AttestationError`, …) when the service sent one.
    public let serviceErrorKind: String?
    /// The HTTP status the service answered with, when there was an answer.
    public let httpStatus: Int?

    public init(_ stage: Stage, _ kind: Kind, _ reason: String, serviceErrorKind: String? = nil, httpStatus: Int? = nil) {
        self.stage = stage
        self.kind = kind
        self.reason = reason
        self.serviceErrorKind = serviceErrorKind
        self.httpStatus = httpStatus
    }

    public static func == (lhs: AgentError, rhs: AgentError) -> Bool { lhs.stage == rhs.stage && lhs.kind == rhs.kind }
    public func hash(into hasher: inout Hasher) {
        hasher.combine(stage)
        hasher.combine(kind)
    }

    /// A stable lowerCamelCase code: the stage then the kind (`attestRejected`, `resourceRejected`,
    /// `authUnreachable`, `evidenceUnusable`, `writeUnusable`, …).
    public var code: String { stage.rawValue + kind.rawValue.prefix(1).uppercased() + kind.rawValue.dropFirst() }

    /// 1 when the service or the evidence check refused, 2 otherwise.
    public var exitStatus: Int32 { kind == .rejected ? 1 : 2 }

    public var description: String { "\(stage.rawValue): \(reason)" }
}
