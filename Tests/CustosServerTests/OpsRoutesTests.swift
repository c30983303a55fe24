import CustosCrypto
import CustosServer
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import Testing

/// The operational routes over real HTTP (Hummingbird's live test client binds a loopback port).
@Suite struct OpsRoutesTests {
    static func parts(_ readiness: [ReadinessCheck] = []) -> CustosService.Parts {
        var configuration = ServerConfiguration()
        configuration.port = 0
        var parts = CustosService.Parts(configuration: configuration, logger: Logger(label: "test"))
        parts.readiness = readiness
        return parts
    }

    @Test func healthAndDiscovery() async throws {
        let app = CustosService.makeApplication(Self.parts())
        try await app.test(.live) { client in
            try await client.execute(uri: "/healthz", method: .get) { response in
                #expect(response.status == .ok)
                let body = try JSONValue.parse(Array(buffer: response.body))
                #expect(body == ["status": "ok"])
                #expect(response.headers[.init("X-Content-Type-Options")!] == "nosniff")
            }
            try await client.execute(uri: "/.well-known/attestation-service", method: .get) { response in
                let document = try JSONValue.parse(Array(buffer: response.body))
                #expect(document["kbs_protocol"] == "0.4.0")
                #expect(document["tees"] == ["tdx", "sev", "sev-es"])
                #expect(document.value(atPath: "endpoints.kbs") == "/kbs/v0")
                #expect(document["test_anchors"] == .bool(false))
            }
        }
    }

    @Test func requestIDIsEchoedOrMade() async throws {
        let app = CustosService.makeApplication(Self.parts())
        try await app.test(.live) { client in
            try await client.execute(uri: "/healthz", method: .get, headers: [RequestIDMiddleware.header: "abc-123"]) {
                #expect($0.headers[RequestIDMiddleware.header] == "abc-123")
            }
            // A malformed id (spaces, too long) is replaced, not echoed.
            try await client.execute(uri: "/healthz", method: .get, headers: [RequestIDMiddleware.header: "a b"]) {
                let id = $0.headers[RequestIDMiddleware.header]
                #expect(id != nil && id != "a b")
            }
        }
    }

    @Test func readinessReportsFailingChecks() async throws {
        let app = CustosService.makeApplication(
            Self.parts([
                ReadinessCheck(name: "database") { nil }, ReadinessCheck(name: "collateral") { "no TCB Info cached yet" },
            ]))
        try await app.test(.live) { client in
            try await client.execute(uri: "/readyz", method: .get) { response in
                #expect(response.status == .serviceUnavailable)
                let document = try JSONValue.parse(Array(buffer: response.body))
                #expect(document.value(atPath: "checks.collateral") == "no TCB Info cached yet")
                #expect(document.value(atPath: "checks.database") == nil)
            }
        }
    }

    @Test func metricsCountRequestsByRouteTemplate() async throws {
        let app = CustosService.makeApplication(Self.parts())
        try await app.test(.live) { client in
            for _ in 0..<3 { try await client.execute(uri: "/healthz", method: .get) { #expect($0.status == .ok) } }
            try await client.execute(uri: "/metrics", method: .get) { response in
                let text = String(buffer: response.body)
                #expect(text.contains(#"custos_http_requests_total{route="/healthz",method="GET",status="200"} 3"#))
                #expect(text.contains("custos_http_request_duration_seconds_bucket"))
            }
        }
    }

    /// Error responses (a problem, a KBS error body, an unknown path) carry the security headers and the request id
    /// and are counted in the metrics like any other response.
    @Test func errorResponsesCarryTheHeadersAndAreCounted() async throws {
        let fixture = try await KBSFixture.make()
        defer { fixture.cleanUp() }
        try await fixture.app.test(.live) { client in
            for (uri, method, expected) in [
                ("/v1/appraisals", HTTPRequest.Method.get, HTTPResponse.Status.unauthorized),
                ("/kbs/v0/resource/default/key/disk", .get, .unauthorized), ("/no/such/path", .get, .notFound),
            ] {
                try await client.execute(uri: uri, method: method, headers: [RequestIDMiddleware.header: "err-1"]) { response in
                    #expect(response.status == expected, "\(uri)")
                    #expect(response.headers[.init("X-Content-Type-Options")!] == "nosniff", "\(uri)")
                    #expect(response.headers[.cacheControl] == "no-store", "\(uri)")
                    #expect(response.headers[.init("Referrer-Policy")!] == "no-referrer", "\(uri)")
                    #expect(response.headers[RequestIDMiddleware.header] == "err-1", "\(uri)")
                }
            }
            try await client.execute(uri: "/metrics", method: .get) { response in
                let text = String(buffer: response.body)
                #expect(text.contains(#"custos_http_requests_total{route="/v1/appraisals",method="GET",status="401"} 1"#), "\(text)")
                #expect(text.contains(#"method="GET",status="404"} 1"#), "\(text)")
            }
        }
    }
}
