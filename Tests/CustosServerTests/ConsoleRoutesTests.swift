import CustosAudit
import CustosCrypto
import CustosKBS
import CustosSEV
import CustosStore
import CustosTestSupport
import Foundation
import GRDB
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

@testable import CustosServer

/// The review console (/ui/) through real HTTP: sessions, cookie flags, CSRF, CSP, tenant scoping, escaping of
/// evidence, the trace, the audit entry's proof material and the overview's counts.
@Suite(.serialized) struct ConsoleRoutesTests {
    static let scriptClaim = "<script>alert(1)</script>"
    static let imageClaim = "\"><img src=x onerror=alert(1)>"
    /// Init-data naming tenant-a and carrying markup in two claims (TOML basic and literal strings).
    static let initData =
        "version = \"0.1.0\"\nalgorithm = \"sha384\"\n\n[data]\ntenant = \"tenant-a\"\n"
        + "note = \"<script>alert(1)</script>\"\nlabel = '\"><img src=x onerror=alert(1)>'\n"

    static let cspHeader = HTTPField.Name("Content-Security-Policy")!
    static let expectedCSP =
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

    /// A fetched page: status, headers and the body as text.
    struct Page {
        let status: HTTPResponse.Status
        let headers: HTTPFields
        let html: String
        var location: String? { headers[.location] }
        /// The `custos_ui=…` pair of the Set-Cookie header, and the whole header.
        var setCookie: String? { headers[.setCookie] }
        var cookie: String? { setCookie?.split(separator: ";").first.map(String.init) }
        var csrf: String? {
            guard let match = html.firstMatch(of: #/name="csrf" value="([^"]+)"/#) else { return nil }
            return String(match.output.1)
        }
    }

    static func get(_ client: some TestClientProtocol, _ uri: String, cookie: String? = nil) async throws -> Page {
        var headers: HTTPFields = [:]
        if let cookie { headers[.cookie] = cookie }
        return try await client.execute(uri: uri, method: .get, headers: headers) {
            let page = Page(status: $0.status, headers: $0.headers, html: String(buffer: $0.body))
            #expect($0.headers[Self.cspHeader] == Self.expectedCSP, "GET \(uri) has no console CSP")
            #expect($0.headers[.init("X-Content-Type-Options")!] == "nosniff")
            return page
        }
    }

    static func post(_ client: some TestClientProtocol, _ uri: String, cookie: String?, form: [(String, String)]) async throws -> Page {
        var headers: HTTPFields = [.contentType: "application/x-www-form-urlencoded"]
        if let cookie { headers[.cookie] = cookie }
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        let body = form.map { "\($0)=\($1.addingPercentEncoding(withAllowedCharacters: allowed) ?? "")" }.joined(separator: "&")
        return try await client.execute(uri: uri, method: .post, headers: headers, body: ByteBuffer(string: body)) {
            #expect($0.headers[Self.cspHeader] == Self.expectedCSP, "POST \(uri) has no console CSP")
            return Page(status: $0.status, headers: $0.headers, html: String(buffer: $0.body))
        }
    }

    /// Signs in with `token`; the signed-in cookie and the page's CSRF token.
    static func signIn(_ client: some TestClientProtocol, token: String) async throws -> (cookie: String, csrf: String) {
        let form = try await get(client, "/ui/")
        let preCookie = try #require(form.cookie)
        let signedIn = try await post(
            client, "/ui/sign-in", cookie: preCookie, form: [("token", token), ("csrf", try #require(form.csrf))])
        #expect(signedIn.status == .seeOther)
        #expect(signedIn.location == "/ui/appraisals")
        let cookie = try #require(signedIn.cookie)
        #expect(cookie != preCookie, "signing in must issue a new session id")
        let page = try await get(client, "/ui/appraisals", cookie: cookie)
        #expect(page.status == .ok)
        return (cookie, try #require(page.csrf))
    }

    static func token(_ client: some TestClientProtocol, _ fixture: KBSFixture, tenant: String, role: String) async throws -> String {
        let body = ByteBuffer(bytes: CanonicalJSON.encode(["role": .string(role)]))
        let token = try await client.execute(uri: "/v1/tenants/\(tenant)/tokens", method: .post, headers: fixture.admin, body: body) {
            TestGuest.json($0)["token"]?.stringValue
        }
        return try #require(token)
    }

    static func attest(_ client: some TestClientProtocol, _ guest: TestGuest, workload: String) async throws -> String {
        let result = try await QueryRoutesTests.attest(client, guest, workload: workload)
        return try #require(result["appraisal_id"]?.stringValue)
    }

    /// Two tenants: default with an affirming and a contraindicated appraisal, tenant-a with one whose init-data
    /// carries markup.
    struct Seeded {
        let good: String
        let bad: String
        let tenantA: String
    }

    static func seed(_ client: some TestClientProtocol, _ fixture: KBSFixture) async throws -> Seeded {
        try await fixture.provision(client, secret: Array("s".utf8))
        try await client.execute(
            uri: "/v1/tenants", method: .post, headers: fixture.admin, body: ByteBuffer(bytes: CanonicalJSON.encode(["id": "tenant-a"]))
        ) { #expect($0.status == .created) }
        try await fixture.provision(client, tenant: "tenant-a", secret: Array("a".utf8))
        let digest = Digest.sha384(Array(initData.utf8))
        try await client.execute(
            uri: "/v1/reference-values/tenant-a/mr_config_id", method: .put, headers: fixture.admin,
            body: ByteBuffer(bytes: CanonicalJSON.encode(["values": [.string(Hex.encode(digest))]]))
        ) { #expect($0.status == .ok) }
        let key = JWEDecryptionKey.ec(try ECPrivateKey(generating: .p256))
        let good = TestGuest(key: key, hierarchy: fixture.hierarchy, spec: KBSFixture.spec())
        var badSpec = KBSFixture.spec()
        badSpec.mrTD = [UInt8](repeating: 0x42, count: 48)
        let bad = TestGuest(key: key, hierarchy: fixture.hierarchy, spec: badSpec)
        var tenantASpec = KBSFixture.spec()
        tenantASpec.mrConfigID = digest
        var tenantA = TestGuest(key: key, hierarchy: fixture.hierarchy, spec: tenantASpec)
        tenantA.initData = KBSInitData(format: "toml", body: initData)
        return Seeded(
            good: try await attest(client, good, workload: "web"), bad: try await attest(client, bad, workload: "web"),
            tenantA: try await attest(client, tenantA, workload: "shop"))
    }

    // MARK: Sessions

    @Test func pagesRedirectToSignInWithoutASession() async throws {
        let fixture = try await KBSFixture.make()
        defer { fixture.cleanUp() }
        try await fixture.app.test(.live) { client in
            for path in ["/ui/appraisals", "/ui/appraisals/apr_00", "/ui/launches", "/ui/audit", "/ui/audit/0", "/ui/overview"] {
                let page = try await Self.get(client, path)
                #expect(page.status == .seeOther, "\(path)")
                #expect(page.location == "/ui/", "\(path)")
                // A cookie that names no session is no better; nor is a bearer token (the console only takes sessions).
                #expect(try await Self.get(client, path, cookie: "custos_ui=forged").location == "/ui/")
            }
            let signIn = try await Self.get(client, "/ui/")
            #expect(signIn.status == .ok)
            #expect(signIn.html.contains("<form method=\"post\" action=\"/ui/sign-in\""))
            let setCookie = try #require(signIn.setCookie)
            let attributes = Set(setCookie.split(separator: ";").dropFirst().map { $0.trimmingCharacters(in: .whitespaces) })
            #expect(attributes.isSuperset(of: ["Path=/ui", "HttpOnly", "SameSite=Strict"]))
            #expect(attributes.contains { $0.hasPrefix("Max-Age=") })
            #expect(!attributes.contains("Secure"), "plain HTTP: a Secure cookie would never come back")
            for asset in ["/ui/static/console.css", "/ui/static/console.js"] {
                let page = try await Self.get(client, asset)
                #expect(page.status == .ok)
            }
        }
    }

    /// Under HTTPS the cookie is `__Host-custos_ui`: `Secure`, `Path=/`, no `Domain` (what the prefix requires), and
    /// it is the only name a session is read from (an unprefixed cookie could have been planted over plain HTTP).
    @Test func theCookieIsAHostCookieUnderTLS() async throws {
        let fixture = try await KBSFixture.make()
        defer { fixture.cleanUp() }
        let store = try #require(fixture.parts.store)
        let routes = ConsoleRoutes(store: store, log: nil, policies: nil, collateral: nil, secureCookie: true)
        let session = try routes.sessions.create(token: nil)
        let parts = routes.cookie(session).split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
        #expect(parts.first == "__Host-custos_ui=\(session.id)")
        let attributes = Set(parts.dropFirst())
        #expect(attributes.isSuperset(of: ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"]))
        #expect(!attributes.contains { $0.lowercased().hasPrefix("domain=") })
        let expired = routes.expiredCookie.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
        #expect(
            expired.first == "__Host-custos_ui=" && expired.contains("Path=/") && expired.contains("Max-Age=0")
                && expired.contains("Secure"))

        // The session is found under the prefixed name only.
        func request(cookie: String) -> Request {
            var head = HTTPRequest(method: .get, scheme: "https", authority: "custos.example", path: "/ui/appraisals")
            head.headerFields[.cookie] = cookie
            return Request(head: head, body: .init(buffer: .init()))
        }
        #expect(routes.cookieSession(request(cookie: "__Host-custos_ui=\(session.id)"))?.id == session.id)
        #expect(routes.cookieSession(request(cookie: "custos_ui=\(session.id)")) == nil)
        let plain = ConsoleRoutes(store: store, log: nil, policies: nil, collateral: nil, secureCookie: false)
        let plainSession = try plain.sessions.create(token: nil)
        #expect(plain.cookieSession(request(cookie: "custos_ui=\(plainSession.id)"))?.id == plainSession.id)
        #expect(plain.cookieSession(request(cookie: "__Host-custos_ui=\(plainSession.id)")) == nil)
    }

    @Test func signInSignOutAndCSRF() async throws {
        let fixture = try await KBSFixture.make()
        defer { fixture.cleanUp() }
        try await fixture.app.test(.live) { client in
            let reader = try await Self.token(client, fixture, tenant: "default", role: "tenant-reader")
            let form = try await Self.get(client, "/ui/")
            let preCookie = try #require(form.cookie)
            // No CSRF token, or another one: refused, and no session is made.
            for csrf in [nil, "x", String(repeating: "A", count: 43)] as [String?] {
                var fields = [("token", reader)]
                if let csrf { fields.append(("csrf", csrf)) }
                let refused = try await Self.post(client, "/ui/sign-in", cookie: preCookie, form: fields)
                #expect(refused.status == .forbidden)
                #expect(refused.setCookie == nil)
            }
            // A wrong token: the form again with a message, 401.
            let wrong = try await Self.post(
                client, "/ui/sign-in", cookie: preCookie, form: [("token", "custos_nope"), ("csrf", try #require(form.csrf))])
            #expect(wrong.status == .unauthorized)
            #expect(wrong.html.contains("id=\"signin-error\""))
            // A launcher may not use the console.
            let launcher = try await Self.token(client, fixture, tenant: "default", role: "launcher")
            let refusedRole = try await Self.post(
                client, "/ui/sign-in", cookie: preCookie, form: [("token", launcher), ("csrf", try #require(form.csrf))])
            #expect(refusedRole.status == .forbidden)

            let (cookie, csrf) = try await Self.signIn(client, token: reader)
            // The token is on no page.
            for path in ["/ui/appraisals", "/ui/audit", "/ui/overview", "/ui/launches"] {
                let page = try await Self.get(client, path, cookie: cookie)
                #expect(page.status == .ok, "\(path)")
                #expect(!page.html.contains(reader), "\(path) shows the API token")
            }
            // Sign-out needs the CSRF token.
            let forged = try await Self.post(client, "/ui/sign-out", cookie: cookie, form: [("csrf", "x")])
            #expect(forged.status == .forbidden)
            #expect(try await Self.get(client, "/ui/appraisals", cookie: cookie).status == .ok)
            let out = try await Self.post(client, "/ui/sign-out", cookie: cookie, form: [("csrf", csrf)])
            #expect(out.status == .seeOther && out.location == "/ui/")
            #expect(out.setCookie?.contains("Max-Age=0") == true)
            #expect(try await Self.get(client, "/ui/appraisals", cookie: cookie).location == "/ui/")

            // A revoked token ends its session at the next request.
            let (again, _) = try await Self.signIn(client, token: reader)
            let credentials = try await fixture.parts.store?.listCredentials(tenantId: "default") ?? []
            let credential = try #require(credentials.first { $0.role == .tenantReader })
            _ = try await fixture.parts.store?.revokeCredential(id: credential.id, now: Date())
            #expect(try await Self.get(client, "/ui/appraisals", cookie: again).location == "/ui/")
        }
    }

    // MARK: Scoping and escaping

    @Test func tenantsSeeOnlyTheirOwnAndAuditorsSeeAll() async throws {
        let fixture = try await KBSFixture.make()
        defer { fixture.cleanUp() }
        try await fixture.app.test(.live) { client in
            let seeded = try await Self.seed(client, fixture)
            let readerA = try await Self.token(client, fixture, tenant: "tenant-a", role: "tenant-reader")
            let (cookieA, _) = try await Self.signIn(client, token: readerA)
            let list = try await Self.get(client, "/ui/appraisals", cookie: cookieA)
            #expect(list.html.contains(seeded.tenantA))
            #expect(!list.html.contains(seeded.good) && !list.html.contains(seeded.bad))
            // Asking for another tenant changes nothing for a tenant role; another tenant's appraisal is a 404.
            let asked = try await Self.get(client, "/ui/appraisals?tenant=default", cookie: cookieA)
            #expect(asked.html.contains(seeded.tenantA) && !asked.html.contains(seeded.good))
            #expect(try await Self.get(client, "/ui/appraisals/\(seeded.good)", cookie: cookieA).status == .notFound)
            #expect(try await Self.get(client, "/ui/appraisals/\(seeded.good)?tenant=default", cookie: cookieA).status == .notFound)
            #expect(try await Self.get(client, "/ui/audit?tenant=default", cookie: cookieA).status == .notFound)
            let auditA = try await Self.get(client, "/ui/audit", cookie: cookieA)
            let tenantsA = Set(auditA.html.matches(of: #/<td class="tenant">([^<]*)</td>/#).map { String($0.output.1) })
            #expect(tenantsA == ["tenant-a"])
            // The entries of default's appraisals are not reachable by number either.
            let log = try #require(fixture.parts.audit?.log)
            let defaultEntry = try #require(try log.reader.entries(tenant: "default", type: "attestation.affirmed", limit: 1).records.first)
            #expect(try await Self.get(client, "/ui/audit/\(defaultEntry.seq)", cookie: cookieA).status == .notFound)

            let auditor = try await Self.token(client, fixture, tenant: "default", role: "auditor")
            let (cookieAuditor, _) = try await Self.signIn(client, token: auditor)
            let all = try await Self.get(client, "/ui/audit", cookie: cookieAuditor)
            let tenantsAll = Set(all.html.matches(of: #/<td class="tenant">([^<]*)</td>/#).map { String($0.output.1) })
            #expect(tenantsAll.isSuperset(of: ["default", "tenant-a"]))
            let filtered = try await Self.get(client, "/ui/audit?tenant=tenant-a", cookie: cookieAuditor)
            let tenantsFiltered = Set(filtered.html.matches(of: #/<td class="tenant">([^<]*)</td>/#).map { String($0.output.1) })
            #expect(tenantsFiltered == ["tenant-a"])
            #expect(try await Self.get(client, "/ui/audit/\(defaultEntry.seq)", cookie: cookieAuditor).status == .ok)
        }
    }

    @Test func evidenceIsEscapedAndTheTraceShowsTheFirstFailure() async throws {
        let fixture = try await KBSFixture.make()
        defer { fixture.cleanUp() }
        try await fixture.app.test(.live) { client in
            let seeded = try await Self.seed(client, fixture)
            let readerA = try await Self.token(client, fixture, tenant: "tenant-a", role: "tenant-reader")
            let (cookieA, _) = try await Self.signIn(client, token: readerA)
            let page = try await Self.get(client, "/ui/appraisals/\(seeded.tenantA)", cookie: cookieA)
            #expect(page.status == .ok)
            #expect(!page.html.contains(Self.scriptClaim))
            #expect(!page.html.contains("<img"))
            #expect(page.html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"))
            #expect(page.html.contains("&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"))
            // The only script element is the console's own, same-origin file.
            #expect(
                page.html.components(separatedBy: "<script").count - 1 == page.html.components(
                    separatedBy: "<script src=\"/ui/static/console.js\""
                ).count - 1)

            let reader = try await Self.token(client, fixture, tenant: "default", role: "tenant-reader")
            let (cookie, _) = try await Self.signIn(client, token: reader)
            let denied = try await Self.get(client, "/ui/appraisals/\(seeded.bad)", cookie: cookie)
            #expect(denied.html.contains("id=\"verdict\">contraindicated<"))
            // The first failing condition names the MRTD the guest changed (hardware: contraindicated), with the value it had.
            let failure = try #require(denied.html.firstMatch(of: #/<p class="alert bad" id="first-failure">(.*?)</p>/#))
            #expect(failure.output.1.contains(Hex.encode([UInt8](repeating: 0x42, count: 48))))
            #expect(denied.html.contains("<tr class=\"first-failure fail\">"))
            let allowed = try await Self.get(client, "/ui/appraisals/\(seeded.good)", cookie: cookie)
            #expect(allowed.html.contains("id=\"verdict\">affirming<"))
            #expect(!allowed.html.contains("id=\"first-failure\""))
            // Filters: status and TEE.
            let onlyBad = try await Self.get(client, "/ui/appraisals?status=contraindicated", cookie: cookie)
            #expect(onlyBad.html.contains(seeded.bad) && !onlyBad.html.contains(seeded.good))
            let noSEV = try await Self.get(client, "/ui/appraisals?tee=sev", cookie: cookie)
            #expect(!noSEV.html.contains(seeded.good))
            #expect(try await Self.get(client, "/ui/appraisals?since=yesterday", cookie: cookie).status == .badRequest)
        }
    }

    // MARK: Audit and overview

    @Test func theEntryPageCarriesAProofThatVerifies() async throws {
        let fixture = try await KBSFixture.make()
        defer { fixture.cleanUp() }
        try await fixture.app.test(.live) { client in
            let seeded = try await Self.seed(client, fixture)
            let reader = try await Self.token(client, fixture, tenant: "default", role: "tenant-reader")
            let (cookie, _) = try await Self.signIn(client, token: reader)
            let detail = try await Self.get(client, "/ui/appraisals/\(seeded.bad)", cookie: cookie)
            let link = try #require(detail.html.firstMatch(of: #/href="/ui/audit/([0-9]+)" id="audit-link"/#))
            let entry = try await Self.get(client, "/ui/audit/\(link.output.1)", cookie: cookie)
            func attribute(_ name: String) throws -> String {
                let pattern = try Regex("\(name)=\"([^\"]*)\"")
                let match = try #require(entry.html.firstMatch(of: pattern))
                return String(try #require(match.output[1].substring))
            }
            // Verified here with CustosAudit's own verifier, from nothing but what the page carries.
            let body = try Base64.decode(try attribute("data-entry"))
            let parsed = try JSONValue.parse(body)
            #expect(parsed["appraisal"]?["id"]?.stringValue == seeded.bad)
            let note = String(decoding: try Base64.decode(try attribute("data-note")), as: UTF8.self)
            let log = try #require(fixture.parts.audit?.log)
            let verifier = try NoteVerifierKey(parsing: log.verifierKey)
            let checkpoint = try SignedCheckpoint(verifying: Array(note.utf8), key: verifier, origin: log.origin).checkpoint
            let index = try #require(UInt64(try attribute("data-index")))
            let size = try #require(UInt64(try attribute("data-tree-size")))
            #expect(size == checkpoint.size)
            let proof = try attribute("data-proof").split(separator: ",").map { try Hex.decode($0) }
            let leaf = Digest.sha256([0x00] + body)
            #expect(
                MerkleProof.verifyInclusion(index: index, size: size, leafHash: leaf, path: proof, root: checkpoint.rootHash) == .verified)
            #expect(!entry.html.contains("id=\"server-check\""))
            #expect(entry.html.contains("<script src=\"/ui/static/console.js\" defer></script>"))
        }
    }

    @Test func theOverviewCountsDecisionsPerDay() async throws {
        let fixture = try await KBSFixture.make()
        defer { fixture.cleanUp() }
        try await fixture.app.test(.live) { client in
            _ = try await Self.seed(client, fixture)
            let auditor = try await Self.token(client, fixture, tenant: "default", role: "auditor")
            let (cookie, _) = try await Self.signIn(client, token: auditor)
            let page = try await Self.get(client, "/ui/overview", cookie: cookie)
            #expect(page.status == .ok)
            #expect(page.html.contains("<svg"))
            func total(_ series: String) throws -> Int {
                let pattern = try Regex("class=\"bar \(series)\" data-count=\"([0-9]+)\"")
                return page.html.matches(of: pattern).reduce(0) { $0 + (Int($1.output[1].substring ?? "") ?? 0) }
            }
            // Seeded today: two affirming (default's good guest and tenant-a's) and one contraindicated.
            #expect(try total("affirming") == 2)
            #expect(try total("contraindicated") == 1)
            #expect(try total("warning") == 0)
            // The collateral the service holds is service-wide: an auditor sees the table, a tenant's reader does not.
            #expect(page.html.contains("id=\"collateral\""))
            let reader = try await Self.token(client, fixture, tenant: "default", role: "tenant-reader")
            let (readerCookie, _) = try await Self.signIn(client, token: reader)
            let tenantPage = try await Self.get(client, "/ui/overview", cookie: readerCookie)
            #expect(tenantPage.status == .ok && tenantPage.html.contains("<svg"))
            #expect(!tenantPage.html.contains("id=\"collateral\""))
        }
    }

    /// Reloading the audit page while the log grows does not sign a checkpoint per load: the console signs at most one
    /// per ``ConsoleCaches/signingInterval`` (before, every load after a new entry signed and stored one).
    @Test func reloadingTheAuditPageSignsAtMostOneCheckpointPerInterval() async throws {
        let fixture = try await KBSFixture.make()
        defer { fixture.cleanUp() }
        let store = try #require(fixture.parts.store as? SQLiteStore)
        let audit = try #require(fixture.parts.audit)
        @Sendable func checkpoints() async throws -> Int {
            try await store.pool.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM audit_checkpoints") ?? 0 }
        }
        try await fixture.app.test(.live) { client in
            let auditor = try await Self.token(client, fixture, tenant: "default", role: "auditor")
            let (cookie, _) = try await Self.signIn(client, token: auditor)
            let before = try await checkpoints()
            let start = Date()
            for round in 0..<5 {
                try await audit.record(
                    "config.changed", tenant: "default", actor: ["kind": "admin", "id": "crd_test", "role": "service-admin"],
                    object: ["change": "test", "round": .integer(Int64(round))])
                let page = try await Self.get(client, "/ui/audit", cookie: cookie)
                #expect(page.status == .ok)
            }
            let elapsed = Date().timeIntervalSince(start)
            let signed = try await checkpoints() - before
            #expect(signed >= 1)
            #expect(signed <= Int(elapsed / ConsoleCaches.signingInterval) + 2, "\(signed) checkpoints in \(elapsed) s")
        }
    }

    // MARK: Launches

    /// A SEV-ES launch through the launch API (emulated firmware): the tenant's reader sees each step on the page; the
    /// other tenant does not see it.
    @Test func launchesShowEachStep() async throws {
        let fixture = try await LaunchRoutesTests.fixture()
        defer { try? FileManager.default.removeItem(at: fixture.directory) }
        let fw = fixture.firmware
        let boot = LaunchRoutesTests.Boot(policy: 0x7, vcpus: 1)
        let digest = try boot.digest().digest
        try await fixture.app.test(.live) { client in
            let tokens = try await LaunchRoutesTests.prepareTenant(
                client, fixture, tenant: "tenant-a", referenceSet: "sev_es_launch_digest", digests: [digest])
            let other = try await LaunchRoutesTests.prepareTenant(
                client, fixture, tenant: "tenant-b", referenceSet: "sev_es_launch_digest", digests: [digest])
            let launcher = LaunchRoutesTests.auth(try #require(tokens["launcher"]))
            let created = try await client.execute(
                uri: "/v1/launches", method: .post, headers: launcher,
                body: LaunchRoutesTests.body(LaunchRoutesTests.launchBody(fw, tee: "sev-es", policy: 0x7))
            ) { LaunchRoutesTests.json($0) }
            let launchID = try #require(created["launch_id"]?.stringValue)
            let (_, measurement) = try LaunchRoutesTests.hostLaunch(fw, created: created, boot: boot)
            try await client.execute(
                uri: "/v1/launches/\(launchID)/measurement", method: .post, headers: launcher,
                body: LaunchRoutesTests.body(
                    LaunchRoutesTests.measurementBody(fw, measurement, expected: ("firmware_digest", Hex.encode(digest)), vcpus: 1))
            ) { #expect($0.status == .ok) }

            let (cookie, _) = try await Self.signIn(client, token: try #require(tokens["tenant-reader"]))
            let page = try await Self.get(client, "/ui/launches", cookie: cookie)
            #expect(page.status == .ok)
            #expect(page.html.contains(launchID))
            let steps = page.html.matches(of: #/<tr><td>(created|measured|allowed|denied|injected)</td>/#).map { String($0.output.1) }
            #expect(steps == ["created", "measured", "allowed", "injected"])
            #expect(page.html.contains(Hex.encode(measurement)))

            let (otherCookie, _) = try await Self.signIn(client, token: try #require(other["tenant-reader"]))
            let otherPage = try await Self.get(client, "/ui/launches", cookie: otherCookie)
            #expect(!otherPage.html.contains(launchID))
            #expect(otherPage.html.contains("id=\"no-launches\""))
        }
    }
}

/// The session table on its own: idle and absolute expiry, and bounded memory that spares signed-in sessions.
@Suite struct ConsoleSessionsTests {
    @Test func sessionsExpireWhenIdleAndAfterTheirLifetime() throws {
        let sessions = ConsoleSessions(idleLifetime: 60, absoluteLifetime: 300, capacity: 10)
        let start = Date(timeIntervalSince1970: 1_000_000)
        let session = try sessions.create(token: "custos_x", now: start)
        #expect(sessions.session(id: session.id, now: start.addingTimeInterval(59))?.token == "custos_x")
        // Used every 50 s it stays alive until its absolute lifetime, then it is gone.
        for step in 2...5 { #expect(sessions.session(id: session.id, now: start.addingTimeInterval(Double(step) * 50)) != nil) }
        #expect(sessions.session(id: session.id, now: start.addingTimeInterval(300)) == nil)
        let idle = try sessions.create(token: nil, now: start)
        #expect(sessions.session(id: idle.id, now: start.addingTimeInterval(60)) == nil)
        #expect(sessions.session(id: "no-such-id", now: start) == nil)
        #expect(session.id != idle.id && session.csrf != idle.csrf && session.id.count == 43)
    }

    @Test func aFloodOfSignInSessionsDoesNotEvictSignedInOnes() throws {
        let sessions = ConsoleSessions(idleLifetime: 600, absoluteLifetime: 3600, capacity: 4)
        let start = Date(timeIntervalSince1970: 1_000_000)
        let reviewer = try sessions.create(token: "custos_reviewer", now: start)
        var flood: [ConsoleSessions.Session] = []
        for index in 0..<20 { flood.append(try sessions.create(token: nil, now: start.addingTimeInterval(Double(index + 1)))) }
        #expect(sessions.count == (signIn: 4, signedIn: 1))
        #expect(sessions.session(id: reviewer.id, now: start.addingTimeInterval(30)) != nil)
        // The oldest sign-in sessions went first; the newest four are still there.
        for (index, session) in flood.enumerated() {
            #expect((sessions.session(id: session.id, now: start.addingTimeInterval(30)) != nil) == (index >= 16), "\(index)")
        }
    }

    /// One token signing in again and again keeps at most `perCredential` sessions (its oldest go), so it cannot push
    /// other reviewers out of the full table.
    @Test func oneTokenCannotEvictOtherReviewers() throws {
        let sessions = ConsoleSessions(idleLifetime: 600, absoluteLifetime: 3600, capacity: 10, perCredential: 3)
        let start = Date(timeIntervalSince1970: 1_000_000)
        let others = try (0..<7).map { try sessions.create(token: "custos_reviewer\($0)", now: start) }
        var flood: [ConsoleSessions.Session] = []
        for index in 0..<100 { flood.append(try sessions.create(token: "custos_script", now: start.addingTimeInterval(Double(index + 1)))) }
        let later = start.addingTimeInterval(200)
        for other in others { #expect(sessions.session(id: other.id, now: later) != nil) }
        #expect(sessions.count.signedIn == 10)
        for (index, session) in flood.enumerated() {
            #expect((sessions.session(id: session.id, now: later) != nil) == (index >= 97), "\(index)")
        }
    }

    /// Each new sign-in session costs O(1) however full the table is: the oldest leaves from the front of a queue in
    /// creation order (it used to be a copy of the whole table and a scan for the oldest on every sign-in page once the
    /// table was full). Sessions that leave out of order (signed in, expired on lookup) do not let the queue grow.
    @Test func theSignInQueueStaysBounded() throws {
        let sessions = ConsoleSessions(idleLifetime: 600, absoluteLifetime: 3600, capacity: 100)
        let start = Date(timeIntervalSince1970: 1_000_000)
        for index in 0..<5_000 { _ = try sessions.create(token: nil, now: start.addingTimeInterval(Double(index) / 100)) }
        #expect(sessions.count == (signIn: 100, signedIn: 0))
        #expect(sessions.signInQueueLength == 100)
        // Made and removed at once (a sign-in page whose form was submitted): the queue is compacted.
        for index in 0..<5_000 {
            let session = try sessions.create(token: nil, now: start.addingTimeInterval(50 + Double(index) / 100))
            sessions.remove(id: session.id)
        }
        #expect(sessions.signInQueueLength <= 2 * 100)
        // Expired ones leave from the front when the next one is made.
        _ = try sessions.create(token: nil, now: start.addingTimeInterval(3600 + 200))
        #expect(sessions.count == (signIn: 1, signedIn: 0))
        #expect(sessions.signInQueueLength == 1)
    }

    @Test func csrfTokensCompareExactly() {
        #expect(ConsoleSessions.csrfMatches("abc", "abc"))
        #expect(!ConsoleSessions.csrfMatches("abd", "abc"))
        #expect(!ConsoleSessions.csrfMatches("ab", "abc"))
        #expect(!ConsoleSessions.csrfMatches(nil, "abc"))
    }
}
