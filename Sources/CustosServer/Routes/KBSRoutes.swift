import CustosCrypto
import CustosKBS
import Foundation
import HTTPTypes
import Hummingbird

/// `/kbs/v0`: Trustee's KBS protocol 0.4.0, byte-compatible with attestation-agent and kbs-client (service.md §4).
/// Errors are Trustee's bodies: 404 for unknown paths and plugins, 401 for the rest (403 for a policy denial when
/// `kbs_denial_status: 403`), 503 when the service cannot decide.
struct KBSRoutes: Sendable {
    let sessions: KBSSessions
    let attestation: TDXAttestationService
    let release: SecretReleaseService
    let metrics: ServiceMetrics
    /// Shared with `POST /v1/challenges`: both make a pending session (`challenge_rate`).
    let limiter: SessionRateLimits
    let jsonLimit: Int
    let evidenceLimit: Int
    let denialStatus: HTTPResponse.Status
    let secureCookie: Bool

    func add(to router: Router<CustosRequestContext>) {
        router.post("/kbs/v0/auth") { request, context in try await auth(request, context: context) }
        router.post("/kbs/v0/attest") { request, context in try await attest(request, context: context) }
        router.get("/kbs/v0/resource/{repository}/{type}/{tag}") { request, context in
            try await resource(
                request, context: context, repository: try context.parameters.require("repository"),
                type: try context.parameters.require("type"), tag: try context.parameters.require("tag"))
        }
        // Anything else under /kbs/v0: a plugin Custos does not have, or a malformed resource path.
        for method in [HTTPRequest.Method.get, .post, .put, .delete] {
            var patterns = [
                "/kbs/v0/resource", "/kbs/v0/resource/{repository}", "/kbs/v0/resource/{repository}/{type}",
                "/kbs/v0/resource/{repository}/{type}/{tag}/**",
            ]
            // Trustee's admin writes of resources: Custos stores secrets through PUT /v1/secrets.
            if method != .get { patterns.append("/kbs/v0/resource/{repository}/{type}/{tag}") }
            for pattern in patterns {
                router.on(RouterPath(pattern), method: method) { _, _ -> Response in
                    throw KBSErrorResponse(
                        "InvalidRequestPath", "a resource path is GET /kbs/v0/resource/<repository>/<type>/<tag>", status: .notFound)
                }
            }
            router.on("/kbs/v0/{plugin}", method: method) { _, context -> Response in
                let plugin = context.parameters.get("plugin") ?? ""
                throw KBSErrorResponse("PluginNotFound", "no plugin \"\(plugin)\" (this KBS serves \"resource\")", status: .notFound)
            }
            router.on("/kbs/v0/{plugin}/**", method: method) { _, context -> Response in
                let plugin = context.parameters.get("plugin") ?? ""
                if plugin == "resource" {
                    throw KBSErrorResponse(
                        "InvalidRequestPath", "a resource path is GET /kbs/v0/resource/<repository>/<type>/<tag>", status: .notFound)
                }
                throw KBSErrorResponse("PluginNotFound", "no plugin \"\(plugin)\" (this KBS serves \"resource\")", status: .notFound)
            }
        }
    }

    static let cookieName = KBSProtocol.sessionCookieName

    func cookie(_ id: String) -> String {
        "\(Self.cookieName)=\(id); Path=/kbs/v0; Max-Age=\(Int(sessions.lifetime)); HttpOnly; SameSite=Strict\(secureCookie ? "; Secure" : "")"
    }

    static func sessionID(_ request: Request) -> String? {
        // RFC 6265 §4.2.1: `name=value` pairs separated by `;` and optional SP/HTAB. Plain byte work: Foundation's
        // trimming and Unicode character classes cost 1 % of a KBS flow here.
        for header in request.headers[values: .cookie] {
            for pair in header.utf8.split(separator: UInt8(ascii: ";")) {
                guard let equals = pair.firstIndex(of: UInt8(ascii: "=")) else { continue }
                guard trimmed(pair[..<equals]).elementsEqual(cookieName.utf8) else { continue }
                let value = trimmed(pair[pair.index(after: equals)...])
                if value.count == 32, value.allSatisfy(isHexDigit) { return String(decoding: value, as: UTF8.self) }
            }
        }
        return nil
    }

    private static func trimmed(_ bytes: Substring.UTF8View.SubSequence) -> Substring.UTF8View.SubSequence {
        let isSpace = { (byte: UInt8) in byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") }
        var slice = bytes.drop(while: isSpace)
        while let last = slice.last, isSpace(last) { slice = slice.dropLast() }
        return slice
    }

    private static func isHexDigit(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "f"), UInt8(ascii: "A")...UInt8(ascii: "F"): true
        default: false
        }
    }

    static func body(_ error: CustosKBS.KBSError, status: HTTPResponse.Status = .unauthorized) -> KBSErrorResponse {
        KBSErrorResponse(error.code.name, error.reason, status: status)
    }

    static func json(_ value: JSONValue, headers: HTTPFields = [:]) -> Response {
        var fields = headers
        fields[.contentType] = "application/json"
        return Response(status: .ok, headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: CanonicalJSON.encode(value))))
    }

    /// The request body, at most `limit` bytes; a larger one is a 413 with the KBS error body (not a problem document:
    /// a KBS client reads `{type, detail}` everywhere under `/kbs/v0`).
    static func collect(_ request: Request, limit: Int) async throws -> [UInt8] {
        do { return Array(buffer: try await RequestBodies.collect(request, limit: limit)) } catch let problem as Problem {
            throw KBSErrorResponse("SerdeError", problem.detail, status: problem.status, headers: problem.headers)
        }
    }

    func auth(_ request: Request, context: CustosRequestContext) async throws -> Response {
        // Unthrottled, /auth would let one client churn the pending-session table (Trustee #1536) and evict other
        // guests' challenges. Trustee has no 429; the body keeps its error shape.
        if let wait = limiter.take(request, context: context) {
            throw KBSErrorResponse(
                "TooManyRequests", "too many new sessions; retry in \(wait) s", status: .tooManyRequests,
                headers: [.retryAfter: "\(wait)"])
        }
        let bytes = try await Self.collect(request, limit: jsonLimit)
        let kbsRequest: KBSRequest
        do {
            kbsRequest = try KBSRequest(jsonBytes: bytes)
            try kbsRequest.checkSupported(tees: [.tdx])
        } catch { throw Self.body(error) }
        let supported = kbsRequest.supportedHashAlgorithms
        let selected: KBSHashAlgorithm? = supported.isEmpty || supported.contains(.sha384) ? nil : supported.first
        let session: (id: String, challenge: KBSChallenge)
        // Only a failure of the random source.
        do { session = try sessions.create(hash: selected, now: Date()) } catch {
            throw KBSErrorResponse("InternalError", "the service failed; the request id is in the logs", status: .internalServerError)
        }
        return Self.json(session.challenge.jsonValue, headers: [.setCookie: cookie(session.id)])
    }

    func attest(_ request: Request, context: CustosRequestContext) async throws -> Response {
        guard let id = Self.sessionID(request) else {
            throw KBSErrorResponse("AttestationError", "no kbs-session-id cookie: call /kbs/v0/auth first")
        }
        let bytes = try await Self.collect(request, limit: evidenceLimit)
        let now = Date()
        guard let challenge = sessions.consumeChallenge(id: id, now: now) else {
            throw KBSErrorResponse("AttestationError", "the session is unknown, expired or already attested: call /kbs/v0/auth again")
        }
        let attestationBody: KBSAttestation
        do { attestationBody = try KBSAttestation(jsonBytes: bytes) } catch { throw Self.body(error) }
        do {
            let outcome = try await attestation.attest(
                attestationBody, nonce: challenge.nonce, hash: challenge.hash, workloadID: nil, requestID: context.requestID, now: now)
            sessions.attach(outcome.attested, to: id)
            metrics.recordVerification(tee: "tdx", result: outcome.status.rawValue)
            return Self.json(["token": .string(outcome.token)], headers: [.setCookie: cookie(id)])
        } catch {
            metrics.recordVerification(tee: "tdx", result: error.kind == .unavailable ? "error" : "rejected")
            switch error.kind {
            case .malformed: throw KBSErrorResponse("SerdeError", error.message)
            case .rejected: throw KBSErrorResponse("AttestationError", "\(error.code): \(error.message)")
            case .unavailable: throw KBSErrorResponse("AttestationError", error.message, status: .serviceUnavailable)
            }
        }
    }

    func resource(
        _ request: Request, context: CustosRequestContext, repository: String, type: String, tag: String
    ) async throws -> Response {
        let now = Date()
        let sessionResult = Self.sessionID(request).flatMap { sessions.attested(id: $0, now: now) }
        var attested = sessionResult
        if let header = request.headers[.authorization] {
            let parts = header.split(separator: " ", maxSplits: 1)
            guard parts.count == 2, parts[0].lowercased() == "bearer" else {
                throw KBSErrorResponse("TokenNotFound", "the Authorization header is not a Bearer token")
            }
            let fromToken: KBSSessions.Attested
            do { fromToken = try attestation.verifyToken(String(parts[1]), now: now) } catch { throw Self.body(error) }
            // A cookie and a token that name different TEE keys: one of them is not the caller's.
            if let sessionResult, sessionResult.teeKeyThumbprint != fromToken.teeKeyThumbprint {
                throw KBSErrorResponse("TokenVerifierError", "the token's TEE key is not the session's")
            }
            attested = fromToken
        }
        guard let attested else {
            throw KBSErrorResponse("TokenNotFound", "no attested session cookie and no Bearer token: attest first")
        }
        do {
            let jwe = try await release.release(
                tenant: repository, path: "\(type)/\(tag)", to: attested, requestID: context.requestID, now: now)
            metrics.recordRelease(allowed: true)
            return Self.json(jwe.jsonValue)
        } catch {
            switch error.kind {
            case .denied:
                metrics.recordRelease(allowed: false)
                throw KBSErrorResponse("PolicyDeny", error.message, status: denialStatus)
            case .notFound: throw KBSErrorResponse("PluginInternalError", error.message)
            case .jwe: throw KBSErrorResponse("JweError", error.message)
            case .unavailable: throw KBSErrorResponse("PluginInternalError", error.message, status: .serviceUnavailable)
            }
        }
    }
}
