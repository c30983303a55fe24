/// What the host's libvirt and QEMU offer for one emulator/arch/machine/virt type: libvirt's
/// `<domainCapabilities>` document (formatdomaincaps.rst), reduced to what launches and the host check need.
public struct DomainCapabilities: Sendable, Equatable {
    /// `<path>`: the emulator binary.
    public var emulator: String?
    /// `<domain>`: the virtualization type (`kvm`, `qemu`).
    public var virtType: String
    /// `<machine>`: the machine type (`pc-q35-10.0`).
    public var machine: String
    /// `<arch>`: `x86_64`, `aarch64`, …
    public var arch: String
    /// `<os><enum name='firmware'>`: `bios`, `efi`.
    public var firmwareKinds: [String]
    /// `<os><loader><value>`: the firmware images libvirt knows.
    public var loaderPaths: [String]
    /// `<features><sev>`; nil when unsupported.
    public var sev: SEV?
    /// `<features><tdx supported='yes'/>`.
    public var tdxSupported: Bool
    /// `<features><launchSecurity supported='yes'>` (absent on libvirt < 10.5.0).
    public var launchSecuritySupported: Bool
    /// `<features><launchSecurity><enum name='sectype'>`: `sev`, `sev-snp`, `tdx`, `s390-pv`.
    public var launchSecurityTypes: [String]

    /// `<sev supported='yes'>` (formatdomaincaps.rst; the real element is `reducedPhysBits`, sev.md §11.14).
    public struct SEV: Sendable, Equatable {
        public var cbitpos: UInt32
        public var reducedPhysBits: UInt32
        /// libvirt ≥ 8.0.0; the SEV ASID count.
        public var maxGuests: UInt32?
        /// libvirt ≥ 8.0.0; the SEV-ES ASID count (absent or 0: no SEV-ES).
        public var maxESGuests: UInt32?
        /// libvirt ≥ 8.4.0, base64.
        public var cpu0Id: String?

        public init(cbitpos: UInt32, reducedPhysBits: UInt32, maxGuests: UInt32? = nil, maxESGuests: UInt32? = nil, cpu0Id: String? = nil) {
            self.cbitpos = cbitpos
            self.reducedPhysBits = reducedPhysBits
            self.maxGuests = maxGuests
            self.maxESGuests = maxESGuests
            self.cpu0Id = cpu0Id
        }
    }

    public init(
        emulator: String? = nil, virtType: String = "kvm", machine: String, arch: String, firmwareKinds: [String] = [],
        loaderPaths: [String] = [], sev: SEV? = nil, tdxSupported: Bool = false, launchSecuritySupported: Bool = false,
        launchSecurityTypes: [String] = []
    ) {
        self.emulator = emulator
        self.virtType = virtType
        self.machine = machine
        self.arch = arch
        self.firmwareKinds = firmwareKinds
        self.loaderPaths = loaderPaths
        self.sev = sev
        self.tdxSupported = tdxSupported
        self.launchSecuritySupported = launchSecuritySupported
        self.launchSecurityTypes = launchSecurityTypes
    }

    /// Whether libvirt accepts `<launchSecurity type='tdx'>` (else Custos writes the `<qemu:commandline>` form).
    public var supportsNativeTDX: Bool { launchSecurityTypes.contains("tdx") }
    /// Whether the host can run TDX guests: `<tdx supported='yes'/>` or `tdx` in the sectype enum.
    public var hasTDX: Bool { tdxSupported || launchSecurityTypes.contains("tdx") }
    /// Whether the host can run SEV-ES guests: SEV with a non-zero `maxESGuests`.
    public var hasSEVES: Bool { (sev?.maxESGuests ?? 0) > 0 }

    /// The largest document accepted (real captures are under 100 KiB).
    public static let maximumSize = 4 << 20

    /// Parses libvirt's domain capabilities XML.
    /// - Parameter xml: the document (from `virConnectGetDomainCapabilities`, `virsh domcapabilities` or a capture).
    /// - Throws: ``VirtError/Code/malformedCapabilities`` with the element concerned: not well-formed XML (strict
    ///   ``XMLReader``: a DOCTYPE is refused, so no entity is expanded), a missing `arch`/`machine`/`domain`, a
    ///   non-numeric SEV value, or a document over ``maximumSize``.
    public init(xml: String) throws(VirtError) {
        let size = xml.utf8.count
        guard size <= Self.maximumSize else {
            throw VirtError(.malformedCapabilities, "domain capabilities of \(size) bytes exceed \(Self.maximumSize)")
        }
        let root = try XMLReader.parse(xml, code: .malformedCapabilities)
        guard root.name == "domainCapabilities" else {
            throw VirtError(
                .malformedCapabilities, "the root element is <\(root.name)>, not <domainCapabilities>", field: "domainCapabilities")
        }
        func text(_ name: String, in element: XMLTree.Element) -> String? { element.element(named: name)?.text }
        func required(_ name: String) throws(VirtError) -> String {
            guard let value = text(name, in: root), !value.isEmpty else {
                throw VirtError(.malformedCapabilities, "domain capabilities lack <\(name)>", field: name)
            }
            return value
        }
        func number(_ name: String, in element: XMLTree.Element, field: String) throws(VirtError) -> UInt32? {
            guard let value = text(name, in: element) else { return nil }
            guard let number = UInt32(value) else {
                throw VirtError(.malformedCapabilities, "<\(name)> is not an unsigned integer: \(value)", field: field)
            }
            return number
        }
        func enumValues(_ element: XMLTree.Element?, _ name: String) -> [String] {
            guard let element else { return [] }
            let enums = element.elements(named: "enum").filter { $0.attribute("name") == name }
            return enums.flatMap { $0.elements(named: "value").map(\.text) }
        }
        func supported(_ element: XMLTree.Element?) -> Bool { element?.attribute("supported") == "yes" }

        let arch = try required("arch")
        let machine = try required("machine")
        let virtType = try required("domain")
        let os = root.element(named: "os")
        let loader = os?.element(named: "loader")
        let features = root.element(named: "features")
        var sev: SEV?
        if let element = features?.element(named: "sev"), supported(element) {
            guard let cbitpos = try number("cbitpos", in: element, field: "features.sev.cbitpos"),
                let reduced = try number("reducedPhysBits", in: element, field: "features.sev.reducedPhysBits")
            else {
                throw VirtError(.malformedCapabilities, "<sev supported='yes'> lacks cbitpos or reducedPhysBits", field: "features.sev")
            }
            sev = SEV(
                cbitpos: cbitpos, reducedPhysBits: reduced,
                maxGuests: try number("maxGuests", in: element, field: "features.sev.maxGuests"),
                maxESGuests: try number("maxESGuests", in: element, field: "features.sev.maxESGuests"), cpu0Id: text("cpu0Id", in: element))
        }
        let launchSecurity = features?.element(named: "launchSecurity")
        self.init(
            emulator: text("path", in: root), virtType: virtType, machine: machine, arch: arch, firmwareKinds: enumValues(os, "firmware"),
            loaderPaths: loader?.elements(named: "value").map(\.text) ?? [], sev: sev,
            tdxSupported: supported(features?.element(named: "tdx")), launchSecuritySupported: supported(launchSecurity),
            launchSecurityTypes: supported(launchSecurity) ? enumValues(launchSecurity, "sectype") : [])
    }
}
