import CustosAudit
import CustosCrypto
import CustosPolicy
import CustosServer
import CustosStore
import CustosTestSupport
import Foundation
import GRDB
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

/// Appraisal queries and the policy routes through real HTTP.
@Suite(.serialized) struct QueryRoutesTests {
    static func attest(_ client: some TestClientProtocol, _ guest: TestGuest, workload: String) async throws -> JSONValue {
        let challenge = try await client.execute(uri: "/v1/challenges", method: .post) { TestGuest.json($0) }
        let id = try #require(challenge["challenge_id"]?.stringValue)
        let nonce = try #require(challenge["nonce"]?.stringValue)
        let body: JSONValue = [
            "challenge_id": .string(id), "attestation": try guest.attestation(nonce: nonce), "workload_id": .string(workload),
        ]
        return try await client.execute(uri: "/v1/attestations", method: .post, body: ByteBuffer(bytes: CanonicalJSON.encode(body))) {
            #expect($0.status == .ok)
            return TestGuest.json($0)
        }
    }

    static func token(_ client: some TestClientProtocol, _ fixture: KBSFixture, tenant: String, role: String) async throws -> HTTPFields {
        let body = ByteBuffer(bytes: CanonicalJSON.encode(["role": .string(role)]))
        let token = try await client.execute(uri: "/v1/tenants/\(tenant)/tokens", method: .post, headers: fixture.admin, body: body) {
            TestGuest.json($0)["token"]?.stringValue
        }
        return [.authorization: "Bearer \(try #require(token))"]
    }

    @Test func appraisalsAreListedPagedAndProvenInTheLog() async throws {
        let fixture = try await KBSFixture.make()
        defer { fixture.cleanUp() }
        try await fixture.app.test(.live) { client in
            try await fixture.provision(client, secret: Array("s".utf8))
            let key = JWEDecryptionKey.ec(try ECPrivateKey(generating: .p256))
            let good = TestGuest(key: key, hierarchy: fixture.hierarchy, spec: KBSFixture.spec())
            var badSpec = KBSFixture.spec()
            badSpec.rtmrs[2] = [UInt8](repeating: 0x42, count: 48)
            let bad = TestGuest(key: key, hierarchy: fixture.hierarchy, spec: badSpec)
            let first = try await Self.attest(client, good, workload: "web")
            _ = try await Self.attest(client, bad, workload: "web")
            _ = try await Self.attest(client, good, workload: "db")
            try await client.execute(
                uri: "/v1/tenants", method: .post, headers: fixture.admin, body: ByteBuffer(bytes: CanonicalJSON.encode(["id": "other"]))
            ) { #expect($0.status == .created) }
            let reader = try await Self.token(client, fixture, tenant: "default", role: "tenant-reader")
            let outsider = try await Self.token(client, fixture, tenant: "other", role: "tenant-reader")

            let all = try await client.execute(uri: "/v1/appraisals", method: .get, headers: reader) { TestGuest.json($0) }
            #expect(all["items"]?.arrayValue?.count == 3)
            let warnings = try await client.execute(uri: "/v1/appraisals?status=warning", method: .get, headers: reader) {
                TestGuest.json($0)
            }
            #expect(warnings["items"]?.arrayValue?.map { $0["workload_id"] } == ["web"])
            // Paging: one at a time, newest first, every appraisal exactly once.
            var seen: [String] = []
            var cursor: String? = nil
            repeat {
                let uri = "/v1/appraisals?workload=web&limit=1" + (cursor.map { "&cursor=\($0)" } ?? "")
                let page = try await client.execute(uri: uri, method: .get, headers: reader) { TestGuest.json($0) }
                seen += page["items"]?.arrayValue?.compactMap { $0["id"]?.stringValue } ?? []
                cursor = page["next_cursor"]?.stringValue
            } while cursor != nil && seen.count < 10
            #expect(seen.count == 2 && Set(seen).count == 2)
            // Another tenant's reader sees none of it.
            let foreign = try await client.execute(uri: "/v1/appraisals", method: .get, headers: outsider) { TestGuest.json($0) }
            #expect(foreign["items"]?.arrayValue?.isEmpty == true)
            let id = try #require(first["appraisal_id"]?.stringValue)
            try await client.execute(uri: "/v1/appraisals/\(id)", method: .get, headers: outsider) { #expect($0.status == .notFound) }

            // One appraisal: claims, trace, policy, and its audit entry proven against the log's root.
            let detail = try await client.execute(uri: "/v1/appraisals/\(id)", method: .get, headers: reader) { TestGuest.json($0) }
            #expect(detail["status"] == "affirming")
            #expect(detail["claims"]?["tdx"]?["quote"]?["body"]?["mr_td"] == .string(Hex.encode(KBSFixture.mrTD)))
            #expect(detail["trace"]?.arrayValue?.isEmpty == false)
            #expect(detail["policy"]?.stringValue?.hasPrefix("tdx-default@sha256:") == true)
            let audit = try #require(detail["audit"])
            guard case .integer(let index)? = audit["index"], case .integer(let size)? = audit["inclusion_proof"]?["tree_size"] else {
                Issue.record("no audit index or proof: \(detail)")
                return
            }
            #expect(audit["entry"]?["appraisal"]?["id"] == .string(id))
            let log = try #require(fixture.parts.audit?.log)
            let root = try log.reader.root(size: UInt64(size))
            let leaf = try Hex.decode(try #require(audit["leaf_hash"]?.stringValue))
            #expect(leaf == MerkleHash.leaf(CanonicalJSON.encode(try #require(audit["entry"]))))
            let path = try (audit["inclusion_proof"]?["hashes"]?.arrayValue ?? []).map { try Hex.decode($0.stringValue ?? "") }
            #expect(
                MerkleProof.verifyInclusion(index: UInt64(index), size: UInt64(size), leafHash: leaf, path: path, root: root) == .verified)

            let status = try await client.execute(uri: "/v1/workloads/db/status", method: .get, headers: reader) { TestGuest.json($0) }
            #expect(status["status"] == "affirming")
            try await client.execute(uri: "/v1/workloads/nothing/status", method: .get, headers: reader) { #expect($0.status == .notFound) }
            try await client.execute(uri: "/v1/appraisals?status=bogus", method: .get, headers: reader) {
                #expect($0.status == .badRequest)
            }
            // TEE and the end of the time range: all three are TDX appraisals made just now.
            let tdx = try await client.execute(uri: "/v1/appraisals?tee=tdx", method: .get, headers: reader) { TestGuest.json($0) }
            #expect(tdx["items"]?.arrayValue?.count == 3)
            let sevES = try await client.execute(uri: "/v1/appraisals?tee=sev-es", method: .get, headers: reader) { TestGuest.json($0) }
            #expect(sevES["items"]?.arrayValue?.isEmpty == true)
            let before = try await client.execute(uri: "/v1/appraisals?until=2020-01-01T00:00:00Z", method: .get, headers: reader) {
                TestGuest.json($0)
            }
            #expect(before["items"]?.arrayValue?.isEmpty == true)
            let untilNow = "/v1/appraisals?until=" + RFC3339.format(Date().addingTimeInterval(60), milliseconds: false)
            let upToNow = try await client.execute(uri: untilNow, method: .get, headers: reader) { TestGuest.json($0) }
            #expect(upToNow["items"]?.arrayValue?.count == 3)
            for bad in ["tee=snp", "until=yesterday"] {
                try await client.execute(uri: "/v1/appraisals?\(bad)", method: .get, headers: reader) { #expect($0.status == .badRequest) }
            }
            try await client.execute(uri: "/v1/appraisals", method: .get) { #expect($0.status == .unauthorized) }
        }
    }

    @Test func policiesAreListedTestedAndReloadedAtomically() async throws {
        let fixture = try await KBSFixture.make()
        defer { fixture.cleanUp() }
        try await fixture.app.test(.live) { client in
            let listed = try await client.execute(uri: "/v1/policies", method: .get, headers: fixture.admin) { TestGuest.json($0) }
            let ids = Set(listed["policies"]?.arrayValue?.compactMap { $0["id"]?.stringValue } ?? [])
            #expect(ids.isSuperset(of: ["tdx-default", "release-default"]))
            let shown = try await client.execute(uri: "/v1/policies/tdx-default", method: .get, headers: fixture.admin) {
                TestGuest.json($0)
            }
            #expect(shown["document"]?["kind"] == "AppraisalPolicy")
            // A dry run of the release policy: a warning appraisal is denied, with the trace.
            let test: JSONValue = ["claims": .object([:]), "path": "key/disk", "status": "warning"]
            let result = try await client.execute(
                uri: "/v1/policies/release-default:test", method: .post, headers: fixture.admin,
                body: ByteBuffer(bytes: CanonicalJSON.encode(test))
            ) { TestGuest.json($0) }
            #expect(result["decision"] == "deny")
            #expect(result["trace"]?.arrayValue?.isEmpty == false)
            let allowed = try await client.execute(
                uri: "/v1/policies/release-default:test", method: .post, headers: fixture.admin,
                body: ByteBuffer(bytes: CanonicalJSON.encode(["claims": .object([:]), "path": "key/disk", "status": "affirming"]))
            ) { TestGuest.json($0) }
            #expect(allowed["decision"] == "allow")
            // Claims that are not an object are refused, not evaluated as "no claims".
            for claims: JSONValue in [.array([]), .string("x"), .integer(1), .null] {
                try await client.execute(
                    uri: "/v1/policies/release-default:test", method: .post, headers: fixture.admin,
                    body: ByteBuffer(bytes: CanonicalJSON.encode(["claims": claims, "path": "key/disk"]))
                ) { #expect($0.status == .badRequest, "\(claims)") }
            }

            // Reload: a broken file is refused with its errors (409) and the active set stays; a good one is taken.
            let policies = URL(fileURLWithPath: fixture.parts.configuration.policiesDirectory)
            let broken = policies.appendingPathComponent("broken.yaml")
            try Data("apiVersion: custos/v1\nkind: AppraisalPolicy\nid: x\nbogus: 1\n".utf8).write(to: broken)
            try await client.execute(uri: "/v1/policies:reload", method: .post, headers: fixture.admin) {
                #expect($0.status == .conflict)
                #expect(TestGuest.json($0)["errors"]?.arrayValue?.first?.stringValue?.contains("broken.yaml") == true)
            }
            #expect(fixture.parts.policies?.current.policy(id: "tdx-default") != nil)
            try FileManager.default.removeItem(at: broken)
            try await client.execute(uri: "/v1/policies:reload", method: .post, headers: fixture.admin) { #expect($0.status == .ok) }
            let reader = try await Self.token(client, fixture, tenant: "default", role: "tenant-reader")
            try await client.execute(uri: "/v1/policies:reload", method: .post, headers: reader) { #expect($0.status == .forbidden) }
            // Readers list and show; only admins run dry runs (README: "readers; admins test").
            try await client.execute(
                uri: "/v1/policies/release-default:test", method: .post, headers: reader,
                body: ByteBuffer(bytes: CanonicalJSON.encode(["claims": .object([:]), "path": "key/disk", "status": "affirming"]))
            ) { #expect($0.status == .forbidden) }
            try await client.execute(uri: "/v1/policies/release-default", method: .get, headers: reader) { #expect($0.status == .ok) }
        }
        let audit = try #require(fixture.parts.audit)
        #expect(try audit.log.reader.entries(type: "policy.rejected", limit: 10).records.count == 1)
        #expect(try audit.log.reader.entries(type: "policy.loaded", limit: 10).records.count == 1)
    }

    @Test func aReloadIsInForceOnlyOnceItsAuditEntryIsDurable() async throws {
        let fixture = try await KBSFixture.make()
        defer { fixture.cleanUp() }
        let registry = try #require(fixture.parts.policies)
        let pool = try #require(fixture.parts.store as? SQLiteStore).pool
        let policies = URL(fileURLWithPath: fixture.parts.configuration.policiesDirectory)
        try Data(
            """
            apiVersion: custos/v1
            kind: ReleasePolicy
            id: release-reload-probe
            tenant: probe
            default: deny
            secrets:
              - path: "a/*"
                allow: { status: affirming }
            """.utf8
        ).write(to: policies.appendingPathComponent("release/reload-probe.yaml"))
        try await fixture.app.test(.live) { client in
            try await pool.write { db in
                try db.execute(sql: "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_entries BEGIN SELECT RAISE(ABORT, 'refused'); END")
            }
            try await client.execute(uri: "/v1/policies:reload", method: .post, headers: fixture.admin) {
                #expect($0.status == .internalServerError)
            }
            #expect(registry.current.policy(id: "release-reload-probe") == nil)
            try await pool.write { db in try db.execute(sql: "DROP TRIGGER refuse_audit") }
            try await client.execute(uri: "/v1/policies:reload", method: .post, headers: fixture.admin) { #expect($0.status == .ok) }
            #expect(registry.current.policy(id: "release-reload-probe") != nil)
            let loaded = try #require(fixture.parts.audit).log.reader.entries(type: "policy.loaded", limit: 10).records
            #expect(loaded.count == 1)
            #expect(
                loaded.first?.entry["object"]?["policies"]?.arrayValue?.contains {
                    $0.stringValue?.hasPrefix("release-reload-probe@") == true
                }
                    == true)
            // An API token that is not valid is a 401 on any secret path, before the values-versus-versions rule.
            try await client.execute(
                uri: "/v1/secrets/default/key/disk", method: .get, headers: [.authorization: "Bearer custos_AAAA"]
            ) { #expect($0.status == .unauthorized) }
        }
    }
}
