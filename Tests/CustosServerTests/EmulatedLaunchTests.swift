import CustosAudit
import CustosCrypto
import CustosSEV
import CustosServer
import CustosStore
import CustosTestSupport
import CustosUKI
import CustosVirt
import Foundation
import Hummingbird
import HummingbirdTesting
import Synchronization
import Testing

/// `custos launch sev|tdx` as library flows, end to end: the assembled service over real HTTP (AsyncHTTPClient), the
/// emulated hypervisor (libvirt's `test:///default` driver for the domain lifecycle, the emulated SEV firmware for
/// LAUNCH_START/MEASURE/SECRET). The expected launch digests are the owner's: `LaunchDigest` of CustosSEV over the
/// firmware and UKI the owner approved (checked against published vectors in CustosSEVTests), stored as the tenant's
/// reference set; the host only relays.
@Suite(Requirement.testData, .timeLimit(.minutes(10)))
struct EmulatedLaunchTests {
    static let capture = "libvirt/domaincaps/qemu_10.0.0-q35.x86_64+amdsev.xml"
    static let tdxCapture = "libvirt/domaincaps/qemu_10.1.0-q35.x86_64+inteltdx.xml"
    static let uki = Array("MZ emulated UKI: a kernel the SEV kernel-hashes table measures".utf8)

    /// The firmware, a tampered copy and the UKI, on disk (the hypervisor reads what the domain names).
    struct Files {
        let directory: URL
        var firmware: String { directory.appendingPathComponent("OVMF.amdsev.fd").path }
        var tamperedFirmware: String { directory.appendingPathComponent("OVMF.amdsev.tampered.fd").path }
        var uki: String { directory.appendingPathComponent("uki.efi").path }

        init() throws {
            directory = FileManager.default.temporaryDirectory.appendingPathComponent("custos-emulated-launch-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            try Data(LaunchRoutesTests.firmwareImage).write(to: URL(fileURLWithPath: firmware))
            var tampered = LaunchRoutesTests.firmwareImage
            tampered[100] ^= 1
            try Data(tampered).write(to: URL(fileURLWithPath: tamperedFirmware))
            try Data(EmulatedLaunchTests.uki).write(to: URL(fileURLWithPath: uki))
        }
    }

    /// The owner's expected launch digest for the approved firmware and UKI.
    static func expectedDigest(policy: UInt32, vcpus: Int) throws -> [UInt8] {
        try LaunchDigest(
            LaunchInputs(
                firmware: LaunchRoutesTests.firmwareImage, kernel: uki, policy: GuestPolicy(rawValue: policy), vcpus: vcpus,
                cpuSignature: try CPUSignature(family: 25, model: 1, stepping: 1))
        ).digest
    }

    static func capabilities(_ file: String = capture) throws -> DomainCapabilities { try DomainCapabilities(xml: try TestData.text(file)) }

    /// Collects a flow's progress events.
    final class Events: Sendable {
        let events = Mutex<[LaunchEvent]>([])
        var progress: LaunchProgress { { event in self.events.withLock { $0.append(event) } } }
        var all: [LaunchEvent] { events.withLock { $0 } }
        var completedSteps: [LaunchStep] { all.filter { $0.phase == .completed }.map(\.step) }
    }

    /// Replays the first launch the service created, whatever is asked (a host reusing an old session).
    struct ReplayingService: LaunchServiceAPI {
        let inner: HTTPLaunchService
        let replayed: CreatedLaunch
        func createLaunch(_ request: LaunchCreation) async throws -> CreatedLaunch { replayed }
        func postMeasurement(launchID: String, _ report: MeasurementReport) async throws -> AllowedLaunch {
            try await inner.postMeasurement(launchID: launchID, report)
        }
        func putReferenceValues(tenant: String, name: String, values: [String], provenance: JSONValue?) async throws {
            try await inner.putReferenceValues(tenant: tenant, name: name, values: values, provenance: provenance)
        }
    }

    static func options(_ files: Files, policy: UInt32, vcpus: UInt32, firmware: String? = nil) -> SEVLaunchFlow.Options {
        SEVLaunchFlow.Options(
            name: "custos-e2e-\(UUID().uuidString.prefix(8).lowercased())", firmwarePath: firmware ?? files.firmware, ukiPath: files.uki,
            vcpus: vcpus, memoryKiB: 1 << 20, policy: policy, secrets: [.init(guid: "luks-key", path: "disk/root-key")])
    }

    static func isDefined(_ name: String, on hypervisor: EmulatedHypervisor) async throws -> Bool {
        try await hypervisor.definedDomains().contains { $0.name == name }
    }

    // MARK: SEV / SEV-ES

    @Test(
        "SEV and SEV-ES launches through the running service: the guest reads the stored secret",
        arguments: [
            ("sev", UInt32(0x3), UInt32(1)), ("sev-es", UInt32(0x7), UInt32(4)),
        ])
    func theSecretLandsInTheGuest(_ tee: String, _ policy: UInt32, _ vcpus: UInt32) async throws {
        let fixture = try await LaunchRoutesTests.fixture()
        let files = try Files()
        defer {
            try? FileManager.default.removeItem(at: fixture.directory)
            try? FileManager.default.removeItem(at: files.directory)
        }
        let setName = tee == "sev-es" ? "sev_es_launch_digest" : "sev_launch_digest"
        let digest = try Self.expectedDigest(policy: policy, vcpus: Int(vcpus))
        let hypervisor = try await EmulatedHypervisor(firmware: fixture.firmware, capabilities: try Self.capabilities())
        try await fixture.app.test(.live) { client in
            let tokens = try await LaunchRoutesTests.prepareTenant(
                client, fixture, tenant: "tenant-a", referenceSet: setName, digests: [digest])
            let port = try #require(client.port)
            let service = HTTPLaunchService(baseURL: "http://127.0.0.1:\(port)/", token: try #require(tokens["launcher"]))
            let events = Events()
            let options = Self.options(files, policy: policy, vcpus: vcpus)
            let result = try await SEVLaunchFlow(hypervisor: hypervisor, service: service).launch(options, progress: events.progress)
            #expect(result.domain.name == options.name)
            #expect(try await hypervisor.state(result.domain) == .running)
            #expect(result.xml.contains("<policy>\(policy == 7 ? "0x0007" : "0x0003")</policy>"))
            let secrets = try hypervisor.guestSecrets(result.domain)
            #expect(secrets.count == 1)
            #expect(secrets.first?.guid == SecretEntry.luksKeyGUID)
            #expect(secrets.first?.data == LaunchRoutesTests.secret)
            #expect(
                events.completedSteps == [
                    .platformInfo, .capabilities, .checks, .createLaunch, .checks, .define, .startPaused, .measure, .measure,
                    .postMeasurement, .injectSecret, .resume,
                ])
            let entries = try LaunchRoutesTests.auditEntries(fixture.log, tenant: "tenant-a")
            #expect(
                entries.compactMap { $0["type"]?.stringValue } == [
                    "launch.created", "launch.measurement.allowed", "launch.secret.injected",
                ])
            #expect(entries.first?.value(atPath: "object.launch")?.stringValue == result.launchID)
            // The guest now holds the host's only ASID of its kind: the next launch is refused at the checks, before
            // the service is asked for a session (the flow counts running guests through the hypervisor).
            #expect(
                try await hypervisor.runningSEVGuests()
                    == (policy & 4 != 0 ? RunningGuests(sev: 0, sevES: 1) : RunningGuests(sev: 1, sevES: 0)))
            var full = try Self.capabilities()
            full.sev?.maxGuests = 1
            full.sev?.maxESGuests = 1
            let refused = await #expect(throws: LaunchFlowError.self) {
                try await SEVLaunchFlow(hypervisor: hypervisor, service: service, capabilities: full).launch(
                    Self.options(files, policy: policy, vcpus: vcpus))
            }
            #expect(refused?.step == .checks && refused?.code == "asidLimitReached")
            #expect(try LaunchRoutesTests.auditEntries(fixture.log, tenant: "tenant-a").count == entries.count)
            // The service's record agrees.
            let launch = try await fixture.store.launch(tenantId: "tenant-a", id: result.launchID)
            #expect(launch.state == .injected)
            #expect(launch.appraisalId == result.appraisalID)
            try await hypervisor.destroyAndUndefine(result.domain)
            #expect(try await Self.isDefined(options.name, on: hypervisor) == false)
        }
    }

    /// What goes wrong, where the flow stops, and what the audit log shows.
    @Test(
        "tampered firmware, a changed guest policy, a wrong vCPU count and a replayed launch are refused; nothing stays defined",
        arguments: ["tampered firmware", "changed policy", "wrong vCPU count", "replayed launch"])
    func refusals(_ case: String) async throws {
        let fixture = try await LaunchRoutesTests.fixture()
        let files = try Files()
        defer {
            try? FileManager.default.removeItem(at: fixture.directory)
            try? FileManager.default.removeItem(at: files.directory)
        }
        let digest = try Self.expectedDigest(policy: 0x7, vcpus: 2)
        let hypervisor = try await EmulatedHypervisor(firmware: fixture.firmware, capabilities: try Self.capabilities())
        try await fixture.app.test(.live) { client in
            let tokens = try await LaunchRoutesTests.prepareTenant(
                client, fixture, tenant: "tenant-a", referenceSet: "sev_es_launch_digest", digests: [digest])
            let port = try #require(client.port)
            let http = HTTPLaunchService(baseURL: "http://127.0.0.1:\(port)", token: try #require(tokens["launcher"]))
            var service: any LaunchServiceAPI = http
            var options = Self.options(files, policy: 0x7, vcpus: 2)
            var expectedStep = LaunchStep.postMeasurement
            var expectedCode = "launchDenied"
            var expectedAudit = ["launch.created", "launch.measurement.denied"]
            switch `case` {
            case "tampered firmware":
                options.firmwarePath = files.tamperedFirmware
            case "changed policy":
                // The host starts the guest with debugging allowed (NOKS|ES, no NODBG): POLICY_MAC fails in LAUNCH_START.
                hypervisor.tampering = .init(policy: 0x6)
                expectedStep = .startPaused
                expectedCode = VirtError.Code.libvirt.name
                expectedAudit = ["launch.created"]
            case "wrong vCPU count":
                options.vcpus = 3
            default:
                // A first launch runs to the end; the second reuses its launch (id, GODH, session).
                let first = try await SEVLaunchFlow(hypervisor: hypervisor, service: http).launch(
                    Self.options(files, policy: 0x7, vcpus: 2))
                try await hypervisor.destroyAndUndefine(first.domain)
                let created = CreatedLaunch(
                    launchID: first.launchID, godhCertificate: try Self.blob(first.xml, "dhCert"),
                    sessionBlob: try Self.blob(first.xml, "session"))
                service = ReplayingService(inner: http, replayed: created)
                expectedCode = "launchConflict"
                expectedAudit = ["launch.created", "launch.measurement.allowed", "launch.secret.injected"]
            }
            let events = Events()
            let flow = SEVLaunchFlow(hypervisor: hypervisor, service: service)
            let error = await #expect(throws: LaunchFlowError.self) { try await flow.launch(options, progress: events.progress) }
            #expect(error?.step == expectedStep)
            #expect(error?.code == expectedCode)
            #expect(error?.kind == (expectedStep == .startPaused ? .failed : .rejected))
            #expect(error?.domainRemoved == true)
            #expect(error?.domain?.name == options.name)
            #expect(try await Self.isDefined(options.name, on: hypervisor) == false)
            #expect(!events.completedSteps.contains(.injectSecret))
            #expect(events.all.last?.phase == .failed)
            let entries = try LaunchRoutesTests.auditEntries(fixture.log, tenant: "tenant-a")
            #expect(entries.compactMap { $0["type"]?.stringValue } == expectedAudit)
        }
    }

    /// A base64 element's text in the domain XML.
    static func blob(_ xml: String, _ element: String) throws -> String {
        guard let open = xml.range(of: "<\(element)>"), let close = xml.range(of: "</\(element)>", range: open.upperBound..<xml.endIndex)
        else {
            throw CocoaError(.formatting)
        }
        return String(xml[open.upperBound..<close.lowerBound])
    }

    // MARK: TDX

    /// The TDX flow verifies the UKI, registers its Authenticode SHA-384 (as osslsigncode computes it for the SHA-384
    /// signed copy of the same image: the digest excludes the signature, and pesign's SHA-256 of both copies agree), its PCR 11
    /// SHA-384 prediction (as systemd-measure computes it) and MRCONFIGID as the tenant's reference values through the
    /// running service, then defines and starts the TD with MRCONFIGID from the init-data digest.
    @Test(Requirement.skipOrFail(unless: UKIFixtures.canBuild, UKIFixtures.skipReason))
    func tdxRegistersTheUKIAndStartsTheTD() async throws {
        let variant = try UKIFixtures.variant("ukify-254")
        let peer = try #require(variant.peers.osslsigncode["uki-signed-sha384.efi"])
        #expect(peer.algorithm == "sha384")
        let pcr11 = try #require(variant.peers.pcr11["sha384"])
        let fixture = try await LaunchRoutesTests.fixture()
        defer { try? FileManager.default.removeItem(at: fixture.directory) }
        let hypervisor = try await EmulatedHypervisor(firmware: fixture.firmware, capabilities: try Self.capabilities(Self.tdxCapture))
        let initData = Array("version = \"0.1.0\"\nalgorithm = \"sha384\"\n[data]\ntenant = \"tenant-a\"\n".utf8)
        let mrConfigID = Digest.hash(.sha384, initData)
        try await fixture.app.test(.live) { client in
            let tokens = try await LaunchRoutesTests.prepareTenant(
                client, fixture, tenant: "tenant-a", referenceSet: "unused", digests: [[UInt8](repeating: 0, count: 32)])
            let port = try #require(client.port)
            let service = HTTPLaunchService(baseURL: "http://127.0.0.1:\(port)", token: try #require(tokens["tenant-admin"]))
            let db = try Certificate.parsePEMChain(try String(contentsOf: variant.dbCertificate, encoding: .utf8))
            let name = "custos-td-\(UUID().uuidString.prefix(8).lowercased())"
            let options = TDXLaunchFlow.Options(
                name: name, tenant: "tenant-a", firmwarePath: "/usr/share/ovmf/OVMF.inteltdx.fd",
                ukiPath: variant.url("uki-signed.efi").path, uki: try variant.bytes("uki-signed.efi"), dbCertificates: db,
                mrConfigID: mrConfigID)
            let result = try await TDXLaunchFlow(hypervisor: hypervisor, service: service).launch(options)
            #expect(Hex.encode(result.measurements.authenticodeSHA384) == peer.calculated.lowercased())
            #expect(result.measurements.pcr11SHA384.map(Hex.encode) == pcr11.lowercased())
            for (set, expected) in [
                ("\(name)-uki-authenticode-sha384", peer.calculated.lowercased()), ("\(name)-uki-pcr11-sha384", pcr11.lowercased()),
                ("\(name)-mr-config-id", Hex.encode(mrConfigID)),
            ] {
                let stored = try await fixture.store.referenceValues(tenantId: "tenant-a", name: set)
                #expect(stored.values == [.string(expected)], "\(set)")
            }
            // The TD: defined and running on the test driver; the launch security (which libvirt 9's test driver does
            // not know) is kept by the emulator.
            #expect(try await hypervisor.state(result.domain) == .running)
            let guest = try #require(hypervisor.guest(result.domain))
            guard case .tdx(let tdx) = guest.definition.spec.launchSecurity else {
                Issue.record("not a TDX domain")
                return
            }
            #expect(tdx.mrConfigId == mrConfigID)
            #expect(result.xml.contains("<mrConfigId>\(Base64.encode(mrConfigID))</mrConfigId>"))
            try await hypervisor.destroyAndUndefine(result.domain)
            #expect(try await Self.isDefined(name, on: hypervisor) == false)
        }
    }

    /// An unsigned UKI is refused before anything is registered or defined.
    @Test(Requirement.skipOrFail(unless: UKIFixtures.canBuild, UKIFixtures.skipReason))
    func tdxRefusesAnUnsignedUKI() async throws {
        let variant = try UKIFixtures.variant("ukify-254")
        let fixture = try await LaunchRoutesTests.fixture()
        defer { try? FileManager.default.removeItem(at: fixture.directory) }
        let hypervisor = try await EmulatedHypervisor(firmware: fixture.firmware, capabilities: try Self.capabilities(Self.tdxCapture))
        let db = try Certificate.parsePEMChain(try String(contentsOf: variant.dbCertificate, encoding: .utf8))
        let name = "custos-td-\(UUID().uuidString.prefix(8).lowercased())"
        let options = TDXLaunchFlow.Options(
            name: name, tenant: "tenant-a", firmwarePath: "/fw/OVMF.inteltdx.fd", ukiPath: variant.url("uki-unsigned.efi").path,
            uki: try variant.bytes("uki-unsigned.efi"), dbCertificates: db)
        // No service is reachable here: a refusal must come before any call to it.
        let service = HTTPLaunchService(baseURL: "http://127.0.0.1:9", token: "unused")
        let error = await #expect(throws: LaunchFlowError.self) {
            try await TDXLaunchFlow(hypervisor: hypervisor, service: service).launch(options)
        }
        #expect(error?.step == .verifyUKI)
        #expect(error?.code == "ukiNotTrusted")
        #expect(error?.kind == .rejected)
        #expect(error?.domainRemoved == nil)
        #expect(try await Self.isDefined(name, on: hypervisor) == false)
    }
}
