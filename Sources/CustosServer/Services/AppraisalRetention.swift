public import CustosAudit
public import CustosCrypto
public import CustosStore
public import Foundation
public import Logging
public import ServiceLifecycle

/// Deletes appraisals older than the configured retention (`appraisal_retention_days`), tenant by tenant.
///
/// Every KBS flow and every launch decision stores an appraisal with its full claims (a few KiB); without retention
/// the database grows by the flow rate for ever. The audit log is the permanent record — its entries keep naming
/// the appraisal ids, and `GET /v1/appraisals/{id}` answers 404 for one that was deleted. Before a tenant's old
/// appraisals go, an `appraisal.pruned` entry records the cutoff (`before`) and the retention, so an auditor sees
/// why an id no longer resolves; the deletions follow in batches (each its own short transaction, so attestations
/// keep committing between them). A pass interrupted part way leaves the rest to the next one, under its own entry.
public struct AppraisalRetention: Sendable {
    public let store: any Store
    public let audit: AuditRecorder
    /// Appraisals older than this many days are deleted.
    public let retentionDays: Int
    /// Appraisals deleted per transaction.
    public let batchSize: Int
    let logger: Logger

    public init(store: any Store, audit: AuditRecorder, retentionDays: Int, batchSize: Int = 500, logger: Logger) {
        self.store = store
        self.audit = audit
        self.retentionDays = retentionDays
        self.batchSize = max(1, batchSize)
        self.logger = logger
    }

    /// One pass at `now`: for each tenant with appraisals older than the retention, an `appraisal.pruned` entry,
    /// then their deletion. Returns how many were deleted, by tenant (tenants with none are absent).
    @discardableResult
    public func prune(now: Date = Date()) async throws -> [String: Int] {
        let cutoff = now.addingTimeInterval(-TimeInterval(retentionDays) * 86_400)
        var deleted: [String: Int] = [:]
        for tenant in try await store.listTenants() {
            guard try await store.hasAppraisals(tenantId: tenant.id, createdBefore: cutoff) else { continue }
            try await audit.record(
                "appraisal.pruned", tenant: tenant.id, actor: ["kind": "service", "task": "appraisal-retention"],
                object: [
                    "before": .string(RFC3339.format(cutoff, milliseconds: true)),
                    "retention_days": .integer(Int64(retentionDays)),
                ], time: now)
            var count = 0
            while true {
                try Task.checkCancellation()
                let batch = try await store.deleteAppraisals(tenantId: tenant.id, createdBefore: cutoff, limit: batchSize)
                count += batch
                if batch < batchSize { break }
                await Task.yield()
            }
            // Release counts of appraisals made before the cutoff (one first made later goes in a later pass).
            _ = try await store.deleteReleaseCounts(tenantId: tenant.id, firstBefore: cutoff)
            deleted[tenant.id] = count
            logger.info(
                "appraisal retention: deleted old appraisals",
                metadata: ["tenant": "\(tenant.id)", "count": "\(count)", "before": "\(RFC3339.format(cutoff, milliseconds: true))"])
        }
        return deleted
    }
}

/// Runs ``AppraisalRetention`` a minute after start and then every `interval` until graceful shutdown.
public struct AppraisalRetentionService: Service {
    let retention: AppraisalRetention
    let firstDelay: Duration
    let interval: Duration
    let logger: Logger

    public init(retention: AppraisalRetention, firstDelay: Duration = .seconds(60), interval: Duration = .seconds(3600), logger: Logger) {
        self.retention = retention
        self.firstDelay = firstDelay
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        let retention = self.retention
        let (firstDelay, interval, logger) = (self.firstDelay, self.interval, self.logger)
        try? await cancelWhenGracefulShutdown {
            try await Task.sleep(for: firstDelay)
            while !Task.isCancelled {
                do { try await retention.prune() } catch is CancellationError { return } catch {
                    // The next pass retries; the service goes on answering.
                    logger.error("appraisal retention pass failed: \(error)")
                }
                try await Task.sleep(for: interval)
            }
        }
    }
}
