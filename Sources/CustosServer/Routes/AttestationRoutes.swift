import CustosCrypto
import CustosKBS
import CustosStore
import Foundation
import HTTPTypes
import Hummingbird

/// The native TDX runtime API (service.md §8.2): `POST /v1/challenges`, `POST /v1/attestations`, `GET
/// /v1/secrets/{tenant}/{path…}` with the EAR, and `GET /.well-known/jwks.json`. Same checks as `/kbs/v0`, with
/// problem bodies and precise status codes.
struct AttestationRoutes: Sendable {
    let sessions: KBSSessions
    let attestation: TDXAttestationService
    let release: SecretReleaseService
    let tokens: TokenKeyRing
    let store: any Store
    let authenticator: Authenticator
    let metrics: ServiceMetrics
    let limiter: SessionRateLimits
    let jsonLimit: Int
    let evidenceLimit: Int
    let tokenLifetime: TimeInterval

    func add(to router: Router<CustosRequestContext>) {
        router.post("/v1/challenges") { request, context in try await challenge(request, context: context) }
        router.post("/v1/attestations") { request, context in try await attest(request, context: context) }
        router.get("/v1/secrets/{tenant}/**") { request, context in try await secret(request, context: context) }
        router.get("/.well-known/jwks.json") { _, _ in
            HTTPJSON.response(
                tokens.publishedKeys(now: Date(), tokenLifetime: tokenLifetime).jsonValue, headers: [.cacheControl: "max-age=60"])
        }
    }

    func challenge(_ request: Request, context: CustosRequestContext) async throws -> Response {
        if let wait = limiter.take(request, context: context) { throw Problem.tooManyRequests(retryAfter: wait) }
        let buffer = try await RequestBodies.collect(request, limit: jsonLimit)
        var hash: KBSHashAlgorithm? = nil
        if buffer.readableBytes > 0 {
            let body = try HTTPJSON.object(collected: buffer)
            try HTTPJSON.checkKeys(body, allowed: ["tee", "hash"])
            if let tee = try HTTPJSON.optionalString(body, "tee"), tee != "tdx" {
                throw Problem.badRequest("\"tee\": only tdx evidence is appraised at /v1/attestations (SEV uses /v1/launches)")
            }
            if let name = try HTTPJSON.optionalString(body, "hash") {
                guard let algorithm = KBSHashAlgorithm(rawValue: name) else {
                    throw Problem.badRequest("\"hash\" is sha256, sha384 or sha512")
                }
                hash = algorithm
            }
        }
        let now = Date()
        let session: (id: String, challenge: KBSChallenge)
        // Only a failure of the random source.
        do { session = try sessions.create(hash: hash, now: now) } catch { throw Problem.internalError() }
        return HTTPJSON.response(
            [
                "challenge_id": .string(session.id), "nonce": .string(session.challenge.nonce),
                "hash": .string((hash ?? .default).rawValue),
                "expires_at": .string(RFC3339.format(now.addingTimeInterval(sessions.lifetime), milliseconds: true)),
            ],
            status: .created)
    }

    func attest(_ request: Request, context: CustosRequestContext) async throws -> Response {
        let body = try await HTTPJSON.object(request, limit: evidenceLimit)
        try HTTPJSON.checkKeys(body, allowed: ["challenge_id", "attestation", "workload_id"])
        let id = try HTTPJSON.string(body, "challenge_id")
        let workload = try HTTPJSON.optionalString(body, "workload_id")
        if let workload {
            do { try Appraisal.checkWorkloadID(workload) } catch { throw Problem.badRequest("\"workload_id\": \(error.reason)") }
        }
        guard let evidence = body["attestation"] else { throw Problem.badRequest("\"attestation\" is required") }
        let parsed: KBSAttestation
        do { parsed = try KBSAttestation(jsonBytes: CanonicalJSON.encode(evidence)) } catch {
            throw Problem.badRequest("\"attestation\": \(error.reason)")
        }
        let now = Date()
        guard let challenge = sessions.consumeChallenge(id: id, now: now) else {
            // 401, as service.md §8.2 gives it: the challenge is the credential of this request.
            throw Problem(.unauthorized, "challenge-invalid", "the challenge is unknown, expired or already used")
        }
        do {
            let outcome = try await attestation.attest(
                parsed, nonce: challenge.nonce, hash: challenge.hash, workloadID: workload, requestID: context.requestID, now: now)
            // No sessions.attach here: the challenge id went out in a JSON body, not an HttpOnly cookie, and /v1
            // releases take the EAR only. Attached, the id would work as a KBS session cookie for anyone who saw it.
            metrics.recordVerification(tee: "tdx", result: outcome.status.rawValue)
            return HTTPJSON.response([
                "token": .string(outcome.token), "status": .string(outcome.status.rawValue), "appraisal_id": .string(outcome.appraisalID),
                "audit_index": .integer(Int64(outcome.auditIndex)),
                "expires_at": .string(RFC3339.format(outcome.attested.expires, milliseconds: true)),
            ])
        } catch {
            metrics.recordVerification(tee: "tdx", result: error.kind == .unavailable ? "error" : "rejected")
            switch error.kind {
            case .malformed: throw Problem.badRequest(error.message)
            case .rejected:
                throw Problem(.unprocessableContent, "evidence-invalid", error.message, extensions: ["check": .string(error.code)])
            case .unavailable: throw Problem.unavailable(error.message, retryAfter: 30)
            }
        }
    }

    /// `GET /v1/secrets/{tenant}/{path…}`: with an EAR, the secret as a JWE to the TEE key; with an admin API token
    /// and a path ending in `/versions`, the versions' metadata (never values).
    func secret(_ request: Request, context: CustosRequestContext) async throws -> Response {
        let tenant = try context.parameters.require("tenant")
        let tail = context.parameters.getCatchAll().map(String.init)
        guard !tail.isEmpty else { throw Problem.notFound() }
        guard let token = Authenticator.bearerToken(request) else {
            throw Problem.unauthorized("an attestation token (EAR) or an API token is required")
        }
        if token.hasPrefix("custos_") {
            // Authenticated first: a token that is not valid is a 401 whatever the path.
            _ = try await authenticator.require(request, roles: [.serviceAdmin, .tenantAdmin, .tenantReader], tenant: tenant)
            guard tail.count >= 2, tail.last == "versions" else {
                throw Problem.forbidden("API tokens never read secret values; list versions at …/versions")
            }
            let versions = try await mapped {
                try await store.listSecretVersions(tenantId: tenant, path: tail.dropLast().joined(separator: "/"))
            }
            return HTTPJSON.response(["versions": .array(versions.map(AdminRoutes.versionDocument))])
        }
        let now = Date()
        let attested: KBSSessions.Attested
        do { attested = try attestation.verifyToken(token, now: now) } catch {
            throw Problem.unauthorized("the attestation token is not valid: \(error.reason)")
        }
        // Another tenant's secret: the token's tenant cannot see it at all.
        guard attested.tenant == tenant else { throw Problem.notFound() }
        do {
            let jwe = try await release.release(
                tenant: tenant, path: tail.joined(separator: "/"), to: attested, requestID: context.requestID, now: now)
            metrics.recordRelease(allowed: true)
            // RFC 7516 §9: the JSON serialization of a JWE is `application/jose+json` (service.md §8.2).
            var response = HTTPJSON.response(jwe.jsonValue, headers: [.cacheControl: "no-store"])
            response.headers[.contentType] = "application/jose+json"
            return response
        } catch {
            switch error.kind {
            case .denied:
                metrics.recordRelease(allowed: false)
                var extensions: [String: JSONValue] = [:]
                if let id = error.appraisalID { extensions["appraisal_id"] = .string(id) }
                throw Problem(.forbidden, "policy-denied", error.message, extensions: extensions)
            case .notFound: throw Problem.notFound(error.message)
            case .jwe: throw Problem.badRequest(error.message)
            case .unavailable: throw Problem.unavailable(error.message, retryAfter: 5)
            }
        }
    }
}
