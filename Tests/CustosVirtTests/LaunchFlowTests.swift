import CustosCrypto
import CustosSEV
import CustosTestSupport
import CustosUKI
import CustosVirt
import Foundation
import Synchronization
import Testing

/// The launch flows without a service: refusals come before the service or libvirt is touched; and the `custos launch`
/// commands' dry runs and refusals through the executable (error contract: exit status and JSON error shape).
@Suite(Requirement.testData)
struct LaunchFlowTests {
    /// A service that records what it is asked and fails every call (a refusal must come before any of them).
    final class RecordingService: LaunchServiceAPI {
        let calls = Mutex<[String]>([])
        func createLaunch(_ request: LaunchCreation) async throws -> CreatedLaunch {
            calls.withLock { $0.append("createLaunch") }
            throw LaunchServiceError(status: 503, detail: "not reachable in this test")
        }
        func postMeasurement(launchID: String, _ report: MeasurementReport) async throws -> AllowedLaunch {
            calls.withLock { $0.append("postMeasurement") }
            throw LaunchServiceError(status: 503, detail: "not reachable in this test")
        }
        func putReferenceValues(tenant: String, name: String, values: [String], provenance: JSONValue?) async throws {
            calls.withLock { $0.append("putReferenceValues") }
            throw LaunchServiceError(status: 503, detail: "not reachable in this test")
        }
    }

    static let firmware: Result<EmulatedSEVFirmware, any Error> = Result { try EmulatedSEVFirmware() }

    /// A directory with a firmware image and a UKI (their content does not matter to the checks).
    static func inputs() throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("custos-launch-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try Data("OVMF".utf8).write(to: directory.appendingPathComponent("OVMF.amdsev.fd"))
        try Data("UKI".utf8).write(to: directory.appendingPathComponent("uki.efi"))
        try Data("token\n".utf8).write(to: directory.appendingPathComponent("token"))
        return directory
    }

    /// The SEV capture without its `maxESGuests` element (a host without SEV-ES ASIDs).
    static func captureWithoutES(in directory: URL) throws -> String {
        let text = try Captures.text(Captures.sevHosts[0])
        let edited = text.split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.contains("<maxESGuests>") }
            .joined(separator: "\n")
        #expect(edited != text)
        let url = directory.appendingPathComponent("no-es.xml")
        try Data(edited.utf8).write(to: url)
        return url.path
    }

    // MARK: Flows

    @Test("SEV-ES on a host without maxESGuests is refused at the checks: no launch is created, nothing is defined")
    func refusalBeforeTheService() async throws {
        var host = try DomainCapabilities(xml: try Captures.text(Captures.sevHosts[0]))
        host.sev?.maxESGuests = nil
        let hypervisor = try await EmulatedHypervisor(firmware: try Self.firmware.get(), capabilities: host)
        let service = RecordingService()
        let name = "custos-refused-\(UUID().uuidString.prefix(8).lowercased())"
        let options = SEVLaunchFlow.Options(
            name: name, firmwarePath: "/fw/OVMF.amdsev.fd", ukiPath: "/uki.efi", vcpus: 1, policy: 0x7,
            secrets: [.init(guid: "luks-key", path: "disk/key")])
        let error = await #expect(throws: LaunchFlowError.self) {
            try await SEVLaunchFlow(hypervisor: hypervisor, service: service).launch(options)
        }
        #expect(error?.step == .checks)
        #expect(error?.code == "sevESUnavailable")
        #expect(error?.kind == .rejected)
        #expect(error?.domainRemoved == nil)
        #expect(service.calls.withLock { $0 }.isEmpty)
        #expect(try await hypervisor.definedDomains().contains { $0.name == name } == false)
    }

    @Test(
        "TDX: a service failure at the reference values undefines the domain; a taken name fails at define before the service",
        Requirement.skipOrFail(unless: UKIFixtures.canBuild, UKIFixtures.skipReason))
    func serviceFailureAndTakenName() async throws {
        let hypervisor = try await EmulatedHypervisor(
            firmware: try Self.firmware.get(), capabilities: try DomainCapabilities(xml: try Captures.text(Captures.tdxHost)))
        let variant = try UKIFixtures.variant("ukify-254")
        let db = try Certificate.parsePEMChain(try String(contentsOf: variant.dbCertificate, encoding: .utf8))
        let name = "custos-td-\(UUID().uuidString.prefix(8).lowercased())"
        let options = TDXLaunchFlow.Options(
            name: name, tenant: "t", firmwarePath: "/fw/OVMF.inteltdx.fd", ukiPath: "/uki.efi", uki: try variant.bytes("uki-signed.efi"),
            dbCertificates: db)
        // The service refuses the reference values: the domain defined just before is removed again, never started.
        let service = RecordingService()
        let error = await #expect(throws: LaunchFlowError.self) {
            try await TDXLaunchFlow(hypervisor: hypervisor, service: service).launch(options)
        }
        #expect(error?.step == .referenceValues)
        #expect(error?.code == "serviceError")
        #expect(error?.kind == .failed)
        #expect(error?.domainRemoved == true)
        #expect(service.calls.withLock { $0 } == ["putReferenceValues"])
        #expect(try await hypervisor.definedDomains().contains { $0.name == name } == false)

        // A name already taken (a running TD's): define fails, and the service's reference values (the running TD's
        // `<name>-uki-…` sets) are never replaced.
        let capabilities = try DomainCapabilities(xml: try Captures.text(Captures.tdxHost))
        let existing = try await hypervisor.define(try DomainDefinition(spec: options.spec, capabilities: capabilities))
        let untouched = RecordingService()
        let taken = await #expect(throws: LaunchFlowError.self) {
            try await TDXLaunchFlow(hypervisor: hypervisor, service: untouched).launch(options)
        }
        #expect(taken?.step == .define)
        #expect(untouched.calls.withLock { $0 }.isEmpty)
        #expect(try await hypervisor.definedDomains().contains { $0.uuid == existing.uuid } == true)
        try await hypervisor.destroyAndUndefine(existing)
    }

    // MARK: CLI

    static func run(_ arguments: [String]) throws -> CustosExecutable.Result {
        let result = try CustosExecutable.run(arguments)
        print("custos \(arguments.joined(separator: " ")) → \(result.status)\n\(result.stdout)\(result.stderr)")
        return result
    }

    @Test(
        "custos launch sev --dry-run prints domain XML with the host's cbitpos and the policy", .enabled(if: CustosExecutable.isBuilt),
        arguments: [(false, "0x0003"), (true, "0x0007")])
    func sevDryRun(_ es: Bool, _ policy: String) throws {
        let directory = try Self.inputs()
        defer { try? FileManager.default.removeItem(at: directory) }
        let capture = TestData.url(Captures.directory + Captures.sevHosts[0]).path
        let captureText = try Captures.text(Captures.sevHosts[0])
        var arguments = [
            "launch", "sev", "--name", "dry", "--firmware", directory.appendingPathComponent("OVMF.amdsev.fd").path, "--uki",
            directory.appendingPathComponent("uki.efi").path, "--vcpus", "2", "--dry-run", "--domcaps", capture,
        ]
        if es { arguments.append("--sev-es") }
        let result = try Self.run(arguments)
        #expect(result.status == 0)
        #expect(result.stderr.contains("placeholder"))
        let domain = try XMLShape.parse(result.stdout)
        let security = try #require(domain.child("launchSecurity"))
        #expect(security.attributes == ["type": "sev", "kernelHashes": "yes"])
        #expect(captureText.contains("<cbitpos>\(security.child("cbitpos")?.text ?? "-")</cbitpos>"))
        #expect(captureText.contains("<reducedPhysBits>\(security.child("reducedPhysBits")?.text ?? "-")</reducedPhysBits>"))
        #expect(security.child("policy")?.text == policy)
        #expect(domain.child("vcpu")?.text == "2")
        #expect(domain.child("os")?.child("kernel")?.text == directory.appendingPathComponent("uki.efi").path)
        #expect(domain.child("memoryBacking")?.child("locked") != nil)

        // Under --json: one object with the XML.
        let json = try Self.run(arguments + ["--json"])
        #expect(json.status == 0)
        let object = try JSONValue.parse(json.stdout)
        #expect(object["dry_run"] == .bool(true))
        #expect(object["xml"]?.stringValue == result.stdout)
    }

    /// A dry run with `--connect` counts the host's running SEV guests for the ASID limits (before, it counted none, so
    /// a dry run passed where the launch would be refused). libvirt's test driver loads a node file whose domains run:
    /// one SEV-ES guest, on a host with one SEV-ES ASID.
    @Test(
        "custos launch sev --dry-run --connect counts the running guests against the ASIDs", .enabled(if: CustosExecutable.isBuilt))
    func sevDryRunCountsRunningGuests() throws {
        let directory = try Self.inputs()
        defer { try? FileManager.default.removeItem(at: directory) }
        let node = directory.appendingPathComponent("node.xml")
        try Data(
            """
            <node>
              <domain type='test'>
                <name>running-sev-es</name>
                <memory>1048576</memory>
                <vcpu>1</vcpu>
                <os><type>hvm</type></os>
                <launchSecurity type='sev'><cbitpos>51</cbitpos><reducedPhysBits>1</reducedPhysBits><policy>0x0007</policy></launchSecurity>
              </domain>
            </node>
            """.utf8
        ).write(to: node)
        let text = try Captures.text(Captures.sevHosts[0])
        let edited = text.replacingOccurrences(
            of: #"<maxESGuests>\d+</maxESGuests>"#, with: "<maxESGuests>1</maxESGuests>", options: .regularExpression)
        #expect(edited != text)
        let capture = directory.appendingPathComponent("one-es.xml")
        try Data(edited.utf8).write(to: capture)
        let base = [
            "launch", "sev", "--name", "dry", "--firmware", directory.appendingPathComponent("OVMF.amdsev.fd").path, "--uki",
            directory.appendingPathComponent("uki.efi").path, "--vcpus", "1", "--dry-run", "--domcaps", capture.path, "--json",
        ]
        let refused = try Self.run(base + ["--sev-es", "--connect", "test://\(node.path)"])
        #expect(refused.status == 1, "\(refused.stdout) \(refused.stderr)")
        #expect(try JSONValue.parse(refused.stdout).value(atPath: "error.code") == "asidLimitReached", "\(refused.stdout)")
        // A plain SEV guest still has its ASIDs; and --domcaps alone is an offline check that counts no guest.
        #expect(try Self.run(base + ["--connect", "test://\(node.path)"]).status == 0)
        #expect(try Self.run(base + ["--sev-es"]).status == 0)
    }

    @Test("custos launch sev-es on a capture without maxESGuests: exit 1 and the JSON error", .enabled(if: CustosExecutable.isBuilt))
    func sevESRefused() throws {
        let directory = try Self.inputs()
        defer { try? FileManager.default.removeItem(at: directory) }
        let result = try Self.run([
            "launch", "sev", "--name", "dry", "--firmware", directory.appendingPathComponent("OVMF.amdsev.fd").path, "--uki",
            directory.appendingPathComponent("uki.efi").path, "--vcpus", "1", "--sev-es", "--dry-run", "--domcaps",
            try Self.captureWithoutES(in: directory), "--json",
        ])
        #expect(result.status == 1)
        let error = try JSONValue.parse(result.stdout)
        #expect(error.value(atPath: "error.code") == "sevESUnavailable")
        #expect(error.value(atPath: "error.message")?.stringValue?.contains("maxESGuests") == true)
        #expect(error.value(atPath: "error.field") != nil)
    }

    @Test(
        "custos launch sev --json on libvirt's test driver: JSON event lines, then the error naming the step (no SEV there)",
        .enabled(if: CustosExecutable.isBuilt))
    func jsonEventsAndStepError() throws {
        let directory = try Self.inputs()
        defer { try? FileManager.default.removeItem(at: directory) }
        let result = try Self.run([
            "launch", "sev", "--service", "http://127.0.0.1:9", "--token", directory.appendingPathComponent("token").path, "--name",
            "json-events", "--firmware", directory.appendingPathComponent("OVMF.amdsev.fd").path, "--uki",
            directory.appendingPathComponent("uki.efi").path, "--vcpus", "1", "--secret", "luks-key:disk/key", "--connect",
            "test:///default", "--domcaps", TestData.url(Captures.directory + Captures.sevHosts[0]).path, "--json",
        ])
        #expect(result.status == 2)
        let lines = result.stdout.split(separator: "\n").map(String.init)
        let events = try lines.filter { $0.hasPrefix("{\"event\"") }.map { try JSONValue.parse($0) }
        #expect(events.first?.value(atPath: "event.step") == "platform-info")
        #expect(events.first?.value(atPath: "event.phase") == "started")
        #expect(events.last?.value(atPath: "event.phase") == "failed")
        let rest = lines.filter { !$0.hasPrefix("{\"event\"") }.joined(separator: "\n")
        let error = try JSONValue.parse(rest)
        #expect(error.value(atPath: "error.code") == "libvirtError")
        #expect(error.value(atPath: "error.field") == "platform-info")
        #expect(error.value(atPath: "error.message")?.stringValue?.contains("platform-info") == true)
    }

    @Test("custos launch sev without --service (and no --dry-run) is a usage error", .enabled(if: CustosExecutable.isBuilt))
    func usage() throws {
        let directory = try Self.inputs()
        defer { try? FileManager.default.removeItem(at: directory) }
        let result = try Self.run([
            "launch", "sev", "--name", "x", "--firmware", directory.appendingPathComponent("OVMF.amdsev.fd").path, "--uki",
            directory.appendingPathComponent("uki.efi").path, "--vcpus", "1", "--json",
        ])
        #expect(result.status == 2)
        #expect(try JSONValue.parse(result.stdout).value(atPath: "error.code") == "usage")
    }

    /// The bearer token goes with every request: a plain http:// service on another machine is refused unless
    /// --insecure-http says so (then the launch goes on, to libvirt's test driver, which has no SEV).
    @Test(
        "custos launch sev refuses plain HTTP to another machine unless --insecure-http", .enabled(if: CustosExecutable.isBuilt),
        arguments: [false, true])
    func plainHTTPToAnotherMachine(insecure: Bool) throws {
        let directory = try Self.inputs()
        defer { try? FileManager.default.removeItem(at: directory) }
        let result = try Self.run(
            [
                "launch", "sev", "--service", "http://192.0.2.1:8080", "--token", directory.appendingPathComponent("token").path, "--name",
                "plain-http", "--firmware", directory.appendingPathComponent("OVMF.amdsev.fd").path, "--uki",
                directory.appendingPathComponent("uki.efi").path, "--vcpus", "1", "--secret", "luks-key:disk/key", "--connect",
                "test:///default", "--domcaps", TestData.url(Captures.directory + Captures.sevHosts[0]).path, "--json",
            ] + (insecure ? ["--insecure-http"] : []))
        #expect(result.status == 2)
        let lines = result.stdout.split(separator: "\n").map(String.init).filter { !$0.hasPrefix("{\"event\"") }
        let error = try JSONValue.parse(lines.joined(separator: "\n"))
        if insecure {
            #expect(error.value(atPath: "error.code") == "libvirtError", "\(result.stdout)")
        } else {
            #expect(error.value(atPath: "error.code") == "usage", "\(result.stdout)")
            #expect(error.value(atPath: "error.message")?.stringValue?.contains("in the clear") == true)
        }
    }
}

/// `custos launch tdx --dry-run` needs the signed UKI fixtures.
@Suite(Requirement.testData, Requirement.skipOrFail(unless: UKIFixtures.canBuild, UKIFixtures.skipReason))
struct LaunchTDXCLITests {
    @Test(
        "custos launch tdx --dry-run: native TDX launch security with MRCONFIGID from the init-data", .enabled(if: CustosExecutable.isBuilt)
    )
    func tdxDryRun() throws {
        let variant = try UKIFixtures.variant("ukify-254")
        let directory = try LaunchFlowTests.inputs()
        defer { try? FileManager.default.removeItem(at: directory) }
        let initData = Array("version = \"0.1.0\"\nalgorithm = \"sha384\"\n[data]\ntenant = \"tenant-a\"\n".utf8)
        let initDataFile = directory.appendingPathComponent("init-data.toml")
        try Data(initData).write(to: initDataFile)
        let arguments = [
            "launch", "tdx", "--name", "td", "--firmware", directory.appendingPathComponent("OVMF.amdsev.fd").path, "--uki",
            variant.url("uki-signed.efi").path, "--db-cert", variant.dbCertificate.path, "--init-data", initDataFile.path, "--dry-run",
            "--domcaps", TestData.url(Captures.directory + Captures.tdxHost).path,
        ]
        let result = try LaunchFlowTests.run(arguments)
        #expect(result.status == 0)
        let domain = try XMLShape.parse(result.stdout)
        let security = try #require(domain.child("launchSecurity"))
        #expect(security.attributes == ["type": "tdx"])
        // MRCONFIGID: SHA-384 of the init-data file (Python's hashlib agrees: it is plain SHA-384 of the bytes).
        #expect(security.child("mrConfigId")?.text == Base64.encode(Digest.hash(.sha384, initData)))
        #expect(domain.child("os")?.child("loader")?.attributes["stateless"] == "yes")

        let json = try LaunchFlowTests.run(arguments + ["--json"])
        #expect(json.status == 0)
        let object = try JSONValue.parse(json.stdout)
        let peer = try #require(variant.peers.osslsigncode["uki-signed-sha384.efi"])
        let sets = try #require(object["reference_values"])
        // The signed UKI's Authenticode SHA-384 is the same for both signed copies (the digest excludes the signature).
        #expect(sets["td-uki-authenticode-sha384"] == [.string(peer.calculated.lowercased())])

        // Init-data that is not UTF-8 (a 0xFF byte in a comment) is refused: its repaired text's digest would be an
        // MRCONFIGID no guest could match.
        try Data(Array("# ".utf8) + [0xFF, 0x0A] + initData).write(to: initDataFile)
        let invalid = try LaunchFlowTests.run(arguments + ["--json"])
        #expect(invalid.status == 2)
        #expect(try JSONValue.parse(invalid.stdout)["error"]?["code"] == "initDataMalformed")
    }

    @Test(
        "custos launch tdx refuses an unsigned or wrongly signed UKI: exit 1, ukiNotTrusted", .enabled(if: CustosExecutable.isBuilt),
        arguments: ["uki-unsigned.efi", "uki-wrongkey.efi"])
    func unsignedUKI(_ file: String) throws {
        let variant = try UKIFixtures.variant("ukify-254")
        let directory = try LaunchFlowTests.inputs()
        defer { try? FileManager.default.removeItem(at: directory) }
        let result = try LaunchFlowTests.run([
            "launch", "tdx", "--name", "td", "--firmware", directory.appendingPathComponent("OVMF.amdsev.fd").path, "--uki",
            variant.url(file).path, "--db-cert", variant.dbCertificate.path, "--dry-run", "--domcaps",
            TestData.url(Captures.directory + Captures.tdxHost).path, "--json",
        ])
        #expect(result.status == 1)
        let error = try JSONValue.parse(result.stdout)
        #expect(error.value(atPath: "error.code") == "ukiNotTrusted")
        #expect(error.value(atPath: "error.field") == "uki")
    }
}
