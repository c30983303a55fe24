import CustosCrypto
import CustosTDX
import CustosTestSupport
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Testing

@testable import CustosServer

/// The service's default collateral source (issue 11 §1): Intel PCS or a PCCS, fetched on a miss into the on-disk cache
/// `DATA/collateral/<FMSPC>/`. A local PCCS (PCS v4 paths and issuer-chain headers) serves the test hierarchy's
/// collateral and records what it was asked.
@Suite(.serialized, .timeLimit(.minutes(10)))
struct PCSCollateralTests {
    static let fmspc = "00A06F000000"

    /// The PCCS routes for collateral files in PCS layout (`collateralFiles` of the test hierarchy).
    static func routes(_ files: [(String, [UInt8])]) -> [String: CannedResponse] {
        let file = Dictionary(files, uniquingKeysWith: { first, _ in first })
        func header(_ name: String) -> String { pcsURLEncode(String(decoding: file[name] ?? [], as: UTF8.self)) }
        return [
            "/tdx/certification/v4/tcb?fmspc=\(fmspc)": CannedResponse(
                headers: [("TCB-Info-Issuer-Chain", header("tcb_info_issuer_chain.pem"))], body: file["tcb_info.json"] ?? []),
            "/tdx/certification/v4/qe/identity": CannedResponse(
                headers: [("SGX-Enclave-Identity-Issuer-Chain", header("qe_identity_issuer_chain.pem"))],
                body: file["qe_identity.json"] ?? []),
            "/sgx/certification/v4/pckcrl?ca=platform&encoding=der": CannedResponse(
                headers: [("SGX-PCK-CRL-Issuer-Chain", header("pck_crl_issuer_chain.pem"))], body: file["pck_crl.der"] ?? []),
            "/sgx/certification/v4/rootcacrl": CannedResponse(body: Array(Hex.encode(file["root_ca_crl.der"] ?? []).utf8)),
        ]
    }

    /// The PCCS route of the PCK Processor CA's CRL (`pckcrl?ca=processor`) from a hierarchy's collateral files.
    static func processorCRLRoute(_ files: [(String, [UInt8])]) -> (String, CannedResponse) {
        let file = Dictionary(files, uniquingKeysWith: { first, _ in first })
        return (
            "/sgx/certification/v4/pckcrl?ca=processor&encoding=der",
            CannedResponse(
                headers: [
                    ("SGX-PCK-CRL-Issuer-Chain", pcsURLEncode(String(decoding: file["pck_crl_issuer_chain.pem"] ?? [], as: UTF8.self)))
                ],
                body: file["pck_crl.der"] ?? [])
        )
    }

    static func tcbRequests(_ server: CannedHTTPServer) -> Int { server.log.all.filter { $0.hasPrefix("/tdx/certification/v4/tcb") }.count }

    @Test func firstAttestationFetchesOnceForConcurrentGuestsAndARestartUsesTheDiskCache() async throws {
        let hierarchy = try KBSFixture.hierarchy.get()
        let files = try hierarchy.collateralFiles(KBSFixture.spec())
        let pccs = try await CannedHTTPServer.start(routes: Self.routes(files))
        defer { Task { await pccs.stop() } }
        let fixture = try await KBSFixture.make(inMemoryCollateral: false) { $0.collateral = .service(url: pccs.base) }
        defer { fixture.cleanUp() }
        #expect(fixture.parts.collateral is PCSCollateralProvider)
        let guest = TestGuest(key: .ec(try ECPrivateKey(generating: .p256)), hierarchy: hierarchy, spec: KBSFixture.spec())
        try await fixture.app.test(.router) { client in
            try await fixture.provision(client, secret: Array("s3cret".utf8))
            let tokens = try await withThrowingTaskGroup(of: String?.self) { group in
                for _ in 0..<6 { group.addTask { try await guest.handshake(client)?.token } }
                var tokens: [String] = []
                for try await token in group { if let token { tokens.append(token) } }
                return tokens
            }
            #expect(tokens.count == 6, "every concurrent guest gets a token")
            // /metrics: the age of the collateral in use (issued a day ago by KBSFixture.spec()).
            try await client.execute(uri: "/metrics", method: .get) { response in
                let text = String(buffer: response.body)
                let line = text.split(separator: "\n").first { $0.hasPrefix("custos_collateral_age_seconds{fmspc=\"\(Self.fmspc)\"}") }
                let age = line.flatMap { $0.split(separator: " ").last }.flatMap { Double($0) }
                #expect(age.map { abs($0 - 86_400) < 600 } == true, "collateral age line: \(line ?? "missing")")
            }
        }
        // One fetch for the six guests: the TCB Info, QE Identity, PCK CRL and Root CA CRL, each once.
        #expect(Self.tcbRequests(pccs) == 1, "requests: \(pccs.log.all)")
        #expect(pccs.log.all.count == 4, "requests: \(pccs.log.all)")
        // The cache holds exactly the served bytes, in PCS layout.
        let cache = URL(fileURLWithPath: fixture.parts.configuration.dataDirectory).appendingPathComponent("collateral/\(Self.fmspc)")
        for name in ["tcb_info.json", "qe_identity.json", "pck_crl.der", "root_ca_crl.der"] {
            let served = try #require(files.first { $0.0 == name }?.1)
            #expect(Array(try Data(contentsOf: cache.appendingPathComponent(name))) == served, "\(name) in the cache")
        }

        // After a restart (a new provider on the same data directory) with the PCCS gone, the disk cache answers.
        await pccs.stop()
        let fmspc = try Hex.decode(Self.fmspc)
        let restarted = PCSCollateralProvider(
            cacheDirectory: cache.deletingLastPathComponent(), base: pccs.base, logger: .init(label: "test"))
        let collateral = try await restarted.collateral(fmspc: fmspc, now: Date())
        #expect(collateral.tcbInfo.fmspc == fmspc)
        #expect(restarted.fetchCount == 0)
        #expect(Self.tcbRequests(pccs) == 1)
    }

    @Test func withoutCollateralTheServiceCannotDecideAndDoesNotHammerThePCCS() async throws {
        let hierarchy = try KBSFixture.hierarchy.get()
        // A PCCS that knows nothing (404 for every path).
        let pccs = try await CannedHTTPServer.start(routes: [:])
        defer { Task { await pccs.stop() } }
        let fixture = try await KBSFixture.make(inMemoryCollateral: false) { $0.collateral = .service(url: pccs.base) }
        defer { fixture.cleanUp() }
        let guest = TestGuest(key: .ec(try ECPrivateKey(generating: .p256)), hierarchy: hierarchy, spec: KBSFixture.spec())
        try await fixture.app.test(.router) { client in
            try await fixture.provision(client, secret: Array("s3cret".utf8))
            for attempt in 0..<3 {
                let (cookie, nonce) = try #require(try await guest.auth(client))
                let (status, body) = try await guest.attest(client, cookie: cookie, body: try guest.attestation(nonce: nonce))
                #expect(status == .serviceUnavailable, "attempt \(attempt): \(status) \(body)")
                #expect(body["detail"]?.stringValue?.contains(Self.fmspc) == true, "\(body)")
            }
        }
        // The first attempt asked for the TCB Info and failed; the next two came within the retry interval.
        #expect(Self.tcbRequests(pccs) == 1, "requests: \(pccs.log.all)")
    }

    @Test func expiredCachedCollateralIsRefreshed() async throws {
        let hierarchy = try KBSFixture.hierarchy.get()
        let pccs = try await CannedHTTPServer.start(routes: Self.routes(try hierarchy.collateralFiles(KBSFixture.spec())))
        defer { Task { await pccs.stop() } }
        let fixture = try await KBSFixture.make(inMemoryCollateral: false) { $0.collateral = .service(url: pccs.base) }
        defer { fixture.cleanUp() }
        // Yesterday's collateral in the cache: its nextUpdate has passed.
        var expired = KBSFixture.spec()
        expired.issueDate = RFC3339Seconds.format(Date().addingTimeInterval(-40 * 86_400))
        expired.nextUpdate = RFC3339Seconds.format(Date().addingTimeInterval(-86_400))
        let cache = URL(fileURLWithPath: fixture.parts.configuration.dataDirectory).appendingPathComponent("collateral/\(Self.fmspc)")
        try FileManager.default.createDirectory(at: cache, withIntermediateDirectories: true)
        for (name, bytes) in try hierarchy.collateralFiles(expired) { try Data(bytes).write(to: cache.appendingPathComponent(name)) }

        let guest = TestGuest(key: .ec(try ECPrivateKey(generating: .p256)), hierarchy: hierarchy, spec: KBSFixture.spec())
        try await fixture.app.test(.router) { client in
            try await fixture.provision(client, secret: Array("s3cret".utf8))
            #expect(try await guest.handshake(client) != nil)
        }
        #expect(Self.tcbRequests(pccs) == 1, "the expired cache was refreshed: \(pccs.log.all)")
        let fresh = PCSCollateralProvider(cacheDirectory: cache.deletingLastPathComponent(), base: pccs.base, logger: .init(label: "test"))
        let collateral = try await fresh.collateral(fmspc: try Hex.decode(Self.fmspc), now: Date())
        #expect(collateral.tcbInfo.nextUpdate > Date(), "the cache now holds the fresh TCB Info")
        #expect(fresh.fetchCount == 0)
    }

    /// Collateral files for a spec valid from `issued` to `next` (offsets from now, in seconds).
    static func files(_ hierarchy: TDXTestHierarchy, issued: TimeInterval, next: TimeInterval) throws -> [(String, [UInt8])] {
        var spec = KBSFixture.spec()
        spec.issueDate = RFC3339Seconds.format(Date().addingTimeInterval(issued))
        spec.nextUpdate = RFC3339Seconds.format(Date().addingTimeInterval(next))
        return try hierarchy.collateralFiles(spec)
    }

    static func writeCache(_ files: [(String, [UInt8])], in root: URL) throws {
        let directory = root.appendingPathComponent(fmspc)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        for (name, bytes) in files { try Data(bytes).write(to: directory.appendingPathComponent(name)) }
    }

    /// What a PCCS serves is verified against the trust anchor, and must not be older than the cache, before it
    /// replaces anything: a forged TCB Info (bad signature, `nextUpdate` in 2099) or an older signed one is refused,
    /// the cache is kept, and the next attempt waits for the retry interval.
    @Test func fetchedCollateralIsVerifiedAndNeverOlderBeforeItReplacesTheCache() async throws {
        let hierarchy = try KBSFixture.hierarchy.get()
        let fmspc = try Hex.decode(Self.fmspc)
        // The cache: valid, but within the one-hour refresh margin, so the provider fetches.
        let cached = try Self.files(hierarchy, issued: -86_400, next: 1800)
        var forged = try Self.files(hierarchy, issued: -3600, next: 30 * 86_400)
        let index = try #require(forged.firstIndex { $0.0 == "tcb_info.json" })
        var text = String(decoding: forged[index].1, as: UTF8.self)
        let signature = try #require(text.range(of: "\"signature\":\""))
        let first = text[signature.upperBound]
        text.replaceSubrange(signature.upperBound...signature.upperBound, with: first == "0" ? "1" : "0")
        forged[index].1 = Array(text.utf8)
        let older = try Self.files(hierarchy, issued: -2 * 86_400, next: 30 * 86_400)
        for (label, served) in [("forged", forged), ("older", older)] {
            let root = FileManager.default.temporaryDirectory.appendingPathComponent("custos-pcs-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: root) }
            try Self.writeCache(cached, in: root)
            let pccs = try await CannedHTTPServer.start(routes: Self.routes(served))
            defer { Task { await pccs.stop() } }
            let provider = PCSCollateralProvider(
                cacheDirectory: root, base: pccs.base, trustedRoot: hierarchy.root, logger: .init(label: "test"))
            for _ in 0..<2 {
                let collateral = try await provider.collateral(fmspc: fmspc, now: Date())
                #expect(collateral.tcbInfo.nextUpdate < Date().addingTimeInterval(3600), "\(label): the cached collateral is kept")
            }
            #expect(provider.fetchCount == 1, "\(label): one fetch, then the back-off")
            let onDisk = try Data(contentsOf: root.appendingPathComponent("\(Self.fmspc)/tcb_info.json"))
            #expect(Array(onDisk) == cached.first { $0.0 == "tcb_info.json" }?.1, "\(label): the cache file is unchanged")
        }
    }

    /// A platform whose PCK certificate the PCK Processor CA issued gets that CA's CRL (`pckcrl?ca=processor`),
    /// cached in `<FMSPC>-processor/` beside the Platform CA's `<FMSPC>/`: platforms of both CAs with one FMSPC attest
    /// side by side. Before, the service fetched the Platform CA's CRL for every platform, and the verifier refused a
    /// Processor CA platform's quote (the CRL's issuer is not the PCK certificate's).
    @Test func aProcessorCAPlatformGetsItsCAsCRL() async throws {
        let hierarchy = try KBSFixture.hierarchy.get()
        let processor = try hierarchy.withProcessorCA()
        let platformFiles = try hierarchy.collateralFiles(KBSFixture.spec())
        let processorFiles = try processor.collateralFiles(KBSFixture.spec())
        var routes = Self.routes(platformFiles)
        let (path, response) = Self.processorCRLRoute(processorFiles)
        routes[path] = response
        let pccs = try await CannedHTTPServer.start(routes: routes)
        defer { Task { await pccs.stop() } }
        let fixture = try await KBSFixture.make(inMemoryCollateral: false) { $0.collateral = .service(url: pccs.base) }
        defer { fixture.cleanUp() }
        let processorGuest = TestGuest(key: .ec(try ECPrivateKey(generating: .p256)), hierarchy: processor, spec: KBSFixture.spec())
        let platformGuest = TestGuest(key: .ec(try ECPrivateKey(generating: .p256)), hierarchy: hierarchy, spec: KBSFixture.spec())
        try await fixture.app.test(.router) { client in
            try await fixture.provision(client, secret: Array("s3cret".utf8))
            #expect(try await processorGuest.handshake(client) != nil, "the Processor CA platform attests")
            #expect(try await platformGuest.handshake(client) != nil, "the Platform CA platform attests")
            #expect(try await processorGuest.handshake(client) != nil, "again, from the cache")
        }
        let log = pccs.log.all
        #expect(log.filter { $0.contains("pckcrl?ca=processor") }.count == 1, "requests: \(log)")
        #expect(log.filter { $0.contains("pckcrl?ca=platform") }.count == 1, "requests: \(log)")
        let cache = URL(fileURLWithPath: fixture.parts.configuration.dataDirectory).appendingPathComponent("collateral")
        for (directory, files) in [(Self.fmspc, platformFiles), ("\(Self.fmspc)-processor", processorFiles)] {
            let served = try #require(files.first { $0.0 == "pck_crl.der" }?.1)
            #expect(Array(try Data(contentsOf: cache.appendingPathComponent("\(directory)/pck_crl.der"))) == served, "\(directory)")
        }
    }

    /// A collateral directory serves a platform only collateral whose PCK CRL is from the platform's CA, and says how
    /// to fetch the missing one.
    @Test func aCollateralDirectoryMatchesThePCKCA() async throws {
        let hierarchy = try KBSFixture.hierarchy.get()
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("custos-collateral-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        try Self.writeCache(try hierarchy.collateralFiles(KBSFixture.spec()), in: root)
        let fmspc = try Hex.decode(Self.fmspc)
        let processor = PCKPlatform(fmspc: fmspc, ca: .processor)
        #expect(try await CollateralDirectory(root: root).collateral(fmspc: fmspc, now: Date()).pckCRLAuthority == .platform)
        do throws(CollateralUnavailable) {
            _ = try await CollateralDirectory(root: root).collateral(for: processor, now: Date())
            Issue.record("the Platform CA's CRL was served for a Processor CA platform")
        } catch {
            #expect(error.message.contains("--ca processor"), "\(error)")
            #expect(error.message.contains("PCK Platform CA CRL"), "\(error)")
        }
        let directory = root.appendingPathComponent("\(Self.fmspc)-processor")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        for (name, bytes) in try hierarchy.withProcessorCA().collateralFiles(KBSFixture.spec()) {
            try Data(bytes).write(to: directory.appendingPathComponent(name))
        }
        let directoryProvider = CollateralDirectory(root: root)
        #expect(try await directoryProvider.collateral(for: processor, now: Date()).pckCRLAuthority == .processor)
        #expect(try await directoryProvider.collateral(fmspc: fmspc, now: Date()).pckCRLAuthority == .platform)
        // The console lists both, the Processor CA's named as such.
        let rows = await ConsoleOverview.collateralRows(directoryProvider, now: Date())
        #expect(rows.compactMap { $0["fmspc"] as? String } == [Self.fmspc, "\(Self.fmspc) (Processor CA)"])
        // A broken Platform CA directory does not stop the Processor CA platform (it could not use it anyway).
        try Data("{".utf8).write(to: root.appendingPathComponent("\(Self.fmspc)/tcb_info.json"))
        #expect(try await CollateralDirectory(root: root).collateral(for: processor, now: Date()).pckCRLAuthority == .processor)
        await #expect(throws: CollateralUnavailable.self) {
            try await CollateralDirectory(root: root).collateral(fmspc: fmspc, now: Date())
        }
        // In memory too: both platforms of one FMSPC are kept apart.
        let memory = InMemoryCollateral([
            try hierarchy.collateral(KBSFixture.spec()), try hierarchy.withProcessorCA().collateral(KBSFixture.spec()),
        ])
        #expect(try await memory.collateral(for: processor, now: Date()).pckCRLAuthority == .processor)
        #expect(try await memory.collateral(fmspc: fmspc, now: Date()).pckCRLAuthority == .platform)
    }

    /// A source whose collateral is itself about to expire: it is used, but not fetched again for every attestation.
    @Test func collateralThatIsStillStaleAfterAFetchBacksOff() async throws {
        let hierarchy = try KBSFixture.hierarchy.get()
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("custos-pcs-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        let pccs = try await CannedHTTPServer.start(routes: Self.routes(try Self.files(hierarchy, issued: -86_400, next: 600)))
        defer { Task { await pccs.stop() } }
        let provider = PCSCollateralProvider(
            cacheDirectory: root, base: pccs.base, trustedRoot: hierarchy.root, logger: .init(label: "test"))
        for _ in 0..<3 { _ = try await provider.collateral(fmspc: try Hex.decode(Self.fmspc), now: Date()) }
        #expect(provider.fetchCount == 1)
        #expect(Self.tcbRequests(pccs) == 1)
    }

    /// The refresh is due when any part expires: the CRLs' nextUpdate and the issuer certificates' notAfter count, not
    /// only the TCB Info and QE Identity.
    @Test func theRefreshIsDueWhenTheFirstPartExpires() throws {
        let hierarchy = try KBSFixture.hierarchy.get()
        let collateral = try hierarchy.collateral(KBSFixture.spec())
        var dates = [collateral.tcbInfo.nextUpdate, collateral.qeIdentity.nextUpdate]
        dates += [collateral.pckCRL.nextUpdate, collateral.rootCACRL.nextUpdate].compactMap { $0 }
        dates += (collateral.tcbInfoIssuerChain + collateral.qeIdentityIssuerChain + collateral.pckCRLIssuerChain).map(\.notAfter)
        #expect(PCSCollateralProvider.earliestNextUpdate(collateral) == dates.min())
        // In the test hierarchy the CRLs and certificates outlive the TCB Info; a TCB Info valid for years makes a
        // certificate or CRL the first to expire.
        var longLived = KBSFixture.spec()
        longLived.nextUpdate = "2999-01-01T00:00:00Z"
        let later = try hierarchy.collateral(longLived)
        #expect(PCSCollateralProvider.earliestNextUpdate(later) < later.tcbInfo.nextUpdate)
        #expect(PCSCollateralProvider.earliestNextUpdate(later) < later.qeIdentity.nextUpdate)
    }
}
