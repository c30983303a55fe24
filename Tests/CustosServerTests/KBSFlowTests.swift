import CustosAudit
import CustosCrypto
import CustosKBS
import CustosServer
import CustosStore
import CustosTDX
import CustosTestSupport
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Testing

/// A running service assembled as `custos serve` assembles it (data directory, audit log, token keys, the repo's
/// Policies/), with the TDX test hierarchy as its root (`--tdx-root`) and its collateral in memory.
struct KBSFixture {
    let directory: URL
    let parts: CustosService.Parts
    let app: any ApplicationProtocol
    let adminToken: String
    let hierarchy: TDXTestHierarchy

    static let hierarchy = Result { try TDXTestHierarchy() }

    /// The generated quotes' measurements, as the default tenant's reference values.
    static let mrTD = [UInt8](repeating: 0x01, count: 48)
    static let rtmr1 = [UInt8](repeating: 0x11, count: 48)
    static let rtmr2 = [UInt8](repeating: 0x12, count: 48)

    /// A quote spec whose collateral is valid now.
    static func spec(version: UInt16 = 4) -> TDXQuoteSpec {
        var spec = TDXQuoteSpec()
        spec.version = version
        let now = Date()
        spec.issueDate = RFC3339Seconds.format(now.addingTimeInterval(-86_400))
        spec.nextUpdate = RFC3339Seconds.format(now.addingTimeInterval(30 * 86_400))
        return spec
    }

    /// - Parameter inMemoryCollateral: replace the configured collateral source by the hierarchy's collateral in memory
    ///   (false keeps what `configure` set up, e.g. a PCCS).
    static func make(
        extraPolicies: [(String, String)] = [], inMemoryCollateral: Bool = true, configure: (inout ServerConfiguration) -> Void = { _ in }
    ) async throws -> KBSFixture {
        let hierarchy = try Self.hierarchy.get()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("custos-kbs-\(UUID().uuidString)")
        let policies = directory.appendingPathComponent("Policies")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: TestData.packageRoot.appendingPathComponent("Policies"), to: policies)
        for (name, text) in extraPolicies { try Data(text.utf8).write(to: policies.appendingPathComponent(name)) }
        let root = directory.appendingPathComponent("tdx-root.pem")
        try Data(hierarchy.root.pemRepresentation.utf8).write(to: root)
        var configuration = ServerConfiguration()
        configuration.port = 0
        configuration.dataDirectory = directory.appendingPathComponent("var").path
        configuration.policiesDirectory = policies.path
        configuration.tdxRootOverride = root.path
        configure(&configuration)
        var parts = try await CustosService.assemble(configuration: configuration, logger: Logger(label: "test"))
        // Collateral for every quote of the hierarchy with the default platform (FMSPC, TCB levels).
        var platforms = [try hierarchy.make(spec()).collateral]
        var outOfDate = spec()
        outOfDate.fmspc = [0x00, 0xa0, 0x6f, 0x00, 0x00, 0x01]
        outOfDate.tcbLevels = [
            TDXQuoteSpec.level(
                sgx: [4, 4, 2, 2, 4, 1, 0, 5], pcesvn: 13, tdx: [5, 0, 3], status: "OutOfDate", advisories: ["INTEL-SA-00837"])
        ]
        platforms.append(try hierarchy.make(outOfDate).collateral)
        if inMemoryCollateral { parts.collateral = InMemoryCollateral(platforms) }
        let tokenFile = URL(fileURLWithPath: configuration.dataDirectory).appendingPathComponent(Bootstrap.tokenFileName)
        let token = try String(contentsOf: tokenFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        return KBSFixture(
            directory: directory, parts: parts, app: CustosService.makeApplication(parts), adminToken: token, hierarchy: hierarchy)
    }

    static let outOfDateFMSPC: [UInt8] = [0x00, 0xa0, 0x6f, 0x00, 0x00, 0x01]

    func cleanUp() { try? FileManager.default.removeItem(at: directory) }

    var admin: HTTPFields { [.authorization: "Bearer \(adminToken)"] }

    /// Reference values of the default tenant that make the generated quotes affirming, and a secret.
    func provision(_ client: some TestClientProtocol, tenant: String = "default", secret: [UInt8]) async throws {
        let sets: [(String, [UInt8])] = [("mr_td", Self.mrTD), ("rtmr_1", Self.rtmr1), ("rtmr_2", Self.rtmr2)]
        for (name, value) in sets {
            try await client.execute(
                uri: "/v1/reference-values/\(tenant)/\(name)", method: .put, headers: admin,
                body: ByteBuffer(bytes: CanonicalJSON.encode(["values": [.string(Hex.encode(value))]]))
            ) { #expect($0.status == .ok, "PUT \(name): \($0.status)") }
        }
        try await client.execute(uri: "/v1/secrets/\(tenant)/key/disk", method: .put, headers: admin, body: ByteBuffer(bytes: secret)) {
            #expect($0.status == .created)
        }
    }
}

enum RFC3339Seconds {
    static func format(_ date: Date) -> String { Date.ISO8601FormatStyle().format(date) }
}

/// A guest (attestation-agent's side of KBS protocol 0.4.0) with a TEE key and quotes from the test hierarchy.
struct TestGuest {
    let key: JWEDecryptionKey
    let hierarchy: TDXTestHierarchy
    var spec: TDXQuoteSpec
    var initData: KBSInitData? = nil
    /// `tee-evidence.additional_evidence` (bound into REPORTDATA).
    var additionalEvidence = ""

    static func json(_ response: TestResponse) -> JSONValue { (try? JSONValue.parse(Array(buffer: response.body))) ?? .null }

    static func cookie(_ response: TestResponse) -> String? {
        response.headers[.setCookie]?.split(separator: ";").first.map(String.init)
    }

    /// `/auth`: the session cookie and the nonce.
    func auth(_ client: some TestClientProtocol, tee: String = "tdx") async throws -> (cookie: String, nonce: String)? {
        var result: (String, String)? = nil
        let request: JSONValue = ["version": "0.4.0", "tee": .string(tee), "extra-params": .object([:])]
        try await client.execute(uri: "/kbs/v0/auth", method: .post, body: ByteBuffer(bytes: CanonicalJSON.encode(request))) { response in
            if response.status == .ok, let cookie = Self.cookie(response), let nonce = Self.json(response)["nonce"]?.stringValue {
                result = (cookie, nonce)
            }
        }
        return result
    }

    /// The `/attest` body for `nonce`, with a quote bound to it (or to `bindTo` instead).
    func attestation(nonce: String, bindTo: String? = nil) throws -> JSONValue {
        let runtime = KBSRuntimeData(nonce: nonce, teePubkey: key.publicJWK)
        var spec = self.spec
        spec.reportData = KBSBinding.reportData(
            nonce: bindTo ?? nonce, teePubkey: runtime.teePubkeyJSON, additionalEvidence: additionalEvidence)
        let quote = try hierarchy.make(spec).quote
        let attestation = KBSAttestation(
            initData: initData, runtimeData: runtime,
            teeEvidence: KBSTEEEvidence(
                primaryEvidence: TDXPrimaryEvidence(quote: quote, ccEventlog: nil).jsonValue, additionalEvidence: additionalEvidence))
        return attestation.jsonValue
    }

    /// `/attest` with the cookie: status and body.
    func attest(_ client: some TestClientProtocol, cookie: String, body: JSONValue) async throws -> (HTTPResponse.Status, JSONValue) {
        var result: (HTTPResponse.Status, JSONValue) = (.internalServerError, .null)
        try await client.execute(
            uri: "/kbs/v0/attest", method: .post, headers: [.cookie: cookie], body: ByteBuffer(bytes: CanonicalJSON.encode(body))
        ) { result = ($0.status, Self.json($0)) }
        return result
    }

    /// auth → attest; the cookie and token, or nil with the failing status.
    func handshake(_ client: some TestClientProtocol) async throws -> (cookie: String, token: String)? {
        guard let (cookie, nonce) = try await auth(client) else { return nil }
        let (status, body) = try await attest(client, cookie: cookie, body: try attestation(nonce: nonce))
        guard status == .ok, let token = body["token"]?.stringValue else {
            Issue.record("attest failed: \(status) \(body)")
            return nil
        }
        return (cookie, token)
    }

    func resource(_ client: some TestClientProtocol, path: String, headers: HTTPFields) async throws -> (HTTPResponse.Status, [UInt8]) {
        var result: (HTTPResponse.Status, [UInt8]) = (.internalServerError, [])
        try await client.execute(uri: "/kbs/v0/resource/\(path)", method: .get, headers: headers) {
            result = ($0.status, Array(buffer: $0.body))
        }
        return result
    }

    var privatePEM: String {
        get throws {
            switch key {
            case .ec(let key): try key.pkcs8PEM()
            case .rsa(let key): try key.pkcs8PEM()
            }
        }
    }
}

@Suite(.serialized) struct KBSFlowTests {
    static let secret = Array("disk passphrase: correct horse battery staple".utf8)

    static func keys() throws -> [(String, JWEDecryptionKey)] {
        [
            ("P-256", .ec(try ECPrivateKey(generating: .p256))), ("P-384", .ec(try ECPrivateKey(generating: .p384))),
            ("P-521", .ec(try ECPrivateKey(generating: .p521))), ("RSA-OAEP-256", .rsa(try RSAPrivateKey(generatingBits: 2048))),
        ]
    }

    /// auth → attest → resource for every key type and quote version, by cookie and by Bearer token; the JWE opens
    /// to the stored secret with our JOSE and with jwcrypto.
    @Test(.enabled(if: JOSEPeer.shouldRun, Comment(rawValue: JOSEPeer.skipReason)))
    func fullFlowReleasesTheSecretToTheTEEKey() async throws {
        let fixture = try await KBSFixture.make()
        defer { fixture.cleanUp() }
        let peerRequests = try await fixture.app.test(.live) { client in
            var peerRequests: [JSONValue] = []
            try await fixture.provision(client, secret: Self.secret)
            for (name, key) in try Self.keys() {
                for version: UInt16 in [4, 5] {
                    let guest = TestGuest(key: key, hierarchy: fixture.hierarchy, spec: KBSFixture.spec(version: version))
                    guard let (cookie, token) = try await guest.handshake(client) else {
                        Issue.record("\(name) v\(version): handshake failed")
                        continue
                    }
                    for headers: HTTPFields in [[.cookie: cookie], [.authorization: "Bearer \(token)"]] {
                        let (status, body) = try await guest.resource(client, path: "default/key/disk", headers: headers)
                        #expect(status == .ok, "\(name) v\(version) \(headers): \(status) \(String(decoding: body, as: UTF8.self))")
                        guard status == .ok else { continue }
                        let opened = try KBSResourceRelease.decrypt(responseBody: body, with: key)
                        #expect(opened.unsafeCopy() == Self.secret, "\(name) v\(version)")
                        peerRequests.append([
                            "op": "jwe_decrypt", "pem": .string(try guest.privatePEM),
                            "jwe": .string(String(decoding: body, as: UTF8.self)),
                        ])
                    }
                }
            }
            return peerRequests
        }
        #expect(peerRequests.count == 16)
        for result in try JOSEPeer.call(peerRequests) {
            #expect(try Base64URL.decode(JOSEPeer.string(result, "plaintext_b64u")) == Self.secret)
        }
    }

    /// The EAR verifies against `/.well-known/jwks.json` with PyJWT (signature, exp, iss, aud), and carries the TEE
    /// key at Trustee's path, the tenant, the policy id@sha256 and the audit index.
    @Test(.enabled(if: JOSEPeer.shouldRun, Comment(rawValue: JOSEPeer.skipReason)))
    func tokenVerifiesWithAnIndependentJWTLibrary() async throws {
        let fixture = try await KBSFixture.make()
        defer { fixture.cleanUp() }
        let key = JWEDecryptionKey.ec(try ECPrivateKey(generating: .p256))
        let (token, jwks) = try await fixture.app.test(.live) { client in
            try await fixture.provision(client, secret: Self.secret)
            let token = try #require(try await TestGuest(key: key, hierarchy: fixture.hierarchy, spec: KBSFixture.spec()).handshake(client))
                .token
            let jwks = try await client.execute(uri: "/.well-known/jwks.json", method: .get) { TestGuest.json($0) }
            return (token, jwks)
        }
        let issuer = fixture.parts.configuration.effectiveIssuer
        let results = try JOSEPeer.call([
            ["op": "jwt_verify", "token": .string(token), "jwks": jwks, "issuer": .string(issuer), "audience": .string(issuer)]
        ])
        guard case .object(let claims)? = results.first?["claims"] else {
            Issue.record("PyJWT refused the token: \(results)")
            return
        }
        let cpu = claims["submods"]?["cpu0"]
        #expect(cpu?["ear.status"] == "affirming")
        #expect(cpu?["ear.veraison.annotated-evidence"]?["runtime_data_claims"]?["tee-pubkey"] == key.publicJWK.jsonValue)
        #expect(cpu?["ear.appraisal-policy-id"]?.stringValue?.hasPrefix("tdx-default@sha256:") == true)
        #expect(claims["attest.tenant"] == "default")
        #expect(claims["attest.audit"]?["log"]?.stringValue == fixture.parts.audit?.log.origin)
        guard case .integer(let index)? = claims["attest.audit"]?["index"] else {
            Issue.record("no audit index in \(claims)")
            return
        }
        // The index names the appraisal's entry in the log.
        let page = try #require(try fixture.parts.audit?.log.reader.entries(limit: 1, cursor: UInt64(index)))
        let record = try #require(page.records.first)
        #expect(record.seq == UInt64(index))
        #expect(record.entry["type"] == "attestation.affirmed")
        #expect((claims["exp"]?.integerValue ?? 0) - (claims["iat"]?.integerValue ?? 0) == 300)
    }

    /// The session cookie is found among other cookies with optional whitespace (RFC 6265 §4.2.1);
    /// a value of the wrong length or with a non-hex character is no session.
    @Test func sessionCookieIsFoundAmongOtherCookies() async throws {
        let fixture = try await KBSFixture.make()
        defer { fixture.cleanUp() }
        try await fixture.app.test(.live) { client in
            try await fixture.provision(client, secret: Self.secret)
            let guest = TestGuest(key: .ec(try ECPrivateKey(generating: .p256)), hierarchy: fixture.hierarchy, spec: KBSFixture.spec())
            let (cookie, nonce) = try #require(try await guest.auth(client))
            let id = try #require(cookie.split(separator: "=", maxSplits: 1).last.map(String.init))
            #expect(id.count == 32)
            for malformed in ["kbs-session-id=\(id.dropLast())", "kbs-session-id=\(id.dropLast())g", "kbs-session-idx=\(id)", "\(id)"] {
                let (status, body) = try await guest.attest(client, cookie: malformed, body: try guest.attestation(nonce: nonce))
                #expect(status == .unauthorized, "\(malformed): \(status) \(body)")
            }
            let crowded = "theme=dark;  kbs-session-id=\(id)\t; lang=en"
            let (status, body) = try await guest.attest(client, cookie: crowded, body: try guest.attestation(nonce: nonce))
            #expect(status == .ok, "\(body)")
            #expect(body["token"]?.stringValue != nil)
        }
    }
}
