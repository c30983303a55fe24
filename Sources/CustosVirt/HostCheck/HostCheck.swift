import Foundation

// MARK: - Results

/// A check's verdict.
public enum HostVerdict: String, Sendable, Codable, Equatable, Comparable {
    case pass = "PASS"
    case warn = "WARN"
    case fail = "FAIL"

    private var rank: Int {
        switch self {
        case .pass: 0
        case .warn: 1
        case .fail: 2
        }
    }
    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rank < rhs.rank }
}

/// One line of `custos host check`.
public struct HostCheckResult: Sendable, Codable, Equatable {
    /// A stable id: one of ``HostCheck/ids``.
    public let id: String
    public let verdict: HostVerdict
    /// Why, with the values read.
    public let reason: String
    /// What to do about it (empty for PASS).
    public let fix: String
}

/// The whole report (`--json` prints it as `{"checks": [...]}`).
public struct HostCheckReport: Sendable, Codable, Equatable {
    public let checks: [HostCheckResult]
    /// Whether any check failed (the command then exits 1).
    public var hasFailure: Bool { checks.contains { $0.verdict == .fail } }
    /// The check with id `id`.
    public subscript(id: String) -> HostCheckResult? { checks.first { $0.id == id } }
}

/// What the host check reads besides the host files.
public struct HostCheckInputs: Sendable {
    public var root: HostRoot
    /// The host's domain capabilities (from `--domcaps` or the connection), nil when unavailable.
    public var capabilities: DomainCapabilities?
    /// Why there are no capabilities (the connection failed, say), reported in a WARN.
    public var capabilitiesNote: String?
    /// The libvirt and hypervisor (QEMU) versions from the connection, when there is one.
    public var libvirtVersion: String?
    public var hypervisorVersion: String?

    public init(
        root: HostRoot, capabilities: DomainCapabilities? = nil, capabilitiesNote: String? = nil, libvirtVersion: String? = nil,
        hypervisorVersion: String? = nil
    ) {
        self.root = root
        self.capabilities = capabilities
        self.capabilitiesNote = capabilitiesNote
        self.libvirtVersion = libvirtVersion
        self.hypervisorVersion = hypervisorVersion
    }
}

// MARK: - The checks

/// `virt-host-validate` for confidential guests (issue 12 §4): pure over a ``HostRoot`` and optional domain
/// capabilities, so tests run it on fixture trees.
public enum HostCheck {
    /// The stable ids, in report order.
    public static let ids = ["kvm", "sev", "sev-es", "sev-snp", "tdx", "nested", "iommu", "firmware", "virtio-mem", "vgpu", "arch"]

    /// Runs every check.
    public static func run(_ inputs: HostCheckInputs) -> HostCheckReport {
        let host = Host(inputs)
        return HostCheckReport(checks: [
            kvm(host), sev(host), sevES(host), sevSNP(host), tdx(host), nested(host), iommu(host), firmware(host), virtioMem(host),
            vgpu(host),
            arch(host),
        ])
    }

    /// What the checks share: the first processor of /proc/cpuinfo, the architecture, the capabilities.
    struct Host {
        let inputs: HostCheckInputs
        let root: HostRoot
        let caps: DomainCapabilities?
        let cpu: [String: String]
        let flags: Set<String>
        let arch: String?

        init(_ inputs: HostCheckInputs) {
            self.inputs = inputs
            root = inputs.root
            caps = inputs.capabilities
            var cpu: [String: String] = [:]
            for line in (root.text("/proc/cpuinfo") ?? "").split(separator: "\n", omittingEmptySubsequences: false) {
                if line.trimmingCharacters(in: .whitespaces).isEmpty, !cpu.isEmpty { break }
                guard let colon = line.firstIndex(of: ":") else { continue }
                let key = line[..<colon].trimmingCharacters(in: .whitespaces)
                if cpu[key] == nil { cpu[key] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces) }
            }
            self.cpu = cpu
            flags = Set((cpu["flags"] ?? cpu["Features"] ?? "").split(separator: " ").map(String.init))
            // The host's own architecture (from /proc/cpuinfo) wins; capabilities may describe another emulator.
            if cpu["vendor_id"] != nil {
                arch = "x86_64"
            } else if cpu["CPU implementer"] != nil {
                arch = "aarch64"
            } else {
                arch = inputs.capabilities?.arch
            }
        }

        var vendor: String? { cpu["vendor_id"] }
        var isAMD: Bool { vendor == "AuthenticAMD" }
        var isIntel: Bool { vendor == "GenuineIntel" }
        var family: Int? { cpu["cpu family"].flatMap { Int($0) } }
        var model: Int? { cpu["model"].flatMap { Int($0) } }
        var modelName: String { cpu["model name"] ?? "unknown model" }
        var cpuDescription: String {
            "\(vendor ?? "unknown vendor") family \(family.map(Self.hex) ?? "?") model \(model.map(Self.hex) ?? "?") (\(modelName))"
        }

        static func hex(_ value: Int) -> String {
            let text = String(value, radix: 16, uppercase: true)
            return (text.count < 2 ? "0" + text : text) + "h"
        }

        /// AMD's generation: EPYC Rome is family 17h model 30h+; family 19h (Milan, Genoa) and 1Ah (Turin) are later.
        var isRomeOrLater: Bool {
            guard isAMD, let family, let model else { return false }
            return family > 0x17 || (family == 0x17 && model >= 0x30)
        }
        /// SEV-SNP needs Milan (family 19h) or later.
        var isMilanOrLater: Bool {
            guard isAMD, let family else { return false }
            return family >= 0x19
        }

        var versions: String {
            var parts: [String] = []
            if let libvirt = inputs.libvirtVersion { parts.append("libvirt \(libvirt)") }
            if let hypervisor = inputs.hypervisorVersion { parts.append("QEMU \(hypervisor)") }
            if let caps { parts.append("machine \(caps.machine)") }
            return parts.isEmpty ? "" : " (\(parts.joined(separator: ", ")))"
        }
        var noCapabilities: String {
            "no domain capabilities to confirm libvirt/QEMU support\(inputs.capabilitiesNote.map { ": \($0)" } ?? "")"
        }
    }

    /// Collects problems; the verdict is the worst one.
    struct Findings {
        var fails: [(String, String)] = []
        var warns: [(String, String)] = []
        var notes: [String] = []

        mutating func fail(_ reason: String, _ fix: String) { fails.append((reason, fix)) }
        mutating func warn(_ reason: String, _ fix: String) { warns.append((reason, fix)) }
        mutating func note(_ text: String) { notes.append(text) }

        func result(_ id: String) -> HostCheckResult {
            func join(_ items: [String]) -> String {
                Array(NSOrderedSet(array: items)).compactMap { $0 as? String }.joined(separator: "; ")
            }
            if !fails.isEmpty {
                return HostCheckResult(
                    id: id, verdict: .fail, reason: join(fails.map(\.0) + warns.map(\.0)), fix: join(fails.map(\.1) + warns.map(\.1)))
            }
            if !warns.isEmpty {
                return HostCheckResult(id: id, verdict: .warn, reason: join(warns.map(\.0) + notes), fix: join(warns.map(\.1)))
            }
            return HostCheckResult(id: id, verdict: .pass, reason: join(notes), fix: "")
        }
    }

    // MARK: kvm

    static func kvm(_ host: Host) -> HostCheckResult {
        var findings = Findings()
        let modules = (host.root.list("/sys/module") ?? []).filter { $0.hasPrefix("kvm_") }
        if !host.root.exists("/dev/kvm") {
            findings.fail(
                "no /dev/kvm: KVM is not available",
                "enable AMD-V/VT-x in the firmware setup and load kvm_amd or kvm_intel (modprobe kvm_amd)")
        } else if host.arch == "aarch64" {
            findings.note("/dev/kvm present (ARM64 KVM)")
        } else {
            let vendorModule = ["kvm_amd", "kvm_intel"].first { modules.contains($0) }
            let hardware = host.flags.contains("svm") || host.flags.contains("vmx")
            if let vendorModule {
                findings.note("/dev/kvm present, \(vendorModule) loaded, hardware virtualization \(hardware ? "(svm/vmx)" : "")")
            } else {
                let others = modules.isEmpty ? "no kvm vendor module" : "only \(modules.joined(separator: ", "))"
                findings.fail(
                    "/dev/kvm exists but neither kvm_amd nor kvm_intel is loaded (\(others)) and the CPU flags show \(hardware ? "svm/vmx" : "no svm/vmx"): no hardware-accelerated KVM",
                    "run on bare metal with AMD-V/VT-x enabled and kvm_amd or kvm_intel loaded")
            }
        }
        if let caps = host.caps, caps.virtType != "kvm" {
            findings.warn(
                "libvirt's domain capabilities are for virt type \(caps.virtType), not kvm",
                "ask for kvm capabilities (virsh domcapabilities --virttype kvm)")
        }
        return findings.result("kvm")
    }

    // MARK: AMD SEV, SEV-ES, SEV-SNP

    static func sevKernel(_ host: Host, _ findings: inout Findings) {
        if host.arch != "x86_64" || !host.isAMD {
            findings.warn(
                "not applicable: SEV needs an AMD EPYC x86_64 CPU, this is \(host.arch ?? "an unknown architecture") with \(host.cpuDescription)",
                "use an AMD EPYC (Rome or later) host for SEV")
            return
        }
        if !host.isRomeOrLater {
            findings.fail(
                "\(host.cpuDescription) is older than 2nd-generation EPYC (Rome, family 17h model 30h): SEV/SEV-ES need Rome or later",
                "use an AMD EPYC Rome, Milan, Genoa or later host")
        }
        switch host.root.flag("/sys/module/kvm_amd/parameters/sev") {
        case nil:
            findings.fail(
                "kvm_amd is not loaded (no /sys/module/kvm_amd/parameters/sev)",
                "load kvm_amd (modprobe kvm_amd sev=1) on an SVM-capable host")
        case false?:
            findings.fail(
                "kvm_amd reports sev=N", "enable SME/SEV in the firmware setup, boot with mem_encrypt=on and load kvm_amd with sev=1")
        case true?:
            findings.note("kvm_amd sev=Y")
        }
        if !host.root.exists("/dev/sev") {
            findings.fail(
                "no /dev/sev: the AMD secure processor driver (ccp) is not bound", "load ccp (modprobe ccp) and check the PSP firmware")
        }
    }

    static func sev(_ host: Host) -> HostCheckResult {
        var findings = Findings()
        sevKernel(host, &findings)
        if host.isAMD, host.arch == "x86_64" {
            if let caps = host.caps {
                if let sev = caps.sev {
                    findings.note(
                        "domain capabilities: cbitpos \(sev.cbitpos), reducedPhysBits \(sev.reducedPhysBits), maxGuests \(sev.maxGuests.map(String.init) ?? "unknown")\(host.versions)"
                    )
                    if sev.maxGuests == 0 {
                        findings.fail("maxGuests is 0: no SEV ASIDs are available", "raise the SEV ASID count in the firmware setup")
                    }
                } else {
                    findings.fail(
                        "libvirt/QEMU do not offer SEV (<sev supported='no'/>)\(host.versions)",
                        "install QEMU ≥ 8.0 and libvirt ≥ 8.0 with SEV support, and make sure /dev/sev is accessible to QEMU")
                }
            } else {
                findings.warn(host.noCapabilities, "give --domcaps FILE or a working --connect URI")
            }
        }
        return findings.result("sev")
    }

    static func sevES(_ host: Host) -> HostCheckResult {
        var findings = Findings()
        sevKernel(host, &findings)
        if host.isAMD, host.arch == "x86_64" {
            switch host.root.flag("/sys/module/kvm_amd/parameters/sev_es") {
            case true?: findings.note("kvm_amd sev_es=Y")
            case false?:
                findings.fail(
                    "kvm_amd reports sev_es=N", "set the SEV-ES ASID space limit in the firmware setup and load kvm_amd with sev_es=1")
            case nil:
                if host.root.exists("/sys/module/kvm_amd") {
                    findings.fail("kvm_amd has no sev_es parameter (kernel too old)", "use a host kernel ≥ 5.11 with SEV-ES support")
                }
            }
            if let caps = host.caps {
                if let maxES = caps.sev?.maxESGuests, maxES > 0 {
                    findings.note("domain capabilities: maxESGuests \(maxES)")
                } else {
                    findings.fail(
                        "the domain capabilities give no SEV-ES ASIDs (maxESGuests \(caps.sev?.maxESGuests.map(String.init) ?? "absent"))\(host.versions)",
                        "use libvirt ≥ 8.0 and set the SEV-ES ASID count in the firmware setup")
                }
            } else {
                findings.warn(host.noCapabilities, "give --domcaps FILE or a working --connect URI")
            }
        }
        return findings.result("sev-es")
    }

    static func sevSNP(_ host: Host) -> HostCheckResult {
        var findings = Findings()
        guard host.isAMD, host.arch == "x86_64" else {
            findings.warn(
                "not applicable: SEV-SNP needs an AMD EPYC x86_64 CPU (Milan or later)", "use an AMD EPYC Milan or later host for SEV-SNP")
            return findings.result("sev-snp")
        }
        // Custos launches SEV and SEV-ES guests; SNP is reported for information, so its absence is a warning.
        let fix =
            "SEV-SNP is optional for Custos's SEV/SEV-ES launches; for SNP use EPYC Milan or later, kernel ≥ 6.11, QEMU ≥ 9.1, libvirt ≥ 10.5"
        if !host.isMilanOrLater { findings.warn("\(host.cpuDescription) predates EPYC Milan: no SEV-SNP", fix) }
        switch host.root.flag("/sys/module/kvm_amd/parameters/sev_snp") {
        case true?: findings.note("kvm_amd sev_snp=Y")
        case false?: findings.warn("kvm_amd reports sev_snp=N", fix)
        case nil: findings.warn("kvm_amd has no sev_snp parameter", fix)
        }
        if let caps = host.caps {
            if caps.launchSecurityTypes.contains("sev-snp") {
                findings.note("domain capabilities list launch security type sev-snp")
            } else {
                findings.warn("the domain capabilities do not list launch security type sev-snp\(host.versions)", fix)
            }
        } else {
            findings.warn(host.noCapabilities, "give --domcaps FILE or a working --connect URI")
        }
        return findings.result("sev-snp")
    }

    // MARK: Intel TDX

    static func tdx(_ host: Host) -> HostCheckResult {
        var findings = Findings()
        guard host.isIntel, host.arch == "x86_64" else {
            findings.warn(
                "not applicable: TDX needs an Intel Xeon x86_64 CPU with TDX, this is \(host.arch ?? "an unknown architecture") with \(host.cpuDescription)",
                "use an Intel TDX-capable host (5th-generation Xeon or later) for TDX")
            return findings.result("tdx")
        }
        switch host.root.flag("/sys/module/kvm_intel/parameters/tdx") {
        case true?: findings.note("kvm_intel tdx=Y")
        case false?:
            findings.fail(
                "kvm_intel reports tdx=N",
                "enable TDX (and TME-MK) in the firmware setup and load kvm_intel with tdx=1 (host kernel ≥ 6.16)")
        case nil:
            findings.fail(
                "kvm_intel has no tdx parameter (not loaded, or a kernel without TDX host support)",
                "use a host kernel ≥ 6.16 and load kvm_intel with tdx=1")
        }
        if let caps = host.caps {
            if caps.hasTDX {
                let form =
                    caps.supportsNativeTDX
                    ? "libvirt accepts <launchSecurity type='tdx'>"
                    : "libvirt lacks <launchSecurity type='tdx'>: Custos writes the <qemu:commandline> form"
                findings.note("domain capabilities report TDX; \(form)\(host.versions)")
            } else {
                findings.fail(
                    "libvirt/QEMU do not offer TDX (no <tdx supported='yes'/>)\(host.versions)",
                    "install QEMU ≥ 10.1 and libvirt ≥ 11.10 with TDX support")
            }
        } else {
            findings.warn(host.noCapabilities, "give --domcaps FILE or a working --connect URI")
        }
        return findings.result("tdx")
    }

    // MARK: nested, IOMMU

    static func nested(_ host: Host) -> HostCheckResult {
        var findings = Findings()
        if host.flags.contains("hypervisor") {
            findings.fail(
                "this host is itself a virtual machine (CPU flag 'hypervisor'): SEV and TDX guests cannot run under a nested hypervisor",
                "run confidential guests on a bare-metal host")
        }
        for module in ["kvm_amd", "kvm_intel"] where host.root.flag("/sys/module/\(module)/parameters/nested") == true {
            findings.warn(
                "\(module) allows nested virtualization (nested=1): confidential guests cannot use it, and it widens the host's attack surface",
                "load \(module) with nested=0 (options \(module) nested=0 in /etc/modprobe.d)")
        }
        if findings.fails.isEmpty, findings.warns.isEmpty { findings.note("not running nested; nested virtualization off") }
        return findings.result("nested")
    }

    static func iommu(_ host: Host) -> HostCheckResult {
        var findings = Findings()
        let groups = host.root.list("/sys/kernel/iommu_groups") ?? []
        if groups.isEmpty {
            findings.warn(
                "no IOMMU groups in /sys/kernel/iommu_groups: the IOMMU is off or absent (SEV-SNP and device assignment need it)",
                "enable AMD-Vi/VT-d in the firmware setup and boot with amd_iommu=on or intel_iommu=on")
        } else {
            findings.note("\(groups.count) IOMMU groups")
        }
        return findings.result("iommu")
    }

    // MARK: firmware

    static func firmware(_ host: Host) -> HostCheckResult {
        var findings = Findings()
        let directory = "/usr/share/qemu/firmware"
        let files = (host.root.list(directory) ?? []).filter { $0.hasSuffix(".json") }
        var descriptors: [FirmwareDescriptor] = []
        var unreadable: [String] = []
        for file in files {
            guard let text = host.root.text("\(directory)/\(file)"), let descriptor = FirmwareDescriptor(file: file, json: Array(text.utf8))
            else {
                unreadable.append(file)
                continue
            }
            descriptors.append(descriptor)
        }
        let amdSev = descriptors.filter(\.isAmdSevBuild).map(\.file)
        let intelTdx = descriptors.filter(\.isIntelTdxBuild).map(\.file)
        let secureBoot = descriptors.filter(\.isSecureBoot).map(\.file)
        let generic = descriptors.filter { !$0.isAmdSevBuild && !$0.isIntelTdxBuild }.map(\.file)
        let summary =
            "AmdSev: \(amdSev.isEmpty ? "none" : amdSev.joined(separator: ", ")); IntelTdx: \(intelTdx.isEmpty ? "none" : intelTdx.joined(separator: ", ")); Secure Boot: \(secureBoot.isEmpty ? "none" : secureBoot.joined(separator: ", "))"
        if !unreadable.isEmpty {
            findings.warn("unreadable firmware descriptors: \(unreadable.joined(separator: ", "))", "fix or remove them")
        }
        if descriptors.isEmpty {
            findings.fail(
                "no QEMU firmware descriptors in \(directory): no OVMF installed",
                "install OVMF (apt install ovmf) and the AmdSev/IntelTdx builds")
            return findings.result("firmware")
        }
        findings.note(summary)
        if host.isAMD, host.arch == "x86_64", amdSev.isEmpty {
            let others = generic.isEmpty ? "" : " (\(generic.joined(separator: ", ")) are generic builds without the kernel-hashes table)"
            findings.fail(
                "no AmdSev OVMF build (feature amd-sev, mapping device 'memory'): measured SEV direct boot needs it\(others); \(summary)",
                "build edk2 OvmfPkg/AmdSev/AmdSevX64.dsc and install it with a descriptor (mapping.device 'memory', features amd-sev, amd-sev-es)"
            )
        } else if host.isIntel, host.arch == "x86_64", intelTdx.isEmpty {
            findings.fail(
                "no IntelTdx OVMF build (feature intel-tdx, mapping device 'memory'); \(summary)",
                "build edk2 OvmfPkg/IntelTdx/IntelTdxX64.dsc and install it with a descriptor (mapping.device 'memory', feature intel-tdx)")
        } else if amdSev.isEmpty, intelTdx.isEmpty {
            findings.warn(
                "no confidential-computing firmware build: \(summary)",
                "confidential guests need an x86_64 host with the AmdSev or IntelTdx build")
        }
        if secureBoot.isEmpty {
            findings.warn(
                "no Secure Boot OVMF build: the non-confidential twin of a launch cannot enforce the UKI signature",
                "install ovmf (secboot builds)")
        }
        return findings.result("firmware")
    }

    // MARK: virtio-mem, vGPU, arch

    static func virtioMem(_ host: Host) -> HostCheckResult {
        var findings = Findings()
        findings.note(
            "virtio-mem hot-plugs memory that SEV/SEV-ES/TDX neither encrypt at launch nor measure: Custos refuses virtio-mem devices in confidential domains (plain guests may use it)"
        )
        return findings.result("virtio-mem")
    }

    static func vgpu(_ host: Host) -> HostCheckResult {
        var findings = Findings()
        let parents = host.root.list("/sys/class/mdev_bus") ?? []
        let devices = host.root.list("/sys/bus/mdev/devices") ?? []
        if !parents.isEmpty || !devices.isEmpty {
            findings.warn(
                "mediated devices present (parents: \(parents.isEmpty ? "none" : parents.joined(separator: ", ")); devices: \(devices.count)): vGPUs cannot be given to confidential guests, and Custos refuses <hostdev type='mdev'> in them",
                "give confidential guests no mediated devices; use plain guests for vGPU work")
        }
        if host.root.exists("/sys/module/kvmgt") {
            findings.warn(
                "Intel GVT-g (kvmgt) is loaded: it is removed from newer kernels and not usable with confidential guests",
                "unload kvmgt (modprobe -r kvmgt) on hosts that run confidential guests")
        }
        if findings.warns.isEmpty { findings.note("no mediated devices") }
        return findings.result("vgpu")
    }

    static func arch(_ host: Host) -> HostCheckResult {
        var findings = Findings()
        if let caps = host.caps, let arch = host.arch, caps.arch != arch {
            findings.warn(
                "the domain capabilities describe \(caps.arch) guests (\(caps.machine)) but the host CPU is \(arch)",
                "give the capabilities of this host's native emulator (virsh domcapabilities --arch \(arch) --virttype kvm)")
        }
        switch host.arch {
        case "x86_64"?: findings.note("x86_64")
        case "aarch64"?:
            findings.fail(
                "aarch64 (ARM64): KVM guests run, but AMD SEV and Intel TDX exist only on x86_64; Custos launches confidential guests only there",
                "use an x86_64 AMD EPYC or Intel TDX host for confidential guests")
        case let other?:
            findings.fail("\(other): no AMD SEV or Intel TDX on this architecture", "use an x86_64 AMD EPYC or Intel TDX host")
        case nil:
            findings.warn(
                "cannot tell the architecture (no /proc/cpuinfo and no domain capabilities)",
                "run on the host itself or give --domcaps FILE")
        }
        return findings.result("arch")
    }
}
