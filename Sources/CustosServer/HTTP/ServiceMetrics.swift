import Foundation
public import Hummingbird
public import Prometheus
import Synchronization

/// The service's Prometheus metrics, on a registry of its own (not the process-wide `MetricsSystem`), so that
/// several services in one test process do not share counters.
public final class ServiceMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    private static let latencyBuckets: [Double] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
    }

    /// Counts a finished request by route template and status, and records its latency.
    ///
    /// The counter and histogram of each (route, method, status) are looked up in the registry once and then kept:
    /// the registry's lookup builds the metric's name and checks its help text and labels on every call, which was
    /// about a tenth of the CPU of a request that does no work. Routes are the registered templates (or
    /// `unmatched`), methods those HTTP/1.1's parser knows and statuses three digits, so the set stays small.
    public func recordRequest(route: String, method: String, status: Int, seconds: Double) {
        let metrics = Self.kept(requestMetrics, RequestKey(route: route, method: method, status: status)) {
            RequestMetrics(
                count: registry.makeCounter(
                    descriptor: Self.name("http_requests", unit: "total", help: "HTTP requests by route template, method and status"),
                    labels: [("route", route), ("method", method), ("status", String(status))]),
                latency: registry.makeDurationHistogram(
                    descriptor: Self.name("http_request_duration", unit: "seconds", help: "HTTP request latency by route template"),
                    labels: [("route", route), ("method", method)],
                    buckets: Self.latencyBuckets.map { Duration.nanoseconds(Int64($0 * 1e9)) }))
        }
        metrics.count.increment()
        metrics.latency.recordNanoseconds(Int64(seconds * 1e9))
    }

    private struct RequestKey: Hashable {
        let route: String
        let method: String
        let status: Int
    }

    private struct RequestMetrics: Sendable {
        let count: Counter
        let latency: DurationHistogram
    }

    private let requestMetrics = Mutex<[RequestKey: RequestMetrics]>([:])

    /// The metric kept under `key` in `cache`, made by `make` the first time. Two callers racing to make one get the
    /// same metric: the registry returns the existing one for a name and labels it already has.
    private static func kept<Key: Hashable & Sendable, Value: Sendable>(
        _ cache: borrowing Mutex<[Key: Value]>, _ key: Key, make: () -> Value
    ) -> Value {
        if let known = cache.withLock({ $0[key] }) { return known }
        let made = make()
        cache.withLock { $0[key] = made }
        return made
    }

    /// Counts an evidence verification by TEE and result (`affirming`, `warning`, `contraindicated`, `error`).
    /// Kept like the request metrics (TEEs and results are a few fixed names).
    public func recordVerification(tee: String, result: String) {
        Self.kept(verifications, VerificationKey(tee: tee, result: result)) {
            registry.makeCounter(
                descriptor: Self.name("verifications", unit: "total", help: "Evidence verifications by TEE and result"),
                labels: [("tee", tee), ("result", result)])
        }.increment()
    }

    private struct VerificationKey: Hashable {
        let tee: String
        let result: String
    }

    private let verifications = Mutex<[VerificationKey: Counter]>([:])

    /// Counts a secret release or a denial.
    public func recordRelease(allowed: Bool) {
        Self.kept(releaseCounters, allowed) {
            registry.makeCounter(
                descriptor: allowed
                    ? Self.name("secret_releases", unit: "total", help: "Secrets released")
                    : Self.name("policy_denials", unit: "total", help: "Secret requests denied by policy"))
        }.increment()
    }

    private let releaseCounters = Mutex<[Bool: Counter]>([:])

    /// The age of the oldest collateral in use, by FMSPC.
    public func setCollateralAge(fmspc: String, seconds: Double) {
        registry.makeGauge(
            descriptor: Self.name("collateral_age", unit: "seconds", help: "Age of the TDX collateral in use"),
            labels: [("fmspc", fmspc)]
        ).set(seconds)
    }

    static func name(_ metric: String, unit: String, help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "custos", metricName: metric, unitName: unit, helpText: help)
    }

    /// The Prometheus text exposition of everything recorded so far.
    public func exposition() -> String { registry.emitToString() }
}

/// Records every request in ``ServiceMetrics`` under its route template (`/v1/appraisals/{id}`), never the raw
/// path, so the label set stays bounded whatever clients send.
public struct MetricsRecordingMiddleware: RouterMiddleware {
    public typealias Context = CustosRequestContext
    let metrics: ServiceMetrics

    public init(metrics: ServiceMetrics) { self.metrics = metrics }

    public func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        let start = ContinuousClock.now
        let response = try await next(request, context)
        let elapsed = ContinuousClock.now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        metrics.recordRequest(
            route: context.endpointPath ?? "unmatched", method: request.method.rawValue, status: response.status.code,
            seconds: seconds)
        return response
    }
}
