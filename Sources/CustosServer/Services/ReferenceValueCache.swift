public import CustosPolicy
public import CustosStore
public import Foundation
import Synchronization

/// Tenants' reference-value sets from the store, as CustosPolicy sets, cached per tenant so that an appraisal does
/// not query the database once per set name. `PUT /v1/reference-values` invalidates the tenant's entry, and
/// entries also expire after `maximumAge` (another process may write the same database).
public final class ReferenceValueCache: Sendable {
    /// Reads one stored set (the store's `referenceValues(tenantId:name:)`; tests put a controllable reader here).
    typealias Loader = @Sendable (_ tenant: String, _ name: String) async throws(StoreError) -> CustosStore.ReferenceValueSet
    let load: Loader
    let maximumAge: TimeInterval
    private struct State {
        var entries: [String: (sets: [String: CustosPolicy.ReferenceValueSet], loadedAt: Date)] = [:]
        /// Counts invalidations. A read that began before one must not put what it read into the cache: it may hold
        /// a value the write removed, which would then be accepted for up to `maximumAge` after the write returned.
        var generation: UInt64 = 0
    }
    private let state = Mutex(State())

    public init(store: any Store, maximumAge: TimeInterval = 5) {
        self.load = { tenant, name async throws(StoreError) in try await store.referenceValues(tenantId: tenant, name: name) }
        self.maximumAge = maximumAge
    }

    init(maximumAge: TimeInterval = 5, load: @escaping Loader) {
        self.load = load
        self.maximumAge = maximumAge
    }

    /// The tenant's sets among `names` (absent names are simply missing: the policy's `inRef` then fails).
    public func sets(tenant: String, names: [String], now: Date) async throws(StoreError) -> [CustosPolicy.ReferenceValueSet] {
        let key = tenant + "\u{0}" + names.joined(separator: ",")
        let (hit, generation) = state.withLock { ($0.entries[key], $0.generation) }
        if let hit, now.timeIntervalSince(hit.loadedAt) < maximumAge { return Array(hit.sets.values) }
        var sets: [String: CustosPolicy.ReferenceValueSet] = [:]
        for name in names {
            do {
                let stored = try await load(tenant, name)
                sets[name] = CustosPolicy.ReferenceValueSet(
                    name: name, values: stored.values, expires: stored.expiresAt, provenance: stored.provenance,
                    description: "tenant \(tenant), revision \(stored.revision)")
            } catch  where error.code == .notFound {
                continue
            }
        }
        let result = sets
        state.withLock { state in
            guard state.generation == generation else { return }
            if state.entries.count > 10_000 { state.entries.removeAll() }
            state.entries[key] = (result, now)
        }
        return Array(result.values)
    }

    /// Forgets the tenant's cached sets (after a write), and keeps reads already under way from caching theirs.
    public func invalidate(tenant: String) {
        state.withLock { state in
            state.generation &+= 1
            state.entries = state.entries.filter { !$0.key.hasPrefix(tenant + "\u{0}") }
        }
    }
}
