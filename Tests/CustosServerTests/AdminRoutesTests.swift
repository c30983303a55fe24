import CustosAudit
import CustosCrypto
import CustosServer
import CustosStore
import Foundation
import GRDB
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
        let log: AuditLog
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
        let log = try await AuditLog.open(pool: store.pool, signingKey: try Ed25519PrivateKey(), origin: "custos.test/admin")
        parts.audit = AuditRecorder(log: log, usesTestAnchors: false, logger: Logger(label: "test"))
        return Fixture(directory: directory, store: store, log: log, adminToken: token, app: CustosService.makeApplication(parts))
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

    /// A start that cannot write the token file (one is left from an earlier database) goes on without one and leaves no
    /// unreadable admin behind: once the file is gone the next start writes a token that works. With every admin
    /// revoked, a start writes a new one.
    @Test func bootstrapRecoversFromAnUnwritableTokenFileAndRevokedAdmins() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("custos-bootstrap-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try SQLiteStore.open(dataDirectory: directory, environment: [:])
        let tokenFile = directory.appendingPathComponent(Bootstrap.tokenFileName)
        try Data("stale\n".utf8).write(to: tokenFile)
        let blocked = try await Bootstrap.prepare(store: store, dataDirectory: directory, logger: Logger(label: "test"))
        #expect(blocked.adminTokenFile == nil)
        #expect(try String(contentsOf: tokenFile, encoding: .utf8) == "stale\n")
        try FileManager.default.removeItem(at: tokenFile)
        let second = try await Bootstrap.prepare(store: store, dataDirectory: directory, logger: Logger(label: "test"))
        #expect(second.adminTokenFile == tokenFile.path)
        let token = try String(contentsOf: tokenFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        guard case .valid(let admin) = try await store.lookupCredential(token: token, now: Date()) else {
            Issue.record("the new bootstrap token does not look up")
            return
        }
        _ = try await store.revokeCredential(id: admin.id, now: Date())
        try FileManager.default.removeItem(at: tokenFile)
        let third = try await Bootstrap.prepare(store: store, dataDirectory: directory, logger: Logger(label: "test"))
        #expect(third.adminTokenFile == tokenFile.path)
        #expect(try await Bootstrap.prepare(store: store, dataDirectory: directory, logger: Logger(label: "test")) == Bootstrap.Outcome())
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

    /// The parsed entries of `type` in the log.
    static func entries(_ log: AuditLog, type: String) throws -> [JSONValue] {
        try log.entries(type: type, limit: 1000).records.map(\.entry)
    }

    @Test func serviceWideTokensAreRevocableAndTokenRequestsChecked() async throws {
        let fixture = try await Self.fixture()
        defer { try? FileManager.default.removeItem(at: fixture.directory) }
        let admin = Self.auth(fixture.adminToken)
        try await fixture.app.test(.live) { client in
            func issue(_ role: String) async throws -> (id: String, token: String) {
                let document = try await client.execute(
                    uri: "/v1/tenants/default/tokens", method: .post, headers: admin, body: Self.body(["role": .string(role)])
                ) { response in
                    #expect(response.status == .created)
                    return Self.json(response)
                }
                return (try #require(document["id"]?.stringValue), try #require(document["token"]?.stringValue))
            }
            let auditor = try await issue("auditor")
            let tenantAdmin = try await issue("tenant-admin")
            try await client.execute(uri: "/v1/audit/entries", method: .get, headers: Self.auth(auditor.token)) {
                #expect($0.status == .ok)
            }
            // The tenant's route lists the tenant's credentials only; a tenant admin may not use the service-wide one.
            try await client.execute(uri: "/v1/tenants/default/tokens/\(auditor.id)", method: .delete, headers: admin) {
                #expect($0.status == .notFound)
            }
            try await client.execute(uri: "/v1/tokens/\(auditor.id)", method: .delete, headers: Self.auth(tenantAdmin.token)) {
                #expect($0.status == .forbidden)
            }
            try await client.execute(uri: "/v1/tokens/\(auditor.id)", method: .delete, headers: admin) { #expect($0.status == .noContent) }
            try await client.execute(uri: "/v1/audit/entries", method: .get, headers: Self.auth(auditor.token)) {
                #expect($0.status == .unauthorized)
            }
            try await client.execute(uri: "/v1/tokens/crd_000000000000000000000000", method: .delete, headers: admin) {
                #expect($0.status == .notFound)
            }
            // A service-wide role still needs the tenant in the path to exist; an expiry in the past is refused.
            try await client.execute(
                uri: "/v1/tenants/no-such/tokens", method: .post, headers: admin, body: Self.body(["role": "auditor"])
            ) { #expect($0.status == .notFound) }
            try await client.execute(
                uri: "/v1/tenants/default/tokens", method: .post, headers: admin,
                body: Self.body(["role": "tenant-reader", "expires_at": "2020-01-01T00:00:00Z"])
            ) { #expect($0.status == .badRequest) }
            // Each issue and revocation is an audit entry naming the credential and never its token.
            let changes = try Self.entries(fixture.log, type: "config.changed")
            let issuedIDs = changes.filter { $0["object"]?["change"] == "credential.issued" }.compactMap { $0["object"]?["credential"] }
            #expect(Set(issuedIDs) == [.string(auditor.id), .string(tenantAdmin.id)])
            let revoked = changes.filter { $0["object"]?["change"] == "credential.revoked" }
            #expect(revoked.map { $0["object"]?["credential"] } == [.string(auditor.id)])
            #expect(revoked.first?["actor"]?["role"] == "service-admin")
            for record in try fixture.log.entries(limit: 1000).records {
                let text = String(decoding: record.body, as: UTF8.self)
                #expect(!text.contains(auditor.token) && !text.contains(tenantAdmin.token) && !text.contains(fixture.adminToken))
            }
        }
    }

    @Test func secretAndReferenceValueChangesAreAuditedWithTheChange() async throws {
        let fixture = try await Self.fixture()
        defer { try? FileManager.default.removeItem(at: fixture.directory) }
        let admin = Self.auth(fixture.adminToken)
        guard case .valid(let credential) = try await fixture.store.lookupCredential(token: fixture.adminToken, now: Date()) else {
            Issue.record("the bootstrap token does not look up")
            return
        }
        let secretText = "value-that-must-never-be-logged"
        try await fixture.app.test(.live) { client in
            try await client.execute(
                uri: "/v1/secrets/default/disk/key", method: .put, headers: admin, body: ByteBuffer(string: secretText)
            ) { #expect($0.status == .created) }
            try await client.execute(
                uri: "/v1/secrets/default/disk/key:rotate", method: .post, headers: admin, body: ByteBuffer(string: secretText + "2")
            ) { #expect($0.status == .ok) }
            try await client.execute(uri: "/v1/secrets/default/disk/key/versions/1", method: .delete, headers: admin) {
                #expect($0.status == .noContent)
            }
            // Refused changes make no entry.
            try await client.execute(uri: "/v1/secrets/default/disk/key/versions/1", method: .delete, headers: admin) {
                #expect($0.status == .notFound)
            }
            try await client.execute(
                uri: "/v1/secrets/default/absent:rotate", method: .post, headers: admin, body: ByteBuffer(string: "x")
            ) { #expect($0.status == .notFound) }
            try await client.execute(
                uri: "/v1/reference-values/default/mr_td", method: .put, headers: admin, body: Self.body(["values": ["aa", "bb"]])
            ) { #expect($0.status == .ok) }
            var stale = admin
            stale[.ifMatch] = "\"9\""
            try await client.execute(
                uri: "/v1/reference-values/default/mr_td", method: .put, headers: stale, body: Self.body(["values": ["cc"]])
            ) { #expect($0.status == .preconditionFailed) }

            let created = try Self.entries(fixture.log, type: "secret.created")
            #expect(created.count == 1)
            #expect(created.first?["object"]?["secret"] == "default/disk/key" && created.first?["object"]?["version"] == 1)
            #expect(created.first?["actor"]?["id"] == .string(credential.id) && created.first?["tenant"] == "default")
            let rotated = try Self.entries(fixture.log, type: "secret.rotated")
            #expect(rotated.count == 1 && rotated.first?["object"]?["version"] == 2)
            let deleted = try Self.entries(fixture.log, type: "secret.deleted")
            #expect(deleted.count == 1 && deleted.first?["object"]?["version"] == 1)
            let changed = try Self.entries(fixture.log, type: "refvalue.changed")
            #expect(changed.count == 1)
            #expect(changed.first?["object"]?["reference_values"] == "mr_td" && changed.first?["object"]?["revision"] == 1)
            let digest = Hex.encode(Digest.sha256(Array(#"["aa","bb"]"#.utf8)))
            #expect(changed.first?["object"]?["values_sha256"] == .string(digest))
            for record in try fixture.log.entries(limit: 1000).records {
                #expect(!String(decoding: record.body, as: UTF8.self).contains(secretText))
            }

            // When the entry cannot be appended, the change is not made: one transaction.
            try await fixture.store.pool.write { db in
                try db.execute(sql: "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_entries BEGIN SELECT RAISE(ABORT, 'refused'); END")
            }
            try await client.execute(uri: "/v1/secrets/default/disk/other", method: .put, headers: admin, body: ByteBuffer(string: "x")) {
                #expect($0.status == .internalServerError)
            }
            await #expect(throws: StoreError.self) { try await fixture.store.listSecretVersions(tenantId: "default", path: "disk/other") }
            try await client.execute(
                uri: "/v1/secrets/default/disk/key:rotate", method: .post, headers: admin, body: ByteBuffer(string: "y")
            ) { #expect($0.status == .internalServerError) }
            #expect(try await fixture.store.listSecretVersions(tenantId: "default", path: "disk/key").map(\.version) == [2])
            try await client.execute(
                uri: "/v1/reference-values/default/mr_td", method: .put, headers: admin, body: Self.body(["values": ["dd"]])
            ) { #expect($0.status == .internalServerError) }
            #expect(try await fixture.store.referenceValues(tenantId: "default", name: "mr_td").values == ["aa", "bb"])
        }
    }

    /// A tenant, a credential issued and a revocation commit with their `config.changed` entry: when the entry cannot
    /// be appended, nothing changed (before, the change was made first and the entry written after it).
    @Test func tenantAndCredentialChangesCommitWithTheirEntry() async throws {
        let fixture = try await Self.fixture()
        defer { try? FileManager.default.removeItem(at: fixture.directory) }
        let admin = Self.auth(fixture.adminToken)
        try await fixture.app.test(.live) { client in
            let reader = try await client.execute(
                uri: "/v1/tenants/default/tokens", method: .post, headers: admin, body: Self.body(["role": "tenant-reader"])
            ) { response in
                #expect(response.status == .created)
                return Self.json(response)["id"]?.stringValue ?? ""
            }
            let before = try Self.entries(fixture.log, type: "config.changed").count
            try await fixture.store.pool.write { db in
                try db.execute(sql: "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_entries BEGIN SELECT RAISE(ABORT, 'refused'); END")
            }
            try await client.execute(uri: "/v1/tenants", method: .post, headers: admin, body: Self.body(["id": "unlogged"])) {
                #expect($0.status == .internalServerError)
            }
            await #expect(throws: StoreError.self) { try await fixture.store.tenant(id: "unlogged") }
            let credentials = try await fixture.store.listCredentials(tenantId: "default")
            try await client.execute(
                uri: "/v1/tenants/default/tokens", method: .post, headers: admin, body: Self.body(["role": "tenant-admin"])
            ) { #expect($0.status == .internalServerError) }
            #expect(try await fixture.store.listCredentials(tenantId: "default") == credentials, "no credential was issued")
            try await client.execute(uri: "/v1/tenants/default/tokens/\(reader)", method: .delete, headers: admin) {
                #expect($0.status == .internalServerError)
            }
            #expect(try await fixture.store.listCredentials(tenantId: "default").first { $0.id == reader }?.revokedAt == nil)
            // With the log writable again: the revocation takes effect once and is logged once.
            try await fixture.store.pool.write { db in try db.execute(sql: "DROP TRIGGER refuse_audit") }
            for _ in 0..<2 {
                try await client.execute(uri: "/v1/tenants/default/tokens/\(reader)", method: .delete, headers: admin) {
                    #expect($0.status == .noContent)
                }
            }
            let changes = try Self.entries(fixture.log, type: "config.changed")
            #expect(changes.count == before + 1)
            #expect(
                changes.filter { $0["object"]?["change"] == "credential.revoked" }.map { $0["object"]?["credential"] } == [.string(reader)])
        }
    }

    @Test func conditionalReferenceValueWritesFollowRFC9110() async throws {
        let fixture = try await Self.fixture()
        defer { try? FileManager.default.removeItem(at: fixture.directory) }
        let uri = "/v1/reference-values/default/conditional"
        try await fixture.app.test(.live) { client in
            func put(
                _ conditions: HTTPFields, _ expected: HTTPResponse.Status, sourceLocation: SourceLocation = #_sourceLocation
            ) async throws {
                var headers = Self.auth(fixture.adminToken)
                headers.append(contentsOf: conditions)
                try await client.execute(uri: uri, method: .put, headers: headers, body: Self.body(["values": ["v"]])) {
                    #expect($0.status == expected, "\(conditions)", sourceLocation: sourceLocation)
                }
            }
            // `If-Match: *` needs the set to exist; `If-None-Match: *` needs it not to.
            try await put([.ifMatch: "*"], .preconditionFailed)
            try await put([.ifNoneMatch: "*"], .ok)
            try await put([.ifNoneMatch: "*"], .preconditionFailed)
            try await put([.ifMatch: "*"], .ok)
            // Now at revision 2. Entity tags compare as strings, strongly for If-Match: "02", "+2" and W/"2" do not match.
            for tag in [#""02""#, #""+2""#, #"W/"2""#, #""1""#] { try await put([.ifMatch: tag], .preconditionFailed) }
            try await put([.ifMatch: #""7", "2""#], .ok)
            // At revision 3: If-None-Match refuses a current tag (weakly compared) and allows another.
            try await put([.ifNoneMatch: #"W/"3""#], .preconditionFailed)
            try await put([.ifNoneMatch: #""1", "2""#], .ok)
            // Malformed values, and both headers together, are 400s.
            for bad: HTTPFields in [
                [.ifMatch: "3"], [.ifMatch: #""3"#], [.ifMatch: #""3" "4""#], [.ifNoneMatch: "abc"], [.ifMatch: "*", .ifNoneMatch: "*"],
            ] {
                try await put(bad, .badRequest)
            }
            #expect(try await fixture.store.referenceValues(tenantId: "default", name: "conditional").revision == 4)
        }
    }

    @Test func aCredentialStoreThatCannotAnswerIsUnavailableNotUnauthorized() async throws {
        let fixture = try await Self.fixture()
        defer { try? FileManager.default.removeItem(at: fixture.directory) }
        try await fixture.app.test(.live) { client in
            try await client.execute(
                uri: "/v1/tenants", method: .post, headers: Self.auth(fixture.adminToken), body: Self.body(["id": "t1"])
            ) {
                #expect($0.status == .created)
            }
            try await fixture.store.pool.write { db in try db.execute(sql: "ALTER TABLE credential RENAME TO credential_gone") }
            try await client.execute(
                uri: "/v1/tenants", method: .post, headers: Self.auth(fixture.adminToken), body: Self.body(["id": "t2"])
            ) {
                #expect($0.status == .serviceUnavailable)
                #expect($0.headers[.retryAfter] != nil)
            }
        }
    }
}
