/// ``Hypervisor`` over a real libvirt connection.
public struct LibvirtHypervisor: Hypervisor {
    public let connection: LibvirtConnection

    public init(connection: LibvirtConnection) { self.connection = connection }

    /// Opens `uri` (`qemu:///system`, `qemu+ssh://host/system`, `test:///default`).
    /// - Throws: ``VirtError`` (libvirt's).
    public static func open(uri: String) async throws(VirtError) -> LibvirtHypervisor {
        LibvirtHypervisor(connection: try await LibvirtConnection.open(uri: uri))
    }

    public func sevInfo() async throws(VirtError) -> SEVPlatformInfo { try await connection.sevInfo() }

    public func domainCapabilities(arch: String?, machine: String?, virtType: String?) async throws(VirtError) -> DomainCapabilities {
        try DomainCapabilities(xml: try await connection.domainCapabilitiesXML(arch: arch, machine: machine, virtType: virtType))
    }

    public func define(_ domain: DomainDefinition) async throws(VirtError) -> DomainRef { try await connection.define(xml: domain.xml) }

    public func startPaused(_ domain: DomainRef) async throws(VirtError) { try await connection.createPaused(domain) }

    public func launchMeasurement(_ domain: DomainRef) async throws(VirtError) -> LaunchMeasurement {
        try await connection.launchSecurityInfo(domain)
    }

    public func injectSecret(_ domain: DomainRef, _ secret: LaunchSecret) async throws(VirtError) {
        try await connection.setLaunchSecurityState(domain, secret: secret)
    }

    public func resume(_ domain: DomainRef) async throws(VirtError) { try await connection.resume(domain) }

    public func runningSEVGuests() async throws(VirtError) -> RunningGuests { try await RunningGuests.count(on: connection) }

    public func destroyAndUndefine(_ domain: DomainRef) async throws(VirtError) {
        do {
            try await connection.destroy(domain)
            try await connection.undefine(domain)
        } catch  where error.libvirt?.code == LibvirtErrorNumber.noDomain {
            return  // already gone
        }
    }

    public func state(_ domain: DomainRef) async throws(VirtError) -> DomainState { try await connection.state(domain) }
}

/// The `virErrorNumber` values Custos acts on (libvirt's `virterror.h`).
public enum LibvirtErrorNumber {
    /// `VIR_ERR_NO_SUPPORT`: the driver lacks the function.
    public static let noSupport: Int32 = 3
    /// `VIR_ERR_NO_CONNECT`: cannot connect to the hypervisor.
    public static let noConnect: Int32 = 5
    /// `VIR_ERR_INVALID_ARG`: an invalid argument (also unsupported flags).
    public static let invalidArgument: Int32 = 8
    /// `VIR_ERR_XML_ERROR`: the XML description is not valid for libvirt.
    public static let xmlError: Int32 = 27
    /// `VIR_ERR_NO_DOMAIN`: no such domain.
    public static let noDomain: Int32 = 42
    /// `VIR_ERR_OPERATION_INVALID`: not applicable in the domain's state.
    public static let operationInvalid: Int32 = 55
    /// `VIR_ERR_OPERATION_UNSUPPORTED`: not supported on this host or driver.
    public static let operationUnsupported: Int32 = 84
}
