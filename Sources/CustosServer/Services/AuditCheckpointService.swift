public import CustosAudit
public import Logging
public import ServiceLifecycle

/// Signs a final audit checkpoint at graceful shutdown (SIGTERM; issue 11 §1), so the last entries of a run are
/// covered by a signed note before the process exits.
///
/// It is added before the HTTP server in the application's service group; the group shuts services down in reverse
/// order, so the server has stopped accepting and finished its in-flight requests (and their audit entries) before
/// ``run()`` signs.
public struct AuditCheckpointService: Service {
    let log: AuditLog
    let logger: Logger

    public init(log: AuditLog, logger: Logger) {
        self.log = log
        self.logger = logger
    }

    public func run() async throws {
        try? await gracefulShutdown()
        do {
            let signed = try await log.signCheckpoint()
            logger.info("final audit checkpoint signed", metadata: ["size": "\(signed.checkpoint.size)"])
        } catch {
            logger.error("final audit checkpoint failed: \(error)")
        }
    }
}
