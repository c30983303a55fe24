import CustosTestSupport
import CustosVirt
import Foundation
import Testing

/// The libvirt wrapper against libvirt's in-process `test:///default` driver (no daemon): domain lifecycle, error
/// mapping (compared with python3-libvirt, a peer over the same C library), typed-parameter memory.
@Suite("libvirt test driver", .serialized)
struct LibvirtTests {
    static let uri = "test:///default"

    /// A measured-SEV-shaped domain the test driver accepts (it keeps launchSecurity and only flips states).
    static func spec(_ name: String) -> DomainSpec {
        DomainSpec(
            name: name, uuid: UUID(), virtType: "test", memoryKiB: 262_144, vcpus: 1, arch: "x86_64", machine: "pc",
            firmware: .uefi(.init(path: "/usr/share/OVMF/OVMF.amdsev.fd", build: .amdSev)), directBoot: .init(kernel: "/tmp/uki.efi"),
            launchSecurity: .sev(.init(policy: 0x0003, dhCert: "AAAA", session: "AAAA")),
            devices: [
                .disk(path: "/tmp/custos-disk.img"), .network(name: "default"), .rng, .serialConsole, .balloon(iommu: true), .vsock(cid: 7),
            ])
    }
    static let testCapabilities = DomainCapabilities(
        virtType: "test", machine: "pc", arch: "x86_64", sev: .init(cbitpos: 51, reducedPhysBits: 1, maxGuests: 59, maxESGuests: 450))

    @Test("define, start paused, resume, destroy and undefine a domain", .timeLimit(.minutes(10)))
    func lifecycle() async throws {
        let hypervisor = try await LibvirtHypervisor.open(uri: Self.uri)
        let definition = try DomainDefinition(spec: Self.spec("custos-lifecycle"), capabilities: Self.testCapabilities)
        let domain = try await hypervisor.define(definition)
        #expect(domain.name == "custos-lifecycle")
        #expect(domain.uuid == definition.spec.uuid?.uuidString.lowercased())
        // libvirt's own parser kept what a measured launch depends on.
        let xml = try await hypervisor.connection.xmlDescription(domain)
        let kept = try XMLShape.parse(xml)
        #expect(kept.child("launchSecurity")?.attributes["kernelHashes"] == "yes")
        #expect(kept.child("launchSecurity")?.child("cbitpos")?.text == "51")
        #expect(kept.child("memoryBacking")?.child("locked") != nil)
        #expect(kept.child("os")?.child("kernel")?.text == "/tmp/uki.efi")
        #expect(kept.child("devices")?.child("rng")?.child("driver")?.attributes["iommu"] == "on")
        #expect(try await hypervisor.state(domain) == .shutOff)
        try await hypervisor.startPaused(domain)
        #expect(try await hypervisor.state(domain) == .paused)
        try await hypervisor.resume(domain)
        #expect(try await hypervisor.state(domain) == .running)
        try await hypervisor.destroyAndUndefine(domain)
        let names = try await hypervisor.connection.domains().map(\.name)
        #expect(!names.contains("custos-lifecycle"), "nothing left defined")
        let error = await #expect(throws: VirtError.self) { try await hypervisor.state(domain) }
        #expect(error?.libvirt?.code == LibvirtErrorNumber.noDomain)
        // Idempotent: a second cleanup of a gone domain succeeds.
        try await hypervisor.destroyAndUndefine(domain)
        await hypervisor.connection.close()
        let closed = await #expect(throws: VirtError.self) { try await hypervisor.connection.domains() }
        #expect(closed?.code == .connectionClosed)
    }

    @Test("node info and versions equal python3-libvirt's", Requirement.skipOrFail(unless: Tools.hasPythonLibvirt, "needs python3-libvirt"))
    func nodeInfo() async throws {
        let connection = try await LibvirtConnection.open(uri: Self.uri, readOnly: true)
        let info = try await connection.nodeInfo()
        let versions = try await connection.versions()
        let peer = try runProgram(
            Tools.systemPython,
            [
                "-c",
                "import libvirt,json;c=libvirt.open('test:///default');print(json.dumps([c.getInfo(),c.getLibVersion(),c.getVersion()]))",
            ])
        #expect(peer.status == 0, "\(peer.output)")
        let line = try #require(peer.output.split(separator: "\n").last)
        let decoded = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [Any])
        let node = try #require(decoded[0] as? [Any])
        #expect(info.model == node[0] as? String)
        #expect(Int(info.memoryKiB / 1024) == node[1] as? Int, "python reports MiB")
        #expect(Int(info.cpus) == node[2] as? Int)
        #expect(Int(info.mhz) == node[3] as? Int)
        #expect([info.nodes, info.sockets, info.cores, info.threads].map(Int.init) == node[4...7].compactMap { $0 as? Int })
        let library = try #require(decoded[1] as? Int)
        #expect(versions.libvirt == "\(library / 1_000_000).\(library / 1000 % 1000).\(library % 1000)")
        await connection.close()
    }

    /// A connection that fails inside this process (the test driver cannot read its file). An unknown scheme would go
    /// to the remote driver, whose error depends on whether a libvirt daemon is running at that moment (the real-boot
    /// suite starts one beside these tests): no socket is (38, 7), the daemon's refusal (5, 0).
    static let missingFileURI = "test:///custos/no/such/config.xml"

    /// The same failures through python3-libvirt: (code, domain) per scenario.
    static let peerScript = """
        import libvirt, json
        libvirt.registerErrorHandler(lambda *a: None, None)
        out = {}
        def run(name, f):
            try:
                f(); out[name] = None
            except libvirt.libvirtError as e:
                out[name] = [e.get_error_code(), e.get_error_domain()]
        c = libvirt.open('test:///default')
        run('lookup', lambda: c.lookupByName('custos-no-such-domain'))
        run('sevInfo', lambda: c.getSEVInfo())
        run('domcaps', lambda: c.getDomainCapabilities())
        run('define', lambda: c.defineXML("<domain type='test'><name>x"))
        run('secret', lambda: c.lookupByName('test').setLaunchSecurityState({'sev-secret-header': 'AAAA', 'sev-secret': 'AAAA'}))
        run('open', lambda: libvirt.open('\(missingFileURI)'))
        run('measurement', lambda: c.lookupByName('test').launchSecurityInfo())
        print(json.dumps(out))
        """

    @Test(
        "libvirt errors map to VirtError with libvirt's code and domain, as python3-libvirt sees them",
        Requirement.skipOrFail(unless: Tools.hasPythonLibvirt, "needs python3-libvirt"))
    func errorMapping() async throws {
        let peer = try runProgram(Tools.systemPython, ["-c", Self.peerScript])
        #expect(peer.status == 0, "\(peer.output)")
        // libxml2 warns on stderr (the same pipe) about the missing file; the answer is the JSON line.
        let line = try #require(peer.output.split(separator: "\n").last { $0.hasPrefix("{") })
        let expected = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: [Int]])

        let connection = try await LibvirtConnection.open(uri: Self.uri)
        let testDomain = try await connection.lookup(name: "test")
        var ours: [String: VirtError] = [:]
        func capture(_ name: String, _ body: () async throws(VirtError) -> Void) async {
            do { try await body() } catch { ours[name] = error }
        }
        await capture("lookup") { () async throws(VirtError) in _ = try await connection.lookup(name: "custos-no-such-domain") }
        await capture("sevInfo") { () async throws(VirtError) in _ = try await connection.sevInfo() }
        await capture("domcaps") { () async throws(VirtError) in _ = try await connection.domainCapabilitiesXML() }
        await capture("define") { () async throws(VirtError) in _ = try await connection.define(xml: "<domain type='test'><name>x") }
        await capture("secret") { () async throws(VirtError) in
            try await connection.setLaunchSecurityState(testDomain, secret: LaunchSecret(header: [0, 0, 0], ciphertext: [0, 0, 0]))
        }
        await capture("open") { () async throws(VirtError) in _ = try await LibvirtConnection.open(uri: Self.missingFileURI) }
        await capture("measurement") { () async throws(VirtError) in _ = try await connection.launchSecurityInfo(testDomain) }
        for name in ["lookup", "sevInfo", "domcaps", "define", "secret", "open", "measurement"] {
            let error = try #require(ours[name], "\(name) did not fail")
            #expect(error.code == .libvirt)
            let detail = try #require(error.libvirt)
            #expect([Int(detail.code), Int(detail.domain)] == expected[name], "\(name): \(error)")
            #expect(!detail.message.isEmpty)
        }
        // And the named constants are the header's values.
        let header = try String(contentsOfFile: "/usr/include/libvirt/virterror.h", encoding: .utf8)
        for (symbol, value) in [
            ("VIR_ERR_NO_SUPPORT", LibvirtErrorNumber.noSupport), ("VIR_ERR_NO_DOMAIN", LibvirtErrorNumber.noDomain),
            ("VIR_ERR_INVALID_ARG", LibvirtErrorNumber.invalidArgument),
            ("VIR_ERR_XML_ERROR", LibvirtErrorNumber.xmlError), ("VIR_ERR_NO_CONNECT", LibvirtErrorNumber.noConnect),
            ("VIR_ERR_OPERATION_INVALID", LibvirtErrorNumber.operationInvalid),
            ("VIR_ERR_OPERATION_UNSUPPORTED", LibvirtErrorNumber.operationUnsupported),
        ] {
            #expect(header.contains("\(symbol) = \(value),"), "\(symbol)")
        }
        #expect(ours["lookup"]?.libvirt?.code == LibvirtErrorNumber.noDomain)
        #expect(ours["sevInfo"]?.libvirt?.code == LibvirtErrorNumber.noSupport)
        await connection.close()
    }

    @Test("typed parameters: values read back; a missing measurement or bad base64 is a typed error")
    func typedParameters() throws {
        let secret = LaunchSecret(header: Array(repeating: 7, count: 52), ciphertext: Array(0..<64), guestAddress: 0x80_0000)
        let list = try LibvirtConnection.parameters(for: secret)
        #expect(list.parameterCount == 3)
        #expect(try list.base64("sev-secret-header") == secret.header)
        #expect(try list.base64("sev-secret") == secret.ciphertext)
        #expect(try list.ullong("sev-secret-set-address") == 0x80_0000)
        #expect(try list.string("absent") == nil)
        #expect(throws: VirtError.self) { try list.uint("sev-secret") }  // a string, not a uint
        // libvirt's field is 80 bytes (VIR_TYPED_PARAM_FIELD_LENGTH): a longer name is refused, the list stays intact.
        #expect(throws: VirtError.self) { try list.add(String(repeating: "n", count: 100), string: "x") }
        #expect(list.parameterCount == 3)

        let measurement = TypedParameterList()
        try measurement.add("sev-measurement", string: Data(Array(repeating: 0xAB, count: 48)).base64EncodedString())
        try measurement.add("sev-api-major", uint: 1)
        try measurement.add("sev-policy", uint: 3)
        let parsed = try LibvirtConnection.measurement(from: measurement)
        #expect(parsed.measurement == Array(repeating: 0xAB, count: 48))
        #expect(parsed.apiMajor == 1 && parsed.policy == 3 && parsed.apiMinor == nil)

        let short = TypedParameterList()
        try short.add("sev-measurement", string: Data([1, 2, 3]).base64EncodedString())
        #expect((#expect(throws: VirtError.self) { try LibvirtConnection.measurement(from: short) })?.code == .malformedReply)
        let notBase64 = TypedParameterList()
        try notBase64.add("sev-measurement", string: "***")
        #expect((#expect(throws: VirtError.self) { try LibvirtConnection.measurement(from: notBase64) })?.code == .malformedReply)
        #expect((#expect(throws: VirtError.self) { try LibvirtConnection.sevInfo(from: TypedParameterList()) })?.code == .malformedReply)
    }

    /// Resident set size from /proc/self/statm.
    static func residentBytes() throws -> Int {
        let fields = try String(contentsOfFile: "/proc/self/statm", encoding: .utf8).split(separator: " ")
        return (Int(fields[1]) ?? 0) * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    @Test(
        "typed-parameter lists are freed on every path: 10,000 builds and 10,000 failing injections keep RSS stable",
        .timeLimit(.minutes(10)))
    func typedParameterMemory() async throws {
        // 16 KiB secrets: a leaked list would cost > 21 KiB per iteration, > 200 MiB per 10,000. RSS is process-wide and
        // other suites run in parallel, so a loop may be measured up to three times: a leak grows RSS on every attempt,
        // unrelated allocations do not.
        let secret = LaunchSecret(header: Array(repeating: 1, count: 52), ciphertext: Array(repeating: 2, count: 16384), guestAddress: 1)
        let limit = 32 << 20
        func growth(_ loop: () async throws -> Void) async throws -> [Int] {
            var growths: [Int] = []
            for _ in 0..<3 {
                let before = try Self.residentBytes()
                try await loop()
                growths.append(try Self.residentBytes() - before)
                if growths.last ?? .max < limit { break }
            }
            return growths
        }
        func buildLoop() throws {
            for _ in 0..<10_000 {
                let list = try LibvirtConnection.parameters(for: secret)
                _ = try list.string("sev-secret")
            }
        }
        try buildLoop()  // warm-up: allocator arenas reach their steady size
        let built = try await growth { try buildLoop() }
        #expect(built.contains { $0 < limit }, "RSS grew \(built) bytes over each run of 10,000 lists")

        // The failure path: the test driver refuses virDomainSetLaunchSecurityState after the list is built.
        let connection = try await LibvirtConnection.open(uri: Self.uri)
        let domain = try await connection.lookup(name: "test")
        var failures = 0
        func injectLoop() async {
            for _ in 0..<10_000 {
                do { try await connection.setLaunchSecurityState(domain, secret: secret) } catch { failures += 1 }
            }
        }
        await injectLoop()
        let injected = try await growth { await injectLoop() }
        #expect(failures >= 20_000 && failures % 10_000 == 0, "every injection fails on the test driver")
        #expect(injected.contains { $0 < limit }, "RSS grew \(injected) bytes over each run of 10,000 failing injections")
        await connection.close()
    }
}
