import CustosCrypto
import Foundation
import GRDB
import Testing

@testable import CustosStore

@Suite struct StoreSchemaTests {
    /// SHA-256 of each shipped migration's SQL. A shipped migration is never edited: add `store-v2` instead.
    /// (Pinned when the migration shipped: Python's hashlib over the literal's text with its indentation stripped.)
    static let shippedMigrationHashes: [(String, String)] = [
        ("store-v1", "fc1330cd020ce5a0d1d1b929fd8334cd36549b6c84defdfd327092b5966daba1"),
        ("store-v2", "055db4bd198c76a97a55954d1dd0abebb15dc14b3efc275cf60b13c7d486f028"),
        ("store-v3", "985ef138c0b59698aa7089d024d4cbb98d58fefbbf4d6b94de6b6187bd4d8f61"),
    ]

    @Test func shippedMigrationsAreNeverEdited() {
        #expect(StoreSchema.migrations.count >= Self.shippedMigrationHashes.count)
        for (index, (identifier, hash)) in Self.shippedMigrationHashes.enumerated() {
            let migration = StoreSchema.migrations[index]
            #expect(migration.identifier == identifier)
            #expect(Hex.encode(Digest.sha256(Array(migration.sql.utf8))) == hash, "migration \(identifier) was edited")
        }
        #expect(StoreSchema.identifiers == (1...StoreSchema.migrations.count).map { "store-v\($0)" })
    }

    @Test func migratesFromEmpty() throws {
        let dir = try TemporaryDirectory()
        let pool = try StoreDatabase.openPool(path: dir.path("custos.sqlite"))
        try SQLiteStore.migrate(pool)
        try pool.read { db throws in
            for table in [
                "tenant", "credential", "tenant_key", "secret", "secret_version", "reference_value_set", "appraisal", "launch",
                "secret_release_count",
            ] {
                #expect(try db.tableExists(table), "missing table \(table)")
            }
            #expect(try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations ORDER BY identifier") == StoreSchema.identifiers)
        }
        // Migrating again is a no-op.
        try SQLiteStore.migrate(pool)
    }

    /// For every earlier shipped schema: migrate to it, fill it through the store's own SQL of that version, then
    /// migrate to the latest and check that rows survive and foreign keys hold.
    @Test(arguments: 1...StoreSchema.migrations.count)
    func migratesFromEveryEarlierSchema(shipped: Int) async throws {
        let dir = try TemporaryDirectory()
        let pool = try StoreDatabase.openPool(path: dir.path("custos.sqlite"))
        try StoreSchema.migrator(upTo: shipped).migrate(pool)
        try await pool.write { db in
            try db.execute(sql: "INSERT INTO tenant (id, display_name, created_at) VALUES ('acme', 'Acme', 0)")
            try db.execute(
                sql: """
                    INSERT INTO appraisal (id, tenant_id, workload_id, tee, created_at, status, policy_id, policy_sha256,
                        trust_vector_json, claims_json, trace_json, token_jti, evidence_sha256)
                    VALUES ('apr_1', 'acme', 'wl', 'tdx', 0, 'affirming', 'p', 'x', '{}', '{}', '[]', NULL, zeroblob(32))
                    """)
        }
        try SQLiteStore.migrate(pool)
        try await pool.read { db throws in
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM appraisal") == 1)
            #expect(try Row.fetchAll(db, sql: "PRAGMA foreign_key_check").isEmpty)
            #expect(
                try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations WHERE identifier LIKE 'store-%'").count
                    == StoreSchema.migrations.count)
        }
    }

    /// A tenant's appraisals (or one workload's; with a cursor, a status, a TEE or a time range) are listed newest
    /// first through store-v3's indexes: SQLite reads a page's rows instead of sorting all the tenant's (3 s warm on
    /// 200,000 rows). A time range's seq bounds are read from a `created_at` index without the rows.
    @Test func appraisalListingsReadAnIndexInOrder() async throws {
        let dir = try TemporaryDirectory()
        let pool = try StoreDatabase.openPool(path: dir.path("custos.sqlite"))
        try SQLiteStore.migrate(pool)
        let queries = [
            AppraisalQuery(tenantId: "acme"), AppraisalQuery(tenantId: "acme", workloadId: "wl", limit: 20),
            AppraisalQuery(tenantId: "acme", status: .warning, cursor: "c100"), AppraisalQuery(tenantId: "acme", tee: "tdx"),
        ]
        let window = AppraisalQuery(
            tenantId: "acme", since: Date(timeIntervalSince1970: 1_800_000_000), until: Date(timeIntervalSince1970: 1_800_086_400))
        let workloadSince = AppraisalQuery(tenantId: "acme", workloadId: "wl", since: Date(timeIntervalSince1970: 1_800_000_000))
        for query in [window, workloadSince] {
            // The time range's seq bounds come from a created_at index alone.
            let bounds = try #require(SQLiteStore.appraisalBounds(query))
            let plan = try await pool.read { db in
                try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + bounds.sql, arguments: bounds.arguments)
                    .map { $0["detail"] as String? ?? "" }.joined(separator: "; ")
            }
            #expect(plan.contains("COVERING INDEX appraisal_tenant"), "\(query): \(plan)")
        }
        #expect(SQLiteStore.appraisalBounds(AppraisalQuery(tenantId: "acme"))?.sql == nil)
        for (query, seqs) in queries.map({ ($0, nil) }) + [(window, (Int64(1), Int64(500))), (workloadSince, (Int64(1), Int64(500)))]
            as [(AppraisalQuery, (low: Int64, high: Int64)?)]
        {
            let (sql, arguments) = try SQLiteStore.appraisalListing(query, seqs: seqs)
            let plan = try await pool.read { db in
                try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + sql, arguments: arguments).map { $0["detail"] as String? ?? "" }
                    .joined(separator: "; ")
            }
            #expect(!plan.contains("TEMP B-TREE"), "\(query): \(plan)")
            #expect(plan.contains("appraisal_tenant_seq") || plan.contains("appraisal_tenant_workload_seq"), "\(query): \(plan)")
        }
    }

    @Test func sharesTheFileWithAnotherModulesMigrator() throws {
        let dir = try TemporaryDirectory()
        let pool = try StoreDatabase.openPool(path: dir.path("custos.sqlite"))
        var audit = DatabaseMigrator()
        audit.registerMigration("audit-v1") { db in try db.execute(sql: "CREATE TABLE audit_probe (id INTEGER PRIMARY KEY)") }
        try audit.migrate(pool)
        try SQLiteStore.migrate(pool)
        try audit.migrate(pool)
        try pool.read { db throws in
            #expect(try db.tableExists("audit_probe"))
            #expect(try db.tableExists("tenant"))
        }
    }

    @Test func refusesADatabaseFromANewerCustos() throws {
        let dir = try TemporaryDirectory()
        let pool = try StoreDatabase.openPool(path: dir.path("custos.sqlite"))
        try SQLiteStore.migrate(pool)
        try pool.write { db in try db.execute(sql: "INSERT INTO grdb_migrations (identifier) VALUES ('store-v999')") }
        let error = #expect(throws: StoreError.self) { try SQLiteStore.migrate(pool) }
        #expect(error?.code == .schemaTooNew)
        #expect(error?.reason.contains("store-v999") == true)
    }
}
