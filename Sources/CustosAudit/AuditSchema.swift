public import GRDB

/// The audit log's tables (specs/audit.md §8.1), registered with CustosAudit's own migrator (`audit-v1`, …) so it
/// shares the database file with CustosStore's migrator. Shipped migrations are never edited: a test pins the
/// SHA-256 of each one's SQL.
public enum AuditSchema {
    /// Each shipped migration: its identifier and its SQL, in order.
    public static let migrations: [(identifier: String, sql: String)] = [("audit-v1", v1), ("audit-v2", v2)]

    /// `audit-v1`: entries (JCS body, leaf hash, and tenant/type/time copied out for filtering, cross-checked by
    /// `audit verify`), perfect nodes of level ≥ 1, signed checkpoints, and the log's origin and verifier key.
    /// Every table is append-only: `BEFORE UPDATE/DELETE` triggers abort.
    static let v1 = """
        CREATE TABLE audit_entries (
            seq INTEGER PRIMARY KEY,
            body BLOB NOT NULL,
            leaf_hash BLOB NOT NULL CHECK (length(leaf_hash) = 32),
            tenant TEXT NOT NULL,
            type TEXT NOT NULL,
            time TEXT NOT NULL
        );
        CREATE INDEX audit_entries_tenant ON audit_entries (tenant, seq);
        CREATE INDEX audit_entries_type ON audit_entries (type, seq);
        CREATE TABLE audit_nodes (
            level INTEGER NOT NULL CHECK (level >= 1),
            idx INTEGER NOT NULL,
            hash BLOB NOT NULL CHECK (length(hash) = 32),
            PRIMARY KEY (level, idx)
        ) WITHOUT ROWID;
        CREATE TABLE audit_checkpoints (
            size INTEGER PRIMARY KEY,
            root BLOB NOT NULL CHECK (length(root) = 32),
            note BLOB NOT NULL
        );
        CREATE TABLE audit_meta (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL
        ) WITHOUT ROWID;
        CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries
            BEGIN SELECT RAISE(ABORT, 'audit_entries is append-only'); END;
        CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries
            BEGIN SELECT RAISE(ABORT, 'audit_entries is append-only'); END;
        CREATE TRIGGER audit_nodes_no_update BEFORE UPDATE ON audit_nodes
            BEGIN SELECT RAISE(ABORT, 'audit_nodes is append-only'); END;
        CREATE TRIGGER audit_nodes_no_delete BEFORE DELETE ON audit_nodes
            BEGIN SELECT RAISE(ABORT, 'audit_nodes is append-only'); END;
        CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
            BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only'); END;
        CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
            BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only'); END;
        CREATE TRIGGER audit_meta_no_update BEFORE UPDATE ON audit_meta
            BEGIN SELECT RAISE(ABORT, 'audit_meta is append-only'); END;
        CREATE TRIGGER audit_meta_no_delete BEFORE DELETE ON audit_meta
            BEGIN SELECT RAISE(ABORT, 'audit_meta is append-only'); END;
        """

    /// `audit-v2`: an index on `time`, so a `since` filter finds where its entries start without reading the log
    /// before them (``AuditLogReader/entries(tenant:type:since:until:limit:cursor:)``).
    static let v2 = """
        CREATE INDEX audit_entries_time ON audit_entries (time);
        """

    /// CustosAudit's migrator.
    public static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        for migration in migrations {
            let sql = migration.sql
            migrator.registerMigration(migration.identifier) { db in try db.execute(sql: sql) }
        }
        return migrator
    }

    /// Whether the database holds the audit tables (read-only commands refuse other files).
    static func isAuditLog(_ db: Database) throws -> Bool {
        try db.tableExists("audit_entries") && db.tableExists("audit_nodes") && db.tableExists("audit_checkpoints")
            && db.tableExists("audit_meta")
    }
}
