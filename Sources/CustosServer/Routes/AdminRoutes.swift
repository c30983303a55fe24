import CustosAudit
import CustosCrypto
import CustosStore
import Foundation
import Hummingbird

/// `/v1` tenants, credentials, secrets (admin side) and reference values: the parts of the native API that only
/// need the store. Every object is scoped by tenant; another tenant's object is a 404.
///
/// Every change is an audit entry (service.md §11.1) naming the credential that made it: `secret.created`,
/// `secret.rotated`, `secret.deleted`, `refvalue.changed`, and `config.changed` for a new tenant and a credential
/// issued or revoked, commit in one transaction with the change (neither without the other). Without an audit log the
/// changing routes answer 503.
struct AdminRoutes: Sendable {
    let store: any Store
    let audit: AuditRecorder?
    let authenticator: Authenticator
    let jsonLimit: Int
    /// Forgotten for a tenant when its reference values change.
    let referenceValueCache: ReferenceValueCache?
    /// Secret values are raw bytes (`application/octet-stream`), at most the store's limit.
    static let secretLimit = 64 << 10

    func add(to router: Router<CustosRequestContext>) {
        router.post("/v1/tenants") { request, context in try await createTenant(request, requestID: context.requestID) }
        router.post("/v1/tenants/{tenant}/tokens") { request, context in
            try await createToken(request, tenant: try context.parameters.require("tenant"), requestID: context.requestID)
        }
        router.delete("/v1/tenants/{tenant}/tokens/{id}") { request, context in
            try await revokeToken(
                request, tenant: try context.parameters.require("tenant"), id: try context.parameters.require("id"),
                requestID: context.requestID)
        }
        router.delete("/v1/tokens/{id}") { request, context in
            try await revokeAnyToken(request, id: try context.parameters.require("id"), requestID: context.requestID)
        }
        router.on("/v1/secrets/{tenant}/**", method: .put) { request, context in
            try await secretRoute(request, context: context)
        }
        router.on("/v1/secrets/{tenant}/**", method: .post) { request, context in
            try await secretRoute(request, context: context)
        }
        router.on("/v1/secrets/{tenant}/**", method: .delete) { request, context in
            try await secretRoute(request, context: context)
        }
        router.put("/v1/reference-values/{tenant}/{name}") { request, context in
            try await putReferenceValues(
                request, tenant: try context.parameters.require("tenant"), name: try context.parameters.require("name"),
                requestID: context.requestID)
        }
        router.get("/v1/reference-values/{tenant}/{name}") { request, context in
            try await getReferenceValues(
                request, tenant: try context.parameters.require("tenant"), name: try context.parameters.require("name"))
        }
    }

    // MARK: Tenants and credentials

    /// The audit recorder, or 503: a change that cannot be logged is not made.
    func recorder() throws -> AuditRecorder {
        guard let audit else { throw Problem.unavailable("the audit log is not open; no change can be recorded", retryAfter: 5) }
        return audit
    }

    static func actor(_ principal: Principal) -> JSONValue {
        ["kind": "admin", "id": .string(principal.credentialID), "role": .string(principal.role.rawValue)]
    }

    /// The `config.changed` event of a change a step made (tenants, credentials), or none: for a refused change, or
    /// when `describe` gives none. `describe` names the entry's tenant and object.
    func configChange<Value: Sendable>(
        _ change: String, by principal: Principal, requestID: String,
        _ describe: @escaping @Sendable (Value) -> (tenant: String, object: [String: JSONValue])?
    ) -> @Sendable (Result<Value, StoreError>) -> AuditEvent? {
        let actor = Self.actor(principal)
        return { result in
            guard case .success(let value) = result, let (tenant, object) = describe(value) else { return nil }
            var members = object
            members["change"] = .string(change)
            return AuditEvent(tenant: tenant, type: .configChanged, actor: actor, object: .object(members), requestId: requestID)
        }
    }

    func createTenant(_ request: Request, requestID: String) async throws -> Response {
        let principal = try await authenticator.require(request, roles: [.serviceAdmin])
        let audit = try recorder()
        let body = try await HTTPJSON.object(request, limit: jsonLimit)
        try HTTPJSON.checkKeys(body, allowed: ["id", "display_name"])
        let id = try HTTPJSON.string(body, "id")
        let displayName = try HTTPJSON.optionalString(body, "display_name") ?? id
        // The tenant and its `config.changed` entry commit together.
        let outcome = try await audit.record(
            after: store.tenantCreation(id: id, displayName: displayName, now: Date()),
            event: configChange("tenant.created", by: principal, requestID: requestID) { (tenant: Tenant) in
                (tenant.id, ["tenant": .string(tenant.id)])
            })
        let tenant = try await mapped { try outcome.value.get() }
        return HTTPJSON.response(
            [
                "id": .string(tenant.id), "display_name": .string(tenant.displayName),
                "created_at": .string(RFC3339.format(tenant.createdAt, milliseconds: true)),
            ],
            status: .created)
    }

    func createToken(_ request: Request, tenant: String, requestID: String) async throws -> Response {
        let principal = try await authenticator.require(request, roles: [.serviceAdmin, .tenantAdmin], tenant: tenant)
        let body = try await HTTPJSON.object(request, limit: jsonLimit)
        try HTTPJSON.checkKeys(body, allowed: ["role", "label", "expires_at"])
        guard let role = Role(rawValue: try HTTPJSON.string(body, "role")) else {
            throw Problem.badRequest("\"role\" is one of \(Role.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        // A tenant admin hands out its own tenant's roles only; service-wide roles need the service admin.
        if principal.role == .tenantAdmin, !role.requiresTenant {
            throw Problem.forbidden("a tenant-admin may not create \(role.rawValue) tokens")
        }
        let now = Date()
        let expires = try HTTPJSON.optionalDate(body, "expires_at")
        if let expires, expires <= now { throw Problem.badRequest("\"expires_at\" is in the past") }
        let audit = try recorder()
        // A service-wide credential has no tenant, but the tenant in the path must still exist.
        if !role.requiresTenant { _ = try await mapped { try await store.tenant(id: tenant) } }
        // The credential and its `config.changed` entry commit together (a service-wide one is logged under the
        // `default` tenant, as every service-wide entry is).
        let outcome = try await audit.record(
            after: store.credentialIssue(
                tenantId: role.requiresTenant ? tenant : nil, role: role, label: try HTTPJSON.optionalString(body, "label") ?? "",
                expiresAt: expires, now: now),
            event: configChange("credential.issued", by: principal, requestID: requestID) { (issued: IssuedCredential) in
                (
                    issued.credential.tenantId ?? Bootstrap.defaultTenant,
                    ["credential": .string(issued.credential.id), "role": .string(issued.credential.role.rawValue)]
                )
            })
        let issued = try await mapped { try outcome.value.get() }
        var document: [String: JSONValue] = [
            "id": .string(issued.credential.id), "role": .string(role.rawValue), "token": .string(issued.token),
        ]
        if let tenant = issued.credential.tenantId { document["tenant"] = .string(tenant) }
        if let expires { document["expires_at"] = .string(RFC3339.format(expires, milliseconds: true)) }
        return HTTPJSON.response(.object(document), status: .created)
    }

    func revokeToken(_ request: Request, tenant: String, id: String, requestID: String) async throws -> Response {
        let principal = try await authenticator.require(request, roles: [.serviceAdmin, .tenantAdmin], tenant: tenant)
        _ = try recorder()
        let credentials = try await mapped { try await store.listCredentials(tenantId: tenant) }
        guard credentials.contains(where: { $0.id == id }) else { throw Problem.notFound() }
        return try await revoke(id, by: principal, requestID: requestID)
    }

    /// `DELETE /v1/tokens/{id}`: the service admin revokes any credential, the service-wide ones (service-admin,
    /// auditor) included, which have no tenant to name in the path.
    func revokeAnyToken(_ request: Request, id: String, requestID: String) async throws -> Response {
        let principal = try await authenticator.require(request, roles: [.serviceAdmin])
        _ = try recorder()
        return try await revoke(id, by: principal, requestID: requestID)
    }

    /// Revokes and logs in one transaction. Revoking is idempotent (the first revocation time is kept): only the
    /// revocation that took effect is logged.
    func revoke(_ id: String, by principal: Principal, requestID: String) async throws -> Response {
        let outcome = try await recorder().record(
            after: store.credentialRevocation(id: id, now: Date()),
            event: configChange("credential.revoked", by: principal, requestID: requestID) { (revocation: CredentialRevocation) in
                guard revocation.tookEffect else { return nil }
                let credential = revocation.credential
                return (
                    credential.tenantId ?? Bootstrap.defaultTenant,
                    ["credential": .string(credential.id), "role": .string(credential.role.rawValue)]
                )
            })
        _ = try await mapped { try outcome.value.get() }
        return Response(status: .noContent)
    }

    // MARK: Secrets (admin side; release to guests is the KBS/EAR route)

    /// `PUT …/{path}` new version; `POST …/{path}:rotate`; `DELETE …/{path}/versions/{v}`.
    func secretRoute(_ request: Request, context: CustosRequestContext) async throws -> Response {
        let tenant = try context.parameters.require("tenant")
        let tail = context.parameters.getCatchAll().map(String.init)
        let principal = try await authenticator.require(request, roles: [.serviceAdmin, .tenantAdmin], tenant: tenant)
        let audit = try recorder()
        let actor = Self.actor(principal)
        let requestID = context.requestID
        /// The entry of a change that was made (none for a refused one).
        @Sendable func event<Value>(_ type: AuditEventType, _ object: @escaping @Sendable (Value) -> JSONValue)
            -> @Sendable (Result<Value, StoreError>) -> AuditEvent?
        {
            { result in
                guard case .success(let value) = result else { return nil }
                return AuditEvent(tenant: tenant, type: type, actor: actor, object: object(value), requestId: requestID)
            }
        }
        switch request.method {
        case .put:
            let path = tail.joined(separator: "/")
            let value = try await secretBody(request)
            let outcome = try await audit.record(
                after: store.secretPut(tenantId: tenant, path: path, value: value, now: Date()),
                event: event(.secretCreated) { ["secret": .string("\(tenant)/\($0.path)"), "version": .integer($0.version)] })
            let version = try await mapped { try outcome.value.get() }
            return HTTPJSON.response(Self.versionDocument(version), status: .created)
        case .post:
            guard let last = tail.last, last.hasSuffix(":rotate") else { throw Problem.notFound() }
            let path = (tail.dropLast() + [String(last.dropLast(":rotate".count))]).joined(separator: "/")
            let value = try await secretBody(request)
            let retireAfter = try request.uri.queryParameters.get("retire_after").map { text -> Date in
                guard let date = RFC3339.parse(text) else { throw Problem.badRequest("retire_after must be an RFC 3339 time") }
                return date
            }
            let outcome = try await audit.record(
                after: store.secretRotation(tenantId: tenant, path: path, value: value, retireAfter: retireAfter, now: Date()),
                event: event(.secretRotated) {
                    [
                        "secret": .string("\(tenant)/\($0.newVersion.path)"), "version": .integer($0.newVersion.version),
                        "retire_after": .string(RFC3339.format($0.retireAfter, milliseconds: true)),
                    ]
                })
            let rotation = try await mapped { try outcome.value.get() }
            return HTTPJSON.response(
                [
                    "new_version": Self.versionDocument(rotation.newVersion),
                    "retire_after": .string(RFC3339.format(rotation.retireAfter, milliseconds: true)),
                ])
        case .delete:
            guard tail.count >= 3, tail[tail.count - 2] == "versions", let version = Int64(tail[tail.count - 1]) else {
                throw Problem.notFound()
            }
            let path = tail.dropLast(2).joined(separator: "/")
            let outcome = try await audit.record(
                after: store.secretVersionDeletion(tenantId: tenant, path: path, version: version),
                event: event(.secretDeleted) { ["secret": .string("\(tenant)/\(path)"), "version": .integer($0)] })
            _ = try await mapped { try outcome.value.get() }
            return Response(status: .noContent)
        default:
            throw Problem.notFound()
        }
    }

    func secretBody(_ request: Request) async throws -> SecretBytes {
        let buffer = try await RequestBodies.collect(request, limit: Self.secretLimit)
        guard buffer.readableBytes > 0 else { throw Problem.badRequest("the secret value is empty") }
        return SecretBytes(Array(buffer: buffer))
    }

    static func versionDocument(_ version: SecretVersion) -> JSONValue {
        var document: [String: JSONValue] = [
            "path": .string(version.path), "version": .integer(version.version), "state": .string(version.state.rawValue),
            "created_at": .string(RFC3339.format(version.createdAt, milliseconds: true)),
        ]
        if let retireAfter = version.retireAfter { document["retire_after"] = .string(RFC3339.format(retireAfter, milliseconds: true)) }
        if let retiredAt = version.retiredAt { document["retired_at"] = .string(RFC3339.format(retiredAt, milliseconds: true)) }
        return .object(document)
    }

    // MARK: Reference values

    func putReferenceValues(_ request: Request, tenant: String, name: String, requestID: String) async throws -> Response {
        let principal = try await authenticator.require(request, roles: [.serviceAdmin, .tenantAdmin], tenant: tenant)
        let audit = try recorder()
        let body = try await HTTPJSON.object(request, limit: jsonLimit)
        try HTTPJSON.checkKeys(body, allowed: ["values", "expires_at", "provenance"])
        guard case .array(let values)? = body["values"] else { throw Problem.badRequest("\"values\" must be an array") }
        let condition = try Self.condition(request.headers)
        let expiresAt = try HTTPJSON.optionalDate(body, "expires_at")
        let actor = Self.actor(principal)
        let outcome = try await audit.record(
            after: store.referenceValuesPut(
                tenantId: tenant, name: name, values: values, expiresAt: expiresAt, provenance: body["provenance"], condition: condition,
                now: Date())
        ) { result -> AuditEvent? in
            guard case .success(let set) = result else { return nil }
            // The values themselves are not secret, but can be long: the entry names them by digest.
            return AuditEvent(
                tenant: tenant, type: .refvalueChanged, actor: actor,
                object: [
                    "reference_values": .string(set.name), "revision": .integer(set.revision), "count": .integer(Int64(set.values.count)),
                    "values_sha256": .string(Hex.encode(Digest.sha256(CanonicalJSON.encode(.array(set.values))))),
                ],
                requestId: requestID)
        }
        let set = try await mapped { try outcome.value.get() }
        referenceValueCache?.invalidate(tenant: tenant)
        return HTTPJSON.response(referenceDocument(set), headers: [.eTag: set.etag])
    }

    /// The write's condition from `If-Match` / `If-None-Match` (RFC 9110 §13.1.1–2); one of the two at most.
    static func condition(_ headers: HTTPFields) throws -> RevisionCondition {
        do {
            switch (headers[.ifMatch], headers[.ifNoneMatch]) {
            case (nil, nil): return .any
            case (let ifMatch?, nil): return try RevisionCondition(ifMatch: ifMatch)
            case (nil, let ifNoneMatch?): return try RevisionCondition(ifNoneMatch: ifNoneMatch)
            case (.some, .some): throw Problem.badRequest("send If-Match or If-None-Match, not both")
            }
        } catch let error as StoreError { throw Problem.badRequest(error.reason) }
    }

    func getReferenceValues(_ request: Request, tenant: String, name: String) async throws -> Response {
        _ = try await authenticator.require(
            request, roles: [.serviceAdmin, .tenantAdmin, .tenantReader, .auditor], tenant: tenant)
        let set = try await mapped { try await store.referenceValues(tenantId: tenant, name: name) }
        return HTTPJSON.response(referenceDocument(set), headers: [.eTag: set.etag])
    }

    func referenceDocument(_ set: ReferenceValueSet) -> JSONValue {
        var document: [String: JSONValue] = [
            "tenant": .string(set.tenantId), "name": .string(set.name), "revision": .integer(set.revision),
            "values": .array(set.values), "updated_at": .string(RFC3339.format(set.updatedAt, milliseconds: true)),
        ]
        if let expiresAt = set.expiresAt { document["expires_at"] = .string(RFC3339.format(expiresAt, milliseconds: true)) }
        if let provenance = set.provenance { document["provenance"] = provenance }
        return .object(document)
    }
}

/// Runs a store call and maps its typed errors onto the §8.3 status codes.
func mapped<T>(_ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let error as StoreError {
        switch error.code {
        case .notFound: throw Problem.notFound()
        case .conflict: throw Problem.conflict(error.reason)
        case .preconditionFailed: throw Problem.preconditionFailed(error.reason)
        case .invalidInput: throw Problem.badRequest(error.reason)
        case .capacity: throw Problem.tooManyRequests(retryAfter: 1)
        default: throw Problem.internalError()
        }
    }
}
