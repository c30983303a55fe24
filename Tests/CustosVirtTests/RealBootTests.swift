import CustosTestSupport
import CustosVirt
import Foundation
import Testing

/// The non-confidential twin of a generated SEV or TDX domain, as a pure function: what it keeps, what it drops, which
/// firmware it picks (no libvirt, no VM).
@Suite("the TCG twin of a confidential domain", Requirement.testData)
struct DomainTwinTests {
    /// Descriptors shaped as Debian's ovmf 2022.11 ships them (40-…-secure-enrolled, 50-…-secure, 60-…), plus an AmdSev
    /// build; listed out of file-name order.
    static let descriptors = [
        FirmwareDescriptor(
            file: "60-edk2-x86_64.json", device: "flash", executable: "/usr/share/OVMF/OVMF_CODE_4M.fd",
            nvramTemplate: "/usr/share/OVMF/OVMF_VARS_4M.fd", features: ["acpi-s3", "amd-sev", "verbose-dynamic"], architectures: ["x86_64"]
        ),
        FirmwareDescriptor(
            file: "50-edk2-x86_64-secure.json", device: "flash", executable: "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd",
            nvramTemplate: "/usr/share/OVMF/OVMF_VARS_4M.fd", features: ["acpi-s3", "amd-sev", "requires-smm", "secure-boot"],
            architectures: ["x86_64"]),
        FirmwareDescriptor(
            file: "40-edk2-x86_64-secure-enrolled.json", device: "flash", executable: "/usr/share/OVMF/OVMF_CODE_4M.ms.fd",
            nvramTemplate: "/usr/share/OVMF/OVMF_VARS_4M.ms.fd", features: ["enrolled-keys", "requires-smm", "secure-boot"],
            architectures: ["x86_64"]),
        FirmwareDescriptor(
            file: "30-edk2-amdsev.json", device: "memory", executable: "/usr/share/OVMF/OVMF.amdsev.fd",
            features: ["amd-sev", "amd-sev-es"],
            architectures: ["x86_64"]),
    ]

    @Test("the twin of an SEV and of a TDX domain: TCG, no launch security, Secure Boot OVMF with our vars, the same UKI")
    func twinOfGeneratedDomains() throws {
        for definition in [try RealBoot.sevDefinition(uki: "/var/tmp/uki.efi"), try RealBoot.tdxDefinition(uki: "/var/tmp/uki.efi")] {
            let confidential = definition.spec
            let twin = try confidential.nonConfidentialTwin(
                firmware: Self.descriptors, enrolledVars: "/var/tmp/vars-enrolled.fd", nvramPath: "/var/tmp/nvram.fd",
                serialLog: "/var/tmp/serial.log")
            #expect(twin.name == confidential.name)
            #expect(twin.memoryKiB == 524_288 && twin.vcpus == 1 && twin.machine == "q35" && twin.arch == "x86_64")
            #expect(twin.directBoot == DomainSpec.DirectBoot(kernel: "/var/tmp/uki.efi"))
            #expect(twin.virtType == "qemu")
            #expect(twin.launchSecurity == nil)
            #expect(!twin.lockedMemory)
            #expect(twin.devices == [.rng, .serialFile(path: "/var/tmp/serial.log")])
            #expect(
                twin.firmware
                    == .uefi(
                        .init(
                            path: "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd", build: .generic, nvramTemplate: "/var/tmp/vars-enrolled.fd",
                            secureBoot: true, nvramPath: "/var/tmp/nvram.fd")))

            let xml = try DomainXML.tree(twin, nativeTDX: false).serialize()
            let shape = try XMLShape.parse(xml)
            #expect(shape.attributes == ["type": "qemu"])
            #expect(shape.child("launchSecurity") == nil && shape.child("qemu:commandline") == nil && shape.child("commandline") == nil)
            #expect(shape.child("memoryBacking") == nil && shape.child("cpu") == nil)
            let os = try #require(shape.child("os"))
            #expect(os.child("loader")?.attributes == ["readonly": "yes", "secure": "yes", "type": "pflash"])
            #expect(os.child("loader")?.text == "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd")
            #expect(os.child("nvram")?.attributes == ["template": "/var/tmp/vars-enrolled.fd"])
            #expect(os.child("nvram")?.text == "/var/tmp/nvram.fd")
            #expect(os.child("kernel")?.text == "/var/tmp/uki.efi")
            // The secboot build needs SMM (its descriptor says requires-smm); a TDX twin must not keep TDX's smm=off.
            #expect(shape.child("features")?.child("smm")?.attributes == ["state": "on"])
            #expect(shape.child("features")?.child("ioapic") == nil)
            #expect(shape.child("on_reboot")?.text == "destroy")
            let serial = try #require(shape.child("devices")?.child("serial"))
            #expect(serial.attributes == ["type": "file"])
            #expect(serial.child("source")?.attributes == ["path": "/var/tmp/serial.log"])
            #expect(shape.child("devices")?.child("rng")?.child("driver") == nil, "no iommu driver outside a TEE")
            if Tools.hasVirtXMLValidate {
                let result = try Tools.validate(xml)
                #expect(result.status == 0, "virt-xml-validate: \(result.output)")
            }
        }
    }

    @Test("the twin keeps the pty console unless a serial log is asked for, and may be renamed")
    func twinOptions() throws {
        let confidential = try RealBoot.sevDefinition(uki: "/var/tmp/uki.efi").spec
        let twin = try confidential.nonConfidentialTwin(firmware: Self.descriptors, enrolledVars: "/var/tmp/v.fd", name: "other")
        #expect(twin.name == "other")
        #expect(twin.devices == confidential.devices)
        guard case .uefi(let firmware) = twin.firmware else {
            Issue.record("the twin's firmware is not UEFI")
            return
        }
        #expect(firmware.nvramPath == nil)
    }

    @Test("refusals: a non-confidential domain, BIOS firmware, no UKI, no Secure Boot firmware, empty paths")
    func refusals() throws {
        let confidential = try RealBoot.sevDefinition(uki: "/var/tmp/uki.efi").spec
        let vars = "/var/tmp/v.fd"
        var plain = confidential
        plain.launchSecurity = nil
        #expect(throws: VirtError(.invalidSpec, "")) { try plain.nonConfidentialTwin(firmware: Self.descriptors, enrolledVars: vars) }
        var bios = confidential
        bios.firmware = .bios
        #expect(throws: VirtError(.firmwareNotUEFI, "")) { try bios.nonConfidentialTwin(firmware: Self.descriptors, enrolledVars: vars) }
        var noKernel = confidential
        noKernel.directBoot = nil
        #expect(throws: VirtError(.invalidSpec, "")) { try noKernel.nonConfidentialTwin(firmware: Self.descriptors, enrolledVars: vars) }
        var notUKI = confidential
        notUKI.directBoot = .init(kernel: "/boot/vmlinuz", isUKI: false)
        #expect(throws: VirtError(.invalidSpec, "")) { try notUKI.nonConfidentialTwin(firmware: Self.descriptors, enrolledVars: vars) }
        // Only the enrolled (Microsoft keys) and the non-Secure-Boot builds: nothing fits.
        let unsuitable = Self.descriptors.filter { $0.file != "50-edk2-x86_64-secure.json" }
        let error = #expect(throws: VirtError.self) { try confidential.nonConfidentialTwin(firmware: unsuitable, enrolledVars: vars) }
        #expect(error?.code == .firmwareUnsuitable)
        #expect(error?.reason.contains("x86_64") == true)
        var arm = confidential
        arm.arch = "aarch64"
        #expect(throws: VirtError(.firmwareUnsuitable, "")) { try arm.nonConfidentialTwin(firmware: Self.descriptors, enrolledVars: vars) }
        #expect(throws: VirtError(.invalidSpec, "")) { try confidential.nonConfidentialTwin(firmware: Self.descriptors, enrolledVars: "") }
        #expect(throws: VirtError(.invalidSpec, "")) {
            try confidential.nonConfidentialTwin(firmware: Self.descriptors, enrolledVars: vars, nvramPath: "")
        }
        #expect(throws: VirtError(.invalidSpec, "")) {
            try confidential.nonConfidentialTwin(firmware: Self.descriptors, enrolledVars: vars, serialLog: "")
        }
    }

    @Test("firmware selection reads this host's descriptors like QEMU: file-name order, Secure Boot with an empty store")
    func hostDescriptors() throws {
        let host = RealBoot.hostDescriptors()
        let chosen = DomainSpec.twinFirmware(from: host, arch: "x86_64")
        if let chosen {
            #expect(chosen.isSecureBoot && chosen.device == "flash" && !chosen.features.contains("enrolled-keys"))
            let earlier = host.filter { $0.file < chosen.file && $0.isSecureBoot && !$0.features.contains("enrolled-keys") }
            #expect(earlier.filter { $0.architectures.contains("x86_64") && $0.device == "flash" }.isEmpty)
        }
        // Debian 12's ovmf: 50-edk2-x86_64-secure.json (the 40-… one has Microsoft's keys enrolled).
        if FileManager.default.fileExists(atPath: "/usr/share/qemu/firmware/50-edk2-x86_64-secure.json") {
            #expect(chosen?.file == "50-edk2-x86_64-secure.json")
            #expect(chosen?.executable == "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd")
            #expect(chosen?.nvramTemplate == "/usr/share/OVMF/OVMF_VARS_4M.fd")
        }
    }
}

/// A real boot through a real libvirt daemon (issue 12 §5): the TCG twin of a generated SEV or TDX domain, defined on
/// `qemu:///system` (the daemon started by `scripts/virt/libvirtd-for-tests.sh` when none answers, and stopped only
/// then), with OVMF Secure Boot enforcing the test db key (enrolled into the firmware's empty variable store at test
/// time) and the recipe's UKI as direct kernel. The signed UKI boots to its init (the initramfs's serial markers, the
/// kernel reports Secure Boot on); an unsigned UKI and one signed by a key that is not in db do not: OVMF's kernel
/// loader refuses them, BDS falls through to the EFI shell, which Secure Boot refuses too (`Security Violation`).
/// Each boot takes about 10-35 s under TCG here; the wait is functional (a 300 s bound), not a timing.
@Suite(
    "real boot of the TCG twin through a libvirt daemon", .serialized, Requirement.testData,
    Requirement.skipOrFail(unless: RealBoot.isAvailable, RealBoot.requirement))
struct RealBootTests {
    enum Case: String, CaseIterable, Sendable, CustomTestStringConvertible {
        case sevTwinSigned, tdxTwinSigned, sevTwinUnsigned, tdxTwinWrongKey
        var uki: String {
            switch self {
            case .sevTwinSigned, .tdxTwinSigned: "uki-signed.efi"
            case .sevTwinUnsigned: "uki-unsigned.efi"
            case .tdxTwinWrongKey: "uki-wrongkey.efi"
            }
        }
        var boots: Bool { self == .sevTwinSigned || self == .tdxTwinSigned }
        var testDescription: String { rawValue }
    }

    @Test("the twin boots the signed UKI to its init; an unsigned or wrongly signed UKI is refused", arguments: Case.allCases)
    func boot(_ testCase: Case) async throws {
        // The recipe that builds the fixtures also installs virt-fw-vars (python3-virt-firmware, bookworm-backports).
        let variant = try UKIFixtures.variant("ukify-254")
        try #require(FileManager.default.isExecutableFile(atPath: RealBoot.virtFwVars), "virt-fw-vars is missing")
        let directory = try RealBoot.privateDirectory()
        try await RealBoot.withCleanup {
            // Accessible to QEMU when the system daemon runs it as libvirt-qemu.
            let uki = directory.appendingPathComponent("uki.efi")
            try FileManager.default.copyItem(at: variant.url(testCase.uki), to: uki)
            try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: uki.path)
            let descriptors = RealBoot.hostDescriptors()
            let firmware = try #require(DomainSpec.twinFirmware(from: descriptors, arch: "x86_64"), "no Secure Boot OVMF descriptor")
            let vars = directory.appendingPathComponent("vars-enrolled.fd")
            try RealBoot.enroll(template: try #require(firmware.nvramTemplate), keys: variant.url("keys"), into: vars)

            let definition =
                testCase == .sevTwinSigned || testCase == .sevTwinUnsigned
                ? try RealBoot.sevDefinition(uki: uki.path) : try RealBoot.tdxDefinition(uki: uki.path)
            let serialLog = directory.appendingPathComponent("serial.log")
            let name = "custos-twin-\(testCase.rawValue)-\(UUID().uuidString.prefix(8).lowercased())"
            let twin = try definition.spec.nonConfidentialTwin(
                firmware: descriptors, enrolledVars: vars.path, nvramPath: directory.appendingPathComponent("nvram.fd").path,
                serialLog: serialLog.path, name: name)
            let xml = try DomainXML.tree(twin, nativeTDX: false).serialize()

            let log = try await RealBoot.withDaemon(directory.appendingPathComponent("libvirtd")) {
                try await RealBoot.bootOnce(xml: xml, name: name, nvram: directory.appendingPathComponent("nvram.fd"), serialLog: serialLog)
            }
            let text = RealBoot.plain(log)
            if testCase.boots {
                let cmdline = try String(contentsOf: variant.url("cmdline.txt"), encoding: .utf8)
                #expect(text.contains("UKI-MARKER: initrd reached"), "no init marker on the serial console:\n\(text)")
                #expect(text.contains("UKI-CMDLINE: \(cmdline)"), "the UKI's embedded command line")
                #expect(text.contains("secureboot: Secure boot enabled"), "the kernel saw Secure Boot on")
                #expect(text.contains("UKI-MARKER: powering off"))
                #expect(!text.contains("Security Violation"))
            } else {
                #expect(!text.contains("UKI-MARKER"), "a \(testCase.uki) must not reach its init:\n\(text)")
                #expect(!text.contains("Secure boot disabled"))
                // OVMF's QEMU kernel loader (VenMedia 1428F772-…) could not start the UKI, then BDS fell through to the
                // shell, which Secure Boot refuses as well.
                let kernelOption = text.split(separator: "\n").contains {
                    $0.contains("failed to load") && $0.contains("1428F772-B64A-441E-B8C3-9EBDD7F893C7")
                }
                #expect(kernelOption, "OVMF's kernel boot option did not fail:\n\(text)")
                #expect(text.contains("Security Violation"), "no Secure Boot refusal on the serial console:\n\(text)")
            }
        } cleanup: {
            try? FileManager.default.removeItem(at: directory)
        }
    }
}

/// The real-boot environment and steps.
enum RealBoot {
    static let libvirtd = "/usr/sbin/libvirtd"
    static let qemu = "/usr/bin/qemu-system-x86_64"
    static let virtFwVars = "/usr/bin/virt-fw-vars"
    static let virsh = "/usr/bin/virsh"
    static let unshare = "/usr/bin/unshare"
    static let firmwareDirectory = "/usr/share/qemu/firmware"
    static let uri = "qemu:///system"
    /// A functional bound for one TCG boot or refusal on a loaded 2-core machine (typically 25-35 s).
    static let bootWait: Duration = .seconds(300)

    static var script: String { TestData.packageRoot.appendingPathComponent("scripts/virt/libvirtd-for-tests.sh").path }

    static let requirement =
        "needs root, the libvirt daemon (libvirt-daemon, libvirt-daemon-driver-qemu), virsh, qemu-system-x86, ovmf with a "
        + "Secure Boot descriptor, util-linux, and the UKI fixtures (whose recipe installs virt-fw-vars)"

    static var isAvailable: Bool {
        let files = FileManager.default
        return geteuid() == 0 && [libvirtd, qemu, virsh, unshare, script].allSatisfy { files.isExecutableFile(atPath: $0) }
            && DomainSpec.twinFirmware(from: hostDescriptors(), arch: "x86_64") != nil && UKIFixtures.canBuild
    }

    /// The host's QEMU firmware descriptors.
    static func hostDescriptors() -> [FirmwareDescriptor] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: firmwareDirectory)) ?? []
        return names.filter { $0.hasSuffix(".json") }.compactMap { name in
            guard let data = FileManager.default.contents(atPath: firmwareDirectory + "/" + name) else { return nil }
            return FirmwareDescriptor(file: name, json: [UInt8](data))
        }
    }

    /// A generated SEV domain (checked against a real SEV host's domain capabilities).
    static func sevDefinition(uki: String) throws -> DomainDefinition {
        let spec = DomainSpec(
            name: "custos-sev", uuid: UUID(), memoryKiB: 524_288, vcpus: 1,
            firmware: .uefi(.init(path: "/usr/share/OVMF/OVMF.amdsev.fd", build: .amdSev)), directBoot: .init(kernel: uki),
            launchSecurity: .sev(.init(policy: 0x0003, dhCert: "AAAA", session: "AAAA")), devices: [.rng, .serialConsole])
        return try DomainDefinition(spec: spec, capabilities: try DomainCapabilities(xml: try Captures.text(Captures.sevHosts[0])))
    }

    /// A generated TDX domain (checked against a real TDX host's domain capabilities).
    static func tdxDefinition(uki: String) throws -> DomainDefinition {
        let spec = DomainSpec(
            name: "custos-tdx", uuid: UUID(), memoryKiB: 524_288, vcpus: 1,
            firmware: .uefi(.init(path: "/usr/share/OVMF/OVMF.inteltdx.fd", build: .intelTdx)), directBoot: .init(kernel: uki),
            launchSecurity: .tdx(.init(initDataDigest: Array(repeating: 0xab, count: 48))), devices: [.rng, .serialConsole])
        return try DomainDefinition(spec: spec, capabilities: try DomainCapabilities(xml: try Captures.text(Captures.tdxHost)))
    }

    /// A fresh directory QEMU can read when it runs as another user (0755).
    static func privateDirectory() throws -> URL {
        let url = URL(fileURLWithPath: "/tmp/custos-realboot-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o755])
        return url
    }

    /// Runs `body`, then `cleanup` on every path.
    static func withCleanup<T>(_ body: () async throws -> T, cleanup: () async -> Void) async throws -> T {
        let result: T
        do { result = try await body() } catch {
            await cleanup()
            throw error
        }
        await cleanup()
        return result
    }

    /// Enrolls the recipe's PK, KEK and db certificates into a copy of the firmware's empty variable store and turns
    /// Secure Boot on (uki.md step 4).
    static func enroll(template: String, keys: URL, into vars: URL) throws {
        let owner = try String(contentsOf: keys.appendingPathComponent("owner.guid"), encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let key = { (name: String) in keys.appendingPathComponent(name).path }
        let result = try runProgram(
            virtFwVars,
            [
                "-i", template, "-o", vars.path, "--set-pk", owner, key("PK.crt"), "--add-kek", owner, key("KEK.crt"), "--add-db", owner,
                key("db.crt"), "--secure-boot",
            ])
        guard result.status == 0 else { throw TestFailure("virt-fw-vars failed (\(result.status)): \(result.output)") }
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: vars.path)
    }

    /// Runs `body` with `qemu:///system` answering: starts a daemon when none answers and stops it afterwards (only the
    /// one it started).
    static func withDaemon<T>(_ directory: URL, _ body: () async throws -> T) async throws -> T {
        let start = try runProgram(script, ["start", directory.path])
        guard start.status == 0 else { throw TestFailure("no libvirt daemon: \(start.output)") }
        let started = start.output.hasPrefix("started")
        print("RealBootTests: libvirt daemon \(started ? "started by the test" : "already running"): \(start.output)")
        return try await withCleanup(body) {
            if started {
                let stop = try? runProgram(script, ["stop", directory.path])
                if stop?.status != 0 { Issue.record("stopping the test's libvirt daemon failed: \(stop?.output ?? "")") }
            }
        }
    }

    /// Defines, starts and watches one domain until its serial console shows an outcome (or it stops, or the bound
    /// passes), then destroys and undefines it whatever happened. Returns the serial log.
    static func bootOnce(xml: String, name: String, nvram: URL, serialLog: URL) async throws -> String {
        let connection = try await LibvirtConnection.open(uri: uri)
        var domain: DomainRef?
        return try await withCleanup {
            domain = try await connection.define(xml: xml)
            let ref = try #require(domain)
            try await connection.createPaused(ref)
            try await connection.resume(ref)
            let clock = ContinuousClock()
            let started = clock.now
            var log = ""
            while true {
                try await Task.sleep(for: .milliseconds(500))
                log = String(decoding: (try? Data(contentsOf: serialLog)) ?? Data(), as: UTF8.self)
                let stopped = try await connection.state(ref) == .shutOff
                if stopped || log.contains("UKI-MARKER: powering off") || log.contains("Security Violation") { break }
                guard clock.now - started < bootWait else {
                    Issue.record("no outcome on the serial console within \(bootWait):\n\(plain(log))")
                    break
                }
            }
            // The refusal path prints a few more lines; give them a moment so the log is complete.
            if !log.contains("UKI-MARKER") {
                try await Task.sleep(for: .seconds(1))
                log = String(decoding: (try? Data(contentsOf: serialLog)) ?? Data(), as: UTF8.self)
            }
            print("RealBootTests: \(name) ended after \(clock.now - started)")
            return log
        } cleanup: {
            if let ref = domain {
                do { try await connection.destroy(ref) } catch {
                    // The guest may power itself off between destroy's state check and the destroy.
                    if (try? await connection.state(ref)) != .shutOff { Issue.record("destroying \(ref.name) failed: \(error)") }
                }
                // libvirt refuses to undefine a domain whose NVRAM file exists unless told to delete it; the file is the
                // test's own copy.
                try? FileManager.default.removeItem(at: nvram)
                do { try await connection.undefine(ref) } catch { Issue.record("undefining \(ref.name) failed: \(error)") }
                // The daemon's QEMU log of this uniquely named domain.
                try? FileManager.default.removeItem(atPath: "/var/log/libvirt/qemu/\(ref.name).log")
                let left = (try? await connection.domains().map(\.name)) ?? []
                if left.contains(ref.name) { Issue.record("\(ref.name) is still defined") }
            }
            await connection.close()
        }
    }

    /// The serial log without ANSI escape sequences and carriage returns.
    static func plain(_ log: String) -> String {
        var out = ""
        var iterator = log.unicodeScalars.makeIterator()
        while let scalar = iterator.next() {
            if scalar == "\u{1b}" {
                // CSI: ESC [ parameters… final byte (@-~).
                guard let next = iterator.next(), next == "[" else { continue }
                while let c = iterator.next(), !(c.value >= 0x40 && c.value <= 0x7e) {}
                continue
            }
            if scalar != "\r" { out.unicodeScalars.append(scalar) }
        }
        return out
    }
}
