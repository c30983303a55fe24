public import Foundation

/// The measured SEV/SEV-ES launch of issue 12 §2, over any ``Hypervisor`` and the service's launch API:
/// node SEV info → refusal checks → `POST /v1/launches` → define + start paused with the GODH/session → launch
/// measurement → `POST /v1/launches/{id}/measurement` → inject the returned packet → resume.
///
/// The host relays blobs: the session keys, the measurement check and the secret stay in the service. Any failure after
/// `define` destroys and undefines the domain; the thrown ``LaunchFlowError`` names the step.
public struct SEVLaunchFlow: Sendable {
    /// What to launch.
    public struct Options: Sendable, Equatable {
        /// The domain name, also the service's `workload_id`.
        public var name: String
        /// OVMF's AmdSev build (stateless, with the kernel-hashes table).
        public var firmwarePath: String
        /// The (signed) UKI booted as the direct-boot kernel, so its hash is in the launch digest.
        public var ukiPath: String
        public var vcpus: UInt32
        public var memoryKiB: UInt64
        /// The guest policy (sev.md §3); bit 2 asks for SEV-ES. Default 0x3 (NODBG, NOKS); 0x7 for SEV-ES.
        public var policy: UInt32
        /// The secrets to inject: `[{guid, path}]` (at least one: the service's API needs one).
        public var secrets: [LaunchCreation.SecretReference]
        /// The tenant's reference-value set with the expected launch digests; nil: `sev_launch_digest` or
        /// `sev_es_launch_digest` (the names the shipped launch policies read).
        public var reference: String?
        /// Devices besides the firmware and kernel (a serial console by default).
        public var devices: [DomainSpec.Device]

        public init(
            name: String, firmwarePath: String, ukiPath: String, vcpus: UInt32, memoryKiB: UInt64 = 2 << 20, policy: UInt32 = 0x3,
            secrets: [LaunchCreation.SecretReference], reference: String? = nil, devices: [DomainSpec.Device] = [.serialConsole]
        ) {
            self.name = name
            self.firmwarePath = firmwarePath
            self.ukiPath = ukiPath
            self.vcpus = vcpus
            self.memoryKiB = memoryKiB
            self.policy = policy
            self.secrets = secrets
            self.reference = reference
            self.devices = devices
        }

        /// `sev-es` when the policy's ES bit is set, else `sev`.
        public var tee: String { policy & 0x4 != 0 ? "sev-es" : "sev" }
        /// The reference set the measurement is checked against.
        public var referenceSet: String { reference ?? (policy & 0x4 != 0 ? "sev_es_launch_digest" : "sev_launch_digest") }

        /// The domain for a given GODH and session.
        public func spec(dhCert: String, session: String) -> DomainSpec {
            DomainSpec(
                name: name, memoryKiB: memoryKiB, vcpus: vcpus,
                firmware: .uefi(.init(path: firmwarePath, build: .amdSev)), directBoot: .init(kernel: ukiPath, isUKI: true),
                launchSecurity: .sev(.init(policy: policy, dhCert: dhCert, session: session, kernelHashes: true)), devices: devices)
        }
    }

    /// A launched guest.
    public struct Result: Sendable, Equatable {
        public let domain: DomainRef
        public let launchID: String
        public let appraisalID: String
        public let xml: String
    }

    /// The base64 placeholders a dry run writes for the GODH and session (the service makes the real ones).
    public static let placeholderDHCert = "UExBQ0VIT0xERVItR09ESA=="
    public static let placeholderSession = "UExBQ0VIT0xERVItU0VTU0lPTg=="

    public let hypervisor: any Hypervisor
    public let service: any LaunchServiceAPI
    /// The host's domain capabilities; nil asks the hypervisor (x86_64, q35, kvm).
    public let capabilities: DomainCapabilities?
    /// SEV guests already running (for the ASID limits); nil asks the hypervisor at the checks.
    public let running: RunningGuests?

    public init(
        hypervisor: any Hypervisor, service: any LaunchServiceAPI, capabilities: DomainCapabilities? = nil, running: RunningGuests? = nil
    ) {
        self.hypervisor = hypervisor
        self.service = service
        self.capabilities = capabilities
        self.running = running
    }

    /// The domain a launch would define, after every refusal check, with placeholder GODH and session; touches
    /// neither libvirt (beyond domain capabilities when none are given) nor the service.
    /// - Throws: ``LaunchFlowError`` (``LaunchStep/capabilities`` or ``LaunchStep/checks``).
    public static func dryRun(
        _ options: Options, capabilities: DomainCapabilities, running: RunningGuests = .none
    ) throws(LaunchFlowError) -> DomainDefinition {
        do {
            return try DomainDefinition(
                spec: options.spec(dhCert: placeholderDHCert, session: placeholderSession), capabilities: capabilities, running: running)
        } catch {
            throw LaunchFlowError.at(.checks, error)
        }
    }

    /// Runs the launch.
    /// - Parameters:
    ///   - options: what to launch.
    ///   - progress: receives an event when each step starts, completes or fails.
    /// - Returns: the running domain, the launch and the appraisal that allowed it.
    /// - Throws: ``LaunchFlowError`` naming the step; after `define` the domain has been destroyed and undefined.
    public func launch(_ options: Options, progress: LaunchProgress? = nil) async throws(LaunchFlowError) -> Result {
        let hypervisor = self.hypervisor
        let platform = try await runStep(
            .platformInfo, "reading the platform's SEV certificates (virNodeGetSEVInfo)", progress: progress,
            completed: { info in ("PDH and PEK/OCA/CEK read (cbitpos \(info.cbitpos))", ["cbitpos": String(info.cbitpos)]) }
        ) { try await hypervisor.sevInfo() }
        let capabilities = try await readCapabilities(self.capabilities, from: hypervisor, progress: progress)
        let given = self.running
        let running = try await runStep(.checks, "checking the domain against the host before anything is created", progress: progress) {
            let running: RunningGuests
            if let given { running = given } else { running = try await hypervisor.runningSEVGuests() }
            _ = try Self.dryRun(options, capabilities: capabilities, running: running)
            return running
        }
        let creation = LaunchCreation(
            workloadID: options.name, tee: options.tee, guestPolicy: options.policy, pdh: platform.pdh, certChain: platform.certChain,
            secrets: options.secrets)
        let service = self.service
        let created = try await runStep(
            .createLaunch, "asking the service for a launch session (POST /v1/launches)", progress: progress,
            completed: { created in ("launch \(created.launchID)", ["launch_id": created.launchID]) }
        ) { try await service.createLaunch(creation) }
        let definition = try await runStep(.checks, "writing the domain with the service's GODH and session", progress: progress) {
            try DomainDefinition(
                spec: options.spec(dhCert: created.godhCertificate, session: created.sessionBlob), capabilities: capabilities,
                running: running)
        }
        let domain = try await runStep(
            .define, "defining \(options.name)", progress: progress,
            completed: { domain in ("defined \(domain)", ["domain": domain.name, "uuid": domain.uuid]) }
        ) { try await hypervisor.define(definition) }
        return try await cleaningUp(domain, on: hypervisor, progress: progress) { () async throws(LaunchFlowError) -> Result in
            try await runStep(.startPaused, "starting \(domain.name) paused (LAUNCH_START, measured updates)", progress: progress) {
                try await hypervisor.startPaused(domain)
            }
            let measured = try await runStep(
                .measure, "reading the launch measurement", progress: progress,
                completed: { m in
                    ("measurement read (API \(m.apiMajor.map(String.init) ?? "?").\(m.apiMinor.map(String.init) ?? "?"))", [:])
                }
            ) { try await hypervisor.launchMeasurement(domain) }
            let report = try await runStep(.measure, "checking the measurement reply", progress: progress) {
                () throws(VirtError) -> MeasurementReport in
                guard measured.measurement.count == 48, let major = measured.apiMajor, let minor = measured.apiMinor,
                    let build = measured.buildID
                else {
                    throw VirtError(
                        .malformedReply, "the launch measurement lacks 48 bytes of MEASURE ‖ MNONCE or the firmware API version",
                        field: "sev-measurement")
                }
                return MeasurementReport(
                    measurement: measured.measurement, apiMajor: major, apiMinor: minor, buildID: build, vcpus: options.vcpus,
                    guestPolicy: options.policy, reference: options.referenceSet)
            }
            let allowed = try await runStep(
                .postMeasurement, "sending the measurement to the service (reference set \(options.referenceSet))", progress: progress,
                completed: { allowed in ("allowed by appraisal \(allowed.appraisalID)", ["appraisal_id": allowed.appraisalID]) }
            ) { try await service.postMeasurement(launchID: created.launchID, report) }
            try await runStep(.injectSecret, "injecting the secret packet (LAUNCH_SECRET)", progress: progress) {
                try await hypervisor.injectSecret(domain, LaunchSecret(header: allowed.secretHeader, ciphertext: allowed.secretData))
            }
            try await runStep(.resume, "resuming \(domain.name)", progress: progress) { try await hypervisor.resume(domain) }
            return Result(domain: domain, launchID: created.launchID, appraisalID: allowed.appraisalID, xml: definition.xml)
        }
    }
}
