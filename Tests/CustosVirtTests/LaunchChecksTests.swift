import CustosCrypto
import CustosTestSupport
import CustosUKI
import CustosVirt
import Foundation
import Testing

/// Every refusal happens before anything starts, with its own error code.
@Suite(Requirement.testData)
struct LaunchChecksTests {
    static func caps(_ file: String) throws -> DomainCapabilities { try DomainCapabilities(xml: try Captures.text(file)) }
    static var sevHost: DomainCapabilities { get throws { try caps("qemu_10.0.0-q35.x86_64+amdsev.xml") } }

    static func sevSpec(policy: UInt32 = 0x0003, devices: [DomainSpec.Device] = []) -> DomainSpec {
        DomainSpec(
            name: "g", memoryKiB: 1_048_576, vcpus: 1, firmware: .uefi(.init(path: "/fw/OVMF.amdsev.fd", build: .amdSev)),
            directBoot: .init(kernel: "/uki.efi"), launchSecurity: .sev(.init(policy: policy, dhCert: "AAAA", session: "AAAA")),
            devices: devices)
    }

    static func tdxSpec(firmware: DomainSpec.Firmware = .uefi(.init(path: "/fw/OVMF.inteltdx.fd", build: .intelTdx))) -> DomainSpec {
        DomainSpec(
            name: "td", memoryKiB: 1_048_576, vcpus: 1, firmware: firmware, directBoot: .init(kernel: "/uki.efi"),
            launchSecurity: .tdx(.init()))
    }

    /// Counting running guests for the ASID limits reads each active domain's description: libvirt's own captures
    /// (SEV, SEV-SNP, TDX, s390 PV) and ours (the ES bit of the policy).
    @Test func runningGuestsAreClassifiedFromTheirDomainXML() throws {
        let directory = "libvirt/qemuxml/"
        #expect(try RunningGuests.sevKind(ofDomainXML: try TestData.text(directory + "launch-security-sev.xml")) == false)
        #expect(try RunningGuests.sevKind(ofDomainXML: try TestData.text(directory + "launch-security-sev-direct.xml")) == false)
        // An SEV-SNP guest holds an ASID of the SEV-ES range (KVM gives SNP guests the ES ASIDs).
        #expect(try RunningGuests.sevKind(ofDomainXML: try TestData.text(directory + "launch-security-sev-snp.xml")) == true)
        for other in ["launch-security-tdx.xml", "launch-security-s390-pv.xml"] {
            #expect(try RunningGuests.sevKind(ofDomainXML: try TestData.text(directory + other)) == nil, "\(other)")
        }
        for (policy, es) in [(UInt32(0x0007), true), (0x0003, false), (0x0004, true)] {
            let xml = try DomainDefinition(spec: Self.sevSpec(policy: policy), capabilities: try Self.sevHost).xml
            #expect(try RunningGuests.sevKind(ofDomainXML: xml) == es, "\(policy)")
        }
        #expect(try RunningGuests.sevKind(ofDomainXML: "<domain><launchSecurity type='sev'/></domain>") == false)
        for bad in ["<domain><launchSecurity type='sev'><policy>0xZZ</policy></launchSecurity></domain>", "<domain>"] {
            #expect(throws: VirtError.self) { try RunningGuests.sevKind(ofDomainXML: bad) }
        }
    }

    static func refusal(_ spec: DomainSpec, _ caps: DomainCapabilities, running: RunningGuests = .none) -> VirtError? {
        #expect(throws: VirtError.self) { try DomainDefinition(spec: spec, capabilities: caps, running: running) }
    }

    @Test("accepted: SEV, SEV-ES and TDX domains on matching hosts")
    func accepted() throws {
        _ = try DomainDefinition(spec: Self.sevSpec(), capabilities: try Self.sevHost)
        _ = try DomainDefinition(spec: Self.sevSpec(policy: 0x0007), capabilities: try Self.sevHost)
        _ = try DomainDefinition(spec: Self.tdxSpec(), capabilities: try Self.caps(Captures.tdxHost))
        _ = try DomainDefinition(
            spec: Self.sevSpec(devices: [.balloon(iommu: true), .rng, .network(name: "default")]), capabilities: try Self.sevHost)
    }

    @Test("a UKI with BIOS firmware is refused, confidential or not")
    func uefiRequired() throws {
        var spec = Self.sevSpec()
        spec.firmware = .bios
        #expect(Self.refusal(spec, try Self.sevHost)?.code == .firmwareNotUEFI)
        spec.launchSecurity = nil
        #expect(Self.refusal(spec, try Self.sevHost)?.code == .firmwareNotUEFI)
    }

    @Test("a host whose capabilities lack the TEE is refused", arguments: [Captures.plainHost, Captures.aarch64Host, Captures.tdxHost])
    func teeMissing(_ file: String) throws {
        #expect(Self.refusal(Self.sevSpec(), try Self.caps(file))?.code == .teeUnavailable)
    }

    @Test("TDX on SEV, plain and aarch64 hosts is refused", arguments: Captures.sevHosts + [Captures.plainHost, Captures.aarch64Host])
    func tdxMissing(_ file: String) throws {
        #expect(Self.refusal(Self.tdxSpec(), try Self.caps(file))?.code == .teeUnavailable)
    }

    @Test("SEV-ES without maxESGuests (absent or 0) is refused; plain SEV still runs")
    func sevESWithoutASIDs() throws {
        var host = try Self.sevHost
        host.sev?.maxESGuests = nil
        #expect(Self.refusal(Self.sevSpec(policy: 0x0007), host)?.code == .sevESUnavailable)
        host.sev?.maxESGuests = 0
        #expect(Self.refusal(Self.sevSpec(policy: 0x0007), host)?.code == .sevESUnavailable)
        _ = try DomainDefinition(spec: Self.sevSpec(policy: 0x0003), capabilities: host)
    }

    @Test("more guests than the ASID limit are refused (the capture's 59 SEV and 450 SEV-ES ASIDs)")
    func asidLimit() throws {
        let host = try Self.sevHost
        _ = try DomainDefinition(spec: Self.sevSpec(), capabilities: host, running: RunningGuests(sev: 58, sevES: 450))
        #expect(Self.refusal(Self.sevSpec(), host, running: RunningGuests(sev: 59, sevES: 0))?.code == .asidLimitReached)
        _ = try DomainDefinition(spec: Self.sevSpec(policy: 7), capabilities: host, running: RunningGuests(sev: 59, sevES: 449))
        #expect(Self.refusal(Self.sevSpec(policy: 7), host, running: RunningGuests(sev: 0, sevES: 450))?.code == .asidLimitReached)
    }

    @Test("virtio-mem, mediated devices and a balloon without iommu are refused in confidential guests, allowed in plain ones")
    func devices() throws {
        let host = try Self.sevHost
        let cases: [(DomainSpec.Device, VirtError.Code)] = [
            (.virtioMem(sizeKiB: 1_048_576), .virtioMemRefused),
            (.mediatedDevice(uuid: "c2177883-f1bb-47f0-914d-32a22e3a8804"), .mediatedDeviceRefused),
            (.balloon(iommu: false), .balloonWithoutIOMMU),
        ]
        for (device, code) in cases {
            #expect(Self.refusal(Self.sevSpec(devices: [device]), host)?.code == code)
            var tdx = Self.tdxSpec()
            tdx.devices = [device]
            #expect(Self.refusal(tdx, try Self.caps(Captures.tdxHost))?.code == code)
            var plain = Self.sevSpec(devices: [device])
            plain.launchSecurity = nil
            _ = try DomainDefinition(spec: plain, capabilities: host)
        }
    }

    @Test("firmware: SEV kernel hashes need the AmdSev build without NVRAM; TDX needs IntelTdx")
    func firmware() throws {
        var generic = Self.sevSpec()
        generic.firmware = .uefi(.init(path: "/usr/share/OVMF/OVMF_CODE_4M.fd", build: .generic))
        #expect(Self.refusal(generic, try Self.sevHost)?.code == .firmwareUnsuitable)
        var nvram = Self.sevSpec()
        nvram.firmware = .uefi(.init(path: "/fw/OVMF.amdsev.fd", build: .amdSev, nvramTemplate: "/fw/VARS.fd"))
        #expect(Self.refusal(nvram, try Self.sevHost)?.code == .firmwareUnsuitable)
        let tdx = Self.tdxSpec(firmware: .uefi(.init(path: "/fw/OVMF.amdsev.fd", build: .amdSev)))
        #expect(Self.refusal(tdx, try Self.caps(Captures.tdxHost))?.code == .firmwareUnsuitable)
    }

    @Test("refusal errors follow the CLI contract: exit 1 for refusals, 2 for bad specs")
    func contract() {
        #expect(VirtError(.virtioMemRefused, "x").isRefusal)
        #expect(!VirtError(.invalidSpec, "x").isRefusal)
        #expect(!VirtError(.libvirt, "x").isRefusal)
    }
}

/// The UKI must be signed by one of the tenant's db certificates (CustosUKI's Authenticode check); the expected
/// verdicts are sbverify's, recorded by the fixture build.
@Suite(Requirement.skipOrFail(unless: UKIFixtures.canBuild, UKIFixtures.skipReason))
struct UKITrustTests {
    @Test("signed UKIs pass, unsigned, wrongly signed and tampered ones are refused, as sbverify says")
    func ukiTrust() throws {
        let variant = try UKIFixtures.variant("ukify-254")
        let db = try Certificate.parsePEMChain(try String(contentsOf: variant.dbCertificate, encoding: .utf8))
        let files = ["uki-signed.efi", "uki-unsigned.efi", "uki-wrongkey.efi", "uki-tampered.efi"]
        for file in files {
            let sbverify = try #require(variant.peers.verdicts[file]?["sbverify"], "no sbverify verdict for \(file)")
            let bytes = try variant.bytes(file)
            if sbverify {
                let signature = try LaunchChecks.verifyUKI(bytes, dbCertificates: db)
                #expect(signature.signer != nil)
            } else {
                let error = #expect(throws: VirtError.self) { try LaunchChecks.verifyUKI(bytes, dbCertificates: db) }
                #expect(error?.code == .ukiNotTrusted, "\(file)")
            }
        }
        let wrong = try Certificate.parsePEMChain(try String(contentsOf: variant.wrongCertificate, encoding: .utf8))
        let error = #expect(throws: VirtError.self) {
            try LaunchChecks.verifyUKI(try variant.bytes("uki-signed.efi"), dbCertificates: wrong)
        }
        #expect(error?.code == .ukiNotTrusted)
        #expect(throws: VirtError.self) { try LaunchChecks.verifyUKI(Array("not a PE".utf8), dbCertificates: db) }
        #expect(throws: VirtError.self) { try LaunchChecks.verifyUKI(try variant.bytes("uki-signed.efi"), dbCertificates: []) }
    }
}
