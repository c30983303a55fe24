import CustosAudit
import CustosCrypto
import CustosPolicy
import CustosStore
import Foundation
import HTTPTypes
import Hummingbird
import Logging

/// Tenant queries (service.md §8.2): appraisals (paged, filtered), one appraisal with its audit entry and inclusion
/// proof, a workload's latest status; and the policies: list, show, dry-run test, atomic reload.
struct QueryRoutes: Sendable {
    let store: any Store
    let authenticator: Authenticator
    let policies: PolicyRegistry
    let audit: AuditRecorder
    let referenceValues: ReferenceValueCache
    let jsonLimit: Int

    static let readers: Set<Role> = [.serviceAdmin, .tenantAdmin, .tenantReader, .auditor]

    func add(to router: Router<CustosRequestContext>) {
        router.get("/v1/appraisals") { request, _ in try await listAppraisals(request) }
        router.get("/v1/appraisals/{id}") { request, context in try await appraisal(request, id: try context.parameters.require("id")) }
        router.get("/v1/workloads/{id}/status") { request, context in
            try await workloadStatus(request, id: try context.parameters.require("id"))
        }
        router.get("/v1/policies") { request, _ in try await listPolicies(request) }
        router.get("/v1/policies/{id}") { request, context in try await policy(request, id: try context.parameters.require("id")) }
        router.post("/v1/policies/{id}") { request, context in
            let action = try context.parameters.require("id")
            guard action.hasSuffix(":test") else { throw Problem.notFound() }
            return try await testPolicy(request, id: String(action.dropLast(":test".count)))
        }
        router.post("/v1/policies:reload") { request, context in try await reload(request, logger: context.logger) }
    }

    /// The tenant a query is about: the credential's own, or `?tenant=` (default `default`) for service-wide roles.
    func tenant(of principal: Principal, _ request: Request) throws -> String {
        Self.tenant(of: principal, requested: request.uri.queryParameters.get("tenant"))
    }

    /// The tenant a query is about (shared with the console): the credential's own, else `requested`, else `default`.
    static func tenant(of principal: Principal, requested: String?) -> String {
        if let own = principal.tenantID { return own }
        return requested ?? Bootstrap.defaultTenant
    }

    /// The audit entry of an appraisal, shared with the console. Both are written with the same instant: the row
    /// keeps it floored to the millisecond, the entry rounded to it, so the entry is looked up among the tenant's
    /// entries of the 20 ms around it (the time index finds those without reading the rest of the log). A wider
    /// window parsed every entry of a busy tenant's second (~1,200 at the service's flow rate) to find one.
    static func auditRecord(of appraisal: Appraisal, in log: AuditLog) -> AuditRecord? {
        try? log.reader.entries(
            tenant: appraisal.tenantId, since: appraisal.createdAt.addingTimeInterval(-0.01),
            until: appraisal.createdAt.addingTimeInterval(0.01), limit: 1_000
        ).records.first(where: { $0.entry["appraisal"]?["id"]?.stringValue == appraisal.id })
    }

    static func document(_ appraisal: Appraisal, full: Bool) -> JSONValue {
        var members: [String: JSONValue] = [
            "id": .string(appraisal.id), "tenant": .string(appraisal.tenantId), "workload_id": .string(appraisal.workloadId),
            "tee": .string(appraisal.tee), "created_at": .string(RFC3339.format(appraisal.createdAt, milliseconds: true)),
            "status": .string(appraisal.status.rawValue), "policy": .string("\(appraisal.policyId)@sha256:\(appraisal.policySHA256)"),
            "trust_vector": appraisal.trustVector, "evidence_sha256": .string(Hex.encode(appraisal.evidenceSHA256)),
        ]
        if let jti = appraisal.tokenJTI { members["token_jti"] = .string(jti) }
        if full {
            members["claims"] = appraisal.claims
            members["trace"] = appraisal.trace
        }
        return .object(members)
    }

    func listAppraisals(_ request: Request) async throws -> Response {
        let principal = try await authenticator.require(request, roles: Self.readers)
        let parameters = request.uri.queryParameters
        var query = AppraisalQuery(tenantId: try tenant(of: principal, request))
        query.workloadId = parameters.get("workload")
        if let since = parameters.get("since") {
            guard let date = RFC3339.parse(since) else { throw Problem.badRequest("since must be an RFC 3339 time") }
            query.since = date
        }
        if let until = parameters.get("until") {
            guard let date = RFC3339.parse(until) else { throw Problem.badRequest("until must be an RFC 3339 time") }
            query.until = date
        }
        if let tee = parameters.get("tee") {
            guard ["tdx", "sev", "sev-es"].contains(tee) else { throw Problem.badRequest("tee is one of tdx, sev, sev-es") }
            query.tee = tee
        }
        if let status = parameters.get("status") {
            guard let value = AppraisalStatus(rawValue: status) else {
                throw Problem.badRequest("status is one of \(AppraisalStatus.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            query.status = value
        }
        if let limit = parameters.get("limit") {
            guard let value = Int(limit), (1...AppraisalQuery.maximumLimit).contains(value) else {
                throw Problem.badRequest("limit is 1…\(AppraisalQuery.maximumLimit)")
            }
            query.limit = value
        }
        query.cursor = parameters.get("cursor")
        let page = try await mapped { try await store.listAppraisals(query) }
        var document: [String: JSONValue] = ["items": .array(page.items.map { Self.document($0, full: false) })]
        if let next = page.nextCursor { document["next_cursor"] = .string(next) }
        return HTTPJSON.response(.object(document))
    }

    func appraisal(_ request: Request, id: String) async throws -> Response {
        let principal = try await authenticator.require(request, roles: Self.readers)
        let appraisal = try await mapped { try await store.appraisal(tenantId: try tenant(of: principal, request), id: id) }
        guard case .object(var document) = Self.document(appraisal, full: true) else { throw Problem.internalError() }
        // The audit entry of the appraisal (written at the same instant) and its inclusion proof.
        if let record = Self.auditRecord(of: appraisal, in: audit.log) {
            let size = audit.log.head.size
            var auditDocument: [String: JSONValue] = [
                "index": .integer(Int64(record.seq)), "leaf_hash": .string(Hex.encode(record.leafHash)), "entry": record.entry,
            ]
            if let proof = try? audit.log.reader.inclusionProof(index: record.seq, treeSize: size) {
                auditDocument["inclusion_proof"] = [
                    "tree_size": .integer(Int64(proof.treeSize)), "hashes": .array(proof.hashes.map { .string(Hex.encode($0)) }),
                ]
            }
            document["audit"] = .object(auditDocument)
        }
        return HTTPJSON.response(.object(document))
    }

    func workloadStatus(_ request: Request, id: String) async throws -> Response {
        let principal = try await authenticator.require(request, roles: Self.readers)
        let page = try await mapped {
            try await store.listAppraisals(AppraisalQuery(tenantId: try tenant(of: principal, request), workloadId: id, limit: 1))
        }
        guard let latest = page.items.first else { throw Problem.notFound("no appraisal of workload \(id)") }
        return HTTPJSON.response([
            "workload_id": .string(id), "status": .string(latest.status.rawValue), "appraisal_id": .string(latest.id),
            "tee": .string(latest.tee), "appraised_at": .string(RFC3339.format(latest.createdAt, milliseconds: true)),
            "policy": .string("\(latest.policyId)@sha256:\(latest.policySHA256)"),
        ])
    }

    // MARK: Policies

    /// Tenant roles see the shared appraisal/launch policies and their own tenant's release policy.
    func visible(_ policy: LoadedPolicy, to principal: Principal) -> Bool {
        guard let release = policy.release else { return true }
        return principal.canSee(tenant: release.tenant)
    }

    static func summary(_ policy: LoadedPolicy) -> JSONValue {
        var members: [String: JSONValue] = [
            "id": .string(policy.id), "kind": .string(policy.kind.rawValue), "file": .string(policy.file),
            "sha256": .string(policy.sha256), "reference": .string(policy.reference),
        ]
        if let tee = policy.tee { members["tee"] = .string(tee) }
        if let release = policy.release { members["tenant"] = .string(release.tenant) }
        return .object(members)
    }

    func listPolicies(_ request: Request) async throws -> Response {
        let principal = try await authenticator.require(request, roles: Self.readers)
        let set = policies.current
        return HTTPJSON.response(["policies": .array(set.policies.filter { visible($0, to: principal) }.map(Self.summary))])
    }

    func policy(_ request: Request, id: String) async throws -> Response {
        let principal = try await authenticator.require(request, roles: Self.readers)
        guard let policy = policies.current.policy(id: id), visible(policy, to: principal) else { throw Problem.notFound() }
        guard case .object(var members) = Self.summary(policy) else { throw Problem.internalError() }
        members["document"] = policy.document
        return HTTPJSON.response(.object(members))
    }

    /// A dry run: `{claims}` or `{appraisal_id}`, and for a release policy `{path, status}`; the trace, no token, no
    /// release, nothing recorded.
    func testPolicy(_ request: Request, id: String) async throws -> Response {
        let principal = try await authenticator.require(request, roles: [.serviceAdmin, .tenantAdmin])
        let set = policies.current
        guard let policy = set.policy(id: id), visible(policy, to: principal) else { throw Problem.notFound() }
        let body = try await HTTPJSON.object(request, limit: Int(1 << 20))
        try HTTPJSON.checkKeys(body, allowed: ["claims", "appraisal_id", "path", "status", "tenant"])
        let requested = try HTTPJSON.optionalString(body, "tenant")
        let tenant = principal.tenantID ?? requested ?? Bootstrap.defaultTenant
        let claims: JSONValue
        if let given = body["claims"] {
            guard case .object = given else { throw Problem.badRequest("\"claims\" must be a JSON object (a claims document)") }
            claims = given
        } else if let appraisalID = try HTTPJSON.optionalString(body, "appraisal_id") {
            claims = try await mapped { try await store.appraisal(tenantId: tenant, id: appraisalID) }.claims
        } else {
            throw Problem.badRequest("give \"claims\" or \"appraisal_id\"")
        }
        let now = Date()
        let tenantSets = try await mapped { try await referenceValues.sets(tenant: tenant, names: policy.referenceValueNames, now: now) }
        let references = set.referenceValues(overriddenBy: tenantSets)
        let result: PolicyResult
        if let release = policy.release {
            let path = try HTTPJSON.string(body, "path")
            guard let status = TrustTier(rawValue: try HTTPJSON.optionalString(body, "status") ?? "affirming") else {
                throw Problem.badRequest("status is none, affirming, warning or contraindicated")
            }
            result = release.evaluate(path: path, status: status, claims: claims, referenceValues: references, at: now)
        } else {
            guard let evaluated = policy.evaluate(claims: claims, referenceValues: references, at: now) else {
                throw Problem.internalError()
            }
            result = evaluated
        }
        return HTTPJSON.response(result.jsonValue)
    }

    func reload(_ request: Request, logger: Logger) async throws -> Response {
        let principal = try await authenticator.require(request, roles: [.serviceAdmin])
        let actor: JSONValue = ["kind": "admin", "id": .string(principal.credentialID)]
        // Load, record, then install: a set goes into force only once its `policy.loaded` entry is durable (a
        // decision that is not logged is not taken), and one reload at a time.
        let outcome = try await policies.exclusively { () async throws -> Response in
            let set: PolicySet
            do throws(PolicyLoadError) { set = try policies.load() } catch {
                try await audit.record(
                    "policy.rejected", tenant: Bootstrap.defaultTenant, actor: actor,
                    object: ["problems": .integer(Int64(error.problems.count))])
                throw Problem(
                    .conflict, "policy-invalid",
                    "the policies were not reloaded: \(error.problems.count) problem(s); the previous set stays active",
                    extensions: ["errors": .array(error.problems.map { .string($0.description) })])
            }
            try await audit.record(
                "policy.loaded", tenant: Bootstrap.defaultTenant, actor: actor,
                object: ["policies": .array(set.policies.map { .string($0.reference) })])
            policies.install(set)
            PolicyRegistry.warnAboutExamples(set, logger: logger)
            return HTTPJSON.response(["policies": .array(set.policies.map(Self.summary))])
        }
        guard let outcome else { throw Problem.conflict("another policy reload is running; retry when it has finished") }
        return outcome
    }
}
