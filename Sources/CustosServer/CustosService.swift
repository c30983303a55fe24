public import CustosStore
public import Hummingbird
public import Logging

/// Builds the `custos serve` application: routes, middleware and the services it runs.
public enum CustosService {
    /// The pieces a running service is made of; the CLI and tests build one and call ``makeApplication(_:)``.
    public struct Parts: Sendable {
        public var configuration: ServerConfiguration
        public var logger: Logger
        public var metrics: ServiceMetrics
        public var discovery: Discovery
        public var readiness: [ReadinessCheck]
        /// The state; the `/v1` routes that need it are registered only when it is set.
        public var store: (any Store)?
        /// The audit log; when set, every decision is recorded (routes that decide require it).
        public var audit: AuditRecorder?
        /// The active policies (reloadable).
        public var policies: PolicyRegistry?
        /// Intel's and AMD's roots (or test roots).
        public var anchors: TrustAnchors

        public init(configuration: ServerConfiguration, logger: Logger) {
            self.configuration = configuration
            self.logger = logger
            self.metrics = ServiceMetrics()
            self.discovery = Discovery(issuer: configuration.effectiveIssuer, testAnchors: configuration.usesTestAnchors)
            self.readiness = []
            self.store = nil
            self.audit = nil
            self.policies = nil
            self.anchors = TrustAnchors(tdxRoot: nil, sevRoots: [], isTest: configuration.usesTestAnchors)
        }
    }

    public static func makeRouter(_ parts: Parts) -> Router<CustosRequestContext> {
        let router = Router(context: CustosRequestContext.self)
        router.add(middleware: RequestIDMiddleware())
        router.add(middleware: MetricsRecordingMiddleware(metrics: parts.metrics))
        router.add(middleware: SecurityHeadersMiddleware())
        var readiness = parts.readiness
        if let store = parts.store {
            readiness.append(
                ReadinessCheck(name: "database") {
                    do {
                        _ = try await store.listTenants()
                        return nil
                    } catch { return "the database does not answer: \(error)" }
                })
            AdminRoutes(store: store, authenticator: Authenticator(store: store), jsonLimit: parts.configuration.jsonLimit)
                .add(to: router)
            LaunchRoutes(
                store: store, audit: parts.audit, policies: parts.policies, anchors: parts.anchors, jsonLimit: parts.configuration.jsonLimit
            )
            .add(to: router)
            AuditRoutes(store: store, audit: parts.audit).add(to: router)
        }
        OpsRoutes.add(to: router, discovery: parts.discovery, metrics: parts.metrics, readiness: readiness)
        return router
    }

    public static func makeApplication(_ parts: Parts) -> some ApplicationProtocol {
        var application = Application(
            router: makeRouter(parts),
            configuration: .init(address: .hostname(parts.configuration.host, port: parts.configuration.port), serverName: "custos"),
            logger: parts.logger
        )
        // A final signed checkpoint after the server has drained (services stop in reverse order).
        if let audit = parts.audit { application.addServices(AuditCheckpointService(log: audit.log, logger: parts.logger)) }
        return application
    }
}
