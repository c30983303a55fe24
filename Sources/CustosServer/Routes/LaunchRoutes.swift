import CustosCrypto
import CustosStore
import Foundation
import Hummingbird

/// `/v1/launches`: the SEV/SEV-ES measured launch (service.md §7, §8.2). The launcher on the host relays blobs only:
/// it sends the platform's PDH and chain, gets the GODH and session for LAUNCH_START, sends LAUNCH_MEASURE's output
/// and gets the LAUNCH_SECRET packet, which only the guest's firmware can open.
///
/// Tenant: the credential's; a service-wide credential names it (`tenant` member on create, `?tenant=` otherwise).
/// Another tenant's launch is a 404.
struct LaunchRoutes: Sendable {
    let store: any Store
    let authenticator: Authenticator
    let jsonLimit: Int
    /// Nil when the service runs without an audit log or policies: launches then answer 503 (nothing is decided
    /// unless it is logged).
    let service: LaunchService?

    init(
        store: any Store, audit: AuditRecorder?, policies: PolicyRegistry?, anchors: TrustAnchors, referenceValues: ReferenceValueCache,
        jsonLimit: Int
    ) {
        self.store = store
        self.authenticator = Authenticator(store: store)
        self.jsonLimit = jsonLimit
        if let audit, let policies {
            service = LaunchService(store: store, audit: audit, policies: policies, anchors: anchors, referenceValues: referenceValues)
        } else {
            service = nil
        }
    }

    /// Who may run launches.
    static let launchRoles: Set<Role> = [.launcher, .tenantAdmin, .serviceAdmin]

    func add(to router: Router<CustosRequestContext>) {
        router.post("/v1/launches") { request, context in try await create(request, context: context) }
        router.post("/v1/launches/{id}/measurement") { request, context in
            try await measure(request, context: context, id: try context.parameters.require("id"))
        }
        router.get("/v1/launches/{id}") { request, context in
            try await get(request, id: try context.parameters.require("id"))
        }
    }

    func requireService() throws -> LaunchService {
        guard let service else { throw Problem.unavailable("launches need the audit log and the policies", retryAfter: 60) }
        return service
    }

    /// The tenant a request acts for: the credential's own (naming another is a 404), or the named one for a
    /// service-wide credential.
    static func tenant(of principal: Principal, requested: String?) throws -> String {
        if let own = principal.tenantID {
            if let requested, requested != own { throw Problem.notFound() }
            return own
        }
        guard let requested, !requested.isEmpty else {
            throw Problem.badRequest("a service-wide credential must name the tenant (\"tenant\")")
        }
        return requested
    }

    // MARK: Routes

    func create(_ request: Request, context: CustosRequestContext) async throws -> Response {
        let principal = try await authenticator.require(request, roles: Self.launchRoles)
        let body = try await HTTPJSON.object(request, limit: jsonLimit)
        let parsed = try LaunchRequest(body)
        let tenant = try Self.tenant(of: principal, requested: parsed.tenant)
        let created = try await requireService().create(
            parsed, tenant: tenant, principal: principal, requestID: context.requestID.isEmpty ? nil : context.requestID, now: Date())
        return HTTPJSON.response(
            [
                "launch_id": .string(created.launch.id), "tenant": .string(tenant), "tee": .string(created.launch.tee),
                "guest_policy": .integer(Int64(created.launch.guestPolicy)), "godh_cert": .string(Base64.encode(created.godh)),
                "session_blob": .string(Base64.encode(created.session)),
                "expires_at": .string(RFC3339.format(created.launch.expiresAt, milliseconds: true)),
            ],
            status: .created, headers: [.location: "/v1/launches/\(created.launch.id)"])
    }

    func measure(_ request: Request, context: CustosRequestContext, id: String) async throws -> Response {
        let principal = try await authenticator.require(request, roles: Self.launchRoles)
        let tenant = try Self.tenant(of: principal, requested: request.uri.queryParameters.get("tenant"))
        let body = try await HTTPJSON.object(request, limit: jsonLimit)
        let parsed = try MeasurementRequest(body)
        let decision = try await requireService().measure(
            parsed, launchID: id, tenant: tenant, principal: principal, requestID: context.requestID.isEmpty ? nil : context.requestID,
            evidenceSHA256: Digest.sha256(CanonicalJSON.encode(.object(body))), now: Date())
        switch decision {
        case .allowed(let appraisalID, let header, let data):
            return HTTPJSON.response([
                "decision": "allow", "launch_id": .string(id), "appraisal_id": .string(appraisalID),
                "secret": ["header_b64": .string(Base64.encode(header)), "data_b64": .string(Base64.encode(data))],
            ])
        case .denied(let appraisalID, let reason):
            throw Problem(
                .forbidden, "policy-denied", reason, extensions: ["appraisal_id": .string(appraisalID), "decision": "deny"])
        }
    }

    func get(_ request: Request, id: String) async throws -> Response {
        let principal = try await authenticator.require(request, roles: Set(Role.allCases))
        let tenant = try Self.tenant(of: principal, requested: request.uri.queryParameters.get("tenant"))
        let launch = try await mapped { try await store.launch(tenantId: tenant, id: id) }
        var document: [String: JSONValue] = [
            "launch_id": .string(launch.id), "tenant": .string(launch.tenantId), "workload_id": .string(launch.workloadId),
            "tee": .string(launch.tee), "policy_id": .string(launch.policyId), "guest_policy": .integer(Int64(launch.guestPolicy)),
            "state": .string(launch.state.rawValue), "created_at": .string(RFC3339.format(launch.createdAt, milliseconds: true)),
            "expires_at": .string(RFC3339.format(launch.expiresAt, milliseconds: true)),
        ]
        if let measurement = launch.measurement { document["measurement_b64"] = .string(Base64.encode(measurement)) }
        if let measuredAt = launch.measuredAt { document["measured_at"] = .string(RFC3339.format(measuredAt, milliseconds: true)) }
        if let decidedAt = launch.decidedAt { document["decided_at"] = .string(RFC3339.format(decidedAt, milliseconds: true)) }
        if let reason = launch.decisionReason { document["decision_reason"] = .string(reason) }
        if let injectedAt = launch.injectedAt { document["injected_at"] = .string(RFC3339.format(injectedAt, milliseconds: true)) }
        if let appraisalID = launch.appraisalId {
            document["appraisal_id"] = .string(appraisalID)
            if let appraisal = try? await store.appraisal(tenantId: tenant, id: appraisalID) {
                document["appraisal"] = [
                    "id": .string(appraisal.id), "status": .string(appraisal.status.rawValue),
                    "policy": .string("\(appraisal.policyId)@sha256:\(appraisal.policySHA256)"), "trust_vector": appraisal.trustVector,
                    "trace": appraisal.trace,
                ]
            }
        }
        return HTTPJSON.response(.object(document))
    }
}
