import CustosAudit
import CustosCrypto
import CustosPolicy
import CustosStore
import Foundation
import HTTPTypes
import Hummingbird
import Mustache
import NIOCore

/// The review console at `/ui/` (issue 14): server-rendered pages for tenants (appraisals, launches) and auditors
/// (the audit log with in-browser proofs), over the same store queries, tenant scoping and authentication as `/v1`.
///
/// Every page but the sign-in page needs a session (else 303 to `/ui/`); every POST carries the session's CSRF
/// token; every response carries ``csp``. Values from evidence or requests reach a page only through `{{…}}`,
/// which HTML-escapes them.
struct ConsoleRoutes: Sendable {
    let store: any Store
    let authenticator: Authenticator
    let log: AuditLog?
    let policies: PolicyRegistry?
    let collateral: (any CollateralProvider)?
    let sessions: ConsoleSessions
    /// The overview's figures and the console's checkpoint signing, shared by every request (``ConsoleCaches``).
    let caches = ConsoleCaches()
    /// Whether the session cookie is `Secure` (``ServerConfiguration/servedOverHTTPS``: TLS, or an `https` issuer URL).
    let secureCookie: Bool
    let library: MustacheLibrary

    static let csp =
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; "
        + "form-action 'self'"
    static let cookieName = "custos_ui"
    /// The cookie's name under HTTPS: the `__Host-` prefix makes browsers keep it only when it is `Secure`, set by this
    /// host itself over HTTPS with `Path=/` and no `Domain`, so a plain-HTTP page or a sibling host cannot plant or
    /// overwrite a console session (RFC 6265bis §4.1.3.2). The price is `Path=/`: the cookie also travels with
    /// `/v1` and `/kbs` requests, which ignore it (they take bearer tokens and `kbs-session-id`).
    static let hostCookieName = "__Host-custos_ui"
    /// The session cookie's name and path for this service (``secureCookie``).
    var sessionCookie: (name: String, path: String) { secureCookie ? (Self.hostCookieName, "/") : (Self.cookieName, "/ui") }
    /// Roles that may sign in: the `/v1` query readers (tenant-reader, tenant-admin, auditor, service-admin).
    static let roles = QueryRoutes.readers
    static let pageSize = 50
    static let formLimit = 8 << 10

    init(
        store: any Store, log: AuditLog?, policies: PolicyRegistry?, collateral: (any CollateralProvider)?, secureCookie: Bool,
        sessions: ConsoleSessions = ConsoleSessions()
    ) {
        self.store = store
        self.authenticator = Authenticator(store: store)
        self.log = log
        self.policies = policies
        self.collateral = collateral
        self.sessions = sessions
        self.secureCookie = secureCookie
        var library = MustacheLibrary()
        for (name, text) in ConsoleTemplates.all {
            // The templates are constants of this module; one that does not parse is caught by the unit tests.
            if let template = try? MustacheTemplate(string: text) { library.register(template, named: name) }
        }
        self.library = library
    }

    func add(to router: Router<CustosRequestContext>) {
        // Plain registrations (no route group: OpenAPIRouteSetTests reads them from this source); ``page(_:_:)`` adds
        // the console's headers and error pages to each.
        router.get("/ui/") { request, _ in await page(request) { try await signInPage(request) } }
        router.post("/ui/sign-in") { request, _ in await page(request) { try await signIn(request) } }
        router.post("/ui/sign-out") { request, _ in await page(request) { try await signOut(request) } }
        router.get("/ui/appraisals") { request, _ in
            await page(request) { try await withSession(request) { try await appraisals(request, $0) } }
        }
        router.get("/ui/appraisals/{id}") { request, context in
            await page(request) {
                let id = try context.parameters.require("id")
                return try await withSession(request) { try await appraisal(request, $0, id: id) }
            }
        }
        router.get("/ui/launches") { request, _ in
            await page(request) { try await withSession(request) { try await launches(request, $0) } }
        }
        router.get("/ui/audit") { request, _ in await page(request) { try await withSession(request) { try await auditList(request, $0) } }
        }
        router.get("/ui/audit/{seq}") { request, context in
            await page(request) {
                let seq = try context.parameters.require("seq")
                return try await withSession(request) { try await auditEntry(request, $0, seq: seq) }
            }
        }
        router.get("/ui/overview") { request, _ in
            await page(request) { try await withSession(request) { try await overview(request, $0) } }
        }
        router.get("/ui/static/console.css") { request, _ in
            await page(request) { Self.asset(ConsoleAssets.stylesheet, type: "text/css; charset=utf-8") }
        }
        router.get("/ui/static/console.js") { request, _ in
            await page(request) { Self.asset(ConsoleAssets.script, type: "text/javascript; charset=utf-8") }
        }
    }

    /// Runs a console handler: errors become HTML pages, and every response gets the console's headers (strict CSP,
    /// `nosniff`, no framing, no caching).
    func page(_ request: Request, _ body: () async throws -> Response) async -> Response {
        var response: Response
        do {
            response = try await body()
        } catch let error as ConsoleError {
            response = await errorPage(error, request: request)
        } catch let error as any HTTPResponseError {
            let status = error.status
            let message =
                switch status {
                case .notFound: "There is nothing here you may see."
                case .unauthorized: "Sign in again."
                case .forbidden: "Your role may not see this."
                case .contentTooLarge: "The form is too large."
                default: "The request could not be served (\(status.code))."
                }
            response = await errorPage(ConsoleError(status, status.reasonPhrase, message), request: request)
        } catch {
            response = await errorPage(ConsoleError(.internalServerError, "Error", "The page could not be made."), request: request)
        }
        response.headers[Self.cspHeader] = Self.csp
        response.headers[Self.nosniffHeader] = "nosniff"
        response.headers[Self.frameHeader] = "DENY"
        response.headers[.cacheControl] = response.headers[.cacheControl] ?? "no-store"
        return response
    }

    static let cspHeader = HTTPField.Name("Content-Security-Policy")!
    static let nosniffHeader = HTTPField.Name("X-Content-Type-Options")!
    static let frameHeader = HTTPField.Name("X-Frame-Options")!

    static func asset(_ text: String, type: String) -> Response {
        Response(
            status: .ok, headers: [.contentType: type, .cacheControl: "no-cache"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    // MARK: Sessions

    /// A signed-in reviewer: the session and the principal its token authenticates as now.
    struct Viewer {
        let session: ConsoleSessions.Session
        let principal: Principal
        var serviceWide: Bool { principal.tenantID == nil }
    }

    func cookieSession(_ request: Request) -> ConsoleSessions.Session? {
        guard let id = request.cookies[sessionCookie.name]?.value, !id.isEmpty, id.utf8.count <= 64 else { return nil }
        return sessions.session(id: id)
    }

    /// The viewer of a request: a live session whose token still authenticates with a console role; else nil (and a
    /// session whose token was revoked is ended). A credential store that cannot answer is a 503 (the session stays:
    /// its token may be fine).
    func viewer(_ request: Request) async throws -> Viewer? {
        guard let session = cookieSession(request), let token = session.token else { return nil }
        let principal: Principal
        do { principal = try await authenticator.authenticate(token: token) } catch let problem as Problem
            where problem.status == .serviceUnavailable
        {
            throw problem
        } catch {
            sessions.remove(id: session.id)
            return nil
        }
        guard Self.roles.contains(principal.role) else {
            sessions.remove(id: session.id)
            return nil
        }
        return Viewer(session: session, principal: principal)
    }

    func withSession(_ request: Request, _ body: (Viewer) async throws -> Response) async throws -> Response {
        guard let viewer = try await viewer(request) else { return Self.redirect("/ui/") }
        return try await body(viewer)
    }

    static func redirect(_ location: String, cookie: String? = nil) -> Response {
        var headers: HTTPFields = [.location: location]
        if let cookie { headers[.setCookie] = cookie }
        return Response(status: .seeOther, headers: headers)
    }

    func cookie(_ session: ConsoleSessions.Session) -> String {
        "\(sessionCookie.name)=\(session.id); Path=\(sessionCookie.path); HttpOnly; SameSite=Strict; Max-Age=\(Int(sessions.absoluteLifetime))"
            + (secureCookie ? "; Secure" : "")
    }

    var expiredCookie: String {
        "\(sessionCookie.name)=; Path=\(sessionCookie.path); HttpOnly; SameSite=Strict; Max-Age=0" + (secureCookie ? "; Secure" : "")
    }

    /// An `application/x-www-form-urlencoded` body (at most ``formLimit`` bytes).
    static func form(_ request: Request) async throws -> [String: String] {
        let buffer = try await RequestBodies.collect(request, limit: formLimit)
        let text = String(buffer: buffer)
        var fields: [String: String] = [:]
        for pair in text.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ part: Substring) -> String? { part.replacingOccurrences(of: "+", with: " ").removingPercentEncoding }
            guard let name = parts.first.flatMap(decode) else { throw ConsoleError.badRequest("the form is not URL-encoded") }
            let value = parts.count == 2 ? decode(parts[1]) : ""
            guard let value else { throw ConsoleError.badRequest("the form is not URL-encoded") }
            fields[name] = value
        }
        return fields
    }

    func signInPage(_ request: Request, message: String? = nil, status: HTTPResponse.Status = .ok) async throws -> Response {
        if message == nil, try await viewer(request) != nil { return Self.redirect("/ui/appraisals") }
        var session = cookieSession(request)
        if session?.token != nil { session = nil }
        let fresh = session == nil
        let current = try session ?? sessions.create(token: nil)
        var context: [String: Any] = ["csrf": current.csrf]
        if let message { context["message"] = message }
        var response = render("signin", title: "Sign in", context: context, viewer: nil, status: status, script: false)
        if fresh { response.headers[.setCookie] = cookie(current) }
        return response
    }

    func signIn(_ request: Request) async throws -> Response {
        guard let session = cookieSession(request) else {
            throw ConsoleError(.forbidden, "Form expired", "The sign-in form expired or cookies are blocked; open the sign-in page again.")
        }
        let fields = try await Self.form(request)
        guard ConsoleSessions.csrfMatches(fields["csrf"], session.csrf) else { throw ConsoleError.csrf }
        let token = (fields["token"] ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        let principal: Principal
        do { principal = try await authenticator.authenticate(token: token) } catch let problem as Problem
            where problem.status == .serviceUnavailable
        {
            // Not a verdict on the token: the reviewer should not throw a good token away.
            throw ConsoleError(
                .serviceUnavailable, "Try again", "The service cannot check API tokens right now; sign in again in a few seconds.")
        } catch {
            return try await signInPage(request, message: "That API token is not valid.", status: .unauthorized)
        }
        guard Self.roles.contains(principal.role) else {
            return try await signInPage(
                request, message: "The \(principal.role.rawValue) role cannot use the console.", status: .forbidden)
        }
        sessions.remove(id: session.id)
        let signedIn = try sessions.create(token: token)
        return Self.redirect("/ui/appraisals", cookie: cookie(signedIn))
    }

    func signOut(_ request: Request) async throws -> Response {
        guard let session = cookieSession(request) else { return Self.redirect("/ui/", cookie: expiredCookie) }
        let fields = try await Self.form(request)
        guard ConsoleSessions.csrfMatches(fields["csrf"], session.csrf) else { throw ConsoleError.csrf }
        sessions.remove(id: session.id)
        return Self.redirect("/ui/", cookie: expiredCookie)
    }

    // MARK: Rendering

    enum Nav: String { case appraisals, launches, audit, overview, none }

    func render(
        _ page: String, title: String, context: [String: Any], viewer: Viewer?, nav: Nav = .none, status: HTTPResponse.Status = .ok,
        script: Bool = false
    ) -> Response {
        let content = library.render(context, withTemplate: page) ?? ""
        var layout: [String: Any] = ["title": title, "content": content, "script": script]
        if let viewer {
            layout["signedIn"] = true
            layout["role"] = viewer.principal.role.rawValue
            if let tenant = viewer.principal.tenantID { layout["tenant"] = tenant }
            layout["csrf"] = viewer.session.csrf
            layout["nav" + nav.rawValue.prefix(1).uppercased() + nav.rawValue.dropFirst()] = true
        }
        let html = library.render(layout, withTemplate: "layout") ?? ""
        return Response(
            status: status, headers: [.contentType: "text/html; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: html)))
    }

    func errorPage(_ error: ConsoleError, request: Request) async -> Response {
        let viewer = (try? await viewer(request)) ?? nil
        return render(
            "error", title: error.heading, context: ["heading": error.heading, "message": error.message], viewer: viewer,
            status: error.status)
    }

    /// A query parameter, nil when absent or empty (an empty filter field means no filter).
    static func parameter(_ request: Request, _ name: String) -> String? {
        guard let value = request.uri.queryParameters.get(name), !value.isEmpty else { return nil }
        return value
    }

    static func time(_ date: Date) -> String { RFC3339.format(date, milliseconds: false) }

    static func parseTime(_ text: String?, _ name: String) throws -> Date? {
        guard let text else { return nil }
        guard let date = RFC3339.parse(text) else {
            throw ConsoleError.badRequest("\(name) must be an RFC 3339 time such as 2026-01-31T00:00:00Z")
        }
        return date
    }

    /// `?a=1&b=2` with each value percent-encoded; absent values are left out.
    static func query(_ items: [(String, String?)]) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        let parts = items.compactMap { name, value in
            value.map { "\(name)=\($0.addingPercentEncoding(withAllowedCharacters: allowed) ?? "")" }
        }
        return parts.isEmpty ? "" : "?" + parts.joined(separator: "&")
    }

    static func options(_ values: [String], selected: String?, any: String) -> [[String: Any]] {
        [["value": "", "label": any, "selected": selected == nil]]
            + values.map { ["value": $0, "label": $0, "selected": $0 == selected] }
    }

    // MARK: Appraisals

    /// The tenant a page is about, exactly as `/v1` decides it (``QueryRoutes/tenant(of:requested:)``).
    static func tenant(_ viewer: Viewer, _ request: Request) -> String {
        QueryRoutes.tenant(of: viewer.principal, requested: parameter(request, "tenant"))
    }

    func appraisals(_ request: Request, _ viewer: Viewer) async throws -> Response {
        let tenant = Self.tenant(viewer, request)
        var query = AppraisalQuery(tenantId: tenant, limit: Self.pageSize)
        query.workloadId = Self.parameter(request, "workload")
        let statusText = Self.parameter(request, "status")
        if let statusText {
            guard let status = AppraisalStatus(rawValue: statusText) else { throw ConsoleError.badRequest("unknown status") }
            query.status = status
        }
        query.since = try Self.parseTime(Self.parameter(request, "since"), "From")
        query.until = try Self.parseTime(Self.parameter(request, "until"), "Until")
        let tee = Self.parameter(request, "tee")
        query.tee = tee
        query.cursor = Self.parameter(request, "cursor")
        // Every filter is the store query's, so a page holds up to pageSize matches and the cursor pages through them.
        let page = try await mapped { try await store.listAppraisals(query) }
        let items = page.items
        let tenantQuery = viewer.serviceWide ? Self.query([("tenant", tenant)]) : ""
        let filters: [(String, String?)] = [
            ("tenant", viewer.serviceWide ? tenant : nil), ("workload", query.workloadId), ("tee", tee), ("status", statusText),
            ("since", Self.parameter(request, "since")), ("until", Self.parameter(request, "until")),
        ]
        var context: [String: Any] = [
            "tenant": tenant, "serviceWide": viewer.serviceWide, "workload": query.workloadId ?? "",
            "since": Self.parameter(request, "since") ?? "",
            "until": Self.parameter(request, "until") ?? "",
            "tees": Self.options(["tdx", "sev", "sev-es"], selected: tee, any: "any"),
            "statuses": Self.options(AppraisalStatus.allCases.map(\.rawValue), selected: statusText, any: "any"),
            "items": items.map { item -> [String: Any] in
                [
                    "id": item.id, "time": Self.time(item.createdAt), "workload": item.workloadId, "tee": item.tee,
                    "status": item.status.rawValue, "policy": "\(item.policyId)@sha256:\(item.policySHA256.prefix(12))…",
                    "tenantQuery": tenantQuery,
                ]
            },
        ]
        if let next = page.nextCursor { context["next"] = "/ui/appraisals" + Self.query(filters + [("cursor", next)]) }
        return render("appraisals", title: "Appraisals", context: context, viewer: viewer, nav: .appraisals)
    }

    /// The AR4SI tier of a trust-vector value (service.md §5.1).
    static func tier(_ value: Int64) -> String {
        switch value {
        case -1...1: "none"
        case 2...31, -32 ... -2: "affirming"
        case 32...95, -96 ... -33: "warning"
        default: "contraindicated"
        }
    }

    /// A trace value as short text: strings as they are, anything else as compact JSON.
    static func text(_ value: JSONValue?) -> String {
        guard let value else { return "" }
        if case .string(let string) = value { return string }
        return String(decoding: CanonicalJSON.encode(value), as: UTF8.self)
    }

    func appraisal(_ request: Request, _ viewer: Viewer, id: String) async throws -> Response {
        let tenant = Self.tenant(viewer, request)
        let appraisal = try await mapped { try await store.appraisal(tenantId: tenant, id: id) }
        var context: [String: Any] = [
            "id": appraisal.id, "tenant": appraisal.tenantId, "workload": appraisal.workloadId, "tee": appraisal.tee,
            "time": Self.time(appraisal.createdAt), "status": appraisal.status.rawValue,
            "verdictText": Self.verdictText(appraisal.status),
            "policy": "\(appraisal.policyId)@sha256:\(appraisal.policySHA256)", "evidence": Hex.encode(appraisal.evidenceSHA256),
            "claims": PrettyJSON.format(appraisal.claims),
        ]
        if let jti = appraisal.tokenJTI { context["jti"] = jti }
        context["vector"] = (appraisal.trustVector.objectValue ?? [:]).sorted { $0.key < $1.key }.map { name, value -> [String: Any] in
            let number = value.integerValue ?? 0
            return ["name": name, "value": String(number), "tier": Self.tier(number)]
        }
        var firstFailureSeen = false
        var rows: [[String: Any]] = []
        for step in appraisal.trace.arrayValue ?? [] {
            let result = step["result"]?.stringValue ?? ""
            var row: [String: Any] = [
                "rule": Self.text(step["rule"]), "claim": Self.text(step["claim"]), "operator": Self.text(step["operator"]),
                "expected": Self.text(step["expected"]), "actual": Self.text(step["actual"]), "result": result,
            ]
            if result == "fail" && !firstFailureSeen {
                firstFailureSeen = true
                row["first"] = true
                context["firstFailure"] = row
            }
            rows.append(row)
        }
        context["trace"] = rows
        if let tdx = appraisal.claims["tdx"] {
            context["hasTD"] = true
            let body = tdx["quote"]?["body"]
            context["td"] = (["mr_td", "mr_config_id", "mr_owner", "rtmr_0", "rtmr_1", "rtmr_2", "rtmr_3"]).compactMap {
                name -> [String: Any]? in
                guard let value = body?[name] else { return nil }
                return ["name": name, "value": Self.text(value)]
            }
            context["tcbStatus"] = Self.text(tdx["tcb_status"])
            context["advisories"] = (tdx["advisory_ids"]?.arrayValue ?? []).compactMap(\.stringValue).map { id -> [String: Any] in
                ["id": id, "url": Self.advisoryURL(id)]
            }
        }
        if let policy = policies?.current.policy(id: appraisal.policyId) {
            if policy.sha256 == appraisal.policySHA256 {
                context["policyNote"] = "\(policy.file), the version that decided (sha256 matches)."
                context["policySource"] = PrettyJSON.format(policy.document)
            } else {
                context["policyNote"] =
                    "The policy has changed since this decision (now \(policy.reference)); the version that decided is no longer loaded."
            }
        } else {
            context["policyNote"] = "The policy \(appraisal.policyId) is no longer loaded."
        }
        if let log, let record = QueryRoutes.auditRecord(of: appraisal, in: log) {
            let audit: [String: Any] = ["seq": String(record.seq), "leaf": String(Hex.encode(record.leafHash).prefix(16)) + "…"]
            context["audit"] = audit
        }
        return render("appraisal", title: "Appraisal \(appraisal.id)", context: context, viewer: viewer, nav: .appraisals)
    }

    static func verdictText(_ status: AppraisalStatus) -> String {
        switch status {
        case .affirming: "the evidence met the policy."
        case .warning: "the evidence met the policy with warnings."
        case .contraindicated: "the evidence did not meet the policy."
        case .none: "no decision could be made from the evidence."
        }
    }

    /// Intel's security advisory page of an `INTEL-SA-NNNNN` id (the id is checked, so the link cannot be bent).
    static func advisoryURL(_ id: String) -> String {
        let digits = id.hasPrefix("INTEL-SA-") ? id.dropFirst("INTEL-SA-".count) : ""
        guard !digits.isEmpty, digits.count <= 8, digits.allSatisfy(\.isASCII), digits.allSatisfy(\.isNumber) else {
            return "https://www.intel.com/content/www/us/en/security-center/default.html"
        }
        return "https://www.intel.com/content/www/us/en/security-center/advisory/intel-sa-\(digits).html"
    }

    // MARK: Launches

    func requireLog() throws -> AuditLog {
        guard let log else { throw ConsoleError(.serviceUnavailable, "No audit log", "The service runs without an audit log.") }
        return log
    }

    /// Audit reads with their errors mapped (an out-of-range cursor is the reviewer's).
    func read<T>(_ body: () throws(AuditError) -> T) throws -> T {
        do { return try body() } catch {
            if error.code == .outOfRange { throw ConsoleError.badRequest(error.reason) }
            throw ConsoleError(.internalServerError, "Audit log unavailable", "The audit log could not be read.")
        }
    }

    /// Launches are found through their `launch.created` audit entries (tenant-scoped as the `/v1` audit queries are)
    /// and read from the store under their own tenant.
    func launches(_ request: Request, _ viewer: Viewer) async throws -> Response {
        let log = try requireLog()
        let tenant = try AuditRoutes.scopedTenant(viewer.principal, requested: Self.parameter(request, "tenant"))
        let records = try read { () throws(AuditError) in
            try log.reader.latestEntries(tenant: tenant, type: "launch.created", limit: Self.pageSize)
        }
        var items: [[String: Any]] = []
        for record in records.reversed() {
            guard let id = record.entry["object"]?["launch"]?.stringValue, let owner = record.entry["tenant"]?.stringValue,
                viewer.principal.canSee(tenant: owner)
            else { continue }
            guard let launch = try? await store.launch(tenantId: owner, id: id) else { continue }
            var steps: [[String: Any]] = [
                ["name": "created", "time": Self.time(launch.createdAt), "outcome": "session made, guest started paused"]
            ]
            if let measured = launch.measuredAt {
                steps.append([
                    "name": "measured", "time": Self.time(measured),
                    "outcome": launch.measurement.map { "measurement \(Hex.encode($0))" } ?? "",
                ])
            }
            if let decided = launch.decidedAt {
                let allowed = launch.state == .allowed || launch.state == .injected
                steps.append([
                    "name": allowed ? "allowed" : "denied", "time": Self.time(decided),
                    "outcome": (allowed ? "measurement accepted" : "refused") + (launch.decisionReason.map { ": \($0)" } ?? "")
                        + (launch.appraisalId.map { " (appraisal \($0))" } ?? ""),
                ])
            }
            if let injected = launch.injectedAt {
                steps.append(["name": "injected", "time": Self.time(injected), "outcome": "secret injected, guest resumed"])
            }
            items.append([
                "id": launch.id, "workload": launch.workloadId, "tee": launch.tee, "tenant": launch.tenantId, "policy": launch.policyId,
                "state": launch.state.rawValue, "stateClass": launch.state.rawValue, "steps": steps,
            ])
        }
        var context: [String: Any] = ["items": items]
        if let tenant { context["tenant"] = tenant }
        return render("launches", title: "Launches", context: context, viewer: viewer, nav: .launches)
    }

    // MARK: Audit

    /// The latest signed checkpoint covering at least `size` entries, signed now when there is none. The console signs
    /// at most one checkpoint per ``ConsoleCaches/signingInterval`` (a page reloaded under load waits for the next
    /// slot, then uses whatever covers it by then: the service's checkpoint timer or another request may have signed
    /// meanwhile), so that reviewers cannot turn page loads into a stream of writes beside the decisions.
    func checkpoint(covering size: UInt64, _ log: AuditLog) async throws -> SignedCheckpoint {
        if let latest = log.latestCheckpoint(), latest.checkpoint.size >= size { return latest }
        if let wait = caches.signingSlot(now: Date()) {
            try? await Task.sleep(for: .milliseconds(Int(wait * 1000) + 1))
            if let latest = log.latestCheckpoint(), latest.checkpoint.size >= size { return latest }
            _ = caches.signingSlot(now: Date(), force: true)
        }
        do { return try await log.signCheckpoint() } catch {
            throw ConsoleError(.internalServerError, "No checkpoint", "The log could not sign a checkpoint.")
        }
    }

    static func checkpointContext(_ signed: SignedCheckpoint) -> [String: Any] {
        [
            "noteBase64": Base64.encode(Array(signed.note.utf8)), "note": signed.note, "size": String(signed.checkpoint.size),
            "root": Hex.encode(signed.checkpoint.rootHash),
        ]
    }

    func auditList(_ request: Request, _ viewer: Viewer) async throws -> Response {
        let log = try requireLog()
        let tenant = try AuditRoutes.scopedTenant(viewer.principal, requested: Self.parameter(request, "tenant"))
        let type = Self.parameter(request, "type")
        if let type, !AuditEventType.all.contains(type) { throw ConsoleError.badRequest("\(type) is not an audit event type") }
        let since = try Self.parseTime(Self.parameter(request, "since"), "From")
        var cursor: UInt64?
        if let text = Self.parameter(request, "cursor") {
            guard let value = UInt64(text) else { throw ConsoleError.badRequest("the cursor is not a number") }
            cursor = value
        }
        // In log order, as `/v1/audit/entries` pages.
        let page = try read { () throws(AuditError) in
            try log.entries(tenant: tenant, type: type, since: since, limit: Self.pageSize, cursor: cursor)
        }
        // A checkpoint of the whole log as it is now (signed if the log grew since the last one), so that the
        // reviewer's browser checks the log's growth since its last visit up to the present.
        let signed = try await checkpoint(covering: log.head.size, log)
        var context = Self.checkpointContext(signed)
        context["serviceWide"] = viewer.serviceWide
        context["tenant"] = tenant ?? ""
        context["since"] = Self.parameter(request, "since") ?? ""
        context["types"] = Self.options(AuditEventType.all.sorted(), selected: type, any: "any")
        context["items"] = page.records.map { record -> [String: Any] in
            let entry = record.entry
            return [
                "seq": String(record.seq), "time": Self.text(entry["time"]), "tenant": Self.text(entry["tenant"]),
                "type": Self.text(entry["type"]), "actor": Self.text(entry["actor"]),
            ]
        }
        if let next = page.nextCursor {
            context["next"] =
                "/ui/audit"
                + Self.query([
                    ("tenant", viewer.serviceWide ? tenant : nil), ("type", type), ("since", Self.parameter(request, "since")),
                    ("cursor", String(next)),
                ])
        }
        return render("audit", title: "Audit log", context: context, viewer: viewer, nav: .audit, script: true)
    }

    func auditEntry(_ request: Request, _ viewer: Viewer, seq text: String) async throws -> Response {
        let log = try requireLog()
        guard let seq = UInt64(text) else { throw ConsoleError.notFound }
        let page = try read { () throws(AuditError) in try log.entries(limit: 1, cursor: seq) }
        // A tenant role sees only its own tenant's entries; another's is a 404, as `/v1/audit/proofs/inclusion` answers.
        guard let record = page.records.first, record.seq == seq,
            viewer.principal.canSee(tenant: record.entry["tenant"]?.stringValue ?? "")
        else { throw ConsoleError.notFound }
        let signed = try await checkpoint(covering: seq + 1, log)
        let proof = try read { () throws(AuditError) in try log.inclusionProof(index: seq, treeSize: signed.checkpoint.size) }
        var context = Self.checkpointContext(signed)
        context["seq"] = String(seq)
        context["treeSize"] = String(proof.treeSize)
        context["leaf"] = Hex.encode(record.leafHash)
        context["bodyBase64"] = Base64.encode(record.body)
        context["proof"] = proof.hashes.map { Hex.encode($0) }.joined(separator: ",")
        context["proofCount"] = String(proof.hashes.count)
        context["json"] = PrettyJSON.format(record.entry)
        context["time"] = Self.text(record.entry["time"])
        context["tenant"] = Self.text(record.entry["tenant"])
        context["type"] = Self.text(record.entry["type"])
        // The server's own check of the stored row: the entry's bytes must hash to the leaf the tree was built from.
        if !constantTimeEqual(MerkleHash.leaf(record.body), record.leafHash) { context["leafMismatch"] = true }
        if let appraisalID = record.entry["appraisal"]?["id"]?.stringValue, appraisalID.hasPrefix("apr_") {
            context["appraisalID"] = appraisalID
            context["tenantQuery"] = viewer.serviceWide ? Self.query([("tenant", record.entry["tenant"]?.stringValue)]) : ""
        }
        return render("entry", title: "Audit entry #\(seq)", context: context, viewer: viewer, nav: .audit, script: true)
    }

    // MARK: Overview

    func overview(_ request: Request, _ viewer: Viewer) async throws -> Response {
        let log = try requireLog()
        let tenant = try AuditRoutes.scopedTenant(viewer.principal, requested: Self.parameter(request, "tenant"))
        let now = Date()
        // Cached for a minute per tenant (and the collateral rows for everyone): the page reads up to 100,000 entries
        // and every cached platform's files, and any signed-in reviewer can reload it.
        let counts: (days: [[ConsoleOverview.Series: Int]], truncated: Bool)
        if let cached = caches.counts(tenant: tenant, now: now) {
            counts = cached
        } else {
            counts = try read { () throws(AuditError) in try ConsoleOverview.dailyCounts(log: log, tenant: tenant, now: now) }
            caches.store(counts: counts, tenant: tenant, now: now)
        }
        // The platforms the service holds collateral for are service-wide: tenant roles do not see them.
        var collateralRows: [[String: String]] = []
        if viewer.serviceWide {
            if let cached = caches.collateralRows(now: now) {
                collateralRows = cached
            } else {
                collateralRows = await ConsoleOverview.collateralRows(collateral, now: now)
                caches.store(collateralRows: collateralRows, now: now)
            }
        }
        var context: [String: Any] = [
            "serviceWide": viewer.serviceWide,
            "chart": ConsoleOverview.chart(counts.days, now: now),
            "legend": ConsoleOverview.Series.allCases.map { series -> [String: Any] in
                ["name": series.rawValue, "total": String(counts.days.reduce(0) { $0 + ($1[series] ?? 0) })]
            },
            "truncated": counts.truncated, "limit": String(ConsoleOverview.maximumEntries),
            "collateral": collateralRows,
        ]
        if let tenant { context["tenant"] = tenant }
        return render("overview", title: "Overview", context: context, viewer: viewer, nav: .overview)
    }
}

/// A console failure shown as an HTML page (with the console's headers), never as JSON.
struct ConsoleError: Error {
    let status: HTTPResponse.Status
    let heading: String
    let message: String

    init(_ status: HTTPResponse.Status, _ heading: String, _ message: String) {
        self.status = status
        self.heading = heading
        self.message = message
    }

    static func badRequest(_ message: String) -> ConsoleError { ConsoleError(.badRequest, "Bad request", message) }
    static let notFound = ConsoleError(.notFound, "Not found", "There is nothing here you may see.")
    static let csrf = ConsoleError(.forbidden, "Refused", "The form's CSRF token is missing or wrong; reload the page and try again.")
}
