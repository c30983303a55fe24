public import GRDB

/// The store's schema, as an ordered list of shipped migrations registered with the store's own
/// `DatabaseMigrator` (identifiers `store-v1`, `store-v2`, …; CustosAudit has its own `audit-…` migrator on the same
/// file).
///
/// A shipped migration is never edited: `StoreSchemaTests` keeps the SHA-256 of each one's SQL. Table and column
/// names are strings, never derived from Swift types (STYLE §10), so renaming a Swift property cannot change a
/// shipped migration. Times are INTEGER Unix milliseconds.
public enum StoreSchema {
    /// One shipped migration: its identifier and the SQL it runs.
    public struct Migration: Sendable {
        public let identifier: String
        public let sql: String
    }

    /// Every shipped migration, oldest first. Append only.
    public static let migrations: [Migration] = [
        Migration(identifier: "store-v1", sql: v1), Migration(identifier: "store-v2", sql: v2),
        Migration(identifier: "store-v3", sql: v3),
    ]

    /// Identifiers of the store's migrations (for telling ours from the audit's in `grdb_migrations`).
    public static var identifiers: [String] { migrations.map(\.identifier) }

    /// A migrator holding the first `count` migrations (all by default): tests migrate to every earlier schema.
    public static func migrator(upTo count: Int? = nil) -> DatabaseMigrator {
        var migrator = DatabaseMigrator()
        for migration in migrations.prefix(count ?? migrations.count) {
            let sql = migration.sql
            migrator.registerMigration(migration.identifier) { db in try db.execute(sql: sql) }
        }
        return migrator
    }

    // MARK: - store-v3 (shipped: never edit)

    /// Appraisal listings (`GET /v1/appraisals`, the console) are newest first by `seq`: these indexes give that order
    /// for one tenant, and for one tenant's workload, so a page reads its rows instead of sorting all the tenant's
    /// (the `created_at` indexes of store-v1 still serve `since`/`until`).
    static let v3 = """
        CREATE INDEX appraisal_tenant_seq ON appraisal(tenant_id, seq);
        CREATE INDEX appraisal_tenant_workload_seq ON appraisal(tenant_id, workload_id, seq);
        """

    // MARK: - store-v2 (shipped: never edit)

    /// Releases counted against a release policy's `maxReleasesPerAttestation` (only for secrets that have one).
    static let v2 = """
        CREATE TABLE secret_release_count (
            tenant_id TEXT NOT NULL REFERENCES tenant(id) ON DELETE CASCADE,
            appraisal_id TEXT NOT NULL,
            path TEXT NOT NULL,
            count INTEGER NOT NULL CHECK (count >= 1),
            first_at INTEGER NOT NULL,
            PRIMARY KEY (tenant_id, appraisal_id, path)
        ) STRICT, WITHOUT ROWID;
        """

    // MARK: - store-v1 (shipped: never edit)

    static let v1 = """
        CREATE TABLE tenant (
            id TEXT PRIMARY KEY NOT NULL CHECK (length(id) BETWEEN 1 AND 63),
            display_name TEXT NOT NULL,
            created_at INTEGER NOT NULL
        ) STRICT;

        CREATE TABLE credential (
            id TEXT PRIMARY KEY NOT NULL,
            tenant_id TEXT REFERENCES tenant(id) ON DELETE CASCADE,
            token_sha256 BLOB NOT NULL UNIQUE CHECK (length(token_sha256) = 32),
            role TEXT NOT NULL CHECK (role IN ('service-admin', 'tenant-admin', 'tenant-reader', 'auditor', 'launcher')),
            label TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            expires_at INTEGER,
            revoked_at INTEGER,
            CHECK (tenant_id IS NOT NULL OR role IN ('service-admin', 'auditor')),
            CHECK (tenant_id IS NULL OR role <> 'service-admin')
        ) STRICT;
        CREATE INDEX credential_tenant ON credential(tenant_id);

        CREATE TABLE tenant_key (
            tenant_id TEXT NOT NULL REFERENCES tenant(id) ON DELETE CASCADE,
            id INTEGER NOT NULL CHECK (id >= 1),
            master_key_id TEXT NOT NULL CHECK (length(master_key_id) = 16),
            nonce BLOB NOT NULL CHECK (length(nonce) = 12),
            wrapped BLOB NOT NULL CHECK (length(wrapped) = 32),
            tag BLOB NOT NULL CHECK (length(tag) = 16),
            created_at INTEGER NOT NULL,
            PRIMARY KEY (tenant_id, id)
        ) STRICT;

        CREATE TABLE secret (
            tenant_id TEXT NOT NULL REFERENCES tenant(id) ON DELETE CASCADE,
            path TEXT NOT NULL,
            last_version INTEGER NOT NULL CHECK (last_version >= 0),
            created_at INTEGER NOT NULL,
            PRIMARY KEY (tenant_id, path)
        ) STRICT;

        CREATE TABLE secret_version (
            tenant_id TEXT NOT NULL,
            path TEXT NOT NULL,
            version INTEGER NOT NULL CHECK (version >= 1),
            state TEXT NOT NULL CHECK (state IN ('active', 'retired')),
            created_at INTEGER NOT NULL,
            retire_after INTEGER,
            retired_at INTEGER,
            key_id INTEGER NOT NULL,
            nonce BLOB NOT NULL CHECK (length(nonce) = 12),
            ciphertext BLOB NOT NULL,
            tag BLOB NOT NULL CHECK (length(tag) = 16),
            PRIMARY KEY (tenant_id, path, version),
            FOREIGN KEY (tenant_id, path) REFERENCES secret(tenant_id, path) ON DELETE CASCADE,
            FOREIGN KEY (tenant_id, key_id) REFERENCES tenant_key(tenant_id, id)
        ) STRICT;

        CREATE TABLE reference_value_set (
            tenant_id TEXT NOT NULL REFERENCES tenant(id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            revision INTEGER NOT NULL CHECK (revision >= 1),
            values_json TEXT NOT NULL,
            expires_at INTEGER,
            provenance_json TEXT,
            updated_at INTEGER NOT NULL,
            PRIMARY KEY (tenant_id, name)
        ) STRICT;

        CREATE TABLE appraisal (
            seq INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            tenant_id TEXT NOT NULL REFERENCES tenant(id) ON DELETE CASCADE,
            workload_id TEXT NOT NULL,
            tee TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('affirming', 'warning', 'contraindicated', 'none')),
            policy_id TEXT NOT NULL,
            policy_sha256 TEXT NOT NULL,
            trust_vector_json TEXT NOT NULL,
            claims_json TEXT NOT NULL,
            trace_json TEXT NOT NULL,
            token_jti TEXT,
            evidence_sha256 BLOB NOT NULL CHECK (length(evidence_sha256) = 32)
        ) STRICT;
        CREATE INDEX appraisal_tenant_workload_time ON appraisal(tenant_id, workload_id, created_at);
        CREATE INDEX appraisal_tenant_time ON appraisal(tenant_id, created_at);

        CREATE TABLE launch (
            id TEXT PRIMARY KEY NOT NULL,
            tenant_id TEXT NOT NULL REFERENCES tenant(id) ON DELETE CASCADE,
            workload_id TEXT NOT NULL,
            tee TEXT NOT NULL CHECK (tee IN ('sev', 'sev-es')),
            policy_id TEXT NOT NULL,
            guest_policy INTEGER NOT NULL CHECK (guest_policy BETWEEN 0 AND 4294967295),
            state TEXT NOT NULL CHECK (state IN ('created', 'measured', 'allowed', 'denied', 'injected')),
            created_at INTEGER NOT NULL,
            expires_at INTEGER NOT NULL,
            measurement BLOB CHECK (measurement IS NULL OR length(measurement) = 48),
            measured_at INTEGER,
            decided_at INTEGER,
            appraisal_id TEXT,
            decision_reason TEXT,
            injected_at INTEGER,
            session_key_id INTEGER,
            session_nonce BLOB,
            session_ciphertext BLOB,
            session_tag BLOB,
            FOREIGN KEY (tenant_id, session_key_id) REFERENCES tenant_key(tenant_id, id),
            CHECK ((state = 'created') = (measurement IS NULL))
        ) STRICT;
        CREATE INDEX launch_tenant ON launch(tenant_id, created_at);
        """
}
