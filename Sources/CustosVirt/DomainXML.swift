import CustosCrypto
import Foundation

/// Writes a ``DomainSpec`` as libvirt domain XML (formatdomain.rst; sev.md §2.6; tdx.md §5) through ``XMLTree``.
///
/// Use ``DomainDefinition/init(spec:capabilities:running:)``, which runs ``LaunchChecks`` first; these functions
/// only write.
public enum DomainXML {
    /// libvirt's QEMU namespace for `<qemu:commandline>`.
    public static let qemuNamespace = "http://libvirt.org/schemas/domain/qemu/1.0"
    /// The id of the confidential-guest object (libvirt's own choice, `lsec0`).
    public static let confidentialObjectID = "lsec0"

    /// Fills what the host decides: SEV `cbitpos`/`reducedPhysBits` from the domain capabilities (when the spec
    /// leaves them nil), and locked memory for SEV.
    public static func resolve(_ spec: DomainSpec, capabilities: DomainCapabilities) -> DomainSpec {
        var spec = spec
        if case .sev(var sev) = spec.launchSecurity {
            if let host = capabilities.sev {
                sev.cbitpos = sev.cbitpos ?? host.cbitpos
                sev.reducedPhysBits = sev.reducedPhysBits ?? host.reducedPhysBits
            }
            spec.launchSecurity = .sev(sev)
            spec.lockedMemory = true
        }
        return spec
    }

    /// The domain XML text.
    /// - Parameters:
    ///   - spec: the (resolved) domain.
    ///   - capabilities: decides TDX's form: native `<launchSecurity type='tdx'>` when the sectype enum lists
    ///     `tdx`, else `<qemu:commandline>`.
    /// - Throws: ``VirtError/Code/invalidSpec`` for values XML or libvirt cannot carry.
    public static func render(_ spec: DomainSpec, capabilities: DomainCapabilities) throws(VirtError) -> String {
        try tree(spec, nativeTDX: capabilities.supportsNativeTDX).serialize()
    }

    /// The domain as an ``XMLTree``.
    /// - Throws: ``VirtError/Code/invalidSpec``.
    public static func tree(_ spec: DomainSpec, nativeTDX: Bool) throws(VirtError) -> XMLTree {
        guard !spec.name.isEmpty else { throw VirtError(.invalidSpec, "the domain name is empty", field: "name") }
        guard spec.vcpus > 0 else { throw VirtError(.invalidSpec, "a domain needs at least one vCPU", field: "vcpus") }
        guard spec.memoryKiB > 0 else { throw VirtError(.invalidSpec, "a domain needs memory", field: "memoryKiB") }
        let confidential = spec.launchSecurity != nil
        var tdxCommandLine: [String]?
        var children: [XMLTree.Node] = [
            .element(.init("name", text: spec.name))
        ]
        if let uuid = spec.uuid { children.append(.element(.init("uuid", text: uuid.uuidString.lowercased()))) }
        let hotplugKiB = spec.devices.reduce(UInt64(0)) { total, device in
            if case .virtioMem(let size, _) = device { return total &+ size }
            return total
        }
        if hotplugKiB > 0 {
            let (maximum, overflow) = spec.memoryKiB.addingReportingOverflow(hotplugKiB)
            guard !overflow else { throw VirtError(.invalidSpec, "memory sizes overflow", field: "devices") }
            children.append(.element(.init("maxMemory", [("slots", "1"), ("unit", "KiB")], text: String(maximum))))
        }
        children.append(.element(.init("memory", [("unit", "KiB")], text: String(spec.memoryKiB))))
        children.append(.element(.init("currentMemory", [("unit", "KiB")], text: String(spec.memoryKiB))))
        if spec.lockedMemory {
            children.append(.element(.init("memoryBacking", [], [.element(.init("locked"))])))
        }
        children.append(.element(.init("vcpu", [("placement", "static")], text: String(spec.vcpus))))
        children.append(.element(os(spec)))
        var features: [XMLTree.Node] = [.element(.init("acpi"))]
        if case .tdx = spec.launchSecurity {
            // TDX: split irqchip and no SMM (tdx.md §5).
            features.append(.element(.init("ioapic", [("driver", "qemu")])))
            features.append(.element(.init("smm", [("state", "off")])))
        } else if case .uefi(let firmware) = spec.firmware, firmware.secureBoot {
            features.append(.element(.init("smm", [("state", "on")])))
        }
        children.append(.element(.init("features", [], features)))
        if spec.virtType == "kvm" { children.append(.element(.init("cpu", [("mode", "host-passthrough")]))) }
        children.append(.element(.init("clock", [("offset", "utc")])))
        // A measured guest cannot be re-launched by a reset: power it off instead.
        let onReboot = confidential || spec.destroyOnReboot ? "destroy" : "restart"
        children.append(.element(.init("on_poweroff", text: "destroy")))
        children.append(.element(.init("on_reboot", text: onReboot)))
        children.append(.element(.init("on_crash", text: "destroy")))
        children.append(.element(devices(spec, confidential: confidential)))
        switch spec.launchSecurity {
        case .sev(let sev): children.append(.element(try sevElement(sev)))
        case .tdx(let tdx):
            if nativeTDX {
                children.append(.element(try tdxElement(tdx)))
            } else {
                tdxCommandLine = try tdxQEMUArguments(tdx)
            }
        case nil: break
        }
        var attributes = [("type", spec.virtType)]
        if let arguments = tdxCommandLine {
            attributes.append(("xmlns:qemu", qemuNamespace))
            children.append(.element(.init("qemu:commandline", [], arguments.map { .element(.init("qemu:arg", [("value", $0)])) })))
        }
        return XMLTree(root: .init("domain", attributes, children))
    }

    private static func os(_ spec: DomainSpec) -> XMLTree.Element {
        var children: [XMLTree.Node] = [.element(.init("type", [("arch", spec.arch), ("machine", spec.machine)], text: "hvm"))]
        if case .uefi(let firmware) = spec.firmware {
            if let template = firmware.nvramTemplate {
                var attributes = [("readonly", "yes")]
                if firmware.secureBoot { attributes.append(("secure", "yes")) }
                attributes.append(("type", "pflash"))
                children.append(.element(.init("loader", attributes, text: firmware.path)))
                if let path = firmware.nvramPath {
                    children.append(.element(.init("nvram", [("template", template)], text: path)))
                } else {
                    children.append(.element(.init("nvram", [("template", template)])))
                }
            } else {
                // Stateless: loaded as a ROM (-bios), no NVRAM, so the launch measurement covers all firmware state.
                children.append(
                    .element(.init("loader", [("readonly", "yes"), ("type", "rom"), ("stateless", "yes")], text: firmware.path)))
            }
        }
        if let boot = spec.directBoot {
            children.append(.element(.init("kernel", text: boot.kernel)))
            if let initrd = boot.initrd { children.append(.element(.init("initrd", text: initrd))) }
            if let cmdline = boot.cmdline { children.append(.element(.init("cmdline", text: cmdline))) }
        }
        return .init("os", [], children)
    }

    private static func iommu(_ confidential: Bool) -> [XMLTree.Node] {
        confidential ? [.element(.init("driver", [("iommu", "on")]))] : []
    }

    private static func devices(_ spec: DomainSpec, confidential: Bool) -> XMLTree.Element {
        var children: [XMLTree.Node] = []
        if let emulator = spec.emulator { children.append(.element(.init("emulator", text: emulator))) }
        var hasBalloon = false
        for device in spec.devices {
            switch device {
            case .disk(let path, let target, let format, let readOnly):
                var driver: [(String, String)] = [("name", "qemu"), ("type", format)]
                if confidential { driver.append(("iommu", "on")) }
                var disk: [XMLTree.Node] = [
                    .element(.init("driver", driver)),
                    .element(.init("source", [("file", path)])),
                    .element(.init("target", [("dev", target), ("bus", "virtio")])),
                ]
                if readOnly { disk.append(.element(.init("readonly"))) }
                children.append(.element(.init("disk", [("type", "file"), ("device", "disk")], disk)))
            case .network(let name):
                var interface: [XMLTree.Node] = [
                    .element(.init("source", [("network", name)])),
                    .element(.init("model", [("type", "virtio")])),
                ]
                interface += iommu(confidential)
                if confidential { interface.append(.element(.init("rom", [("enabled", "no")]))) }
                children.append(.element(.init("interface", [("type", "network")], interface)))
            case .rng:
                let rng: [XMLTree.Node] = [.element(.init("backend", [("model", "random")], text: "/dev/urandom"))] + iommu(confidential)
                children.append(.element(.init("rng", [("model", "virtio")], rng)))
            case .serialConsole:
                children.append(.element(.init("serial", [("type", "pty")])))
                children.append(
                    .element(.init("console", [("type", "pty")], [.element(.init("target", [("type", "serial"), ("port", "0")]))])))
            case .serialFile(let path):
                let serial: [XMLTree.Node] = [.element(.init("source", [("path", path)])), .element(.init("target", [("port", "0")]))]
                children.append(.element(.init("serial", [("type", "file")], serial)))
            case .balloon(let iommuOn):
                hasBalloon = true
                let driver: [XMLTree.Node] = iommuOn ? [.element(.init("driver", [("iommu", "on")]))] : []
                children.append(.element(.init("memballoon", [("model", "virtio")], driver)))
            case .virtioMem(let size, let block):
                let target: [XMLTree.Node] = [
                    .element(.init("size", [("unit", "KiB")], text: String(size))),
                    .element(.init("node", text: "0")),
                    .element(.init("block", [("unit", "KiB")], text: String(block))),
                ]
                children.append(.element(.init("memory", [("model", "virtio-mem")], [.element(.init("target", [], target))])))
            case .mediatedDevice(let uuid, let model):
                let source: [XMLTree.Node] = [.element(.init("address", [("uuid", uuid)]))]
                children.append(
                    .element(
                        .init(
                            "hostdev", [("mode", "subsystem"), ("type", "mdev"), ("model", model)], [.element(.init("source", [], source))])
                    ))
            case .vsock(let cid):
                let vsock: [XMLTree.Node] = [.element(.init("cid", [("auto", "no"), ("address", String(cid))]))] + iommu(confidential)
                children.append(.element(.init("vsock", [("model", "virtio")], vsock)))
            }
        }
        if !hasBalloon { children.append(.element(.init("memballoon", [("model", "none")]))) }
        return .init("devices", [], children)
    }

    /// `<launchSecurity type='sev' [kernelHashes='yes']>` (sev.md §2.6; policy written as libvirt's tests do, 0x%04x).
    /// - Throws: ``VirtError/Code/invalidSpec`` when dhCert or session is not base64 text.
    public static func sevElement(_ sev: DomainSpec.SEVLaunch) throws(VirtError) -> XMLTree.Element {
        try checkBase64(sev.dhCert, field: "launchSecurity.dhCert")
        try checkBase64(sev.session, field: "launchSecurity.session")
        var children: [XMLTree.Node] = []
        if let cbitpos = sev.cbitpos { children.append(.element(.init("cbitpos", text: String(cbitpos)))) }
        if let reduced = sev.reducedPhysBits { children.append(.element(.init("reducedPhysBits", text: String(reduced)))) }
        children.append(.element(.init("policy", text: hex(UInt64(sev.policy), digits: 4))))
        children.append(.element(.init("dhCert", text: sev.dhCert)))
        children.append(.element(.init("session", text: sev.session)))
        var attributes = [("type", "sev")]
        if sev.kernelHashes { attributes.append(("kernelHashes", "yes")) }
        return .init("launchSecurity", attributes, children)
    }

    /// libvirt's native `<launchSecurity type='tdx'>` (tdx.md §5; libvirt's test input launch-security-tdx.xml).
    /// - Throws: ``VirtError/Code/invalidSpec`` for a measurement register that is not 48 bytes.
    public static func tdxElement(_ tdx: DomainSpec.TDXLaunch) throws(VirtError) -> XMLTree.Element {
        var children: [XMLTree.Node] = [.element(.init("policy", text: hex(tdx.policy, digits: 8)))]
        for (name, value) in [("mrConfigId", tdx.mrConfigId), ("mrOwner", tdx.mrOwner), ("mrOwnerConfig", tdx.mrOwnerConfig)] {
            guard let value else { continue }
            children.append(.element(.init(name, text: try register(value, field: "launchSecurity.\(name)"))))
        }
        if let socket = tdx.quoteGenerationSocket {
            children.append(.element(.init("quoteGenerationService", [("path", socket)])))
        }
        return .init("launchSecurity", [("type", "tdx")], children)
    }

    /// The QEMU arguments equivalent to `<launchSecurity type='tdx'>` for a libvirt without it (tdx.md §5): the
    /// `tdx-guest` object as JSON (the same members libvirt writes) and the machine options.
    /// - Throws: ``VirtError/Code/invalidSpec``.
    public static func tdxQEMUArguments(_ tdx: DomainSpec.TDXLaunch) throws(VirtError) -> [String] {
        guard let attributes = Int64(exactly: tdx.policy) else {
            throw VirtError(
                .invalidSpec, "TD attributes \(hex(tdx.policy, digits: 16)) do not fit QEMU's JSON integer", field: "launchSecurity.policy")
        }
        var object: [String: JSONValue] = [
            "qom-type": .string("tdx-guest"), "id": .string(confidentialObjectID), "attributes": .integer(attributes),
        ]
        for (name, value) in [("mrconfigid", tdx.mrConfigId), ("mrowner", tdx.mrOwner), ("mrownerconfig", tdx.mrOwnerConfig)] {
            guard let value else { continue }
            object[name] = .string(try register(value, field: "launchSecurity.\(name)"))
        }
        if let socket = tdx.quoteGenerationSocket {
            object["quote-generation-socket"] = .object(["type": .string("unix"), "path": .string(socket)])
        }
        let json = String(decoding: CanonicalJSON.encode(.object(object)), as: UTF8.self)
        return ["-object", json, "-machine", "confidential-guest-support=\(confidentialObjectID),kernel-irqchip=split"]
    }

    private static func register(_ value: [UInt8], field: String) throws(VirtError) -> String {
        guard value.count == 48 else {
            throw VirtError(.invalidSpec, "a TDX measurement register is 48 bytes (SHA-384), not \(value.count)", field: field)
        }
        return Data(value).base64EncodedString()
    }

    private static func checkBase64(_ text: String, field: String) throws(VirtError) {
        let ok =
            !text.isEmpty
            && text.unicodeScalars.allSatisfy { scalar in
                (scalar >= "A" && scalar <= "Z") || (scalar >= "a" && scalar <= "z") || (scalar >= "0" && scalar <= "9") || scalar == "+"
                    || scalar == "/" || scalar == "="
            }
        guard ok else { throw VirtError(.invalidSpec, "\(field) must be base64 text", field: field) }
    }

    static func hex(_ value: UInt64, digits: Int) -> String {
        let text = String(value, radix: 16)
        return "0x" + String(repeating: "0", count: max(0, digits - text.count)) + text
    }
}
