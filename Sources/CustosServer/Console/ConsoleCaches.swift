import Foundation
import Synchronization

/// What the console keeps between requests so that page loads stay cheap whatever reviewers do: the overview's daily
/// counts per tenant and the collateral rows (each for ``overviewLifetime``), and the time of the last checkpoint the
/// console signed (at most one per ``signingInterval``).
final class ConsoleCaches: Sendable {
    typealias Counts = (days: [[ConsoleOverview.Series: Int]], truncated: Bool)

    /// How long the overview's figures are reused.
    static let overviewLifetime: TimeInterval = 60
    /// The least time between two checkpoints the console signs.
    static let signingInterval: TimeInterval = 1
    /// Tenants whose counts are held at most (the table is emptied past it).
    static let maximumTenants = 1024

    private struct State {
        var counts: [String: (at: Date, value: [[ConsoleOverview.Series: Int]], truncated: Bool)] = [:]
        var collateral: (at: Date, rows: [[String: String]])?
        var lastSigning: Date?
    }
    private let state = Mutex(State())

    /// The key of a tenant's counts; the whole log (service-wide viewers) is `*`, which no tenant id can be.
    private static func key(_ tenant: String?) -> String { tenant ?? "*" }

    private static func fresh(_ at: Date, now: Date) -> Bool { now >= at && now.timeIntervalSince(at) < overviewLifetime }

    func counts(tenant: String?, now: Date) -> Counts? {
        state.withLock { state in
            guard let entry = state.counts[Self.key(tenant)], Self.fresh(entry.at, now: now) else { return nil }
            return (entry.value, entry.truncated)
        }
    }

    func store(counts: Counts, tenant: String?, now: Date) {
        state.withLock { state in
            if state.counts.count >= Self.maximumTenants { state.counts.removeAll() }
            state.counts[Self.key(tenant)] = (now, counts.days, counts.truncated)
        }
    }

    func collateralRows(now: Date) -> [[String: String]]? {
        state.withLock { state in
            guard let entry = state.collateral, Self.fresh(entry.at, now: now) else { return nil }
            return entry.rows
        }
    }

    func store(collateralRows: [[String: String]], now: Date) { state.withLock { $0.collateral = (now, collateralRows) } }

    /// Takes the signing slot: nil when the console may sign now (the slot is then taken), else the seconds until the
    /// next slot. `force` takes it regardless (after waiting for it).
    func signingSlot(now: Date, force: Bool = false) -> TimeInterval? {
        state.withLock { state in
            if !force, let last = state.lastSigning, now >= last, now.timeIntervalSince(last) < Self.signingInterval {
                return Self.signingInterval - now.timeIntervalSince(last)
            }
            state.lastSigning = now
            return nil
        }
    }
}
