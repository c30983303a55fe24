import CustosAudit
import CustosCrypto
import CustosSEV
import CustosServer
import CustosStore
import CustosTestSupport
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// The SEV/SEV-ES measured launch over real HTTP, with the emulated SEV firmware of CustosTestSupport as the
/// platform: its chain is verified against its own test roots, it runs LAUNCH_START with the GODH and session the
/// service returns, measures what the host really booted, and opens the secret packet the service sends.
@Suite struct LaunchRoutesTests {
    /// One emulated platform for the suite (its RSA root keys are the slow part).
    static let firmware: Result<EmulatedSEVFirmware, any Error> = Result { try EmulatedSEVFirmware() }
    static let secret = Array("correct horse battery staple".utf8)

    // MARK: Fixture

    struct Fixture {
        let directory: URL
        let parts: CustosService.Parts
        let store: any Store
        let log: AuditLog
        let app: any ApplicationProtocol
        let adminToken: String
        let firmware: EmulatedSEVFirmware
    }

    /// A SEV (non-ES) launch policy for the tests; the SEV-ES one is the shipped `Policies/sev-es/default.yaml`.
    static let sevPolicy = """
        apiVersion: custos/v1
        kind: LaunchPolicy
        id: sev-test
        tee: sev
        referenceValues: [sev_launch_digest]
        allow:
          allOf:
            - { claim: sev.launch_digest, inRef: sev_launch_digest }
            - { claim: sev.guest_policy.nodbg, equals: true }
        trustVector:
          executables:
            value: 2
            else: 33
            when: { claim: sev.launch_digest, inRef: sev_launch_digest }
        """

    /// tenant-a's release policy: `disk/*` on an affirming launch; `gated/*` only for a debuggable guest (which the
    /// launch policies refuse, so never); anything else is not listed.
    static let tenantARelease = """
        apiVersion: custos/v1
        kind: ReleasePolicy
        id: release-tenant-a
        tenant: tenant-a
        default: deny
        secrets:
          - path: "disk/*"
            maxReleasesPerAttestation: 1
            allow: { status: affirming }
          - path: "gated/*"
            allow:
              allOf:
                - { status: affirming }
                - { claim: sev.guest_policy.nodbg, equals: false }
        """

    /// The service as `custos serve` assembles it, in a fresh data directory, with the shipped policies plus a SEV
    /// policy and the emulated platform's roots as (test) trust anchors.
    static func fixture(withSEVPolicy: Bool = true) async throws -> Fixture {
        let firmware = try Self.firmware.get()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("custos-launch-\(UUID().uuidString)")
        let policies = directory.appendingPathComponent("policies")
        try FileManager.default.createDirectory(at: policies.appendingPathComponent("sev"), withIntermediateDirectories: true)
        for folder in ["sev-es", "release"] {
            try FileManager.default.copyItem(
                at: TestData.packageRoot.appendingPathComponent("Policies/\(folder)"), to: policies.appendingPathComponent(folder))
        }
        if withSEVPolicy { try Data(sevPolicy.utf8).write(to: policies.appendingPathComponent("sev/test.yaml")) }
        try Data(tenantARelease.utf8).write(to: policies.appendingPathComponent("release/tenant-a.yaml"))
        var configuration = ServerConfiguration()
        configuration.port = 0
        configuration.dataDirectory = directory.appendingPathComponent("data").path
        configuration.policiesDirectory = policies.path
        configuration.certsDirectory = directory.appendingPathComponent("certs").path
        let logger = Logger(label: "test")
        var parts = try await CustosService.assemble(configuration: configuration, logger: logger)
        let log = try #require(parts.audit?.log)
        parts.anchors = TrustAnchors(tdxRoot: nil, sevRoots: [firmware.roots], isTest: true)
        parts.audit = AuditRecorder(log: log, usesTestAnchors: true, logger: logger)
        let token = try String(
            contentsOfFile: directory.appendingPathComponent("data/\(Bootstrap.tokenFileName)").path, encoding: .utf8
        ).trimmingCharacters(in: .whitespacesAndNewlines)
        return Fixture(
            directory: directory, parts: parts, store: try #require(parts.store), log: log, app: CustosService.makeApplication(parts),
            adminToken: token, firmware: firmware)
    }

    static func auth(_ token: String) -> HTTPFields { [.authorization: "Bearer \(token)"] }
    static func json(_ response: TestResponse) -> JSONValue { (try? JSONValue.parse(Array(buffer: response.body))) ?? .null }
    static func body(_ value: JSONValue) -> ByteBuffer { ByteBuffer(bytes: CanonicalJSON.encode(value)) }

    // MARK: What the host boots

    /// A small AmdSev-like image: pattern bytes, then an OVMF footer table with the SEV-ES reset block, the hashes
    /// area and the secret area (the layout of OVMF's `ResetVector`, sev.md §3.3).
    static let firmwareImage: [UInt8] = {
        var image = (0..<8192).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
        func guid(_ s: String) -> [UInt8] { (try? EFIGUID(s).bytes) ?? [] }
        func le32(_ v: UInt32) -> [UInt8] { [UInt8(v & 0xff), UInt8(v >> 8 & 0xff), UInt8(v >> 16 & 0xff), UInt8(v >> 24)] }
        func entry(_ data: [UInt8], _ g: String) -> [UInt8] { data + [UInt8(data.count + 18), 0] + guid(g) }
        let entries =
            entry(le32(0x810000) + le32(0xC00), "4c2eb361-7d9b-4cc3-8081-127c90d3d294")
            + entry(le32(0x810C00) + le32(0x400), "7255371f-3a3b-4b04-927b-1da6efa8d454")
            + entry(le32(0x0080_B004), "00f771de-1a7e-4fcb-890e-68c77e2fb44e")
        let table = entries + [UInt8(entries.count + 18), 0] + guid("96b582de-1fb2-45f7-baea-a366c55a082d")
        let start = image.count - 32 - table.count
        image.replaceSubrange(start..<(start + table.count), with: table)
        return image
    }()

    struct Boot {
        var firmware: [UInt8] = LaunchRoutesTests.firmwareImage
        var cmdline = "root=/dev/vda quiet"
        var policy: UInt32
        var vcpus: Int

        func inputs() throws -> LaunchInputs {
            LaunchInputs(
                firmware: firmware, kernel: Array("KERNEL".utf8), initrd: Array("INITRD".utf8), cmdline: cmdline,
                policy: GuestPolicy(rawValue: policy), vcpus: vcpus, cpuSignature: try CPUSignature(family: 25, model: 1, stepping: 1))
        }

        /// The launch digest of this boot (what `custos sev measure` computes).
        func digest() throws -> LaunchDigest { try LaunchDigest(try inputs()) }
    }

    /// The host's part: LAUNCH_START with the service's blobs, QEMU's LAUNCH_UPDATE_* for what it boots, LAUNCH_MEASURE.
    static func hostLaunch(_ fw: EmulatedSEVFirmware, created: JSONValue, boot: Boot) throws -> (handle: UInt32, measurement: [UInt8]) {
        let godh = try Base64.decode(try #require(created["godh_cert"]?.stringValue))
        let session = try Base64.decode(try #require(created["session_blob"]?.stringValue))
        let handle = try fw.launchStart(policy: boot.policy, godhCertificate: godh, session: session)
        let digest = try boot.digest()
        var vmsas: [[UInt8]] = []
        if boot.policy & 4 != 0, let bsp = digest.vmsas.first {
            vmsas = [bsp] + Array(repeating: digest.vmsas.count > 1 ? digest.vmsas[1] : bsp, count: boot.vcpus - 1)
        }
        try fw.launch(handle: handle, firmware: boot.firmware, kernelHashesTable: digest.kernelHashesTable, vmsas: vmsas)
        return (handle, try fw.launchMeasure(handle: handle))
    }

    // MARK: Setup over HTTP

    /// Creates `tenant` with a launcher, a tenant-admin and a tenant-reader token, its secret and its reference set.
    static func prepareTenant(
        _ client: some TestClientProtocol, _ fixture: Fixture, tenant: String, referenceSet: String, digests: [[UInt8]]
    ) async throws -> [String: String] {
        let admin = auth(fixture.adminToken)
        try await client.execute(uri: "/v1/tenants", method: .post, headers: admin, body: body(["id": .string(tenant)])) {
            #expect($0.status == .created)
        }
        var tokens: [String: String] = [:]
        for role in ["launcher", "tenant-admin", "tenant-reader"] {
            try await client.execute(
                uri: "/v1/tenants/\(tenant)/tokens", method: .post, headers: admin, body: body(["role": .string(role)])
            ) { tokens[role] = json($0)["token"]?.stringValue }
        }
        try await client.execute(
            uri: "/v1/secrets/\(tenant)/disk/root-key", method: .put, headers: admin, body: ByteBuffer(bytes: secret)
        ) { #expect($0.status == .created) }
        try await client.execute(
            uri: "/v1/reference-values/\(tenant)/\(referenceSet)", method: .put, headers: admin,
            body: body(["values": .array(digests.map { .string(Hex.encode($0)) })])
        ) { #expect($0.status == .ok) }
        return tokens
    }

    static func launchBody(_ fw: EmulatedSEVFirmware, tee: String, policy: UInt32) -> JSONValue {
        let info = fw.nodeSEVInfo
        return [
            "workload_id": "db-01", "tee": .string(tee), "guest_policy": .integer(Int64(policy)),
            "platform": ["pdh": .string(info.pdh), "cert_chain": .string(info.certChain)],
            "secrets": [["guid": "luks-key", "path": "disk/root-key"]],
        ]
    }

    static func measurementBody(_ fw: EmulatedSEVFirmware, _ measurement: [UInt8], expected: (String, String), vcpus: Int) -> JSONValue {
        [
            "measurement_b64": .string(Base64.encode(measurement)), "api_major": .integer(Int64(fw.version.apiMajor)),
            "api_minor": .integer(Int64(fw.version.apiMinor)), "build_id": .integer(Int64(fw.version.buildID)),
            "vcpus": .integer(Int64(vcpus)), "vcpu_type": "EPYC-Milan", expected.0: .string(expected.1),
        ]
    }

    /// The audit entries of `tenant`, as JSON.
    /// The tenant's `launch.*` entries (its preparation — tenant, tokens, secrets, reference values — is audited too).
    static func auditEntries(_ log: AuditLog, tenant: String) throws -> [JSONValue] {
        try log.entries(tenant: tenant, limit: 1000).records.map(\.entry).filter { $0["type"]?.stringValue?.hasPrefix("launch.") == true }
    }

    // MARK: Tests

    /// SEV-ES with 1 and 4 vCPUs against the shipped policy (expected digest named by the host), and SEV against the
    /// test policy (expected digest looked up in the tenant's reference set): the guest reads the stored secret.
    @Test(
        arguments: [
            ("sev-es", UInt32(0x7), 1, "firmware_digest"), ("sev-es", UInt32(0x7), 4, "reference"),
            ("sev", UInt32(0x3), 1, "reference"),
        ])
    func theGuestReadsTheStoredSecret(_ tee: String, _ policy: UInt32, _ vcpus: Int, _ expectedBy: String) async throws {
        let fixture = try await Self.fixture()
        defer { try? FileManager.default.removeItem(at: fixture.directory) }
        let fw = fixture.firmware
        let boot = Boot(policy: policy, vcpus: vcpus)
        let setName = tee == "sev-es" ? "sev_es_launch_digest" : "sev_launch_digest"
        let digest = try boot.digest().digest
        try await fixture.app.test(.live) { client in
            let tokens = try await Self.prepareTenant(client, fixture, tenant: "tenant-a", referenceSet: setName, digests: [digest])
            let launcher = Self.auth(try #require(tokens["launcher"]))
            var created: JSONValue = .null
            try await client.execute(
                uri: "/v1/launches", method: .post, headers: launcher, body: Self.body(Self.launchBody(fw, tee: tee, policy: policy))
            ) { response in
                #expect(response.status == .created)
                created = Self.json(response)
            }
            let launchID = try #require(created["launch_id"]?.stringValue)
            #expect(created["expires_at"]?.stringValue != nil)
            let (handle, measurement) = try Self.hostLaunch(fw, created: created, boot: boot)
            let expected = expectedBy == "firmware_digest" ? ("firmware_digest", Hex.encode(digest)) : ("reference", setName)
            var decision: JSONValue = .null
            try await client.execute(
                uri: "/v1/launches/\(launchID)/measurement", method: .post, headers: launcher,
                body: Self.body(Self.measurementBody(fw, measurement, expected: expected, vcpus: vcpus))
            ) { response in
                #expect(response.status == .ok)
                decision = Self.json(response)
            }
            #expect(decision["decision"] == "allow")
            let header = try Base64.decode(try #require(decision.value(atPath: "secret.header_b64")?.stringValue))
            let data = try Base64.decode(try #require(decision.value(atPath: "secret.data_b64")?.stringValue))
            try fw.launchSecret(handle: handle, header: header, payload: data)
            try fw.launchFinish(handle: handle)
            let secrets = try fw.guestSecrets(handle: handle)
            #expect(secrets.count == 1)
            #expect(secrets.first?.guid == SecretEntry.luksKeyGUID)
            #expect(secrets.first?.data == Self.secret)

            // A second measurement for the same launch: 409.
            try await client.execute(
                uri: "/v1/launches/\(launchID)/measurement", method: .post, headers: launcher,
                body: Self.body(Self.measurementBody(fw, measurement, expected: expected, vcpus: vcpus))
            ) { #expect($0.status == .conflict) }

            // The record: injected, with the appraisal that allowed it; the tenant's reader sees it.
            try await client.execute(
                uri: "/v1/launches/\(launchID)", method: .get, headers: Self.auth(try #require(tokens["tenant-reader"]))
            ) {
                response in
                #expect(response.status == .ok)
                let record = Self.json(response)
                #expect(record["state"] == "injected")
                #expect(record["appraisal_id"] == decision["appraisal_id"])
                #expect(record["measurement_b64"] == .string(Base64.encode(measurement)))
            }
            let appraisalID = try #require(decision["appraisal_id"]?.stringValue)
            let appraisal = try await fixture.store.appraisal(tenantId: "tenant-a", id: appraisalID)
            #expect(appraisal.tee == tee)
            #expect(appraisal.claims.value(atPath: "sev.launch_digest") == .string(Hex.encode(digest)))

            // Audit: created, allowed (naming the appraisal and the policy hash), injected; no secret material.
            let entries = try Self.auditEntries(fixture.log, tenant: "tenant-a")
            let types = entries.compactMap { $0["type"]?.stringValue }
            #expect(types == ["launch.created", "launch.measurement.allowed", "launch.secret.injected"])
            let allowed = try #require(entries.first { $0["type"] == "launch.measurement.allowed" })
            #expect(allowed.value(atPath: "appraisal.id") == .string(appraisalID))
            let policyRef = try #require(allowed.value(atPath: "appraisal.policy")?.stringValue)
            #expect(policyRef.hasPrefix(tee == "sev-es" ? "sev-es-default@sha256:" : "sev-test@sha256:"))
            #expect(policyRef == "\(appraisal.policyId)@sha256:\(appraisal.policySHA256)")
            #expect(allowed.value(atPath: "object.anchors") == "test")
            // Both recording paths (an event alone: created; an event made in the decision's transaction: allowed,
            // injected) label the entry with the test anchors.
            #expect(entries.allSatisfy { $0.value(atPath: "object.anchors") == "test" }, "\(entries)")
            let everything = String(decoding: entries.flatMap { CanonicalJSON.encode($0) }, as: UTF8.self)
            #expect(!everything.contains(String(decoding: Self.secret, as: UTF8.self)))
            #expect(!everything.contains(Base64.encode(Self.secret)))
            #expect(!everything.contains(Hex.encode(Self.secret)))
        }
    }

    /// The host boots something else (an edited firmware byte): whether it reports the digest the owner expects or
    /// the one it really booted, the launch is denied (403 with the appraisal id) and the denial is audited.
    @Test(arguments: ["expected digest", "booted digest"])
    func aDifferingMeasurementIsDenied(_ reported: String) async throws {
        let fixture = try await Self.fixture()
        defer { try? FileManager.default.removeItem(at: fixture.directory) }
        let fw = fixture.firmware
        let expectedBoot = Boot(policy: 0x7, vcpus: 2)
        let tampered: Boot = {
            var boot = expectedBoot
            boot.firmware[100] ^= 1
            return boot
        }()
        let expectedDigest = try expectedBoot.digest().digest
        try await fixture.app.test(.live) { client in
            let tokens = try await Self.prepareTenant(
                client, fixture, tenant: "tenant-a", referenceSet: "sev_es_launch_digest", digests: [expectedDigest])
            let launcher = Self.auth(try #require(tokens["launcher"]))
            var created: JSONValue = .null
            try await client.execute(
                uri: "/v1/launches", method: .post, headers: launcher, body: Self.body(Self.launchBody(fw, tee: "sev-es", policy: 0x7))
            ) { created = Self.json($0) }
            let launchID = try #require(created["launch_id"]?.stringValue)
            let (_, measurement) = try Self.hostLaunch(fw, created: created, boot: tampered)
            let digest = reported == "expected digest" ? expectedDigest : try tampered.digest().digest
            var appraisalID: String?
            try await client.execute(
                uri: "/v1/launches/\(launchID)/measurement", method: .post, headers: launcher,
                body: Self.body(Self.measurementBody(fw, measurement, expected: ("firmware_digest", Hex.encode(digest)), vcpus: 2))
            ) { response in
                #expect(response.status == .forbidden)
                #expect(response.headers[.contentType] == "application/problem+json")
                let problem = Self.json(response)
                #expect(problem["type"] == "urn:custos:problem:policy-denied")
                #expect(problem["secret"] == nil)
                appraisalID = problem["appraisal_id"]?.stringValue
            }
            let appraisal = try #require(appraisalID)
            let stored = try await fixture.store.appraisal(tenantId: "tenant-a", id: appraisal)
            #expect(stored.status != .affirming)
            let launch = try await fixture.store.launch(tenantId: "tenant-a", id: launchID)
            #expect(launch.state == .denied)
            // The session secret is gone: nothing can be released for this launch any more.
            await #expect(throws: StoreError.self) { try await fixture.store.openLaunchSessionSecret(tenantId: "tenant-a", id: launchID) }
            let entries = try Self.auditEntries(fixture.log, tenant: "tenant-a")
            #expect(entries.compactMap { $0["type"]?.stringValue } == ["launch.created", "launch.measurement.denied"])
            let denied = try #require(entries.last)
            #expect(denied.value(atPath: "appraisal.id") == .string(appraisal))
            #expect(denied.value(atPath: "appraisal.policy")?.stringValue?.hasPrefix("sev-es-default@sha256:") == true)
            #expect(denied.value(atPath: "object.measurement_verified") == .bool(reported == "booted digest"))
        }
    }

    /// The service has no firmware image to read the secret area from: the table must fit the AmdSev builds' 3 KiB
    /// (sev.md trap 11). A larger secret is a denial, nothing is injected (before, a 64 KiB table was built and the
    /// guest's kernel-hashes table would have been overrun).
    @Test func aSecretTableLargerThanTheOVMFSecretAreaIsDenied() async throws {
        let fixture = try await Self.fixture()
        defer { try? FileManager.default.removeItem(at: fixture.directory) }
        let fw = fixture.firmware
        let boot = Boot(policy: 0x7, vcpus: 1)
        let digest = try boot.digest().digest
        try await fixture.app.test(.live) { client in
            let tokens = try await Self.prepareTenant(
                client, fixture, tenant: "tenant-a", referenceSet: "sev_es_launch_digest", digests: [digest])
            try await client.execute(
                uri: "/v1/secrets/tenant-a/disk/root-key", method: .put, headers: Self.auth(fixture.adminToken),
                body: ByteBuffer(bytes: [UInt8](repeating: 0x5a, count: 3100))
            ) { #expect($0.status == .created) }
            let launcher = Self.auth(try #require(tokens["launcher"]))
            var created: JSONValue = .null
            try await client.execute(
                uri: "/v1/launches", method: .post, headers: launcher, body: Self.body(Self.launchBody(fw, tee: "sev-es", policy: 0x7))
            ) { created = Self.json($0) }
            let launchID = try #require(created["launch_id"]?.stringValue)
            let (_, measurement) = try Self.hostLaunch(fw, created: created, boot: boot)
            try await client.execute(
                uri: "/v1/launches/\(launchID)/measurement", method: .post, headers: launcher,
                body: Self.body(Self.measurementBody(fw, measurement, expected: ("firmware_digest", Hex.encode(digest)), vcpus: 1))
            ) { response in
                #expect(response.status == .forbidden)
                let problem = Self.json(response)
                #expect(problem["type"] == "urn:custos:problem:policy-denied")
                #expect(problem["detail"]?.stringValue?.contains("secret area") == true, "\(problem)")
                #expect(problem["secret"] == nil)
            }
            #expect(try await fixture.store.launch(tenantId: "tenant-a", id: launchID).state == .denied)
        }
    }

    @Test func authenticationScopingAndMalformedInput() async throws {
        let fixture = try await Self.fixture()
        defer { try? FileManager.default.removeItem(at: fixture.directory) }
        let fw = fixture.firmware
        let boot = Boot(policy: 0x7, vcpus: 1)
        try await fixture.app.test(.live) { client in
            let tokensA = try await Self.prepareTenant(
                client, fixture, tenant: "tenant-a", referenceSet: "sev_es_launch_digest", digests: [try boot.digest().digest])
            let tokensB = try await Self.prepareTenant(
                client, fixture, tenant: "tenant-b", referenceSet: "sev_es_launch_digest", digests: [[UInt8](repeating: 0, count: 32)])
            let launcherA = Self.auth(try #require(tokensA["launcher"]))
            let good = Self.launchBody(fw, tee: "sev-es", policy: 0x7)
            // No token 401; a reader may not launch (403).
            try await client.execute(uri: "/v1/launches", method: .post, body: Self.body(good)) { #expect($0.status == .unauthorized) }
            try await client.execute(
                uri: "/v1/launches", method: .post, headers: Self.auth(try #require(tokensA["tenant-reader"])), body: Self.body(good)
            ) { #expect($0.status == .forbidden) }
            // Malformed: bad base64, unknown member, wrong tee/ES combination, unknown secret, not JSON.
            var badBase64 = good
            if case .object(var members) = badBase64 {
                members["platform"] = ["pdh": "***", "cert_chain": .string(fw.nodeSEVInfo.certChain)]
                badBase64 = .object(members)
            }
            var esMismatch = good
            if case .object(var members) = esMismatch {
                members["guest_policy"] = 3
                esMismatch = .object(members)
            }
            var unknownSecret = good
            if case .object(var members) = unknownSecret {
                members["secrets"] = [["guid": "luks-key", "path": "disk/no-such"]]  // listed by the release policy, not stored
                unknownSecret = .object(members)
            }
            var extra = good
            if case .object(var members) = extra {
                members["debug"] = true
                extra = .object(members)
            }
            for bad in [badBase64, esMismatch, unknownSecret, extra] {
                try await client.execute(uri: "/v1/launches", method: .post, headers: launcherA, body: Self.body(bad)) { response in
                    #expect(response.status == .badRequest)
                    #expect(Self.json(response)["type"] == "urn:custos:problem:bad-request")
                }
            }
            try await client.execute(uri: "/v1/launches", method: .post, headers: launcherA, body: ByteBuffer(string: "{\"tee\":")) {
                #expect($0.status == .badRequest)
            }
            // A platform whose chain is not signed by the trusted roots: 422, and no launch is created.
            let stranger = try EmulatedSEVFirmware()
            try await client.execute(
                uri: "/v1/launches", method: .post, headers: launcherA,
                body: Self.body(Self.launchBody(stranger, tee: "sev-es", policy: 0x7))
            ) { response in
                #expect(response.status == .unprocessableContent)
                #expect(Self.json(response)["detail"]?.stringValue?.contains("ASK → CEK") == true)
            }

            var created: JSONValue = .null
            try await client.execute(uri: "/v1/launches", method: .post, headers: launcherA, body: Self.body(good)) {
                #expect($0.status == .created)
                created = Self.json($0)
            }
            let launchID = try #require(created["launch_id"]?.stringValue)
            // Another tenant's credentials see nothing of it (404), whatever the role.
            for role in ["launcher", "tenant-admin", "tenant-reader"] {
                try await client.execute(uri: "/v1/launches/\(launchID)", method: .get, headers: Self.auth(try #require(tokensB[role]))) {
                    #expect($0.status == .notFound)
                }
            }
            let (_, measurement) = try Self.hostLaunch(fw, created: created, boot: boot)
            let honest = Self.measurementBody(fw, measurement, expected: ("reference", "sev_es_launch_digest"), vcpus: 1)
            try await client.execute(
                uri: "/v1/launches/\(launchID)/measurement", method: .post, headers: Self.auth(try #require(tokensB["launcher"])),
                body: Self.body(honest)
            ) { #expect($0.status == .notFound) }
            // Malformed measurements: bad base64, wrong length, out-of-range API byte, both expectations given.
            var malformed: [JSONValue] = []
            for (key, value): (String, JSONValue) in [
                ("measurement_b64", "not base64!"), ("measurement_b64", .string(Base64.encode([1, 2, 3]))), ("api_major", 256),
                ("firmware_digest", .string(String(repeating: "0", count: 64))),
            ] {
                if case .object(var members) = honest {
                    members[key] = value
                    malformed.append(.object(members))
                }
            }
            for bad in malformed {
                try await client.execute(
                    uri: "/v1/launches/\(launchID)/measurement", method: .post, headers: launcherA, body: Self.body(bad)
                ) {
                    #expect($0.status == .badRequest)
                }
            }
            // The malformed requests changed nothing: the honest measurement is still accepted, once.
            try await client.execute(
                uri: "/v1/launches/\(launchID)/measurement", method: .post, headers: launcherA, body: Self.body(honest)
            ) {
                #expect($0.status == .ok)
            }
            // A service admin names the tenant; without it, 400.
            let admin = Self.auth(fixture.adminToken)
            try await client.execute(uri: "/v1/launches/\(launchID)", method: .get, headers: admin) { #expect($0.status == .badRequest) }
            try await client.execute(uri: "/v1/launches/\(launchID)?tenant=tenant-a", method: .get, headers: admin) {
                #expect($0.status == .ok)
                #expect(Self.json($0)["state"] == "injected")
            }
            try await client.execute(uri: "/v1/launches/\(launchID)?tenant=tenant-b", method: .get, headers: admin) {
                #expect($0.status == .notFound)
            }
        }
    }

    /// A SEV launch setup (guest policy 0x3, one vCPU): a fresh fixture, tenant-a with its tokens, and the boot's
    /// digest in tenant-a's `sev_launch_digest`; `body` gets the client, the fixture, the launcher's header and the boot.
    static func withSEVTenant(
        _ body: @Sendable (any TestClientProtocol, Fixture, HTTPFields, Boot) async throws -> Void
    ) async throws {
        let fixture = try await Self.fixture()
        defer { try? FileManager.default.removeItem(at: fixture.directory) }
        let boot = Boot(policy: 0x3, vcpus: 1)
        let digest = try boot.digest().digest
        try await fixture.app.test(.live) { client in
            let tokens = try await Self.prepareTenant(
                client, fixture, tenant: "tenant-a", referenceSet: "sev_launch_digest", digests: [digest])
            try await body(client, fixture, Self.auth(try #require(tokens["launcher"])), boot)
        }
    }

    /// `POST /v1/launches` with `body`, expecting 201: the launch id and the answer.
    static func createLaunch(
        _ client: any TestClientProtocol, _ launcher: HTTPFields, _ body: JSONValue
    ) async throws -> (id: String, created: JSONValue) {
        let created = try await client.execute(uri: "/v1/launches", method: .post, headers: launcher, body: Self.body(body)) {
            response -> JSONValue in
            #expect(response.status == .created)
            return Self.json(response)
        }
        return (try #require(created["launch_id"]?.stringValue), created)
    }

    /// The host's measurement of `created` sent for the reference set `sev_launch_digest`; `check` sees the answer.
    static func measure(
        _ client: any TestClientProtocol, _ fixture: Fixture, _ launcher: HTTPFields, _ launch: (id: String, created: JSONValue),
        boot: Boot, check: @escaping @Sendable (TestResponse) -> Void
    ) async throws {
        let (_, measurement) = try Self.hostLaunch(fixture.firmware, created: launch.created, boot: boot)
        try await client.execute(
            uri: "/v1/launches/\(launch.id)/measurement", method: .post, headers: launcher,
            body: Self.body(Self.measurementBody(fixture.firmware, measurement, expected: ("reference", "sev_launch_digest"), vcpus: 1)),
            testCallback: check)
    }

    /// The launcher (the host) names the secrets, the tenant's ReleasePolicy decides: a path it does not list is 403
    /// at creation; a listed path whose rule fails on the launch's appraisal turns an allowed measurement into a
    /// denial (403, nothing injected, TEK/TIK erased); a path named twice past `maxReleasesPerAttestation` too.
    @Test func theReleasePolicyDecidesWhichSecretsALaunchGets() async throws {
        try await Self.withSEVTenant { client, fixture, launcher, boot in
            let admin = Self.auth(fixture.adminToken)
            for path in ["other/key", "gated/key"] {
                try await client.execute(
                    uri: "/v1/secrets/tenant-a/\(path)", method: .put, headers: admin, body: ByteBuffer(bytes: Self.secret)
                ) { #expect($0.status == .created) }
            }
            func launchBody(_ paths: [String]) -> JSONValue {
                guard case .object(var members) = Self.launchBody(fixture.firmware, tee: "sev", policy: 0x3) else { return .null }
                // Distinct GUIDs (a secret table holds each once): luks-key, then a fixed one.
                let guids = ["luks-key", "0a2c7f3e-5b1d-4e8a-9c6f-2d4b8e1a7c35"]
                members["secrets"] = .array(paths.enumerated().map { ["guid": .string(guids[$0.offset]), "path": .string($0.element)] })
                return .object(members)
            }
            // Not listed: refused before anything is made.
            try await client.execute(uri: "/v1/launches", method: .post, headers: launcher, body: Self.body(launchBody(["other/key"]))) {
                #expect($0.status == .forbidden)
                #expect(Self.json($0)["type"] == "urn:custos:problem:policy-denied")
                #expect(Self.json($0)["detail"]?.stringValue?.contains("other/key") == true)
            }
            // Listed, but its rule fails on the appraisal; and a path named twice past its limit of one.
            for (paths, reason) in [
                (["gated/key"], "denies gated/key"), (["disk/root-key", "disk/root-key"], "1 time(s) per attestation"),
            ] {
                let launch = try await Self.createLaunch(client, launcher, launchBody(paths))
                try await Self.measure(client, fixture, launcher, launch, boot: boot) { response in
                    #expect(response.status == .forbidden)
                    let detail = Self.json(response)["detail"]?.stringValue ?? ""
                    #expect(detail.contains(reason), "\(detail)")
                    #expect(Self.json(response)["secret"] == nil)
                }
                #expect(try await fixture.store.launch(tenantId: "tenant-a", id: launch.id).state == .denied)
                await #expect(throws: StoreError.self) {
                    try await fixture.store.openLaunchSessionSecret(tenantId: "tenant-a", id: launch.id)
                }
            }
        }
    }

    /// The launch policy is fixed at creation by id: after a reload that renames it, the launch is not judged by
    /// whatever policy for its TEE is loaded now (it was, by the first one); the measurement gets 503 and stays unspent.
    @Test func aRenamedLaunchPolicyLeavesTheLaunchUndecided() async throws {
        try await Self.withSEVTenant { client, fixture, launcher, boot in
            let launch = try await Self.createLaunch(client, launcher, Self.launchBody(fixture.firmware, tee: "sev", policy: 0x3))
            let renamed = Self.sevPolicy.replacingOccurrences(of: "id: sev-test", with: "id: sev-test-renamed")
            try Data(renamed.utf8).write(to: fixture.directory.appendingPathComponent("policies/sev/test.yaml"))
            try await client.execute(uri: "/v1/policies:reload", method: .post, headers: Self.auth(fixture.adminToken)) {
                #expect($0.status == .ok)
            }
            try await Self.measure(client, fixture, launcher, launch, boot: boot) { response in
                #expect(response.status == .serviceUnavailable)
                #expect(Self.json(response)["detail"]?.stringValue?.contains("sev-test") == true)
            }
            try await client.execute(uri: "/v1/launches/\(launch.id)", method: .get, headers: launcher) {
                #expect(Self.json($0)["state"] == "created")
            }
        }
    }

    /// A decision that failed after the measurement was recorded (the service answered 503) leaves the launch measured
    /// and undecided: another measurement is 409; the launcher's retry with the same one decides it, and the guest reads
    /// its secret. Two requests at once get one decision and one 409, never a second decision or a 500.
    @Test func aRetriedMeasurementDecidesAnUndecidedLaunch() async throws {
        try await Self.withSEVTenant { client, fixture, launcher, boot in
            let fw = fixture.firmware
            func post(_ id: String, _ measurement: [UInt8]) async throws -> (HTTPResponse.Status, JSONValue) {
                try await client.execute(
                    uri: "/v1/launches/\(id)/measurement", method: .post, headers: launcher,
                    body: Self.body(Self.measurementBody(fw, measurement, expected: ("reference", "sev_launch_digest"), vcpus: 1))
                ) { ($0.status, Self.json($0)) }
            }
            let launch = try await Self.createLaunch(client, launcher, Self.launchBody(fw, tee: "sev", policy: 0x3))
            let (handle, measurement) = try Self.hostLaunch(fw, created: launch.created, boot: boot)
            // The first attempt got as far as recording the measurement.
            _ = try await fixture.store.recordLaunchMeasurement(tenantId: "tenant-a", id: launch.id, measurement: measurement, now: Date())
            var other = measurement
            other[0] ^= 1
            #expect(try await post(launch.id, other).0 == .conflict)
            let (status, decision) = try await post(launch.id, measurement)
            #expect(status == .ok)
            #expect(decision["decision"] == "allow")
            let header = try Base64.decode(try #require(decision.value(atPath: "secret.header_b64")?.stringValue))
            let data = try Base64.decode(try #require(decision.value(atPath: "secret.data_b64")?.stringValue))
            try fw.launchSecret(handle: handle, header: header, payload: data)
            try fw.launchFinish(handle: handle)
            #expect(try fw.guestSecrets(handle: handle).first?.data == Self.secret)
            #expect(try await post(launch.id, measurement).0 == .conflict)
            #expect(try await fixture.store.launch(tenantId: "tenant-a", id: launch.id).state == .injected)

            // Concurrent retries of an undecided launch.
            let second = try await Self.createLaunch(client, launcher, Self.launchBody(fw, tee: "sev", policy: 0x3))
            let (_, secondMeasurement) = try Self.hostLaunch(fw, created: second.created, boot: boot)
            _ = try await fixture.store.recordLaunchMeasurement(
                tenantId: "tenant-a", id: second.id, measurement: secondMeasurement, now: Date())
            // Four connections at once (the test client has one).
            let port = try #require(client.port)
            let configuration = URLSessionConfiguration.ephemeral
            configuration.httpMaximumConnectionsPerHost = 8
            let session = URLSession(configuration: configuration)
            let body = CanonicalJSON.encode(
                Self.measurementBody(fw, secondMeasurement, expected: ("reference", "sev_launch_digest"), vcpus: 1))
            let authorization = try #require(launcher[.authorization])
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<4 {
                    group.addTask {
                        try await CrashRecoveryTests.request(
                            session, "POST", "http://127.0.0.1:\(port)/v1/launches/\(second.id)/measurement",
                            headers: ["Authorization": authorization, "Content-Type": "application/json"], body: body
                        ).status
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }.sorted()
            }
            #expect(statuses == [200, 409, 409, 409])
            let types = try Self.auditEntries(fixture.log, tenant: "tenant-a").compactMap { $0["type"]?.stringValue }
            #expect(types.filter { $0 == "launch.measurement.allowed" }.count == 2, "\(types)")
        }
    }

    /// The chain is checked first: a foreign platform is 422 even when no policy could decide; the trusted platform
    /// then gets 503 (with Retry-After) because no LaunchPolicy for `sev` is loaded. Neither creates a launch.
    @Test func theChainIsVerifiedBeforeAnythingElse() async throws {
        let fixture = try await Self.fixture(withSEVPolicy: false)
        defer { try? FileManager.default.removeItem(at: fixture.directory) }
        let fw = fixture.firmware
        let stranger = try EmulatedSEVFirmware()
        try await fixture.app.test(.live) { client in
            let tokens = try await Self.prepareTenant(
                client, fixture, tenant: "tenant-a", referenceSet: "sev_launch_digest", digests: [[UInt8](repeating: 1, count: 32)])
            let launcher = Self.auth(try #require(tokens["launcher"]))
            try await client.execute(
                uri: "/v1/launches", method: .post, headers: launcher, body: Self.body(Self.launchBody(stranger, tee: "sev", policy: 0x3))
            ) { #expect($0.status == .unprocessableContent) }
            try await client.execute(
                uri: "/v1/launches", method: .post, headers: launcher, body: Self.body(Self.launchBody(fw, tee: "sev", policy: 0x3))
            ) { response in
                #expect(response.status == .serviceUnavailable)
                #expect(response.headers[.retryAfter] != nil)
            }
            #expect(try Self.auditEntries(fixture.log, tenant: "tenant-a").isEmpty)
        }
    }
}
