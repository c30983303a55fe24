public import CustosSEV
public import CustosVirt
import Foundation
import Synchronization

/// A ``Hypervisor`` for tests: libvirt's `test:///default` driver for the real domain lifecycle (define, start
/// paused, resume, destroy, undefine, state) combined with ``EmulatedSEVFirmware`` for the SEV launch commands
/// (issue 12 §1). Nothing is canned:
///
/// - ``sevInfo()`` is the emulated platform's PDH and PEK ‖ OCA ‖ CEK (what `virNodeGetSEVInfo` reports), with
///   cbitpos and the ASID counts of the given domain capabilities;
/// - ``startPaused(_:)`` runs LAUNCH_START with the domain's `dhCert`/`session` and policy, then QEMU's part:
///   LAUNCH_UPDATE_DATA over the firmware file and the kernel-hashes table of the UKI file the domain names, one
///   LAUNCH_UPDATE_VMSA per vCPU for SEV-ES (the bytes are read from the paths in the domain, so a changed file is
///   measured as changed);
/// - ``launchMeasurement(_:)`` is LAUNCH_MEASURE; ``injectSecret(_:_:)`` is LAUNCH_SECRET, and the opened secret
///   table stays readable through ``guestSecrets(_:)`` — what the guest would see in `efi_secret`;
/// - ``resume(_:)`` is LAUNCH_FINISH, then libvirt's resume.
///
/// libvirt's test driver accepts the SEV `<launchSecurity>` element; it rejects elements its version does not know
/// (libvirt 9's test driver has no `<launchSecurity type='tdx'>`, and ignores `<qemu:commandline>` namespaces only
/// partly). When a define is refused with an XML error, the domain is defined again **without its
/// `<launchSecurity>` and `<qemu:commandline>` elements** for the test driver only; the full definition (launch
/// security included) stays in this emulator's state, which is what the launch commands read.
///
/// ``tampering`` makes the emulated host misbehave, as a compromised host would: start the guest with another policy
/// or vCPU count than the domain says.
public final class EmulatedHypervisor: Hypervisor {
    /// How the emulated host departs from the domain it was given.
    public struct Tampering: Sendable, Equatable {
        /// LAUNCH_START with this policy instead of the domain's.
        public var policy: UInt32?
        /// Measure this many VMSAs instead of the domain's vCPU count (SEV-ES).
        public var vcpus: Int?
        public init(policy: UInt32? = nil, vcpus: Int? = nil) {
            self.policy = policy
            self.vcpus = vcpus
        }
    }

    /// What the emulator keeps per defined domain.
    public struct Guest: Sendable {
        /// The full definition (launch security included, even when the test driver got it stripped).
        public let definition: DomainDefinition
        /// Whether the test driver was given the definition without its launch security.
        public let strippedForTestDriver: Bool
        /// The emulated firmware's guest handle once LAUNCH_START ran.
        public var handle: UInt32?
    }

    public let connection: LibvirtConnection
    public let firmware: EmulatedSEVFirmware
    public let capabilities: DomainCapabilities
    /// The vCPU signature of SEV-ES VMSAs (family 25 model 1 stepping 1: EPYC Milan).
    public let cpuSignature: CPUSignature
    private let state = Mutex<[String: Guest]>([:])
    private let tamperingState = Mutex<Tampering>(Tampering())

    /// - Parameters:
    ///   - firmware: the emulated platform.
    ///   - capabilities: the host's domain capabilities (a real capture, e.g. `qemu_10.0.0-q35.x86_64+amdsev.xml`).
    ///   - uri: the libvirt URI (`test:///default`, shared by every connection of the process).
    ///   - cpuSignature: the SEV-ES vCPU signature.
    /// - Throws: ``VirtError`` when the connection cannot be opened.
    public init(
        firmware: EmulatedSEVFirmware, capabilities: DomainCapabilities, uri: String = "test:///default", cpuSignature: CPUSignature? = nil
    ) async throws {
        self.connection = try await LibvirtConnection.open(uri: uri)
        self.firmware = firmware
        self.capabilities = capabilities
        self.cpuSignature = try cpuSignature ?? CPUSignature(family: 25, model: 1, stepping: 1)
    }

    /// How the host misbehaves from now on.
    public var tampering: Tampering {
        get { tamperingState.withLock { $0 } }
        set { tamperingState.withLock { $0 = newValue } }
    }

    /// The emulator's record of a domain.
    public func guest(_ domain: DomainRef) -> Guest? { state.withLock { $0[domain.uuid] } }

    /// What the running guest reads in `/sys/kernel/security/secrets/coco/` (the secret table LAUNCH_SECRET opened).
    /// - Throws: when the domain was never started or the area is not a secret table.
    public func guestSecrets(_ domain: DomainRef) throws -> [(guid: EFIGUID, data: [UInt8])] {
        guard let handle = guest(domain)?.handle else { throw VirtError(.malformedReply, "\(domain.name) has no SEV launch") }
        return try firmware.guestSecrets(handle: handle)
    }

    /// Every domain the test driver knows.
    public func definedDomains() async throws(VirtError) -> [DomainRef] { try await connection.domains() }

    // MARK: Hypervisor

    public func sevInfo() async throws(VirtError) -> SEVPlatformInfo {
        guard let sev = capabilities.sev else {
            throw VirtError(
                .libvirt, "SEV is not supported",
                libvirt: .init(code: LibvirtErrorNumber.operationUnsupported, domain: 0, message: "no SEV"))
        }
        return SEVPlatformInfo(
            pdh: firmware.platform.pdh.bytes, certChain: firmware.platform.certChain, cbitpos: sev.cbitpos,
            reducedPhysBits: sev.reducedPhysBits, maxGuests: sev.maxGuests, maxESGuests: sev.maxESGuests)
    }

    public func domainCapabilities(arch: String?, machine: String?, virtType: String?) async throws(VirtError) -> DomainCapabilities {
        capabilities
    }

    public func define(_ domain: DomainDefinition) async throws(VirtError) -> DomainRef {
        var stripped = false
        let ref: DomainRef
        do {
            ref = try await connection.define(xml: domain.xml)
        } catch  where error.libvirt != nil && domain.spec.launchSecurity != nil {
            // The test driver does not know an element of the launch security (see the type's documentation).
            var tree = try DomainXML.tree(domain.spec, nativeTDX: capabilities.supportsNativeTDX)
            tree.root.children.removeAll { node in
                if case .element(let element) = node { return element.name == "launchSecurity" || element.name == "qemu:commandline" }
                return false
            }
            tree.root.attributes.removeAll { $0.0 == "xmlns:qemu" }
            ref = try await connection.define(xml: try tree.serialize())
            stripped = true
        }
        state.withLock { $0[ref.uuid] = Guest(definition: domain, strippedForTestDriver: stripped, handle: nil) }
        return ref
    }

    public func startPaused(_ domain: DomainRef) async throws(VirtError) {
        guard let guest = guest(domain) else { throw Self.noDomain(domain) }
        if case .sev(let sev) = guest.definition.spec.launchSecurity {
            let handle = try launchSEV(guest.definition.spec, sev)
            state.withLock { $0[domain.uuid]?.handle = handle }
        }
        try await connection.createPaused(domain)
    }

    /// QEMU's part of an SEV launch: LAUNCH_START with the domain's blobs, then the measured updates of what it boots.
    private func launchSEV(_ spec: DomainSpec, _ sev: DomainSpec.SEVLaunch) throws(VirtError) -> UInt32 {
        let tampering = self.tampering
        let policy = tampering.policy ?? sev.policy
        do {
            guard case .uefi(let loader) = spec.firmware, let kernelPath = spec.directBoot?.kernel else {
                throw VirtError(.invalidSpec, "an SEV domain needs OVMF and a direct-boot kernel")
            }
            let firmwareImage = [UInt8](try Data(contentsOf: URL(fileURLWithPath: loader.path)))
            let kernel = [UInt8](try Data(contentsOf: URL(fileURLWithPath: kernelPath)))
            let initrd = try spec.directBoot?.initrd.map { [UInt8](try Data(contentsOf: URL(fileURLWithPath: $0))) }
            let vcpus = tampering.vcpus ?? Int(spec.vcpus)
            let handle = try firmware.launchStart(
                policy: policy, godhCertificate: try Base64Text.decode(sev.dhCert), session: try Base64Text.decode(sev.session))
            let digest = try LaunchDigest(
                LaunchInputs(
                    firmware: firmwareImage, kernel: sev.kernelHashes ? kernel : nil, initrd: initrd,
                    cmdline: spec.directBoot?.cmdline, policy: GuestPolicy(rawValue: policy), vcpus: vcpus, cpuSignature: cpuSignature))
            // `LaunchDigest.vmsas` holds the distinct pages (BSP, then the AP page when there is more than one vCPU); QEMU
            // runs LAUNCH_UPDATE_VMSA once per vCPU.
            var vmsas: [[UInt8]] = []
            if let bsp = digest.vmsas.first {
                vmsas = [bsp] + Array(repeating: digest.vmsas.count > 1 ? digest.vmsas[1] : bsp, count: max(0, vcpus - 1))
            }
            try firmware.launch(handle: handle, firmware: firmwareImage, kernelHashesTable: digest.kernelHashesTable, vmsas: vmsas)
            return handle
        } catch let error as VirtError {
            throw error
        } catch {
            // What QEMU reports when the firmware refuses the launch (qemuProcessStart: "sev launch start failed").
            throw VirtError(
                .libvirt, "cannot start the SEV guest",
                libvirt: .init(code: 1, domain: 10, message: "internal error: SEV launch failed: \(error)"))
        }
    }

    public func launchMeasurement(_ domain: DomainRef) async throws(VirtError) -> CustosVirt.LaunchMeasurement {
        guard let guest = guest(domain), case .sev(let sev) = guest.definition.spec.launchSecurity, let handle = guest.handle else {
            throw VirtError(
                .libvirt, "no launch security info",
                libvirt: .init(code: LibvirtErrorNumber.operationInvalid, domain: 10, message: "domain is not an SEV guest"))
        }
        do {
            let measurement = try firmware.launchMeasure(handle: handle)
            return CustosVirt.LaunchMeasurement(
                measurement: measurement, apiMajor: UInt32(firmware.version.apiMajor), apiMinor: UInt32(firmware.version.apiMinor),
                buildID: UInt32(firmware.version.buildID), policy: sev.policy)
        } catch {
            throw VirtError(.libvirt, "cannot read the launch measurement", libvirt: .init(code: 1, domain: 10, message: error.description))
        }
    }

    public func injectSecret(_ domain: DomainRef, _ secret: LaunchSecret) async throws(VirtError) {
        guard let handle = guest(domain)?.handle else { throw Self.noDomain(domain) }
        do { try firmware.launchSecret(handle: handle, header: secret.header, payload: secret.ciphertext) } catch {
            throw VirtError(.libvirt, "cannot set the launch secret", libvirt: .init(code: 1, domain: 10, message: error.description))
        }
    }

    public func resume(_ domain: DomainRef) async throws(VirtError) {
        if let handle = guest(domain)?.handle {
            do { try firmware.launchFinish(handle: handle) } catch {
                throw VirtError(.libvirt, "cannot finish the launch", libvirt: .init(code: 1, domain: 10, message: error.description))
            }
        }
        try await connection.resume(domain)
    }

    public func destroyAndUndefine(_ domain: DomainRef) async throws(VirtError) {
        do {
            try await connection.destroy(domain)
            try await connection.undefine(domain)
        } catch  where error.libvirt?.code == LibvirtErrorNumber.noDomain {
            // already gone
        }
    }

    public func state(_ domain: DomainRef) async throws(VirtError) -> DomainState { try await connection.state(domain) }

    /// Counted from the emulator's own record (the test driver may hold the domain without its launch security) of
    /// the domains the test driver has active.
    public func runningSEVGuests() async throws(VirtError) -> RunningGuests {
        var running = RunningGuests.none
        for domain in try await connection.domains() {
            guard let guest = guest(domain), case .sev(let sev) = guest.definition.spec.launchSecurity else { continue }
            switch try await connection.state(domain) {
            case .shutOff, .crashed, .noState: continue
            default: if sev.isES { running.sevES += 1 } else { running.sev += 1 }
            }
        }
        return running
    }

    private static func noDomain(_ domain: DomainRef) -> VirtError {
        VirtError(
            .libvirt, "no domain \(domain.name)",
            libvirt: .init(code: LibvirtErrorNumber.noDomain, domain: 10, message: "Domain not found: \(domain.uuid)"))
    }
}

/// Base64 text of the domain XML to bytes.
enum Base64Text {
    static func decode(_ text: String) throws -> [UInt8] {
        guard let data = Data(base64Encoded: text) else { throw VirtError(.invalidSpec, "not base64: \(text.prefix(16))…") }
        return [UInt8](data)
    }
}
