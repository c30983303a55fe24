import CustosCrypto
import CustosServer
import CustosStore
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Testing

/// Tenants, tokens, secrets (admin side) and reference values over real HTTP against a store in a fresh data
/// directory, bootstrapped as `custos serve` does on first start.
@Suite struct AdminRoutesTests {
    struct Fixture {
        let directory: URL
        let store: SQLiteStore
        let adminToken: String
        let app: any ApplicationProtocol
    }

    static func fixture() async throws -> Fixture {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("custos-server-\(UUID().uuidString)")
        let store = try SQLiteStore.open(dataDirectory: directory, environment: [:])
        let outcome = try await Bootstrap.prepare(store: store, dataDirectory: directory, logger: Logger(label: "test"))
        let tokenFile = try #require(outcome.adminTokenFile)
        let token = try String(contentsOfFile: tokenFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        var configuration = ServerConfiguration()
        configuration.port = 0
        var parts = CustosService.Parts(configuration: configuration, logger: Logger(label: "test"))
        parts.store = store
        return Fixture(directory: directory, store: store, adminToken: token, app: CustosService.makeApplication(parts))
    }

    static func auth(_ token: String) -> HTTPFields { [.authorization: "Bearer \(token)"] }

    /// The response body as JSON; `.null` when it is not JSON (so an expectation on it fails, naming the value).
    static func json(_ response: TestResponse) -> JSONValue { (try? JSONValue.parse(Array(buffer: response.body))) ?? .null }

    static func body(_ value: JSONValue) -> ByteBuffer { ByteBuffer(bytes: CanonicalJSON.encode(value)) }

    @Test func bootstrapWritesTheAdminTokenOnceWithMode0600() async throws {
        let fixture = try await Self.fixture()
        defer { try? FileManager.default.removeItem(at: fixture.directory) }
        let path = fixture.directory.appendingPathComponent(Bootstrap.tokenFileName).path
        let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber
        #expect(mode?.intValue == 0o600)
        #expect(fixture.adminToken.hasPrefix("custos_"))
        // A second start neither writes a new token nor touches the file.
        let again = try await Bootstrap.prepare(store: fixture.store, dataDirectory: fixture.directory, logger: Logger(label: "t"))
        #expect(again == Bootstrap.Outcome())
        let lookup = try await fixture.store.lookupCredential(token: fixture.adminToken, now: Date())
        guard case .valid(let credential) = lookup else {
            Issue.record("the bootstrap token does not authenticate")
            return
        }
        #expect(credential.role == .serviceAdmin)
    }

    @Test func tenantsTokensAndScoping() async throws {
        let fixture = try await Self.fixture()
        defer { try? FileManager.default.removeItem(at: fixture.directory) }
        try await fixture.app.test(.live) { client in
            // No credential, a malformed one, a wrong one: 401 with a problem body.
            for headers: HTTPFields in [[:], [.authorization: "Basic abc"], Self.auth("custos_AAAA")] {
                try await client.execute(uri: "/v1/tenants", method: .post, headers: headers, body: Self.body(["id": "a"])) {
                    #expect($0.status == .unauthorized)
                    #expect($0.headers[.contentType] == "application/problem+json")
                    #expect(Self.json($0)["type"] == "urn:custos:problem:unauthorized")
                }
            }
            for tenant in ["tenant-a", "tenant-b"] {
                try await client.execute(
                    uri: "/v1/tenants", method: .post, headers: Self.auth(fixture.adminToken), body: Self.body(["id": .string(tenant)])
                ) { #expect($0.status == .created) }
            }
            try await client.execute(
                uri: "/v1/tenants", method: .post, headers: Self.auth(fixture.adminToken), body: Self.body(["id": "tenant-a"])
            ) { #expect($0.status == .conflict) }
            var tokens: [String: String] = [:]
            for (tenant, role) in [("tenant-a", "tenant-admin"), ("tenant-a", "tenant-reader"), ("tenant-b", "tenant-admin")] {
                try await client.execute(
                    uri: "/v1/tenants/\(tenant)/tokens", method: .post, headers: Self.auth(fixture.adminToken),
                    body: Self.body(["role": .string(role)])
                ) { response in
                    #expect(response.status == .created)
                    tokens["\(tenant)/\(role)"] = Self.json(response)["token"]?.stringValue
                }
            }
            let adminA = try #require(tokens["tenant-a/tenant-admin"])
            let readerA = try #require(tokens["tenant-a/tenant-reader"])
            // A tenant admin cannot mint service-wide roles, nor tokens of another tenant (404: existence hidden).
            try await client.execute(
                uri: "/v1/tenants/tenant-a/tokens", method: .post, headers: Self.auth(adminA), body: Self.body(["role": "auditor"])
            ) { #expect($0.status == .forbidden) }
            try await client.execute(
                uri: "/v1/tenants/tenant-b/tokens", method: .post, headers: Self.auth(adminA),
                body: Self.body(["role": "tenant-reader"])
            ) { #expect($0.status == .notFound) }
            // A reader cannot write; a tenant admin cannot create tenants.
            try await client.execute(
                uri: "/v1/secrets/tenant-a/disk/key", method: .put, headers: Self.auth(readerA), body: ByteBuffer(string: "x")
            ) { #expect($0.status == .forbidden) }
            try await client.execute(uri: "/v1/tenants", method: .post, headers: Self.auth(adminA), body: Self.body(["id": "c"])) {
                #expect($0.status == .forbidden)
            }
            // Bad bodies: unknown member, a bad role, malformed JSON, not an object.
            for bad in [#"{"role":"tenant-reader","extra":1}"#, #"{"role":"root"}"#, #"{"role":"#, "[]"] {
                try await client.execute(
                    uri: "/v1/tenants/tenant-a/tokens", method: .post, headers: Self.auth(adminA), body: ByteBuffer(string: bad)
                ) { #expect($0.status == .badRequest) }
            }
        }
    }

    @Test func secretVersionsAndLimits() async throws {
        let fixture = try await Self.fixture()
        defer { try? FileManager.default.removeItem(at: fixture.directory) }
        let admin = Self.auth(fixture.adminToken)
        try await fixture.app.test(.live) { client in
            try await client.execute(
                uri: "/v1/secrets/default/disk/root-key", method: .put, headers: admin, body: ByteBuffer(string: "one")
            ) {
                #expect($0.status == .created)
                #expect(Self.json($0)["version"] == 1)
            }
            try await client.execute(
                uri: "/v1/secrets/default/disk/root-key:rotate", method: .post, headers: admin, body: ByteBuffer(string: "two")
            ) { response in
                #expect(response.status == .ok)
                #expect(Self.json(response).value(atPath: "new_version.version") == 2)
            }
            try await client.execute(uri: "/v1/secrets/default/disk/root-key/versions/1", method: .delete, headers: admin) {
                #expect($0.status == .noContent)
            }
            try await client.execute(uri: "/v1/secrets/default/disk/root-key/versions/1", method: .delete, headers: admin) {
                #expect($0.status == .notFound)
            }
            let opened = try await fixture.store.openSecret(tenantId: "default", path: "disk/root-key", version: nil, now: Date())
            #expect(opened.version.version == 2)
            #expect(opened.value.unsafeCopy() == Array("two".utf8))
            // Over the 64 KiB secret limit: 413, and nothing stored.
            try await client.execute(
                uri: "/v1/secrets/default/big", method: .put, headers: admin,
                body: ByteBuffer(bytes: [UInt8](repeating: 7, count: (64 << 10) + 1))
            ) { #expect($0.status == .contentTooLarge) }
            await #expect(throws: StoreError.self) {
                try await fixture.store.listSecretVersions(tenantId: "default", path: "big")
            }
            // Empty values and bad paths are 400s.
            try await client.execute(uri: "/v1/secrets/default/empty", method: .put, headers: admin, body: ByteBuffer()) {
                #expect($0.status == .badRequest)
            }
            try await client.execute(uri: "/v1/secrets/default/a/../b", method: .put, headers: admin, body: ByteBuffer(string: "x")) {
                #expect($0.status == .badRequest || $0.status == .notFound)
            }
        }
    }

    @Test func referenceValuesWithIfMatch() async throws {
        let fixture = try await Self.fixture()
        defer { try? FileManager.default.removeItem(at: fixture.directory) }
        let admin = Self.auth(fixture.adminToken)
        let set: JSONValue = ["values": ["aa", "bb"], "provenance": ["source": "build 42"]]
        try await fixture.app.test(.live) { client in
            var etag = ""
            try await client.execute(uri: "/v1/reference-values/default/mr_td", method: .put, headers: admin, body: Self.body(set)) {
                #expect($0.status == .ok)
                etag = $0.headers[.eTag] ?? ""
            }
            #expect(!etag.isEmpty)
            var stale = admin
            stale[.ifMatch] = "\"999\""
            try await client.execute(uri: "/v1/reference-values/default/mr_td", method: .put, headers: stale, body: Self.body(set)) {
                #expect($0.status == .preconditionFailed)
            }
            var current = admin
            current[.ifMatch] = etag
            try await client.execute(
                uri: "/v1/reference-values/default/mr_td", method: .put, headers: current, body: Self.body(["values": ["cc"]])
            ) { #expect($0.status == .ok) }
            try await client.execute(uri: "/v1/reference-values/default/mr_td", method: .get, headers: admin) { response in
                #expect(response.status == .ok)
                #expect(Self.json(response)["values"] == ["cc"])
                #expect(response.headers[.eTag] != etag)
            }
            try await client.execute(uri: "/v1/reference-values/default/absent", method: .get, headers: admin) {
                #expect($0.status == .notFound)
            }
            try await client.execute(
                uri: "/v1/reference-values/default/mr_td", method: .put, headers: admin, body: Self.body(["values": "aa"])
            ) { #expect($0.status == .badRequest) }
        }
    }
}
