public import CustosStore
public import Foundation
public import Hummingbird

/// Who made a request: a credential from the store (API token), with its role and tenant.
public struct Principal: Sendable, Hashable {
    public let credentialID: String
    public let role: Role
    /// nil for service-wide roles (service-admin, auditor).
    public let tenantID: String?

    public init(credentialID: String, role: Role, tenantID: String?) {
        self.credentialID = credentialID
        self.role = role
        self.tenantID = tenantID
    }

    /// Whether this principal may see objects of `tenant` at all. Other tenants' objects answer 404, so their
    /// existence does not leak (issue 11 §4).
    public func canSee(tenant: String) -> Bool {
        switch role {
        case .serviceAdmin, .auditor: true
        case .tenantAdmin, .tenantReader, .launcher: tenantID == tenant
        }
    }
}

/// Turns `Authorization: Bearer custos_…` into a ``Principal`` through the store (503 when the store cannot answer).
///
/// Tokens are looked up by their SHA-256 (an index lookup), so the comparison of secrets is done by the hash
/// function, not by a byte comparison that could leak timing; an unknown, revoked or expired token are the same 401.
public struct Authenticator: Sendable {
    let store: any Store
    public init(store: any Store) { self.store = store }

    public static func bearerToken(_ request: Request) -> String? {
        guard let header = request.headers[.authorization] else { return nil }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        let token = parts[1].trimmingCharacters(in: .whitespaces)
        return token.isEmpty ? nil : token
    }

    /// The principal of the request, or a 401 problem.
    public func authenticate(_ request: Request, now: Date = Date()) async throws -> Principal {
        guard let token = Self.bearerToken(request), token.hasPrefix("custos_") else {
            throw Problem.unauthorized("an API token is required (Authorization: Bearer custos_…)")
        }
        return try await authenticate(token: token, now: now)
    }

    /// The principal of an API token (the console's sign-in and each of its requests), or a 401 problem.
    public func authenticate(token: String, now: Date = Date()) async throws -> Principal {
        guard token.hasPrefix("custos_") else { throw Problem.unauthorized("the API token is not valid") }
        let lookup: CredentialLookup
        // A store that cannot answer is not a verdict on the token: 503 (service.md §8.3 "cannot decide"), so that a
        // client does not throw a good token away.
        do { lookup = try await store.lookupCredential(token: token, now: now) } catch {
            throw Problem.unavailable("the credential store cannot be read", retryAfter: 5)
        }
        guard case .valid(let credential) = lookup else { throw Problem.unauthorized("the API token is not valid") }
        return Principal(credentialID: credential.id, role: credential.role, tenantID: credential.tenantId)
    }

    /// The principal, required to hold one of `roles` (403 otherwise) and, for a tenant object, to see that tenant
    /// (404 otherwise).
    public func require(
        _ request: Request, roles: Set<Role>, tenant: String? = nil, now: Date = Date()
    ) async throws -> Principal {
        let principal = try await authenticate(request, now: now)
        if let tenant, !principal.canSee(tenant: tenant) { throw Problem.notFound() }
        guard roles.contains(principal.role) else {
            throw Problem.forbidden("the \(principal.role.rawValue) role may not do this")
        }
        return principal
    }
}
