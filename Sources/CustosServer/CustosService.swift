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

        public init(configuration: ServerConfiguration, logger: Logger) {
            self.configuration = configuration
            self.logger = logger
            self.metrics = ServiceMetrics()
            self.discovery = Discovery(issuer: configuration.effectiveIssuer, testAnchors: configuration.usesTestAnchors)
            self.readiness = []
        }
    }

    public static func makeRouter(_ parts: Parts) -> Router<CustosRequestContext> {
        let router = Router(context: CustosRequestContext.self)
        router.add(middleware: RequestIDMiddleware())
        router.add(middleware: MetricsRecordingMiddleware(metrics: parts.metrics))
        router.add(middleware: SecurityHeadersMiddleware())
        OpsRoutes.add(to: router, discovery: parts.discovery, metrics: parts.metrics, readiness: parts.readiness)
        return router
    }

    public static func makeApplication(_ parts: Parts) -> some ApplicationProtocol {
        Application(
            router: makeRouter(parts),
            configuration: .init(address: .hostname(parts.configuration.host, port: parts.configuration.port), serverName: "custos"),
            logger: parts.logger
        )
    }
}
