import CustosStore
import Foundation
import GRDB
import Testing

@Suite struct StoreDatabaseTests {
    @Test func poolIsWALWithForeignKeysAndFullSync() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("custos-store-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let pool = try StoreDatabase.openPool(path: dir.appendingPathComponent("custos.sqlite").path)
        let (journal, foreignKeys, synchronous) = try pool.write { db in
            (
                try String.fetchOne(db, sql: "PRAGMA journal_mode"), try Int.fetchOne(db, sql: "PRAGMA foreign_keys"),
                try Int.fetchOne(db, sql: "PRAGMA synchronous")
            )
        }
        #expect(journal == "wal")
        #expect(foreignKeys == 1)
        #expect(synchronous == 2)
    }
}
