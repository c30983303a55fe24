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
        try pool.write { db in
            #expect(try String.fetchOne(db, sql: "PRAGMA journal_mode") == "wal")
            #expect(try Int.fetchOne(db, sql: "PRAGMA foreign_keys") == 1)
            #expect(try Int.fetchOne(db, sql: "PRAGMA synchronous") == 2)
        }
    }
}
