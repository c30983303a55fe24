import CustosCrypto
import CustosPolicy
import Foundation
import Synchronization
import Testing

@testable import CustosServer
@testable import CustosStore

/// The per-tenant cache of stored reference-value sets.
@Suite struct ReferenceValueCacheTests {
    final class Reads: Sendable {
        let count = Mutex(0)
        let gate = AsyncStream<Void>.makeStream()
    }

    static let now = Date(timeIntervalSince1970: 1_800_000_000)

    /// A read that began before a write's invalidation returns what it read, but does not cache it: the next read
    /// goes to the store. Without the generation check the stale set was served for `maximumAge` after the write.
    @Test func aReadOverlappingAnInvalidationIsNotCached() async throws {
        let reads = Reads()
        let cache = ReferenceValueCache(maximumAge: 60) { tenant, name async throws(StoreError) in
            let number = reads.count.withLock { count in
                count += 1
                return count
            }
            if number == 1 {
                for await _ in reads.gate.stream { break }  // the first read waits until the test lets it finish
            }
            return CustosStore.ReferenceValueSet(
                tenantId: tenant, name: name, revision: Int64(number), values: [.string("v\(number)")], expiresAt: nil, provenance: nil,
                updatedAt: Self.now)
        }
        let first = Task { try await cache.sets(tenant: "acme", names: ["mr_td"], now: Self.now) }
        while reads.count.withLock({ $0 }) == 0 { try await Task.sleep(for: .milliseconds(1)) }
        cache.invalidate(tenant: "acme")  // a PUT committed while the read was under way
        reads.gate.continuation.yield(())
        #expect(try await first.value.first?.values == [.string("v1")])
        #expect(try await cache.sets(tenant: "acme", names: ["mr_td"], now: Self.now).first?.values == [.string("v2")])
        #expect(reads.count.withLock { $0 } == 2)
        // With no invalidation in between, the second read is cached: no third store read.
        #expect(try await cache.sets(tenant: "acme", names: ["mr_td"], now: Self.now).first?.values == [.string("v2")])
        #expect(reads.count.withLock { $0 } == 2)
        // And it expires after maximumAge.
        #expect(
            try await cache.sets(tenant: "acme", names: ["mr_td"], now: Self.now.addingTimeInterval(60)).first?.values == [.string("v3")])
    }
}
