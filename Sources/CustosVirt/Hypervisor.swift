// MARK: - The operations a launch flow needs

/// Exactly what the SEV/SEV-ES and TDX launch flows need from a hypervisor (issue 12 §1).
///
/// ``LibvirtHypervisor`` implements it over a libvirt connection. Measurement and secret injection go through the
/// protocol (not through libvirt types), so an emulated implementation can combine libvirt's `test:///default`
/// driver (domain lifecycle) with an emulated SEV firmware (LAUNCH_START/MEASURE/SECRET semantics).
public protocol Hypervisor: Sendable {
    /// The platform's SEV data (`virNodeGetSEVInfo`): PDH, certificate chain, cbitpos, ASID counts.
    func sevInfo() async throws(VirtError) -> SEVPlatformInfo
    /// The host's domain capabilities for the given emulator settings (nil picks libvirt's defaults).
    func domainCapabilities(arch: String?, machine: String?, virtType: String?) async throws(VirtError) -> DomainCapabilities
    /// Defines (persistently) the domain described by `domain`; nothing is started.
    func define(_ domain: DomainDefinition) async throws(VirtError) -> DomainRef
    /// Starts a defined domain paused (`VIR_DOMAIN_START_PAUSED`): for SEV the launch is measured but not run.
    func startPaused(_ domain: DomainRef) async throws(VirtError)
    /// The SEV launch measurement and platform data of a paused domain (`virDomainGetLaunchSecurityInfo`).
    func launchMeasurement(_ domain: DomainRef) async throws(VirtError) -> LaunchMeasurement
    /// Injects a launch secret into a paused domain (`virDomainSetLaunchSecurityState`).
    func injectSecret(_ domain: DomainRef, _ secret: LaunchSecret) async throws(VirtError)
    /// Resumes a paused domain.
    func resume(_ domain: DomainRef) async throws(VirtError)
    /// Destroys the domain if it runs, then undefines it. Succeeds when the domain is already gone.
    func destroyAndUndefine(_ domain: DomainRef) async throws(VirtError)
    /// The domain's state.
    func state(_ domain: DomainRef) async throws(VirtError) -> DomainState
    /// The SEV and SEV-ES guests that hold an ASID now (running or paused: every active domain with
    /// `<launchSecurity type='sev'>`, split by the policy's ES bit), for the ASID limits.
    func runningSEVGuests() async throws(VirtError) -> RunningGuests
}

// MARK: - Values

/// A domain that was defined: its name and UUID (the UUID is what later calls look it up by).
public struct DomainRef: Sendable, Hashable, CustomStringConvertible {
    public let name: String
    /// The canonical UUID string (lowercase, with dashes).
    public let uuid: String
    public init(name: String, uuid: String) {
        self.name = name
        self.uuid = uuid
    }
    public var description: String { "\(name) (\(uuid))" }
}

/// A domain to define: the typed spec and the XML written from it (both, so an emulated hypervisor can read the
/// launch values without parsing XML).
public struct DomainDefinition: Sendable, Equatable {
    public let spec: DomainSpec
    public let xml: String

    /// Checks `spec` against the host (every refusal of ``LaunchChecks``) and writes its XML.
    /// - Parameters:
    ///   - spec: the domain.
    ///   - capabilities: the host's domain capabilities.
    ///   - running: the confidential guests already running on the host (for the ASID limit).
    /// - Throws: ``VirtError`` with a refusal code, or ``VirtError/Code/invalidSpec``.
    public init(spec: DomainSpec, capabilities: DomainCapabilities, running: RunningGuests = .none) throws(VirtError) {
        try LaunchChecks.check(spec, capabilities: capabilities, running: running)
        let resolved = DomainXML.resolve(spec, capabilities: capabilities)
        self.spec = resolved
        self.xml = try DomainXML.render(resolved, capabilities: capabilities)
    }
}

/// libvirt's domain states (`virDomainState`).
public enum DomainState: Sendable, Hashable, CustomStringConvertible {
    case noState, running, blocked, paused, shuttingDown, shutOff, crashed, suspended
    case other(Int32)

    /// The state for a `virDomainState` value.
    public init(libvirtValue value: Int32) {
        switch value {
        case 0: self = .noState
        case 1: self = .running
        case 2: self = .blocked
        case 3: self = .paused
        case 4: self = .shuttingDown
        case 5: self = .shutOff
        case 6: self = .crashed
        case 7: self = .suspended
        default: self = .other(value)
        }
    }

    public var description: String {
        switch self {
        case .noState: "no state"
        case .running: "running"
        case .blocked: "blocked"
        case .paused: "paused"
        case .shuttingDown: "shutting down"
        case .shutOff: "shut off"
        case .crashed: "crashed"
        case .suspended: "suspended"
        case .other(let value): "state \(value)"
        }
    }
}

/// The platform's SEV data from `virNodeGetSEVInfo` (sev.md §6).
public struct SEVPlatformInfo: Sendable, Equatable {
    /// The PDH certificate (SEV format, 0x824 bytes on real platforms).
    public var pdh: [UInt8]
    /// PEK ‖ OCA ‖ CEK (no ARK/ASK: sev.md §11.5).
    public var certChain: [UInt8]
    public var cbitpos: UInt32
    public var reducedPhysBits: UInt32
    /// libvirt ≥ 8.0.0.
    public var maxGuests: UInt32?
    /// libvirt ≥ 8.0.0; 0 means no SEV-ES.
    public var maxESGuests: UInt32?
    /// libvirt ≥ 8.4.0; length varies (sev.md §6).
    public var cpu0ID: [UInt8]?

    public init(
        pdh: [UInt8], certChain: [UInt8], cbitpos: UInt32, reducedPhysBits: UInt32, maxGuests: UInt32? = nil, maxESGuests: UInt32? = nil,
        cpu0ID: [UInt8]? = nil
    ) {
        self.pdh = pdh
        self.certChain = certChain
        self.cbitpos = cbitpos
        self.reducedPhysBits = reducedPhysBits
        self.maxGuests = maxGuests
        self.maxESGuests = maxESGuests
        self.cpu0ID = cpu0ID
    }
}

/// What `virDomainGetLaunchSecurityInfo` returns for a paused SEV domain (sev.md §4.1, §6).
public struct LaunchMeasurement: Sendable, Equatable {
    /// MEASURE ‖ MNONCE (48 bytes).
    public var measurement: [UInt8]
    public var apiMajor: UInt32?
    public var apiMinor: UInt32?
    public var buildID: UInt32?
    public var policy: UInt32?

    public init(measurement: [UInt8], apiMajor: UInt32? = nil, apiMinor: UInt32? = nil, buildID: UInt32? = nil, policy: UInt32? = nil) {
        self.measurement = measurement
        self.apiMajor = apiMajor
        self.apiMinor = apiMinor
        self.buildID = buildID
        self.policy = policy
    }
}

/// A LAUNCH_SECRET packet as the service builds it (sev.md §5.2): the 52-byte header and the ciphertext.
public struct LaunchSecret: Sendable, Equatable {
    public var header: [UInt8]
    public var ciphertext: [UInt8]
    /// The guest physical address to write to; nil lets QEMU use OVMF's secret area.
    public var guestAddress: UInt64?

    public init(header: [UInt8], ciphertext: [UInt8], guestAddress: UInt64? = nil) {
        self.header = header
        self.ciphertext = ciphertext
        self.guestAddress = guestAddress
    }
}

/// Confidential guests already running on the host, for the ASID limits (`maxGuests`, `maxESGuests`).
public struct RunningGuests: Sendable, Equatable {
    /// Guests holding a plain SEV ASID.
    public var sev: Int
    /// Guests holding an SEV-ES ASID: SEV-ES and SEV-SNP guests.
    public var sevES: Int
    public init(sev: Int, sevES: Int) {
        self.sev = sev
        self.sevES = sevES
    }
    public static let none = RunningGuests(sev: 0, sevES: 0)

    /// Counts the active domains of `connection` with SEV launch security (SEV-ES when the policy's bit 2 is set, and
    /// SEV-SNP, against the SEV-ES ASIDs).
    /// - Throws: ``VirtError`` from libvirt, or `malformedReply` for a domain description that does not parse.
    public static func count(on connection: LibvirtConnection) async throws(VirtError) -> RunningGuests {
        var running = RunningGuests.none
        for domain in try await connection.domains() {
            switch try await connection.state(domain) {
            case .shutOff, .crashed, .noState: continue
            default: break
            }
            switch try sevKind(ofDomainXML: try await connection.xmlDescription(domain)) {
            case true?: running.sevES += 1
            case false?: running.sev += 1
            case nil: break
            }
        }
        return running
    }

    /// Whether a domain description holds an SEV-ES ASID (true: SEV-ES, or SEV-SNP, whose guests KVM gives ASIDs of
    /// the same range), a plain SEV ASID (false) or none (nil: no launch security, or another kind such as `tdx`).
    /// - Throws: `malformedReply` for a document that does not parse or an SEV policy that is not a number.
    public static func sevKind(ofDomainXML xml: String) throws(VirtError) -> Bool? {
        let root = try XMLReader.parse(xml, code: .malformedReply)
        guard let security = root.element(named: "launchSecurity") else { return nil }
        if security.attribute("type") == "sev-snp" { return true }
        guard security.attribute("type") == "sev" else { return nil }
        // libvirt writes the policy as hex (`0x0007`); a missing one is 0 (no ES).
        let text = security.element(named: "policy")?.text ?? "0"
        let hex = text.lowercased().hasPrefix("0x")
        guard let policy = UInt32(hex ? String(text.dropFirst(2)) : text, radix: hex ? 16 : 10) else {
            throw VirtError(.malformedReply, "the SEV policy \"\(text.prefix(40))\" is not a number")
        }
        return policy & 0x4 != 0
    }
}
