import CustosTestSupport
import CustosVirt
import Foundation
import Testing

/// `HostCheck` on fixture host trees built here (SEV host, TDX host, plain KVM, nested, aarch64, old Naples),
/// combined with each real domain-capabilities capture.
@Suite(Requirement.testData)
struct HostCheckTests {
    // MARK: Fixture trees

    enum Tree: String, CaseIterable, Sendable {
        case sev, tdx, plainKVM, nested, aarch64
    }

    static func cpuinfo(vendor: String, family: Int, model: Int, name: String, flags: String) -> String {
        (0..<2).map { index in
            "processor\t: \(index)\nvendor_id\t: \(vendor)\ncpu family\t: \(family)\nmodel\t\t: \(model)\nmodel name\t: \(name)\nflags\t\t: \(flags)\n\n"
        }.joined()
    }

    /// QEMU firmware descriptors as distributions ship them (fields per QEMU's docs/interop/firmware.json).
    static func descriptor(
        _ description: String, device: String, file: String, nvram: String? = nil, features: [String], arch: String = "x86_64"
    )
        -> String
    {
        let mapping =
            device == "memory"
            ? "{\"device\": \"memory\", \"filename\": \"\(file)\"}"
            : "{\"device\": \"flash\", \"executable\": {\"filename\": \"\(file)\", \"format\": \"raw\"}\(nvram.map { ", \"nvram-template\": {\"filename\": \"\($0)\", \"format\": \"raw\"}" } ?? "")}"
        return """
            {"description": "\(description)", "interface-types": ["uefi"], "mapping": \(mapping),
             "targets": [{"architecture": "\(arch)", "machines": ["pc-q35-*"]}],
             "features": [\(features.map { "\"\($0)\"" }.joined(separator: ", "))], "tags": []}
            """
    }

    static let debianSecure = descriptor(
        "UEFI firmware for x86_64, with Secure Boot and SMM", device: "flash", file: "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd",
        nvram: "/usr/share/OVMF/OVMF_VARS_4M.fd", features: ["acpi-s3", "amd-sev", "requires-smm", "secure-boot", "verbose-dynamic"])
    static let debianPlain = descriptor(
        "UEFI firmware for x86_64", device: "flash", file: "/usr/share/OVMF/OVMF_CODE_4M.fd", nvram: "/usr/share/OVMF/OVMF_VARS_4M.fd",
        features: ["acpi-s3", "amd-sev", "verbose-dynamic"])
    static let amdSevBuild = descriptor(
        "OVMF for x86_64 with SEV/SEV-ES kernel hashes (AmdSev)", device: "memory", file: "/usr/share/edk2/ovmf/OVMF.amdsev.fd",
        features: ["amd-sev", "amd-sev-es", "verbose-dynamic"])
    static let intelTdxBuild = descriptor(
        "OVMF for x86_64 TDX guests (IntelTdx)", device: "memory", file: "/usr/share/edk2/ovmf/OVMF.inteltdx.fd",
        features: ["intel-tdx", "verbose-dynamic"])
    static let aarch64Build = descriptor(
        "UEFI firmware for ARM64", device: "flash", file: "/usr/share/AAVMF/AAVMF_CODE.fd", nvram: "/usr/share/AAVMF/AAVMF_VARS.fd",
        features: ["verbose-static"], arch: "aarch64")

    /// Builds a host tree in a temporary directory.
    static func build(_ tree: Tree) throws -> TemporaryDirectory {
        let dir = try TemporaryDirectory()
        try dir.write("dev/kvm", "")
        for group in 0..<3 { try dir.mkdir("sys/kernel/iommu_groups/\(group)") }
        switch tree {
        case .sev:
            try dir.write("dev/sev", "")
            try dir.write(
                "proc/cpuinfo",
                cpuinfo(
                    vendor: "AuthenticAMD", family: 25, model: 1, name: "AMD EPYC 7763 64-Core Processor", flags: "fpu vme svm sev sev_es"))
            for (name, value) in [("sev", "Y"), ("sev_es", "Y"), ("sev_snp", "Y"), ("nested", "0")] {
                try dir.write("sys/module/kvm_amd/parameters/\(name)", value + "\n")
            }
            try dir.write("usr/share/qemu/firmware/40-edk2-ovmf-x64-amdsev.json", amdSevBuild)
            try dir.write("usr/share/qemu/firmware/50-edk2-x86_64-secure.json", debianSecure)
        case .tdx:
            try dir.write(
                "proc/cpuinfo",
                cpuinfo(
                    vendor: "GenuineIntel", family: 6, model: 207, name: "INTEL(R) XEON(R) PLATINUM 8580",
                    flags: "fpu vme vmx tdx_host_platform"))
            try dir.write("sys/module/kvm_intel/parameters/tdx", "Y\n")
            try dir.write("sys/module/kvm_intel/parameters/nested", "N\n")
            try dir.write("usr/share/qemu/firmware/40-edk2-ovmf-x64-inteltdx.json", intelTdxBuild)
            try dir.write("usr/share/qemu/firmware/50-edk2-x86_64-secure.json", debianSecure)
        case .plainKVM:
            try dir.write(
                "proc/cpuinfo",
                cpuinfo(vendor: "AuthenticAMD", family: 23, model: 49, name: "AMD EPYC 7502 32-Core Processor", flags: "fpu vme svm"))
            for (name, value) in [("sev", "N"), ("sev_es", "N"), ("nested", "0")] {
                try dir.write("sys/module/kvm_amd/parameters/\(name)", value + "\n")
            }
            try dir.write("usr/share/qemu/firmware/50-edk2-x86_64-secure.json", debianSecure)
            try dir.write("usr/share/qemu/firmware/60-edk2-x86_64.json", debianPlain)
        case .nested:
            try dir.write(
                "proc/cpuinfo",
                cpuinfo(vendor: "AuthenticAMD", family: 25, model: 1, name: "AMD EPYC-Milan Processor", flags: "fpu vme svm hypervisor"))
            for (name, value) in [("sev", "N"), ("sev_es", "N"), ("nested", "1")] {
                try dir.write("sys/module/kvm_amd/parameters/\(name)", value + "\n")
            }
            try dir.write("usr/share/qemu/firmware/40-edk2-ovmf-x64-amdsev.json", amdSevBuild)
            try dir.write("usr/share/qemu/firmware/50-edk2-x86_64-secure.json", debianSecure)
        case .aarch64:
            try dir.write(
                "proc/cpuinfo",
                "processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x3\nCPU part\t: 0xd0c\n\n"
            )
            try dir.write("usr/share/qemu/firmware/60-edk2-aarch64.json", aarch64Build)
        }
        return dir
    }

    // MARK: Expected verdicts (written from the host facts, per issue 12 §4)

    enum CapsKind: String, CaseIterable, Sendable { case sev, tdx, plain, aarch64 }
    static func captures(_ kind: CapsKind) -> [String] {
        switch kind {
        case .sev: Captures.sevHosts
        case .tdx: [Captures.tdxHost]
        case .plain: [Captures.plainHost]
        case .aarch64: [Captures.aarch64Host]
        }
    }

    static func expected(_ tree: Tree, _ caps: CapsKind) -> [String: HostVerdict] {
        let archMismatch = (tree == .aarch64) != (caps == .aarch64)
        switch tree {
        case .sev:
            return [
                "kvm": .pass, "sev": caps == .sev ? .pass : .fail, "sev-es": caps == .sev ? .pass : .fail,
                "sev-snp": caps == .sev ? .pass : .warn,
                "tdx": .warn, "nested": .pass, "iommu": .pass, "firmware": .pass, "virtio-mem": .pass, "vgpu": .pass,
                "arch": archMismatch ? .warn : .pass,
            ]
        case .tdx:
            return [
                "kvm": .pass, "sev": .warn, "sev-es": .warn, "sev-snp": .warn, "tdx": caps == .tdx ? .pass : .fail, "nested": .pass,
                "iommu": .pass,
                "firmware": .pass, "virtio-mem": .pass, "vgpu": .pass, "arch": archMismatch ? .warn : .pass,
            ]
        case .plainKVM:
            return [
                "kvm": .pass, "sev": .fail, "sev-es": .fail, "sev-snp": .warn, "tdx": .warn, "nested": .pass, "iommu": .pass,
                "firmware": .fail,
                "virtio-mem": .pass, "vgpu": .pass, "arch": archMismatch ? .warn : .pass,
            ]
        case .nested:
            return [
                "kvm": .pass, "sev": .fail, "sev-es": .fail, "sev-snp": .warn, "tdx": .warn, "nested": .fail, "iommu": .pass,
                "firmware": .pass,
                "virtio-mem": .pass, "vgpu": .pass, "arch": archMismatch ? .warn : .pass,
            ]
        case .aarch64:
            return [
                "kvm": .pass, "sev": .warn, "sev-es": .warn, "sev-snp": .warn, "tdx": .warn, "nested": .pass, "iommu": .pass,
                "firmware": .warn,
                "virtio-mem": .pass, "vgpu": .pass, "arch": .fail,
            ]
        }
    }

    struct Case: Sendable, CustomStringConvertible {
        let tree: Tree
        let caps: CapsKind
        var description: String { "\(tree.rawValue) host + \(caps.rawValue) capabilities" }
    }
    static let matrix: [Case] = Tree.allCases.flatMap { tree in CapsKind.allCases.map { Case(tree: tree, caps: $0) } }

    @Test("fixture host × real capture → the right verdict for every check", arguments: matrix)
    func verdicts(_ entry: Case) throws {
        let dir = try Self.build(entry.tree)
        defer { dir.cleanup() }
        for file in Self.captures(entry.caps) {
            let caps = try DomainCapabilities(xml: try Captures.text(file))
            let report = HostCheck.run(HostCheckInputs(root: HostRoot(dir.url), capabilities: caps))
            #expect(report.checks.map(\.id) == HostCheck.ids)
            let expected = Self.expected(entry.tree, entry.caps)
            for check in report.checks {
                #expect(check.verdict == expected[check.id], "\(entry) [\(file)] \(check.id): \(check.verdict.rawValue) \(check.reason)")
                #expect(!check.reason.isEmpty, "\(check.id) has a reason")
                #expect(check.verdict == .pass || !check.fix.isEmpty, "\(check.id) \(check.verdict.rawValue) has a fix")
            }
            #expect(report.hasFailure == expected.values.contains(.fail))
        }
    }

    @Test("the SEV host's reason carries the capture's cbitpos, reducedPhysBits and ASID counts")
    func sevReasons() throws {
        let dir = try Self.build(.sev)
        defer { dir.cleanup() }
        let caps = try DomainCapabilities(xml: try Captures.text(Captures.sevHosts[0]))
        let report = HostCheck.run(HostCheckInputs(root: HostRoot(dir.url), capabilities: caps, libvirtVersion: "11.3.0"))
        let sev = try #require(report["sev"])
        #expect(sev.reason.contains("cbitpos 51") && sev.reason.contains("reducedPhysBits 1") && sev.reason.contains("maxGuests 59"))
        #expect(sev.reason.contains("libvirt 11.3.0"))
        #expect(report["sev-es"]?.reason.contains("maxESGuests 450") == true)
        #expect(report["firmware"]?.reason.contains("40-edk2-ovmf-x64-amdsev.json") == true)
    }

    @Test("without capabilities the TEE checks warn and say why; the kernel side still decides FAIL")
    func noCapabilities() throws {
        let sevHost = try Self.build(.sev)
        defer { sevHost.cleanup() }
        let note = "libvirt at qemu:///system: cannot connect"
        let report = HostCheck.run(HostCheckInputs(root: HostRoot(sevHost.url), capabilitiesNote: note))
        #expect(report["sev"]?.verdict == .warn)
        #expect(report["sev"]?.reason.contains(note) == true)
        #expect(report["arch"]?.verdict == .pass)
        let plain = try Self.build(.plainKVM)
        defer { plain.cleanup() }
        #expect(HostCheck.run(HostCheckInputs(root: HostRoot(plain.url)))["sev"]?.verdict == .fail)
    }

    @Test("EPYC Naples (family 17h model 01h) fails SEV and SEV-ES: Rome or later is required")
    func naples() throws {
        let dir = try Self.build(.sev)
        defer { dir.cleanup() }
        try dir.write(
            "proc/cpuinfo",
            Self.cpuinfo(vendor: "AuthenticAMD", family: 23, model: 1, name: "AMD EPYC 7601 32-Core Processor", flags: "svm sev"))
        let caps = try DomainCapabilities(xml: try Captures.text(Captures.sevHosts[0]))
        let report = HostCheck.run(HostCheckInputs(root: HostRoot(dir.url), capabilities: caps))
        #expect(report["sev"]?.verdict == .fail)
        #expect(report["sev"]?.reason.contains("Rome") == true)
        #expect(report["sev-es"]?.verdict == .fail)
        #expect(report["sev-snp"]?.verdict == .warn)
    }

    @Test("an empty tree: no /dev/kvm fails; mediated devices and GVT-g warn")
    func emptyAndVGPU() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let empty = HostCheck.run(HostCheckInputs(root: HostRoot(dir.url)))
        #expect(empty["kvm"]?.verdict == .fail)
        #expect(empty["arch"]?.verdict == .warn)
        #expect(empty["firmware"]?.verdict == .fail)
        #expect(empty["iommu"]?.verdict == .warn)
        try dir.mkdir("sys/class/mdev_bus/0000:00:02.0")
        try dir.mkdir("sys/module/kvmgt")
        let vgpu = HostCheck.run(HostCheckInputs(root: HostRoot(dir.url)))["vgpu"]
        #expect(vgpu?.verdict == .warn)
        #expect(vgpu?.reason.contains("0000:00:02.0") == true)
        #expect(vgpu?.reason.contains("GVT-g") == true)
    }

    @Test("firmware descriptors: AmdSev and IntelTdx builds are told from Debian's generic amd-sev flash builds")
    func descriptors() throws {
        let amd = try #require(FirmwareDescriptor(file: "a.json", json: Array(Self.amdSevBuild.utf8)))
        #expect(amd.isAmdSevBuild && !amd.isIntelTdxBuild && !amd.isSecureBoot)
        #expect(amd.executable == "/usr/share/edk2/ovmf/OVMF.amdsev.fd")
        let tdx = try #require(FirmwareDescriptor(file: "t.json", json: Array(Self.intelTdxBuild.utf8)))
        #expect(tdx.isIntelTdxBuild && !tdx.isAmdSevBuild)
        let debian = try #require(FirmwareDescriptor(file: "d.json", json: Array(Self.debianSecure.utf8)))
        #expect(!debian.isAmdSevBuild && debian.isSecureBoot && debian.nvramTemplate == "/usr/share/OVMF/OVMF_VARS_4M.fd")
        #expect(FirmwareDescriptor(file: "x.json", json: Array("not json".utf8)) == nil)
        #expect(FirmwareDescriptor(file: "x.json", json: Array("{\"mapping\": 3}".utf8)) == nil)
    }

    @Test(
        "this machine's own firmware descriptors (Debian's ovmf) parse",
        Requirement.skipOrFail(unless: FileManager.default.fileExists(atPath: "/usr/share/qemu/firmware"), "needs ovmf"))
    func realDescriptors() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: "/usr/share/qemu/firmware").filter { $0.hasSuffix(".json") }
        #expect(!files.isEmpty)
        for file in files {
            let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: "/usr/share/qemu/firmware/\(file)")))
            let descriptor = try #require(FirmwareDescriptor(file: file, json: bytes), "\(file)")
            // uki.md step 5: bookworm's descriptors declare amd-sev but none is the AmdSev or IntelTdx build.
            #expect(!descriptor.isAmdSevBuild && !descriptor.isIntelTdxBuild, "\(file)")
        }
    }
}
