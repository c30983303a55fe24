import Foundation

// MARK: - Steps and progress

/// A step of a launch flow (issue 12 §2, §3), in the order the flows run them.
public enum LaunchStep: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// `virNodeGetSEVInfo`: the platform's PDH and certificate chain.
    case platformInfo = "platform-info"
    /// The host's domain capabilities (from the connection or a capture).
    case capabilities
    /// TDX: the UKI's signature against the tenant's db certificates, its Authenticode SHA-384 and PCR 11 prediction.
    case verifyUKI = "verify-uki"
    /// Every refusal of ``LaunchChecks`` and the domain XML, before the service or libvirt is changed.
    case checks
    /// `POST /v1/launches`: the service verifies the platform chain and returns the GODH and session.
    case createLaunch = "create-launch"
    /// TDX: `PUT /v1/reference-values/…` with the UKI's measurements.
    case referenceValues = "reference-values"
    /// `virDomainDefineXML`.
    case define
    /// `virDomainCreateWithFlags(VIR_DOMAIN_START_PAUSED)` (for SEV: LAUNCH_START and the measured updates).
    case startPaused = "start-paused"
    /// `virDomainGetLaunchSecurityInfo`: LAUNCH_MEASURE.
    case measure
    /// `POST /v1/launches/{id}/measurement`: the tenant's LaunchPolicy decides.
    case postMeasurement = "post-measurement"
    /// `virDomainSetLaunchSecurityState`: LAUNCH_SECRET with the service's packet.
    case injectSecret = "inject-secret"
    /// `virDomainResume`.
    case resume

    public var description: String { rawValue }
}

/// One progress report of a launch flow: a step started, completed (with what it produced) or failed.
public struct LaunchEvent: Sendable, Equatable {
    public enum Phase: String, Sendable, Equatable {
        case started, completed, failed
    }

    public var step: LaunchStep
    public var phase: Phase
    /// One human-readable line.
    public var message: String
    /// Values worth showing (`launch_id`, `domain`, `appraisal_id`, digests), never secrets.
    public var details: [String: String]

    public init(step: LaunchStep, phase: Phase, message: String, details: [String: String] = [:]) {
        self.step = step
        self.phase = phase
        self.message = message
        self.details = details
    }
}

/// Receives a flow's progress (the CLI prints lines, or JSON event lines under `--json`).
public typealias LaunchProgress = @Sendable (LaunchEvent) -> Void

// MARK: - The error of a launch flow

/// A launch that failed or was refused, naming the step. After `define`, the domain was destroyed and undefined
/// (``domainRemoved`` says whether that worked).
public struct LaunchFlowError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What kind of failure, which decides the CLI's exit status.
    public enum Kind: String, Sendable, Equatable {
        /// The launch was refused: a ``LaunchChecks`` refusal, an untrusted UKI, a denied or replayed launch, a platform
        /// the service does not trust (exit 1).
        case rejected
        /// The launch could not be carried out: libvirt, the service or the inputs failed (exit 2).
        case failed
    }

    public let step: LaunchStep
    public let kind: Kind
    /// A stable lowerCamelCase code (`launchDenied`, `launchConflict`, `ukiNotTrusted`, `libvirtError`, …).
    public let code: String
    public let reason: String
    /// The input field concerned, when there is one.
    public let field: String?
    /// The defined domain, when the failure came after `define`.
    public let domain: DomainRef?
    /// Whether the domain was destroyed and undefined after the failure (nil: nothing was defined).
    public let domainRemoved: Bool?

    public init(
        step: LaunchStep, kind: Kind, code: String, reason: String, field: String? = nil, domain: DomainRef? = nil,
        domainRemoved: Bool? = nil
    ) {
        self.step = step
        self.kind = kind
        self.code = code
        self.reason = reason
        self.field = field
        self.domain = domain
        self.domainRemoved = domainRemoved
    }

    /// The error for a failure of `step`, classified from the underlying error.
    static func at(_ step: LaunchStep, _ error: any Error) -> LaunchFlowError {
        if let flow = error as? LaunchFlowError { return flow }
        if let virt = error as? VirtError {
            return LaunchFlowError(
                step: step, kind: virt.isRefusal ? .rejected : .failed, code: virt.code.name, reason: virt.description, field: virt.field)
        }
        if let service = error as? LaunchServiceError {
            let (kind, code): (Kind, String)
            switch service.status {
            case 403 where service.isDenial: (kind, code) = (.rejected, "launchDenied")
            case 409: (kind, code) = (.rejected, "launchConflict")
            case 422: (kind, code) = (.rejected, "platformNotTrusted")
            case 0: (kind, code) = (.failed, "serviceUnreachable")
            default: (kind, code) = (.failed, "serviceError")
            }
            var reason = service.description
            if let appraisal = service.appraisalID { reason += " (appraisal \(appraisal))" }
            return LaunchFlowError(step: step, kind: kind, code: code, reason: reason)
        }
        return LaunchFlowError(step: step, kind: .failed, code: "launchFailed", reason: "\(error)")
    }

    func afterCleanup(domain: DomainRef, removed: Bool, cleanupFailure: String?) -> LaunchFlowError {
        var reason = self.reason
        if let cleanupFailure { reason += "; destroying and undefining \(domain.name) also failed: \(cleanupFailure)" }
        return LaunchFlowError(
            step: step, kind: kind, code: code, reason: reason, field: field, domain: domain, domainRemoved: removed)
    }

    public var description: String {
        var text = "launch failed at step \(step.rawValue): \(reason)"
        if let domain, domainRemoved == true { text += " (domain \(domain.name) destroyed and undefined)" }
        return text
    }
}

// MARK: - Shared steps

/// Runs `body` as `step`, reporting started/completed/failed and turning any error into a ``LaunchFlowError``.
func runStep<T: Sendable>(
    _ step: LaunchStep, _ message: String, progress: LaunchProgress?, completed: (T) -> (String, [String: String]) = { _ in ("done", [:]) },
    _ body: () async throws -> T
) async throws(LaunchFlowError) -> T {
    progress?(LaunchEvent(step: step, phase: .started, message: message))
    do {
        let value = try await body()
        let (line, details) = completed(value)
        progress?(LaunchEvent(step: step, phase: .completed, message: line, details: details))
        return value
    } catch {
        let failure = LaunchFlowError.at(step, error)
        progress?(LaunchEvent(step: step, phase: .failed, message: failure.reason, details: ["code": failure.code]))
        throw failure
    }
}

/// The `capabilities` step of both flows: `given` (a `--domcaps` capture), else the host's for x86_64 q35 KVM.
func readCapabilities(
    _ given: DomainCapabilities?, from hypervisor: any Hypervisor, progress: LaunchProgress?
) async throws(LaunchFlowError) -> DomainCapabilities {
    try await runStep(
        .capabilities, "reading the host's domain capabilities", progress: progress,
        completed: { caps in ("\(caps.arch) \(caps.machine) \(caps.virtType)", [:]) }
    ) { () async throws -> DomainCapabilities in
        if let given { return given }
        return try await hypervisor.domainCapabilities(arch: "x86_64", machine: "q35", virtType: "kvm")
    }
}

/// After `define`: on any failure destroy and undefine the domain, then rethrow naming the step.
func cleaningUp<T: Sendable>(
    _ domain: DomainRef, on hypervisor: any Hypervisor, progress: LaunchProgress?, _ body: () async throws(LaunchFlowError) -> T
) async throws(LaunchFlowError) -> T {
    do {
        return try await body()
    } catch {
        var removed = true
        var cleanupFailure: String?
        do { try await hypervisor.destroyAndUndefine(domain) } catch {
            removed = false
            cleanupFailure = error.description
        }
        progress?(
            LaunchEvent(
                step: error.step, phase: .failed,
                message: removed ? "destroyed and undefined \(domain.name)" : "could not remove \(domain.name): \(cleanupFailure ?? "")",
                details: ["domain": domain.name, "removed": removed ? "true" : "false"]))
        throw error.afterCleanup(domain: domain, removed: removed, cleanupFailure: cleanupFailure)
    }
}
