import Foundation

/// The one error type of CustosVirt: libvirt failures (with libvirt's own code, domain and message), refusals of a
/// domain before anything starts, and malformed capabilities or replies.
///
/// Equal by ``code`` only (as `CertificateError`), so tests can match the kind of failure.
public struct VirtError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A stable, extensible error code (lowerCamelCase, used as the CLI's `errorCode`).
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        public init(_ name: String) { self.name = name }
        public var description: String { name }

        /// libvirt reported an error (see ``VirtError/libvirt``).
        public static let libvirt = Code("libvirtError")
        /// The connection was closed before the call.
        public static let connectionClosed = Code("libvirtConnectionClosed")
        /// libvirt answered, but with a value Custos cannot use (bad base64, a missing parameter).
        public static let malformedReply = Code("libvirtMalformedReply")
        /// Domain capabilities XML that is not libvirt's `<domainCapabilities>` document.
        public static let malformedCapabilities = Code("domainCapabilitiesMalformed")
        /// A ``DomainSpec`` value that cannot be written as domain XML (a control character in a name, bad base64).
        public static let invalidSpec = Code("domainSpecInvalid")

        // MARK: Refusals (before anything starts)

        /// The host's domain capabilities lack the requested TEE (SEV, TDX).
        public static let teeUnavailable = Code("teeUnavailable")
        /// SEV-ES policy on a host whose capabilities give no `maxESGuests`.
        public static let sevESUnavailable = Code("sevESUnavailable")
        /// The host's ASID limit (`maxGuests` / `maxESGuests`) is reached.
        public static let asidLimitReached = Code("asidLimitReached")
        /// A UKI with firmware that is not UEFI.
        public static let firmwareNotUEFI = Code("firmwareNotUEFI")
        /// The firmware is not the build the TEE needs (AmdSev for SEV kernel hashes, IntelTdx for TDX) or has NVRAM.
        public static let firmwareUnsuitable = Code("firmwareUnsuitable")
        /// A virtio-mem memory device in a confidential domain.
        public static let virtioMemRefused = Code("virtioMemRefused")
        /// A mediated device (vGPU) in a confidential domain.
        public static let mediatedDeviceRefused = Code("mediatedDeviceRefused")
        /// A virtio memory balloon without `iommu='on'` in a confidential domain.
        public static let balloonWithoutIOMMU = Code("balloonWithoutIOMMU")
        /// The UKI is not signed by one of the tenant's db certificates (or is not a PE image).
        public static let ukiNotTrusted = Code("ukiNotTrusted")
    }

    /// What libvirt said: its `virErrorNumber`, `virErrorDomain` and message (`virGetLastError`).
    public struct LibvirtDetail: Hashable, Sendable {
        /// `virErrorNumber` (for example 42 = `VIR_ERR_NO_DOMAIN`).
        public let code: Int32
        /// `virErrorDomain` (the libvirt module that raised it, for example 11 = `VIR_FROM_TEST`).
        public let domain: Int32
        /// libvirt's message.
        public let message: String
        public init(code: Int32, domain: Int32, message: String) {
            self.code = code
            self.domain = domain
            self.message = message
        }
    }

    public let code: Code
    public let reason: String
    /// The libvirt error, for ``Code/libvirt``.
    public let libvirt: LibvirtDetail?
    /// The spec field or XML element concerned, when there is one.
    public let field: String?
    public let file: String
    public let line: Int

    public init(
        _ code: Code, _ reason: String, libvirt: LibvirtDetail? = nil, field: String? = nil, file: String = #fileID, line: Int = #line
    ) {
        self.code = code
        self.reason = reason
        self.libvirt = libvirt
        self.field = field
        self.file = file
        self.line = line
    }

    /// Whether this is a refusal of the domain (the launch is rejected) rather than a failure to talk to libvirt.
    public var isRefusal: Bool {
        [
            Code.teeUnavailable, .sevESUnavailable, .asidLimitReached, .firmwareNotUEFI, .firmwareUnsuitable, .virtioMemRefused,
            .mediatedDeviceRefused, .balloonWithoutIOMMU, .ukiNotTrusted,
        ].contains(code)
    }

    public var description: String {
        if let libvirt { return "\(reason): \(libvirt.message) (libvirt code \(libvirt.code), domain \(libvirt.domain))" }
        return reason
    }

    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.code == rhs.code }
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }
}
