public import Foundation
import GRDB

/// The data directory and everything the store keeps in it:
///
/// ```
/// <data>/custos.sqlite (+ -wal, -shm)   the database (store and audit tables)
/// <data>/master.key                      32 raw bytes, mode 0600 (unless CUSTOS_MASTER_KEY is set)
/// <data>/master.key.old                  only while a master-key rotation is unfinished
/// ```
public struct DataDirectory: Sendable {
    /// Base64 of the 32-byte master key; when set, it is used instead of `master.key`.
    public static let masterKeyVariable = "CUSTOS_MASTER_KEY"
    /// Base64 of the new master key for `rotate-master-key` when the current one comes from ``masterKeyVariable``.
    public static let newMasterKeyVariable = "CUSTOS_NEW_MASTER_KEY"

    public let url: URL
    public init(_ url: URL) { self.url = url }
    public init(path: String) { self.url = URL(fileURLWithPath: path) }

    public var databasePath: String { url.appendingPathComponent("custos.sqlite").path }
    public var masterKeyPath: String { url.appendingPathComponent("master.key").path }
    public var oldMasterKeyPath: String { url.appendingPathComponent("master.key.old").path }

    /// Where the master key came from.
    public enum KeySource: String, Sendable, Codable {
        case file
        case environment
    }

    /// What ``open(environment:create:)`` did.
    public struct Opened: Sendable {
        public let store: SQLiteStore
        public let keySource: KeySource
        /// Whether the database file was created by this call.
        public let createdDatabase: Bool
        /// Whether `master.key` was created by this call.
        public let createdMasterKey: Bool
    }

    // MARK: - Opening

    /// Opens the store in this directory: loads the master key (file or environment), opens and migrates the
    /// database, and checks that the key matches the database's wrapped keys.
    ///
    /// With `create`, a missing directory (0700), database and `master.key` are created, but never a new key for a
    /// database that already holds wrapped keys. A database created by a call that then fails is removed again.
    /// - Throws: ``StoreError``: `unusablePath`, `masterKey`, `corrupted`, `schemaTooNew`, `database`.
    public func open(environment: [String: String] = ProcessInfo.processInfo.environment, create: Bool) throws(StoreError) -> Opened {
        if let text = environment[Self.masterKeyVariable], !text.isEmpty {
            // A bad environment key is refused before anything is created.
            do throws(StoreError) { _ = try MasterKey(base64: text) } catch {
                throw StoreError(.masterKey, "\(Self.masterKeyVariable): \(error.reason)")
            }
        }
        try prepare(create: create)
        let (loaded, source) = try loadMasterKeys(environment: environment)
        let existed = FileManager.default.fileExists(atPath: databasePath)
        guard existed || create else {
            throw StoreError(.unusablePath, "no database at \(databasePath); run `custos store init --data \(url.path)`")
        }
        let pool: DatabasePool
        do { pool = try StoreDatabase.openPool(path: databasePath) } catch { throw SQLiteStore.map(error) }
        do throws(StoreError) {
            var ring = loaded
            var createdKey = false
            if ring == nil {
                guard create else {
                    throw StoreError(.masterKey, "no master key: \(masterKeyPath) is missing and \(Self.masterKeyVariable) is not set")
                }
                try SQLiteStore.migrate(pool)
                let sealed: Int
                do { sealed = try pool.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM tenant_key") ?? 0 } } catch {
                    throw SQLiteStore.map(error)
                }
                guard sealed == 0 else {
                    throw StoreError(
                        .masterKey,
                        "\(masterKeyPath) is missing but the database holds \(sealed) sealed keys; restore the key file (a new key could not open them)"
                    )
                }
                let key = try MasterKey.generate()
                try MasterKeyFile.write(key, to: masterKeyPath, replace: false)
                ring = MasterKeyRing(current: key)
                createdKey = true
            }
            guard let ring else { throw StoreError(.masterKey, "no master key") }
            let store = try SQLiteStore(pool: pool, keys: ring)
            return Opened(store: store, keySource: source, createdDatabase: !existed, createdMasterKey: createdKey)
        } catch {
            if !existed { removeDatabase(pool) }
            throw error
        }
    }

    /// Loads the master key ring: `CUSTOS_MASTER_KEY` if set, else `master.key` (+ `master.key.old` while a rotation is
    /// unfinished). Returns a nil ring when neither exists.
    public func loadMasterKeys(environment: [String: String]) throws(StoreError) -> (MasterKeyRing?, KeySource) {
        if let text = environment[Self.masterKeyVariable], !text.isEmpty {
            let key: MasterKey
            do throws(StoreError) { key = try MasterKey(base64: text) } catch {
                throw StoreError(.masterKey, "\(Self.masterKeyVariable): \(error.reason)")
            }
            return (MasterKeyRing(current: key), .environment)
        }
        guard MasterKeyFile.exists(masterKeyPath) else {
            if MasterKeyFile.exists(oldMasterKeyPath) {
                throw StoreError(.masterKey, "\(masterKeyPath) is missing but \(oldMasterKeyPath) exists; restore master.key")
            }
            return (nil, .file)
        }
        let current = try MasterKeyFile.read(path: masterKeyPath)
        let previous = MasterKeyFile.exists(oldMasterKeyPath) ? try MasterKeyFile.read(path: oldMasterKeyPath) : nil
        return (MasterKeyRing(current: current, previous: previous), .file)
    }

    /// Makes sure the directory exists (creating it with mode 0700 when `create`) and is a directory.
    func prepare(create: Bool) throws(StoreError) {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else { throw StoreError(.unusablePath, "\(url.path) is not a directory") }
            return
        }
        guard create else { throw StoreError(.unusablePath, "data directory \(url.path) does not exist") }
        do {
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw StoreError(.unusablePath, "cannot create data directory \(url.path): \(error.localizedDescription)")
        }
    }

    private func removeDatabase(_ pool: DatabasePool) {
        try? pool.close()
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: databasePath + suffix) }
    }

    // MARK: - Init

    /// What ``initialize(environment:)`` did (`custos store init`).
    public struct InitReport: Sendable, Codable {
        public let data: String
        public let database: String
        public let databaseCreated: Bool
        public let masterKeySource: KeySource
        /// The key file, when the key comes from a file.
        public let masterKeyFile: String?
        public let masterKeyId: String
        public let masterKeyCreated: Bool
        public let tenant: String
        public let tenantCreated: Bool
    }

    /// Creates (or checks) the data directory, database, master key and the tenant `default`. Idempotent.
    public func initialize(environment: [String: String] = ProcessInfo.processInfo.environment, now: Date = Date()) async throws(StoreError)
        -> InitReport
    {
        let opened = try open(environment: environment, create: true)
        var created = false
        do throws(StoreError) {
            _ = try await opened.store.tenant(id: "default")
        } catch  where error.code == .notFound {
            _ = try await opened.store.createTenant(id: "default", displayName: "Default tenant", now: now)
            created = true
        }
        return InitReport(
            data: url.path, database: databasePath, databaseCreated: opened.createdDatabase, masterKeySource: opened.keySource,
            masterKeyFile: opened.keySource == .file ? masterKeyPath : nil, masterKeyId: opened.store.keys.current.id,
            masterKeyCreated: opened.createdMasterKey, tenant: "default", tenantCreated: created)
    }

    // MARK: - Master-key rotation

    /// What ``rotateMasterKey(environment:)`` did.
    public struct RotationReport: Sendable, Codable {
        public let data: String
        public let masterKeySource: KeySource
        public let oldKeyId: String
        public let newKeyId: String
        /// How many tenant keys were re-wrapped under the new master key.
        public let rewrappedKeys: Int
        /// Whether an earlier, interrupted rotation was finished first.
        public let finishedInterruptedRotation: Bool
    }

    /// Rotates the master key: every tenant DEK is re-wrapped under a new key in one transaction; secrets stay
    /// sealed under their DEKs, so no version is touched.
    ///
    /// With a key file, the steps are ordered so that a crash at any point leaves a key set that opens the
    /// database: (1) the current key is copied to `master.key.old`; (2) a new `master.key` is written and renamed
    /// into place; (3) the DEKs are re-wrapped and committed; (4) `master.key.old` is removed. Opening tolerates
    /// both keys while `master.key.old` exists, and the next rotation finishes an interrupted one first.
    /// With `CUSTOS_MASTER_KEY`, the new key comes from `CUSTOS_NEW_MASTER_KEY`; afterwards the operator sets
    /// `CUSTOS_MASTER_KEY` to it. Run with the service stopped (a running service keeps its old keys in memory).
    public func rotateMasterKey(environment: [String: String] = ProcessInfo.processInfo.environment) throws(StoreError)
        -> RotationReport
    {
        try prepare(create: false)
        guard FileManager.default.fileExists(atPath: databasePath) else {
            throw StoreError(.unusablePath, "no database at \(databasePath); run `custos store init --data \(url.path)`")
        }
        let (loaded, source) = try loadMasterKeys(environment: environment)
        guard let loaded else {
            throw StoreError(.masterKey, "no master key: \(masterKeyPath) is missing and \(Self.masterKeyVariable) is not set")
        }
        if source == .environment {
            guard let text = environment[Self.newMasterKeyVariable], !text.isEmpty else {
                throw StoreError(.masterKey, "\(Self.masterKeyVariable) is set: give the new key (base64) in \(Self.newMasterKeyVariable)")
            }
            let newKey: MasterKey
            do throws(StoreError) { newKey = try MasterKey(base64: text) } catch {
                throw StoreError(.masterKey, "\(Self.newMasterKeyVariable): \(error.reason)")
            }
            guard newKey.id != loaded.current.id else { throw StoreError(.masterKey, "the new master key is the current one") }
            // Either key may wrap the DEKs (a run that committed and then lost its output is simply repeated).
            let count = try rewrap(to: newKey, ring: MasterKeyRing(current: newKey, previous: loaded.current))
            return RotationReport(
                data: url.path, masterKeySource: source, oldKeyId: loaded.current.id, newKeyId: newKey.id, rewrappedKeys: count,
                finishedInterruptedRotation: false)
        }
        // Check the database opens under the keys on disk before any key file changes.
        try check(ring: loaded)
        var finished = false
        if loaded.previous != nil {
            // (3)+(4) of an interrupted rotation: master.key is the newer key.
            _ = try rewrap(to: loaded.current, ring: loaded)
            try MasterKeyFile.remove(path: oldMasterKeyPath)
            finished = true
        }
        let old = loaded.current
        try MasterKeyFile.write(old, to: oldMasterKeyPath, replace: true)  // (1)
        let newKey = try MasterKey.generate()
        try MasterKeyFile.write(newKey, to: masterKeyPath, replace: true)  // (2)
        let count = try rewrap(to: newKey, ring: MasterKeyRing(current: newKey, previous: old))  // (3)
        try MasterKeyFile.remove(path: oldMasterKeyPath)  // (4)
        return RotationReport(
            data: url.path, masterKeySource: source, oldKeyId: old.id, newKeyId: newKey.id, rewrappedKeys: count,
            finishedInterruptedRotation: finished)
    }

    /// Opens the database with `ring` (migrating it, checking its keys' ids) and closes it again.
    private func check(ring: MasterKeyRing) throws(StoreError) {
        let pool: DatabasePool
        do { pool = try StoreDatabase.openPool(path: databasePath) } catch { throw SQLiteStore.map(error) }
        defer { try? pool.close() }
        _ = try SQLiteStore(pool: pool, keys: ring)
    }

    /// Opens the database with `ring` and re-wraps every DEK under `newKey` in one transaction.
    private func rewrap(to newKey: MasterKey, ring: MasterKeyRing) throws(StoreError) -> Int {
        let pool: DatabasePool
        do { pool = try StoreDatabase.openPool(path: databasePath) } catch { throw SQLiteStore.map(error) }
        defer { try? pool.close() }
        let store = try SQLiteStore(pool: pool, keys: ring)
        do {
            return try store.pool.write { db in try SQLiteStore.rewrapAllKeys(to: newKey, from: ring, in: db) }
        } catch { throw SQLiteStore.map(error) }
    }
}

extension SQLiteStore {
    /// Opens the store of a data directory (`<data>/custos.sqlite`, its master key): what `custos serve` calls.
    /// - Parameters:
    ///   - dataDirectory: the data directory.
    ///   - environment: where `CUSTOS_MASTER_KEY` is looked up.
    ///   - create: create the directory, database and master key on first start.
    /// - Throws: ``StoreError`` (see ``DataDirectory/open(environment:create:)``).
    public static func open(
        dataDirectory: URL, environment: [String: String] = ProcessInfo.processInfo.environment, create: Bool = true
    ) throws(StoreError) -> SQLiteStore {
        try DataDirectory(dataDirectory).open(environment: environment, create: create).store
    }
}
