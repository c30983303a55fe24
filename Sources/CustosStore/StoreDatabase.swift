public import GRDB

/// Opens Custos's SQLite database: one `DatabasePool` in WAL mode, foreign keys on, a busy timeout, and
/// `synchronous=FULL` so that an acknowledged commit (an audit append above all) survives power loss.
///
/// Each module owns its schema and registers it with its own `DatabaseMigrator` (identifiers prefixed with the
/// module: `store-…`, `audit-…`); GRDB's migrator ignores identifiers it does not know, so the migrators share the
/// one file without knowing each other.
public enum StoreDatabase {
    /// How long a connection waits for a lock held by another process before SQLite reports `SQLITE_BUSY`.
    public static let busyTimeoutSeconds: Double = 10

    public static func configuration(readOnly: Bool = false) -> Configuration {
        var configuration = Configuration()
        configuration.foreignKeysEnabled = true
        configuration.readonly = readOnly
        configuration.busyMode = .timeout(busyTimeoutSeconds)
        configuration.label = "custos"
        return configuration
    }

    /// Opens (creating when absent) the pool at `path`.
    public static func openPool(path: String, readOnly: Bool = false) throws -> DatabasePool {
        let pool = try DatabasePool(path: path, configuration: configuration(readOnly: readOnly))
        if !readOnly {
            // GRDB switches its one writer connection to WAL with `synchronous = NORMAL` after
            // `prepareDatabase` runs, so FULL is set here, once, on that connection: with NORMAL a commit
            // acknowledged just before a power loss may be rolled back.
            try pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
        }
        return pool
    }
}
