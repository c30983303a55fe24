public import CustosCrypto
import CustosUKI
public import Foundation

/// The TDX launch of issue 12 §3: verify the UKI against the tenant's db certificates, compute its Authenticode
/// SHA-384 and PCR 11 (RTMR2) prediction, register them as reference values of the workload, then define and start the
/// TD. The TD attests on its own afterwards (through `/kbs/v0`).
///
/// Any failure after `define` destroys and undefines the domain; the thrown ``LaunchFlowError`` names the step.
public struct TDXLaunchFlow: Sendable {
    /// What to launch.
    public struct Options: Sendable {
        /// The domain name (also the prefix of the reference-value sets).
        public var name: String
        /// The tenant the reference values belong to.
        public var tenant: String
        /// OVMF's IntelTdx build (TDVF).
        public var firmwarePath: String
        public var ukiPath: String
        /// The UKI's bytes (as read from `ukiPath`).
        public var uki: [UInt8]
        /// The tenant's UEFI db certificates.
        public var dbCertificates: [Certificate]
        /// MRCONFIGID: the init-data digest, zero-padded to 48 bytes; nil when no init data is given.
        public var mrConfigID: [UInt8]?
        public var vcpus: UInt32
        public var memoryKiB: UInt64
        public var devices: [DomainSpec.Device]
        /// The validation time of the UKI signature (nil: now).
        public var validationTime: Date?

        public init(
            name: String, tenant: String, firmwarePath: String, ukiPath: String, uki: [UInt8], dbCertificates: [Certificate],
            mrConfigID: [UInt8]? = nil, vcpus: UInt32 = 1, memoryKiB: UInt64 = 2 << 20, devices: [DomainSpec.Device] = [.serialConsole],
            validationTime: Date? = nil
        ) {
            self.name = name
            self.tenant = tenant
            self.firmwarePath = firmwarePath
            self.ukiPath = ukiPath
            self.uki = uki
            self.dbCertificates = dbCertificates
            self.mrConfigID = mrConfigID
            self.vcpus = vcpus
            self.memoryKiB = memoryKiB
            self.devices = devices
            self.validationTime = validationTime
        }

        /// The trust domain.
        public var spec: DomainSpec {
            let tdx = mrConfigID.map { DomainSpec.TDXLaunch(initDataDigest: $0) } ?? DomainSpec.TDXLaunch()
            return DomainSpec(
                name: name, memoryKiB: memoryKiB, vcpus: vcpus, firmware: .uefi(.init(path: firmwarePath, build: .intelTdx)),
                directBoot: .init(kernel: ukiPath, isUKI: true), launchSecurity: .tdx(tdx), devices: devices)
        }
    }

    /// What the UKI measures as: the values registered as reference values.
    public struct Measurements: Sendable, Equatable {
        /// The UKI's Authenticode SHA-384: the digest of the RTMR1 `EV_EFI_BOOT_SERVICES_APPLICATION` event TDVF logs.
        public let authenticodeSHA384: [UInt8]
        /// systemd-stub's PCR 11 (SHA-384 bank) prediction of the UKI's sections; nil for an unknown stub.
        public let pcr11SHA384: [UInt8]?
        /// The signer's subject.
        public let signer: String?

        /// The reference-value sets of workload `name`: set name → hex values.
        public func referenceSets(name: String, mrConfigID: [UInt8]?) -> [(name: String, values: [String])] {
            var sets: [(String, [String])] = [("\(name)-uki-authenticode-sha384", [Hex.encode(authenticodeSHA384)])]
            if let pcr11SHA384 { sets.append(("\(name)-uki-pcr11-sha384", [Hex.encode(pcr11SHA384)])) }
            if let mrConfigID { sets.append(("\(name)-mr-config-id", [Hex.encode(mrConfigID)])) }
            return sets
        }
    }

    /// A started TD.
    public struct Result: Sendable, Equatable {
        public let domain: DomainRef
        public let measurements: Measurements
        /// The reference-value sets registered: set name → hex values.
        public let referenceSets: [String: [String]]
        public let xml: String
    }

    public let hypervisor: any Hypervisor
    public let service: any LaunchServiceAPI
    /// The host's domain capabilities; nil asks the hypervisor (x86_64, q35, kvm).
    public let capabilities: DomainCapabilities?

    public init(hypervisor: any Hypervisor, service: any LaunchServiceAPI, capabilities: DomainCapabilities? = nil) {
        self.hypervisor = hypervisor
        self.service = service
        self.capabilities = capabilities
    }

    /// Checks the UKI's signature and computes its measurements.
    /// - Throws: ``LaunchFlowError`` at ``LaunchStep/verifyUKI`` (`ukiNotTrusted`).
    public static func measure(_ options: Options) throws(LaunchFlowError) -> Measurements {
        do {
            let signature = try LaunchChecks.verifyUKI(options.uki, dbCertificates: options.dbCertificates, time: options.validationTime)
            let uki: UnifiedKernelImage
            do { uki = try UnifiedKernelImage(bytes: options.uki) } catch {
                throw VirtError(.ukiNotTrusted, "the UKI is not a PE image: \(error.description)", field: "uki")
            }
            return Measurements(
                authenticodeSHA384: uki.rtmr1EventDigest(), pcr11SHA384: try? uki.predictPCR11(.sha384),
                signer: signature.signer.map { "\($0.subject)" })
        } catch {
            throw LaunchFlowError.at(.verifyUKI, error)
        }
    }

    /// The domain a launch would define, after the UKI check and every refusal check; touches neither libvirt nor the
    /// service.
    /// - Throws: ``LaunchFlowError``.
    public static func dryRun(_ options: Options, capabilities: DomainCapabilities) throws(LaunchFlowError) -> (
        DomainDefinition, Measurements
    ) {
        let measurements = try measure(options)
        do {
            return (try DomainDefinition(spec: options.spec, capabilities: capabilities), measurements)
        } catch {
            throw LaunchFlowError.at(.checks, error)
        }
    }

    /// Runs the launch.
    /// - Throws: ``LaunchFlowError`` naming the step; after `define` the domain has been destroyed and undefined.
    public func launch(_ options: Options, progress: LaunchProgress? = nil) async throws(LaunchFlowError) -> Result {
        let hypervisor = self.hypervisor
        let service = self.service
        let measurements = try await runStep(
            .verifyUKI, "checking the UKI's signature against the db certificates", progress: progress,
            completed: { m in
                (
                    "signed by \(m.signer ?? "a db certificate"); Authenticode SHA-384 \(Hex.encode(m.authenticodeSHA384))",
                    ["authenticode_sha384": Hex.encode(m.authenticodeSHA384)]
                )
            }
        ) { try Self.measure(options) }
        let capabilities = try await readCapabilities(self.capabilities, from: hypervisor, progress: progress)
        let definition = try await runStep(.checks, "checking the trust domain against the host", progress: progress) {
            try DomainDefinition(spec: options.spec, capabilities: capabilities)
        }
        let sets = measurements.referenceSets(name: options.name, mrConfigID: options.mrConfigID)
        let provenance: JSONValue = [
            "source": "custos launch tdx", "uki": .string(options.ukiPath), "uki_sha256": .string(Hex.encode(Digest.sha256(options.uki))),
            "signer": .string(measurements.signer ?? ""),
        ]
        // Defined first (nothing runs yet): a name already taken fails here, before the service's reference values
        // are touched; the values are registered before the TD starts, and a failure from here on undefines it.
        let domain = try await runStep(
            .define, "defining \(options.name)", progress: progress,
            completed: { domain in ("defined \(domain)", ["domain": domain.name, "uuid": domain.uuid]) }
        ) { try await hypervisor.define(definition) }
        return try await cleaningUp(domain, on: hypervisor, progress: progress) { () async throws(LaunchFlowError) -> Result in
            for set in sets {
                try await runStep(
                    .referenceValues, "registering reference set \(set.name) of tenant \(options.tenant)", progress: progress,
                    completed: { _ in ("registered \(set.name)", ["set": set.name, "value": set.values.joined(separator: ",")]) }
                ) {
                    try await service.putReferenceValues(tenant: options.tenant, name: set.name, values: set.values, provenance: provenance)
                }
            }
            try await runStep(.startPaused, "starting \(domain.name)", progress: progress) { try await hypervisor.startPaused(domain) }
            try await runStep(.resume, "resuming \(domain.name)", progress: progress) { try await hypervisor.resume(domain) }
            var registered: [String: [String]] = [:]
            for set in sets { registered[set.name] = set.values }
            return Result(domain: domain, measurements: measurements, referenceSets: registered, xml: definition.xml)
        }
    }
}
