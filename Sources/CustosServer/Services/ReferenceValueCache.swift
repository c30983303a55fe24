public import CustosPolicy
public import CustosStore
public import Foundation
import Synchronization

/// Tenants' reference-value sets from the store, as CustosPolicy sets, cached per tenant so that an appraisal does
/// not query the database once per set name. `PUT /v1/reference-values` invalidates the tenant's entry, and
/// entries also expire after `maximumAge` (another process may write the same database).
public final class ReferenceValueCache: Sendable {
    let store: any Store
    let maximumAge: TimeInterval
    private let entries = Mutex<[String: (sets: [String: CustosPolicy.ReferenceValueSet], loadedAt: Date)]>([:])

    public init(store: any Store, maximumAge: TimeInterval = 5) {
        self.store = store
        self.maximumAge = maximumAge
    }

    /// The tenant's sets among `names` (absent names are simply missing: the policy's `inRef` then fails).
    public func sets(tenant: String, names: [String], now: Date) async throws(StoreError) -> [CustosPolicy.ReferenceValueSet] {
        let key = tenant + "\u{0}" + names.joined(separator: ",")
        if let hit = entries.withLock({ $0[key] }), now.timeIntervalSince(hit.loadedAt) < maximumAge { return Array(hit.sets.values) }
        var sets: [String: CustosPolicy.ReferenceValueSet] = [:]
        for name in names {
            do {
                let stored = try await store.referenceValues(tenantId: tenant, name: name)
                sets[name] = CustosPolicy.ReferenceValueSet(
                    name: name, values: stored.values, expires: stored.expiresAt, provenance: stored.provenance,
                    description: "tenant \(tenant), revision \(stored.revision)")
            } catch  where error.code == .notFound {
                continue
            }
        }
        let result = sets
        entries.withLock { entries in
            if entries.count > 10_000 { entries.removeAll() }
            entries[key] = (result, now)
        }
        return Array(result.values)
    }

    /// Forgets the tenant's cached sets (after a write).
    public func invalidate(tenant: String) {
        entries.withLock { entries in entries = entries.filter { !$0.key.hasPrefix(tenant + "\u{0}") } }
    }
}
