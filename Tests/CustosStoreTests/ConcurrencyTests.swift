import CustosCrypto
import Dispatch
import Foundation
import GRDB
import Testing

@testable import CustosStore

@Suite struct ConcurrencyTests {
    /// Many concurrent writers through the store's pool, plus a second pool on the same file (another process's
    /// connection), plus readers: every write lands and none sees `database is locked` (SQLITE_BUSY).
    @Test(.timeLimit(.minutes(10))) func concurrentWritersDoNotSeeDatabaseIsLocked() async throws {
        let dir = try TemporaryDirectory()
        let store = try await Fixtures.store(in: dir)
        let other = try SQLiteStore(pool: try StoreDatabase.openPool(path: dir.data.databasePath), keys: store.keys)
        let writers = 8
        let perWriter = 50
        let failures = try await withThrowingTaskGroup(of: [String].self) { group in
            for w in 0..<writers {
                group.addTask {
                    var failures: [String] = []
                    let target = w % 2 == 0 ? store : other
                    for i in 0..<perWriter {
                        do {
                            try await target.insertAppraisal(Fixtures.appraisal(workload: "w\(w)", at: TimeInterval(w * 1000 + i)))
                            if i % 10 == 0 {
                                _ = try await target.putSecret(
                                    tenantId: "acme", path: "s/\(w)", value: Fixtures.secret("v\(i)"), now: Fixtures.t0)
                                _ = try await target.listAppraisals(AppraisalQuery(tenantId: "acme", workloadId: "w\(w)", limit: 5))
                            }
                        } catch { failures.append("\(error)") }
                    }
                    return failures
                }
            }
            var all: [String] = []
            for try await failures in group { all += failures }
            return all
        }
        #expect(failures.isEmpty, "\(failures.prefix(3))")
        #expect(!failures.contains { $0.contains("locked") })
        let count = try await store.pool.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM appraisal") }
        #expect(count == writers * perWriter)
        for w in 0..<writers {
            #expect(try await store.listSecretVersions(tenantId: "acme", path: "s/\(w)").count == perWriter / 10)
        }
    }

    /// A reader is never blocked by an open write transaction (WAL): the writer holds its transaction open until a
    /// read has completed and seen the pre-write state. If reads waited on the writer, the writer's wait would time
    /// out after 30 s and the read would see the row. Both sides run on threads of their own, never on Swift's
    /// cooperative pool, so tests running in parallel (which may block pool threads) cannot starve them.
    @Test func readsDoNotWaitForAnOpenWrite() async throws {
        let dir = try TemporaryDirectory()
        let store = try await Fixtures.store(in: dir)
        let pool = store.pool
        let outcome: (seen: Int, wait: DispatchTimeoutResult) = try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread {
                let readDone = DispatchSemaphore(value: 0)
                let writeStarted = DispatchSemaphore(value: 0)
                let seen = LockedCount()
                Thread.detachNewThread {
                    writeStarted.wait()
                    seen.set((try? pool.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM appraisal") ?? -1 }) ?? -1)
                    readDone.signal()
                }
                do {
                    let wait = try pool.write { db -> DispatchTimeoutResult in
                        try SQLiteStore.insertAppraisal(Fixtures.appraisal(), in: db)
                        writeStarted.signal()
                        return readDone.wait(timeout: .now() + 30)
                    }
                    continuation.resume(returning: (seen.value, wait))
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
        #expect(outcome.wait == .success)
        #expect(outcome.seen == 0)
        #expect(try await store.listAppraisals(AppraisalQuery(tenantId: "acme")).items.count == 1)
    }
}

/// A count shared between two threads of one test.
final class LockedCount: @unchecked Sendable {
    private let lock = NSLock()
    private var stored = -2
    func set(_ value: Int) { lock.withLock { stored = value } }
    var value: Int { lock.withLock { stored } }
}

@Suite struct ChallengeCacheTests {
    @Test func challengesAreSingleUseAndExpire() async throws {
        let cache = ChallengeCache(capacity: 10, lifetime: 300)
        let t0 = Fixtures.t0
        let a = try await cache.issue(tee: "tdx", workloadId: "w", now: t0)
        let b = try await cache.issue(tee: "tdx", now: t0)
        #expect(a.nonce.count == 32 && a.nonce != b.nonce && a.id != b.id)
        #expect(a.expiresAt == t0.addingTimeInterval(300))
        #expect(await cache.peek(id: a.id, now: t0) == a)
        #expect(await cache.consume(id: a.id, now: t0.addingTimeInterval(299)) == .valid(a))
        #expect(await cache.consume(id: a.id, now: t0) == .unknown)
        #expect(await cache.consume(nonce: a.nonce, now: t0) == .unknown)
        #expect(await cache.consume(nonce: b.nonce, now: t0.addingTimeInterval(300)) == .expired(b))
        #expect(await cache.consume(id: b.id, now: t0) == .unknown)
        #expect(await cache.count == 0)
    }

    @Test func theCapIsHardUntilChallengesExpire() async throws {
        let cache = ChallengeCache(capacity: 3, lifetime: 60)
        let t0 = Fixtures.t0
        for _ in 0..<3 { _ = try await cache.issue(tee: "tdx", now: t0) }
        await #expect(throws: StoreError(.capacity, "")) { _ = try await cache.issue(tee: "tdx", now: t0.addingTimeInterval(59)) }
        // Once the first three expire they are evicted and issuing works again.
        let fresh = try await cache.issue(tee: "tdx", now: t0.addingTimeInterval(60))
        #expect(await cache.count == 1)
        // Consumed challenges free their slot at once.
        #expect(await cache.consume(id: fresh.id, now: t0.addingTimeInterval(60)) == .valid(fresh))
        for _ in 0..<3 { _ = try await cache.issue(tee: "tdx", now: t0.addingTimeInterval(61)) }
        #expect(await cache.count == 3)
    }

    @Test func manyIssueAndConsumeCyclesStayBounded() async throws {
        let cache = ChallengeCache(capacity: 4, lifetime: 300)
        let t0 = Fixtures.t0
        let longLived = try await cache.issue(tee: "tdx", now: t0)
        for i in 0..<5000 {
            let c = try await cache.issue(tee: "tdx", now: t0.addingTimeInterval(Double(i) / 100))
            #expect(await cache.consume(id: c.id, now: t0) == .valid(c))
        }
        #expect(await cache.count == 1)
        #expect(await cache.consume(id: longLived.id, now: t0) == .valid(longLived))
    }
}

@Suite struct BadInputTests {
    @Test func aCorruptedDatabaseIsATypedErrorAndNothingIsCreated() throws {
        let dir = try TemporaryDirectory()
        _ = FileManager.default.createFile(atPath: dir.data.databasePath, contents: Data(repeating: 0x5A, count: 8192))
        let error = #expect(throws: StoreError.self) { _ = try dir.data.open(environment: [:], create: true) }
        #expect(error?.code == .corrupted)
        #expect(!FileManager.default.fileExists(atPath: dir.data.masterKeyPath))
        #expect(FileManager.default.contents(atPath: dir.data.databasePath) == Data(repeating: 0x5A, count: 8192))
    }

    @Test func aDatabaseWithADamagedHeaderIsATypedError() async throws {
        let dir = try TemporaryDirectory()
        let store = try await Fixtures.store(in: dir)
        _ = try await store.pool.writeWithoutTransaction { db in try db.checkpoint(.truncate) }
        try store.pool.close()
        // Keep page 1 (the header and schema) and overwrite every other page: the tables' b-trees are garbage.
        let size = try #require(FileManager.default.attributesOfItem(atPath: dir.data.databasePath)[.size] as? NSNumber).intValue
        #expect(size > 4096)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: dir.data.databasePath))
        try handle.seek(toOffset: 4096)
        try handle.write(contentsOf: Data(repeating: 0x5A, count: size - 4096))
        try handle.close()
        let error = #expect(throws: StoreError.self) { _ = try dir.data.open(environment: [:], create: false) }
        #expect(error?.code == .corrupted)
        // Rotation refuses before touching any key file.
        let key = FileManager.default.contents(atPath: dir.data.masterKeyPath)
        #expect(throws: StoreError(.corrupted, "")) { _ = try dir.data.rotateMasterKey(environment: [:]) }
        #expect(FileManager.default.contents(atPath: dir.data.masterKeyPath) == key)
        #expect(!FileManager.default.fileExists(atPath: dir.data.oldMasterKeyPath))
    }

    @Test func unusablePathsAreTypedErrors() throws {
        let dir = try TemporaryDirectory()
        let file = dir.path("plain-file")
        _ = FileManager.default.createFile(atPath: file, contents: Data("x".utf8))
        #expect(throws: StoreError(.unusablePath, "")) { _ = try DataDirectory(path: file).open(environment: [:], create: true) }
        #expect(throws: StoreError(.unusablePath, "")) {
            _ = try DataDirectory(path: dir.path("missing")).open(environment: [:], create: false)
        }
        // The directory exists but holds no database: opening without create refuses and creates nothing.
        #expect(throws: StoreError(.unusablePath, "")) { _ = try dir.data.open(environment: [:], create: false) }
        #expect(!FileManager.default.fileExists(atPath: dir.data.masterKeyPath))
        #expect(throws: StoreError(.unusablePath, "")) { _ = try dir.data.rotateMasterKey(environment: [:]) }
    }
}
