public import CustosAudit
public import Logging
public import ServiceLifecycle

/// Keeps the audit log's signed checkpoint fresh while the service runs and signs a final one at graceful shutdown
/// (SIGTERM; issue 11 §1, service.md §11.2: "every N entries or T seconds, and on shutdown").
///
/// It is added before the HTTP server in the application's service group; the group shuts services down in reverse
/// order, so the server has stopped accepting and finished its in-flight requests (and their audit entries) before
/// the final checkpoint is signed.
public struct AuditCheckpointService: Service {
    let log: AuditLog
    let logger: Logger
    /// How often a checkpoint is signed while the log grows (none is signed while it does not).
    let interval: Duration

    public init(log: AuditLog, logger: Logger, interval: Duration = .seconds(10)) {
        self.log = log
        self.logger = logger
        self.interval = interval
    }

    public func run() async throws {
        let timer = log.runCheckpointTimer(every: interval)
        try? await gracefulShutdown()
        timer.cancel()
        do {
            let signed = try await log.signCheckpoint()
            logger.info("final audit checkpoint signed", metadata: ["size": "\(signed.checkpoint.size)"])
        } catch {
            logger.error("final audit checkpoint failed: \(error)")
        }
    }
}
