import CustosCrypto
import CustosKBS
import CustosTDX
import CustosTestSupport
import Foundation
import Synchronization
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// `custos serve` as a process under KBS load: SIGKILL mid-load leaves an audit log that verifies, a restart keeps
/// tenants, secrets, reference values, appraisals and the log, and neither run's log output holds a secret, a token
/// or the admin credential.
struct FlowRefused: Error, CustomStringConvertible {
    let description: String
}

final class FlowCounter: Sendable {
    private let count = Mutex(0)
    private let failure = Mutex<String?>(nil)
    func add() { count.withLock { $0 += 1 } }
    var value: Int { count.withLock { $0 } }
    func fail(_ reason: String) { failure.withLock { $0 = $0 ?? reason } }
    var firstFailure: String? { failure.withLock { $0 } }
}

@Suite(Requirement.custosExecutable, .serialized) struct CrashRecoveryTests {
    static func start(data: URL, state: URL, log: URL) throws -> ServeProcess {
        try ServeProcess(
            arguments: [
                "--data", data.path, "--policies", TestData.packageRoot.appendingPathComponent("Policies").path, "--collateral",
                state.appendingPathComponent("collateral").path, "--tdx-root", state.appendingPathComponent("root.pem").path,
            ], log: log, logLevel: "debug")
    }

    static func request(
        _ session: URLSession, _ method: String, _ url: String, headers: [String: String] = [:], body: [UInt8]? = nil
    ) async throws -> (status: Int, headers: [String: String], body: [UInt8]) {
        var request = URLRequest(url: try #require(URL(string: url)))
        request.httpMethod = method
        request.httpShouldHandleCookies = false
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        if let body { request.httpBody = Data(body) }
        let (data, response) = try await session.data(for: request)
        let http = try #require(response as? HTTPURLResponse)
        var fields: [String: String] = [:]
        for (name, value) in http.allHeaderFields {
            if let name = name as? String, let value = value as? String { fields[name.lowercased()] = value }
        }
        return (http.statusCode, fields, Array(data))
    }

    /// One full KBS flow; true when the secret came back and opened.
    static func flow(_ session: URLSession, base: String, factory: TDXQuoteFactory, secret: [UInt8]) async throws -> Bool {
        let key = JWEDecryptionKey.ec(try ECPrivateKey(generating: .p256))
        let auth = try await request(
            session, "POST", "\(base)/kbs/v0/auth",
            body: CanonicalJSON.encode(["version": "0.4.0", "tee": "tdx", "extra-params": .object([:])]))
        guard auth.status == 200 else {
            throw FlowRefused(description: "auth \(auth.status) \(String(decoding: auth.body, as: UTF8.self))")
        }
        guard let cookie = auth.headers["set-cookie"]?.split(separator: ";").first.map(String.init),
            let nonce = try JSONValue.parse(auth.body)["nonce"]?.stringValue
        else { return false }
        let runtime = KBSRuntimeData(nonce: nonce, teePubkey: key.publicJWK)
        let quote = try factory.quote(
            reportData: KBSBinding.reportData(nonce: nonce, teePubkey: runtime.teePubkeyJSON, additionalEvidence: ""))
        let attestation = KBSAttestation(
            runtimeData: runtime, teeEvidence: KBSTEEEvidence(primaryEvidence: TDXPrimaryEvidence(quote: quote, ccEventlog: nil).jsonValue))
        let attested = try await request(
            session, "POST", "\(base)/kbs/v0/attest", headers: ["Cookie": cookie], body: CanonicalJSON.encode(attestation.jsonValue))
        guard attested.status == 200 else {
            throw FlowRefused(description: "attest \(attested.status) \(String(decoding: attested.body, as: UTF8.self))")
        }
        let resource = try await request(session, "GET", "\(base)/kbs/v0/resource/default/key/disk", headers: ["Cookie": cookie])
        guard resource.status == 200 else {
            throw FlowRefused(description: "resource \(resource.status) \(String(decoding: resource.body, as: UTF8.self))")
        }
        return try KBSResourceRelease.decrypt(responseBody: resource.body, with: key).unsafeCopy() == secret
    }

    @Test func sigkillUnderLoadThenRestartKeepsEverything() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("custos-crash-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let data = directory.appendingPathComponent("var")
        let state = directory.appendingPathComponent("state")
        let log = directory.appendingPathComponent("serve.log")
        // The TDX test hierarchy the server trusts, and its platform's collateral on disk.
        let hierarchy = try TDXTestHierarchy()
        let spec = KBSFixture.spec()
        let platform = state.appendingPathComponent("collateral").appendingPathComponent(Hex.encode(spec.fmspc).uppercased())
        try FileManager.default.createDirectory(at: platform, withIntermediateDirectories: true)
        for (name, bytes) in try hierarchy.collateralFiles(spec) { try Data(bytes).write(to: platform.appendingPathComponent(name)) }
        try Data(hierarchy.root.pemRepresentation.utf8).write(to: state.appendingPathComponent("root.pem"))
        let factory = try hierarchy.quoteFactory(spec)
        let secret = Array("crash-test secret 7f3a9c".utf8)

        let configuration = URLSessionConfiguration.ephemeral
        configuration.httpMaximumConnectionsPerHost = 16
        // Each guest sends its own session cookie; a shared cookie jar would mix the eight guests' sessions.
        configuration.httpCookieStorage = nil
        configuration.httpShouldSetCookies = false
        configuration.httpCookieAcceptPolicy = .never
        let session = URLSession(configuration: configuration)
        let first = try Self.start(data: data, state: state, log: log)
        defer { first.kill() }
        try await first.waitUntilHealthy()
        let admin = try String(contentsOf: data.appendingPathComponent("bootstrap-admin.token"), encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let auth = ["Authorization": "Bearer \(admin)"]
        for (name, value) in [("mr_td", KBSFixture.mrTD), ("rtmr_1", KBSFixture.rtmr1), ("rtmr_2", KBSFixture.rtmr2)] {
            let put = try await Self.request(
                session, "PUT", "\(first.baseURL)/v1/reference-values/default/\(name)", headers: auth,
                body: CanonicalJSON.encode(["values": [.string(Hex.encode(value))]]))
            #expect(put.status == 200)
        }
        #expect(
            try await Self.request(session, "PUT", "\(first.baseURL)/v1/secrets/default/key/disk", headers: auth, body: secret).status
                == 201)
        #expect(
            try await Self.request(session, "POST", "\(first.baseURL)/v1/tenants", headers: auth, body: Array(#"{"id":"acme"}"#.utf8))
                .status
                == 201)

        // Load: 8 concurrent guests looping; SIGKILL while they run.
        let base = first.baseURL
        let counter = FlowCounter()
        let load = Task {
            try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<8 {
                    group.addTask {
                        var done = 0
                        while !Task.isCancelled, done < 1000 {
                            do {
                                guard try await Self.flow(session, base: base, factory: factory, secret: secret) else {
                                    counter.fail("a flow was refused")
                                    break
                                }
                            } catch {
                                counter.fail("\(error)")
                                break
                            }
                            done += 1
                            counter.add()
                        }
                        return done
                    }
                }
                return try await group.reduce(0, +)
            }
        }
        // Kill once flows are completing (not after a fixed time: a loaded machine may be slow to start them).
        for _ in 0..<600 where counter.value < 16 { try await Task.sleep(for: .milliseconds(100)) }
        first.kill()
        let completed = try await load.value
        #expect(completed > 0, "no flow completed before the kill: \(counter.firstFailure ?? "?")")

        // The log verifies after the kill.
        let database = data.appendingPathComponent("custos.sqlite").path
        let verify = try CustosExecutable.run(["audit", "verify", "--db", database, "--json"])
        #expect(verify.status == 0, "\(verify.stdout) \(verify.stderr)")

        // Restart on the same directory: everything is still there, and the service works.
        let second = try Self.start(data: data, state: state, log: log)
        defer { second.kill() }
        try await second.waitUntilHealthy()
        let tenants = try await Self.request(session, "GET", "\(second.baseURL)/v1/appraisals?limit=1000", headers: auth)
        #expect(tenants.status == 200)
        let appraisals = try JSONValue.parse(tenants.body)["items"]?.arrayValue?.count ?? 0
        #expect(appraisals >= completed)
        let versions = try await Self.request(session, "GET", "\(second.baseURL)/v1/secrets/default/key/disk/versions", headers: auth)
        #expect(versions.status == 200)
        let reference = try await Self.request(session, "GET", "\(second.baseURL)/v1/reference-values/default/mr_td", headers: auth)
        #expect(try JSONValue.parse(reference.body)["values"] == [.string(Hex.encode(KBSFixture.mrTD))])
        let acme = try await Self.request(
            session, "POST", "\(second.baseURL)/v1/tenants/acme/tokens", headers: auth, body: Array(#"{"role":"tenant-reader"}"#.utf8))
        #expect(acme.status == 201)
        #expect(try await Self.flow(session, base: second.baseURL, factory: factory, secret: secret))
        #expect(await second.stop(timeout: .seconds(30)) == 0)
        let verifyAgain = try CustosExecutable.run(["audit", "verify", "--db", database, "--full", "--json"])
        #expect(verifyAgain.status == 0, "\(verifyAgain.stdout) \(verifyAgain.stderr)")

        // Nothing secret in the logs (debug level) of either run: not the secret, not the admin token, not an EAR.
        let logText = String(decoding: try Data(contentsOf: log), as: UTF8.self)
        #expect(logText.contains("listening"), "the log was captured")
        #expect(!logText.contains(String(decoding: secret, as: UTF8.self)))
        #expect(!logText.contains(Hex.encode(secret)) && !logText.contains(Base64.encode(secret)))
        #expect(!logText.contains(admin))
        #expect(!logText.contains("eyJhbGciOiJFUzI1NiIs"), "an EAR appears in the log")
    }
}
