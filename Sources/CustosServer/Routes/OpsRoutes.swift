import CustosCrypto
import Hummingbird

/// What the service tells anyone about itself at `/.well-known/attestation-service`.
public struct Discovery: Sendable {
    public var issuer: String
    public var auditOrigin: String?
    public var auditVerifierKey: String?
    public var testAnchors: Bool

    public init(issuer: String, auditOrigin: String? = nil, auditVerifierKey: String? = nil, testAnchors: Bool = false) {
        self.issuer = issuer
        self.auditOrigin = auditOrigin
        self.auditVerifierKey = auditVerifierKey
        self.testAnchors = testAnchors
    }

    var document: JSONValue {
        var audit: [String: JSONValue] = ["checkpoint": "/v1/audit/checkpoint"]
        if let auditOrigin { audit["origin"] = .string(auditOrigin) }
        if let auditVerifierKey { audit["verifier_key"] = .string(auditVerifierKey) }
        return [
            "issuer": .string(issuer),
            "tees": ["tdx", "sev", "sev-es"],
            "kbs_protocol": "0.4.0",
            "endpoints": [
                "kbs": "/kbs/v0", "api": "/v1", "jwks": "/.well-known/jwks.json", "openapi": "/openapi.yaml",
                "health": "/healthz", "ready": "/readyz", "metrics": "/metrics",
            ],
            "algorithms": [
                "token_signing": ["ES256"],
                "jwe_key_management": ["ECDH-ES+A256KW", "RSA-OAEP-256"],
                "jwe_content": ["A256GCM"],
                "report_data_hash": ["sha384", "sha256", "sha512"],
            ],
            "audit": .object(audit),
            "test_anchors": .bool(testAnchors),
        ]
    }
}

/// A named readiness check (`database`, `collateral`): nil when ready, else why not.
public struct ReadinessCheck: Sendable {
    public let name: String
    public let check: @Sendable () async -> String?
    public init(name: String, check: @escaping @Sendable () async -> String?) {
        self.name = name
        self.check = check
    }
}

enum OpsRoutes {
    static func json(_ value: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
        Response(
            status: status, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(bytes: CanonicalJSON.encode(value))))
    }

    static func add(
        to router: Router<CustosRequestContext>, discovery: Discovery, metrics: ServiceMetrics, readiness: [ReadinessCheck]
    ) {
        router.get("/healthz") { _, _ in json(["status": "ok"]) }
        router.get("/readyz") { _, _ -> Response in
            var failures: [String: JSONValue] = [:]
            for check in readiness {
                if let reason = await check.check() { failures[check.name] = .string(reason) }
            }
            return failures.isEmpty
                ? json(["status": "ready"])
                : json(["status": "not-ready", "checks": .object(failures)], status: .serviceUnavailable)
        }
        router.get("/metrics") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                body: .init(byteBuffer: ByteBuffer(string: metrics.exposition())))
        }
        router.get("/.well-known/attestation-service") { _, _ in json(discovery.document) }
    }
}
