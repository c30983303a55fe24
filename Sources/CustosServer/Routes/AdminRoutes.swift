import CustosCrypto
import CustosStore
import Foundation
import Hummingbird

/// `/v1` tenants, credentials, secrets (admin side) and reference values: the parts of the native API that only
/// need the store. Every object is scoped by tenant; another tenant's object is a 404.
struct AdminRoutes: Sendable {
    let store: any Store
    let authenticator: Authenticator
    let jsonLimit: Int
    /// Forgotten for a tenant when its reference values change.
    let referenceValueCache: ReferenceValueCache?
    /// Secret values are raw bytes (`application/octet-stream`), at most the store's limit.
    static let secretLimit = 64 << 10

    func add(to router: Router<CustosRequestContext>) {
        router.post("/v1/tenants") { request, _ in try await createTenant(request) }
        router.post("/v1/tenants/{tenant}/tokens") { request, context in
            try await createToken(request, tenant: try context.parameters.require("tenant"))
        }
        router.delete("/v1/tenants/{tenant}/tokens/{id}") { request, context in
            try await revokeToken(
                request, tenant: try context.parameters.require("tenant"), id: try context.parameters.require("id"))
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
                request, tenant: try context.parameters.require("tenant"), name: try context.parameters.require("name"))
        }
        router.get("/v1/reference-values/{tenant}/{name}") { request, context in
            try await getReferenceValues(
                request, tenant: try context.parameters.require("tenant"), name: try context.parameters.require("name"))
        }
    }

    // MARK: Tenants and credentials

    func createTenant(_ request: Request) async throws -> Response {
        _ = try await authenticator.require(request, roles: [.serviceAdmin])
        let body = try await HTTPJSON.object(request, limit: jsonLimit)
        try HTTPJSON.checkKeys(body, allowed: ["id", "display_name"])
        let id = try HTTPJSON.string(body, "id")
        let tenant = try await mapped {
            try await store.createTenant(id: id, displayName: try HTTPJSON.optionalString(body, "display_name") ?? id, now: Date())
        }
        return HTTPJSON.response(
            [
                "id": .string(tenant.id), "display_name": .string(tenant.displayName),
                "created_at": .string(RFC3339.format(tenant.createdAt, milliseconds: true)),
            ],
            status: .created)
    }

    func createToken(_ request: Request, tenant: String) async throws -> Response {
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
        let expires = try HTTPJSON.optionalDate(body, "expires_at")
        let issued = try await mapped {
            try await store.createCredential(
                tenantId: role.requiresTenant ? tenant : nil, role: role, label: try HTTPJSON.optionalString(body, "label") ?? "",
                expiresAt: expires, now: Date())
        }
        var document: [String: JSONValue] = [
            "id": .string(issued.credential.id), "role": .string(role.rawValue), "token": .string(issued.token),
        ]
        if let tenant = issued.credential.tenantId { document["tenant"] = .string(tenant) }
        if let expires { document["expires_at"] = .string(RFC3339.format(expires, milliseconds: true)) }
        return HTTPJSON.response(.object(document), status: .created)
    }

    func revokeToken(_ request: Request, tenant: String, id: String) async throws -> Response {
        _ = try await authenticator.require(request, roles: [.serviceAdmin, .tenantAdmin], tenant: tenant)
        let credentials = try await mapped { try await store.listCredentials(tenantId: tenant) }
        guard credentials.contains(where: { $0.id == id }) else { throw Problem.notFound() }
        _ = try await mapped { try await store.revokeCredential(id: id, now: Date()) }
        return Response(status: .noContent)
    }

    // MARK: Secrets (admin side; release to guests is the KBS/EAR route)

    /// `PUT …/{path}` new version; `POST …/{path}:rotate`; `DELETE …/{path}/versions/{v}`.
    func secretRoute(_ request: Request, context: CustosRequestContext) async throws -> Response {
        let tenant = try context.parameters.require("tenant")
        let tail = context.parameters.getCatchAll().map(String.init)
        _ = try await authenticator.require(request, roles: [.serviceAdmin, .tenantAdmin], tenant: tenant)
        switch request.method {
        case .put:
            let path = tail.joined(separator: "/")
            let value = try await secretBody(request)
            let version = try await mapped { try await store.putSecret(tenantId: tenant, path: path, value: value, now: Date()) }
            return HTTPJSON.response(Self.versionDocument(version), status: .created)
        case .post:
            guard let last = tail.last, last.hasSuffix(":rotate") else { throw Problem.notFound() }
            let path = (tail.dropLast() + [String(last.dropLast(":rotate".count))]).joined(separator: "/")
            let value = try await secretBody(request)
            let retireAfter = try request.uri.queryParameters.get("retire_after").map { text -> Date in
                guard let date = RFC3339.parse(text) else { throw Problem.badRequest("retire_after must be an RFC 3339 time") }
                return date
            }
            let rotation = try await mapped {
                try await store.rotateSecret(tenantId: tenant, path: path, value: value, retireAfter: retireAfter, now: Date())
            }
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
            try await mapped { try await store.deleteSecretVersion(tenantId: tenant, path: path, version: version) }
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

    func putReferenceValues(_ request: Request, tenant: String, name: String) async throws -> Response {
        _ = try await authenticator.require(request, roles: [.serviceAdmin, .tenantAdmin], tenant: tenant)
        let body = try await HTTPJSON.object(request, limit: jsonLimit)
        try HTTPJSON.checkKeys(body, allowed: ["values", "expires_at", "provenance"])
        guard case .array(let values)? = body["values"] else { throw Problem.badRequest("\"values\" must be an array") }
        let condition: RevisionCondition
        if let ifMatch = request.headers[.ifMatch] {
            do { condition = try RevisionCondition(ifMatch: ifMatch) } catch { throw Problem.badRequest(error.reason) }
        } else {
            condition = .any
        }
        let set = try await mapped {
            try await store.putReferenceValues(
                tenantId: tenant, name: name, values: values, expiresAt: try HTTPJSON.optionalDate(body, "expires_at"),
                provenance: body["provenance"], condition: condition, now: Date())
        }
        referenceValueCache?.invalidate(tenant: tenant)
        return HTTPJSON.response(referenceDocument(set), headers: [.eTag: set.etag])
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
