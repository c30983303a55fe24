public import CustosStore
import Foundation
import HTTPTypes
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
        /// The EAR signing keys; with store, audit and policies it enables the attestation routes.
        public var tokens: TokenKeyRing?
        /// TDX collateral.
        public var collateral: (any CollateralProvider)?
        /// KBS sessions and `/v1` challenges.
        public var sessions: KBSSessions
        /// The data directory lock, held as long as the parts live.
        public var lock: DataDirectoryLock?

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
            self.tokens = nil
            self.collateral = nil
            self.lock = nil
            self.sessions = KBSSessions(lifetime: TimeInterval(configuration.challengeLifetimeSeconds))
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
            let referenceValues = ReferenceValueCache(store: store)
            let authenticator = Authenticator(store: store)
            AdminRoutes(
                store: store, audit: parts.audit, authenticator: authenticator, jsonLimit: parts.configuration.jsonLimit,
                referenceValueCache: referenceValues
            ).add(to: router)
            LaunchRoutes(
                store: store, audit: parts.audit, policies: parts.policies, anchors: parts.anchors, referenceValues: referenceValues,
                jsonLimit: parts.configuration.jsonLimit
            )
            .add(to: router)
            AuditRoutes(store: store, audit: parts.audit).add(to: router)
            // The review console (/ui/): pages over the same queries, scoping and authentication as /v1.
            ConsoleRoutes(
                store: store, log: parts.audit?.log, policies: parts.policies, collateral: parts.collateral,
                secureCookie: parts.configuration.servedOverHTTPS
            ).add(to: router)
            if let audit = parts.audit, let policies = parts.policies, let tokens = parts.tokens, let collateral = parts.collateral {
                let configuration = parts.configuration
                let attestation = TDXAttestationService(
                    store: store, policies: policies, audit: audit, collateral: collateral, anchors: parts.anchors, tokens: tokens,
                    referenceValues: referenceValues, issuer: configuration.effectiveIssuer,
                    tokenLifetime: Int64(configuration.tokenLifetimeSeconds), metrics: parts.metrics, logger: parts.logger)
                let release = SecretReleaseService(
                    store: store, policies: policies, audit: audit, referenceValues: referenceValues, logger: parts.logger)
                // One bucket for every request that makes a pending session (/kbs/v0/auth, /v1/challenges).
                let perClient = configuration.challengeRatePerClient
                let sessionLimiter = SessionRateLimits(
                    shared: RateLimiter(rate: Double(configuration.challengeRate), burst: Double(configuration.challengeRate) * 2),
                    perClient: perClient > 0 ? ClientRateLimiter(rate: Double(perClient), burst: Double(perClient) * 2) : nil,
                    clientHeader: configuration.clientAddressHeader.flatMap { HTTPField.Name($0) })
                KBSRoutes(
                    sessions: parts.sessions, attestation: attestation, release: release, metrics: parts.metrics,
                    limiter: sessionLimiter,
                    jsonLimit: configuration.jsonLimit, evidenceLimit: configuration.evidenceLimit,
                    denialStatus: configuration.kbsDenialStatus == 403 ? .forbidden : .unauthorized,
                    secureCookie: configuration.servedOverHTTPS
                ).add(to: router)
                AttestationRoutes(
                    sessions: parts.sessions, attestation: attestation, release: release, tokens: tokens, store: store,
                    authenticator: authenticator, metrics: parts.metrics,
                    limiter: sessionLimiter,
                    jsonLimit: configuration.jsonLimit, evidenceLimit: configuration.evidenceLimit,
                    tokenLifetime: TimeInterval(configuration.tokenLifetimeSeconds)
                ).add(to: router)
                QueryRoutes(
                    store: store, authenticator: authenticator, policies: policies, audit: audit, referenceValues: referenceValues,
                    jsonLimit: configuration.jsonLimit
                ).add(to: router)
                readiness.append(ReadinessCheck(name: "collateral") { collateral.readinessProblem() })
                readiness.append(
                    ReadinessCheck(name: "tdx-root") {
                        parts.anchors.tdxRoot == nil ? "the Intel SGX Root CA is not installed (custos certs install)" : nil
                    })
            }
        }
        OpsRoutes.add(to: router, discovery: parts.discovery, metrics: parts.metrics, readiness: readiness)
        OpenAPIRoute.add(to: router)
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
        if let store = parts.store, let audit = parts.audit, parts.configuration.appraisalRetentionDays > 0 {
            let retention = AppraisalRetention(
                store: store, audit: audit, retentionDays: parts.configuration.appraisalRetentionDays, logger: parts.logger)
            application.addServices(AppraisalRetentionService(retention: retention, logger: parts.logger))
        }
        return application
    }
}
