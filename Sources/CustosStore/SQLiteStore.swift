public import CustosCrypto
public import Foundation
public import GRDB

/// The embedded ``Store``: one SQLite file through a GRDB `DatabasePool` (WAL: readers never wait for the writer;
/// one serialized writer).
///
/// Each operation is also available as a function taking a GRDB `Database` (``insertAppraisal(_:in:)`` and the
/// others marked "in db"), so the service can run hot-path writes inside one group-commit transaction
/// (`GroupCommitWriter`); the async methods of ``Store`` run them in `pool.write` / `pool.read` today.
public struct SQLiteStore: Store {
    /// The pool: shared with CustosAudit, which migrates its own tables on the same file.
    public let pool: DatabasePool
    /// The master keys this store unwraps DEKs with, and wraps new ones under (``MasterKeyRing/current``).
    public let keys: MasterKeyRing

    /// Wraps an open pool: migrates the store schema, and checks that every wrapped DEK was wrapped under a key of
    /// `keys` (so a wrong master key fails at start, not at the first secret release).
    /// - Throws: `schemaTooNew`, `corrupted`, `masterKey`, or `database`.
    public init(pool: DatabasePool, keys: MasterKeyRing) throws(StoreError) {
        self.pool = pool
        self.keys = keys
        try Self.migrate(pool)
        let foreign: [String]
        do {
            foreign = try pool.read { db in try String.fetchAll(db, sql: "SELECT DISTINCT master_key_id FROM tenant_key") }
        } catch { throw Self.map(error) }
        let unknown = foreign.filter { keys.key(id: $0) == nil }
        guard unknown.isEmpty else {
            throw StoreError(
                .masterKey,
                "the database's keys are wrapped under master key \(unknown.joined(separator: ", ")), but the master key given has id \(keys.ids.joined(separator: ", "))"
            )
        }
    }

    /// Runs the store's migrations on `writer`.
    /// - Throws: `schemaTooNew` when the file holds `store-…` migrations this build does not know.
    public static func migrate(_ writer: any DatabaseWriter) throws(StoreError) {
        do {
            let applied = try writer.read { db -> [String] in
                guard try db.tableExists("grdb_migrations") else { return [] }
                return try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations WHERE identifier LIKE 'store-%'")
            }
            let unknown = Set(applied).subtracting(StoreSchema.identifiers)
            guard unknown.isEmpty else {
                throw StoreError(
                    .schemaTooNew,
                    "the database has store migrations this Custos does not know: \(unknown.sorted().joined(separator: ", "))")
            }
            try StoreSchema.migrator().migrate(writer)
        } catch { throw map(error) }
    }

    // MARK: - Errors

    /// Maps GRDB/SQLite and crypto failures to ``StoreError``. Messages carry SQLite's text, never statement
    /// arguments (GRDB keeps them private unless `publicStatementArguments` is set, which we never do).
    static func map(_ error: any Error) -> StoreError {
        if let error = error as? StoreError { return error }
        if let error = error as? DatabaseError {
            let text = "\(error.message ?? "SQLite error \(error.resultCode.rawValue)")"
            switch error.resultCode {
            case .SQLITE_CORRUPT, .SQLITE_NOTADB: return StoreError(.corrupted, "the database file is damaged or not a database: \(text)")
            case .SQLITE_CONSTRAINT: return StoreError(.conflict, "constraint failed: \(text)")
            case .SQLITE_CANTOPEN, .SQLITE_PERM, .SQLITE_READONLY, .SQLITE_AUTH:
                return StoreError(.unusablePath, "the database cannot be opened for writing: \(text)")
            default: return StoreError(.database, text)
            }
        }
        if let error = error as? CryptoError { return StoreError(.sealing, error.description) }
        if error is RowDecodingError { return StoreError(.corrupted, "a stored row does not decode: \(error)") }
        return StoreError(.database, "\(error)")
    }

    func write<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws(StoreError) -> T {
        do { return try await pool.write(body) } catch { throw Self.map(error) }
    }

    func read<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws(StoreError) -> T {
        do { return try await pool.read(body) } catch { throw Self.map(error) }
    }

    /// `body` as a step of another writer's transaction, in a savepoint of its own: when it throws, what it wrote is
    /// rolled back and the step's value is the store's error (the other writer's transaction goes on).
    func step<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) -> StoreStep<Result<T, StoreError>> {
        StoreStep(database: ObjectIdentifier(pool)) { db in
            var value: T?
            do {
                try db.inSavepoint {
                    value = try body(db)
                    return .commit
                }
            } catch { return .failure(Self.map(error)) }
            guard let value else { return .failure(StoreError(.database, "the step made no value")) }
            return .success(value)
        }
    }

    // MARK: - Tenants

    public func createTenant(id: String, displayName: String, now: Date) async throws(StoreError) -> Tenant {
        try StoreValidation.tenantId(id)
        try StoreValidation.text(displayName, field: "display name", max: 256, allowEmpty: true)
        let master = keys.current
        return try await write { db in try Self.createTenant(id: id, displayName: displayName, now: now, master: master, in: db) }
    }

    public func tenantCreation(id: String, displayName: String, now: Date) -> StoreStep<Result<Tenant, StoreError>> {
        let master = keys.current
        return step { db in
            try StoreValidation.tenantId(id)
            try StoreValidation.text(displayName, field: "display name", max: 256, allowEmpty: true)
            return try Self.createTenant(id: id, displayName: displayName, now: now, master: master, in: db)
        }
    }

    /// Inserts the tenant and its first DEK (generation 1) wrapped under `master`; in db.
    static func createTenant(id: String, displayName: String, now: Date, master: MasterKey, in db: Database) throws -> Tenant {
        guard try Bool.fetchOne(db, sql: "SELECT EXISTS(SELECT 1 FROM tenant WHERE id = ?)", arguments: [id]) != true else {
            throw StoreError(.conflict, "tenant \(id) already exists")
        }
        try db.execute(
            sql: "INSERT INTO tenant (id, display_name, created_at) VALUES (?, ?, ?)", arguments: [id, displayName, now.storeMillis])
        let dek: SecretBytes
        do { dek = try SecretBytes.random(Sealing.dekLength) } catch { throw StoreError(.sealing, "cannot generate a DEK: \(error)") }
        let wrapped = try Sealing.seal(dek, key: master.material, aad: Sealing.dekAAD(tenantId: id, keyId: 1, masterKeyId: master.id))
        try db.execute(
            sql: """
                INSERT INTO tenant_key (tenant_id, id, master_key_id, nonce, wrapped, tag, created_at)
                VALUES (?, 1, ?, ?, ?, ?, ?)
                """,
            arguments: [id, master.id, Data(wrapped.nonce), Data(wrapped.ciphertext), Data(wrapped.tag), now.storeMillis])
        return Tenant(id: id, displayName: displayName, createdAt: Date(storeMillis: now.storeMillis))
    }

    public func tenant(id: String) async throws(StoreError) -> Tenant {
        try await read { db in
            guard let row = try Row.fetchOne(try db.cachedStatement(sql: "SELECT * FROM tenant WHERE id = ?"), arguments: [id]) else {
                throw StoreError(.notFound, "no tenant \(id)")
            }
            return try Self.tenant(row)
        }
    }

    public func listTenants() async throws(StoreError) -> [Tenant] {
        try await read { db in try Row.fetchAll(db, sql: "SELECT * FROM tenant ORDER BY id").map(Self.tenant) }
    }

    static func tenant(_ row: Row) throws -> Tenant {
        Tenant(
            id: try row.decode(String.self, forColumn: "id"), displayName: try row.decode(String.self, forColumn: "display_name"),
            createdAt: Date(storeMillis: try row.decode(Int64.self, forColumn: "created_at")))
    }

    static func requireTenant(_ id: String, in db: Database) throws {
        guard try Bool.fetchOne(db, sql: "SELECT EXISTS(SELECT 1 FROM tenant WHERE id = ?)", arguments: [id]) == true else {
            throw StoreError(.notFound, "no tenant \(id)")
        }
    }

    // MARK: - Credentials

    public func createCredential(tenantId: String?, role: Role, label: String, expiresAt: Date?, now: Date) async throws(StoreError)
        -> IssuedCredential
    {
        let prepared = try Self.prepareCredential(tenantId: tenantId, role: role, label: label, expiresAt: expiresAt, now: now)
        try await write { db in try Self.insert(prepared, in: db) }
        return prepared.issued
    }

    public func credentialIssue(tenantId: String?, role: Role, label: String, expiresAt: Date?, now: Date)
        -> StoreStep<Result<IssuedCredential, StoreError>>
    {
        step { db in
            let prepared = try Self.prepareCredential(tenantId: tenantId, role: role, label: label, expiresAt: expiresAt, now: now)
            try Self.insert(prepared, in: db)
            return prepared.issued
        }
    }

    /// A credential checked and made (token and id), not yet stored.
    struct PreparedCredential: Sendable {
        let issued: IssuedCredential
        let hash: Data
        let now: Date
    }

    static func prepareCredential(tenantId: String?, role: Role, label: String, expiresAt: Date?, now: Date) throws(StoreError)
        -> PreparedCredential
    {
        if role.requiresTenant, tenantId == nil { throw StoreError(.invalidInput, "a \(role.rawValue) credential needs a tenant") }
        if role == .serviceAdmin, tenantId != nil { throw StoreError(.invalidInput, "a service-admin credential has no tenant") }
        if let tenantId { try StoreValidation.tenantId(tenantId) }
        try StoreValidation.text(label, field: "label", max: 256, allowEmpty: true)
        let token = try APIToken.generate()
        let credential = Credential(
            id: "crd_" + StoreIDs.randomHex(12), tenantId: tenantId, role: role, label: label,
            createdAt: Date(storeMillis: now.storeMillis), expiresAt: expiresAt.map { Date(storeMillis: $0.storeMillis) }, revokedAt: nil)
        return PreparedCredential(
            issued: IssuedCredential(credential: credential, token: token), hash: Data(APIToken.hash(token)), now: now)
    }

    /// Stores a prepared credential; in db.
    static func insert(_ prepared: PreparedCredential, in db: Database) throws {
        let credential = prepared.issued.credential
        if let tenantId = credential.tenantId { try requireTenant(tenantId, in: db) }
        try db.execute(
            sql: """
                INSERT INTO credential (id, tenant_id, token_sha256, role, label, created_at, expires_at, revoked_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, NULL)
                """,
            arguments: [
                credential.id, credential.tenantId, prepared.hash, credential.role.rawValue, credential.label, prepared.now.storeMillis,
                credential.expiresAt?.storeMillis,
            ])
    }

    public func lookupCredential(token: String, now: Date) async throws(StoreError) -> CredentialLookup {
        // Looked up by the token's SHA-256 through the unique index: the comparison SQLite makes is on a hash of a
        // 256-bit random value, so its timing tells an attacker nothing about a valid token (a constant-time
        // compare would be moot here).
        guard APIToken.isWellFormed(token) else { return .unknown }
        let hash = Data(APIToken.hash(token))
        let credential = try await read { db -> Credential? in
            try Row.fetchOne(db, sql: "SELECT * FROM credential WHERE token_sha256 = ?", arguments: [hash]).map(Self.credential)
        }
        guard let credential else { return .unknown }
        if credential.revokedAt != nil { return .revoked(credential) }
        if let expiresAt = credential.expiresAt, now >= expiresAt { return .expired(credential) }
        return .valid(credential)
    }

    public func revokeCredential(id: String, now: Date) async throws(StoreError) -> Credential {
        try await write { db in try Self.revokeCredential(id: id, now: now, in: db).credential }
    }

    public func credentialRevocation(id: String, now: Date) -> StoreStep<Result<CredentialRevocation, StoreError>> {
        step { db in try Self.revokeCredential(id: id, now: now, in: db) }
    }

    /// Sets `revoked_at` unless it is set; in db.
    static func revokeCredential(id: String, now: Date, in db: Database) throws -> CredentialRevocation {
        try db.execute(
            sql: "UPDATE credential SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", arguments: [now.storeMillis, id])
        let tookEffect = db.changesCount > 0
        guard let row = try Row.fetchOne(db, sql: "SELECT * FROM credential WHERE id = ?", arguments: [id]) else {
            throw StoreError(.notFound, "no credential \(id)")
        }
        return CredentialRevocation(credential: try Self.credential(row), tookEffect: tookEffect)
    }

    public func listCredentials(tenantId: String?) async throws(StoreError) -> [Credential] {
        try await read { db in
            try Row.fetchAll(
                db, sql: "SELECT * FROM credential WHERE tenant_id IS ? ORDER BY created_at, id", arguments: [tenantId]
            ).map(Self.credential)
        }
    }

    static func credential(_ row: Row) throws -> Credential {
        let roleText = try row.decode(String.self, forColumn: "role")
        guard let role = Role(rawValue: roleText) else { throw StoreError(.corrupted, "credential has unknown role \(roleText)") }
        return Credential(
            id: try row.decode(String.self, forColumn: "id"), tenantId: try row.decode(String?.self, forColumn: "tenant_id"),
            role: role, label: try row.decode(String.self, forColumn: "label"),
            createdAt: Date(storeMillis: try row.decode(Int64.self, forColumn: "created_at")),
            expiresAt: try row.decode(Int64?.self, forColumn: "expires_at").map(Date.init(storeMillis:)),
            revokedAt: try row.decode(Int64?.self, forColumn: "revoked_at").map(Date.init(storeMillis:)))
    }

    // MARK: - Data-encryption keys

    /// The tenant's newest DEK generation, unwrapped; in db.
    static func currentDEK(tenantId: String, keys: MasterKeyRing, in db: Database) throws -> (id: Int64, key: SecretBytes) {
        guard
            let row = try Row.fetchOne(
                db, sql: "SELECT * FROM tenant_key WHERE tenant_id = ? ORDER BY id DESC LIMIT 1", arguments: [tenantId])
        else { throw StoreError(.notFound, "no tenant \(tenantId)") }
        return try unwrapDEK(row, keys: keys)
    }

    /// The tenant's DEK of generation `id`, unwrapped; in db.
    static func dek(tenantId: String, id: Int64, keys: MasterKeyRing, in db: Database) throws -> SecretBytes {
        guard
            let row = try Row.fetchOne(
                try db.cachedStatement(sql: "SELECT * FROM tenant_key WHERE tenant_id = ? AND id = ?"), arguments: [tenantId, id])
        else { throw StoreError(.corrupted, "tenant \(tenantId) has no data-encryption key \(id)") }
        return try unwrapDEK(row, keys: keys).key
    }

    static func unwrapDEK(_ row: Row, keys: MasterKeyRing) throws -> (id: Int64, key: SecretBytes) {
        let tenantId = try row.decode(String.self, forColumn: "tenant_id")
        let id = try row.decode(Int64.self, forColumn: "id")
        let masterKeyId = try row.decode(String.self, forColumn: "master_key_id")
        guard let master = keys.key(id: masterKeyId) else {
            throw StoreError(.masterKey, "tenant \(tenantId)'s key is wrapped under master key \(masterKeyId), which is not loaded")
        }
        let box = Sealing.Box(
            nonce: [UInt8](try row.decode(Data.self, forColumn: "nonce")),
            ciphertext: [UInt8](try row.decode(Data.self, forColumn: "wrapped")),
            tag: [UInt8](try row.decode(Data.self, forColumn: "tag")))
        let key = try Sealing.open(
            box, key: master.material, aad: Sealing.dekAAD(tenantId: tenantId, keyId: id, masterKeyId: masterKeyId),
            what: "tenant \(tenantId)'s data-encryption key \(id)")
        guard key.count == Sealing.dekLength else { throw StoreError(.corrupted, "tenant \(tenantId)'s key \(id) has the wrong length") }
        return (id, key)
    }

    /// Re-wraps every DEK of the database under `newKey` (unwrapping with whichever key of `keys` wrapped it), in
    /// db, inside the caller's transaction. Returns how many keys were re-wrapped.
    public static func rewrapAllKeys(to newKey: MasterKey, from keys: MasterKeyRing, in db: Database) throws -> Int {
        let ring = MasterKeyRing(current: newKey, previous: nil)
        var count = 0
        for row in try Row.fetchAll(db, sql: "SELECT * FROM tenant_key") {
            let tenantId = try row.decode(String.self, forColumn: "tenant_id")
            let masterKeyId = try row.decode(String.self, forColumn: "master_key_id")
            let (id, dek) = try unwrapDEK(row, keys: masterKeyId == newKey.id ? ring : keys)
            let wrapped = try Sealing.seal(
                dek, key: newKey.material, aad: Sealing.dekAAD(tenantId: tenantId, keyId: id, masterKeyId: newKey.id))
            try db.execute(
                sql: "UPDATE tenant_key SET master_key_id = ?, nonce = ?, wrapped = ?, tag = ? WHERE tenant_id = ? AND id = ?",
                arguments: [newKey.id, Data(wrapped.nonce), Data(wrapped.ciphertext), Data(wrapped.tag), tenantId, id])
            count += 1
        }
        return count
    }

    // MARK: - Secrets

    public func putSecret(tenantId: String, path: String, value: SecretBytes, now: Date) async throws(StoreError) -> SecretVersion {
        try StoreValidation.tenantId(tenantId)
        try StoreValidation.secretPath(path)
        try StoreValidation.secretValue(value)
        let keys = keys
        return try await write { db in try Self.addSecretVersion(tenantId: tenantId, path: path, value: value, now: now, keys: keys, in: db)
        }
    }

    public func secretPut(tenantId: String, path: String, value: SecretBytes, now: Date) -> StoreStep<Result<SecretVersion, StoreError>> {
        let keys = keys
        return step { db in
            try StoreValidation.tenantId(tenantId)
            try StoreValidation.secretPath(path)
            try StoreValidation.secretValue(value)
            return try Self.addSecretVersion(tenantId: tenantId, path: path, value: value, now: now, keys: keys, in: db)
        }
    }

    public func rotateSecret(tenantId: String, path: String, value: SecretBytes, retireAfter: Date?, now: Date) async throws(StoreError)
        -> SecretRotation
    {
        try StoreValidation.tenantId(tenantId)
        try StoreValidation.secretPath(path)
        try StoreValidation.secretValue(value)
        let keys = keys
        return try await write { db in
            try Self.rotateSecret(tenantId: tenantId, path: path, value: value, retireAfter: retireAfter, now: now, keys: keys, in: db)
        }
    }

    public func secretRotation(
        tenantId: String, path: String, value: SecretBytes, retireAfter: Date?, now: Date
    ) -> StoreStep<Result<SecretRotation, StoreError>> {
        let keys = keys
        return step { db in
            try StoreValidation.tenantId(tenantId)
            try StoreValidation.secretPath(path)
            try StoreValidation.secretValue(value)
            return try Self.rotateSecret(
                tenantId: tenantId, path: path, value: value, retireAfter: retireAfter, now: now, keys: keys, in: db)
        }
    }

    /// A new version of an existing secret; every earlier active version retires at `retireAfter` (now when nil or
    /// past) unless it was already to retire sooner; in db.
    static func rotateSecret(
        tenantId: String, path: String, value: SecretBytes, retireAfter: Date?, now: Date, keys: MasterKeyRing, in db: Database
    ) throws -> SecretRotation {
        let retire = max(retireAfter ?? now, now)
        guard
            try Bool.fetchOne(
                db, sql: "SELECT EXISTS(SELECT 1 FROM secret WHERE tenant_id = ? AND path = ?)", arguments: [tenantId, path]) == true
        else { throw StoreError(.notFound, "no secret \(path)") }
        // Earlier active versions keep their earlier retirement if they already had one.
        try db.execute(
            sql: """
                UPDATE secret_version SET retire_after = min(coalesce(retire_after, ?), ?)
                WHERE tenant_id = ? AND path = ? AND state = 'active'
                """,
            arguments: [retire.storeMillis, retire.storeMillis, tenantId, path])
        let version = try Self.addSecretVersion(tenantId: tenantId, path: path, value: value, now: now, keys: keys, in: db)
        return SecretRotation(newVersion: version, retireAfter: Date(storeMillis: retire.storeMillis))
    }

    /// Adds the next version of a secret, sealed under the tenant's current DEK; in db.
    static func addSecretVersion(
        tenantId: String, path: String, value: SecretBytes, now: Date, keys: MasterKeyRing, in db: Database
    ) throws -> SecretVersion {
        let (keyId, dek) = try currentDEK(tenantId: tenantId, keys: keys, in: db)
        try db.execute(
            sql: """
                INSERT INTO secret (tenant_id, path, last_version, created_at) VALUES (?, ?, 0, ?)
                ON CONFLICT (tenant_id, path) DO NOTHING
                """,
            arguments: [tenantId, path, now.storeMillis])
        try db.execute(
            sql: "UPDATE secret SET last_version = last_version + 1 WHERE tenant_id = ? AND path = ?", arguments: [tenantId, path])
        guard
            let version = try Int64.fetchOne(
                db, sql: "SELECT last_version FROM secret WHERE tenant_id = ? AND path = ?", arguments: [tenantId, path])
        else { throw StoreError(.corrupted, "secret \(path) vanished while it was written") }
        let box = try Sealing.seal(
            value, key: dek, aad: Sealing.secretAAD(tenantId: tenantId, path: path, version: version, keyId: keyId))
        try db.execute(
            sql: """
                INSERT INTO secret_version (tenant_id, path, version, state, created_at, retire_after, retired_at, key_id, nonce, ciphertext, tag)
                VALUES (?, ?, ?, 'active', ?, NULL, NULL, ?, ?, ?, ?)
                """,
            arguments: [tenantId, path, version, now.storeMillis, keyId, Data(box.nonce), Data(box.ciphertext), Data(box.tag)])
        return SecretVersion(
            tenantId: tenantId, path: path, version: version, state: .active, createdAt: Date(storeMillis: now.storeMillis),
            retireAfter: nil, retiredAt: nil)
    }

    public func retireSecretVersion(tenantId: String, path: String, version: Int64, now: Date) async throws(StoreError) -> SecretVersion {
        try await write { db in
            try db.execute(
                sql: """
                    UPDATE secret_version SET state = 'retired', retired_at = ?
                    WHERE tenant_id = ? AND path = ? AND version = ? AND state = 'active'
                    """,
                arguments: [now.storeMillis, tenantId, path, version])
            guard
                let row = try Row.fetchOne(
                    db, sql: "SELECT * FROM secret_version WHERE tenant_id = ? AND path = ? AND version = ?",
                    arguments: [tenantId, path, version])
            else { throw StoreError(.notFound, "no version \(version) of secret \(path)") }
            return try Self.secretVersion(row)
        }
    }

    public func deleteSecretVersion(tenantId: String, path: String, version: Int64) async throws(StoreError) {
        try await write { db in try Self.deleteSecretVersion(tenantId: tenantId, path: path, version: version, in: db) }
    }

    public func secretVersionDeletion(tenantId: String, path: String, version: Int64) -> StoreStep<Result<Int64, StoreError>> {
        step { db in
            try Self.deleteSecretVersion(tenantId: tenantId, path: path, version: version, in: db)
            return version
        }
    }

    static func deleteSecretVersion(tenantId: String, path: String, version: Int64, in db: Database) throws {
        try db.execute(
            sql: "DELETE FROM secret_version WHERE tenant_id = ? AND path = ? AND version = ?", arguments: [tenantId, path, version])
        guard db.changesCount == 1 else { throw StoreError(.notFound, "no version \(version) of secret \(path)") }
    }

    public func listSecretVersions(tenantId: String, path: String) async throws(StoreError) -> [SecretVersion] {
        try await read { db in
            guard
                try Bool.fetchOne(
                    db, sql: "SELECT EXISTS(SELECT 1 FROM secret WHERE tenant_id = ? AND path = ?)", arguments: [tenantId, path]) == true
            else { throw StoreError(.notFound, "no secret \(path)") }
            return try Row.fetchAll(
                db,
                sql: """
                    SELECT tenant_id, path, version, state, created_at, retire_after, retired_at FROM secret_version
                    WHERE tenant_id = ? AND path = ? ORDER BY version
                    """,
                arguments: [tenantId, path]
            ).map(Self.secretVersion)
        }
    }

    public func openSecret(tenantId: String, path: String, version: Int64?, now: Date) async throws(StoreError) -> OpenedSecret {
        let keys = keys
        return try await read { db in try Self.openSecret(tenantId: tenantId, path: path, version: version, now: now, keys: keys, in: db) }
    }

    public func secretOpening(
        tenantId: String, path: String, now: Date, limit: ReleaseLimit?
    ) -> StoreStep<Result<OpenedSecret, StoreError>> {
        let keys = keys
        return StoreStep(database: ObjectIdentifier(pool)) { db in
            do {
                guard let limit else {
                    return .success(try Self.openSecret(tenantId: tenantId, path: path, version: nil, now: now, keys: keys, in: db))
                }
                let key: StatementArguments = [tenantId, limit.appraisalID, path]
                let made =
                    try Int64.fetchOne(
                        try db.cachedStatement(
                            sql: "SELECT count FROM secret_release_count WHERE tenant_id = ? AND appraisal_id = ? AND path = ?"),
                        arguments: key) ?? 0
                guard made < Int64(limit.maximum) else {
                    return .failure(
                        StoreError(
                            .releaseLimit,
                            "secret \(path) was released \(made) time\(made == 1 ? "" : "s") to appraisal \(limit.appraisalID), its policy's maximum"
                        ))
                }
                let opened = try Self.openSecret(tenantId: tenantId, path: path, version: nil, now: now, keys: keys, in: db)
                try db.cachedStatement(
                    sql: """
                        INSERT INTO secret_release_count (tenant_id, appraisal_id, path, count, first_at) VALUES (?, ?, ?, 1, ?)
                        ON CONFLICT (tenant_id, appraisal_id, path) DO UPDATE SET count = count + 1
                        """
                ).execute(arguments: key + [now.storeMillis])
                return .success(opened)
            } catch let error as StoreError {
                return .failure(error)
            } catch {
                return .failure(Self.map(error))
            }
        }
    }

    /// The newest releasable version of a secret (or the given version), opened, in db.
    static func openSecret(
        tenantId: String, path: String, version: Int64?, now: Date, keys: MasterKeyRing, in db: Database
    ) throws -> OpenedSecret {
        do {
            let rows: [Row]
            if let version {
                rows = try Row.fetchAll(
                    try db.cachedStatement(sql: "SELECT * FROM secret_version WHERE tenant_id = ? AND path = ? AND version = ?"),
                    arguments: [tenantId, path, version])
            } else {
                rows = try Row.fetchAll(
                    try db.cachedStatement(
                        sql: "SELECT * FROM secret_version WHERE tenant_id = ? AND path = ? AND state = 'active' ORDER BY version DESC"),
                    arguments: [tenantId, path])
            }
            for row in rows {
                let meta = try Self.secretVersion(row)
                guard meta.isReleasable(at: now) else { continue }
                let keyId = try row.decode(Int64.self, forColumn: "key_id")
                let dek = try Self.dek(tenantId: tenantId, id: keyId, keys: keys, in: db)
                let box = Sealing.Box(
                    nonce: [UInt8](try row.decode(Data.self, forColumn: "nonce")),
                    ciphertext: [UInt8](try row.decode(Data.self, forColumn: "ciphertext")),
                    tag: [UInt8](try row.decode(Data.self, forColumn: "tag")))
                let value = try Sealing.open(
                    box, key: dek, aad: Sealing.secretAAD(tenantId: tenantId, path: path, version: meta.version, keyId: keyId),
                    what: "version \(meta.version) of secret \(path)")
                return OpenedSecret(version: meta, value: value)
            }
            if let version { throw StoreError(.notFound, "version \(version) of secret \(path) does not exist or is retired") }
            throw StoreError(.notFound, "secret \(path) has no releasable version")
        }
    }

    static func secretVersion(_ row: Row) throws -> SecretVersion {
        let stateText = try row.decode(String.self, forColumn: "state")
        guard let state = SecretVersionState(rawValue: stateText) else { throw StoreError(.corrupted, "unknown secret state \(stateText)") }
        return SecretVersion(
            tenantId: try row.decode(String.self, forColumn: "tenant_id"), path: try row.decode(String.self, forColumn: "path"),
            version: try row.decode(Int64.self, forColumn: "version"), state: state,
            createdAt: Date(storeMillis: try row.decode(Int64.self, forColumn: "created_at")),
            retireAfter: try row.decode(Int64?.self, forColumn: "retire_after").map(Date.init(storeMillis:)),
            retiredAt: try row.decode(Int64?.self, forColumn: "retired_at").map(Date.init(storeMillis:)))
    }

    // MARK: - Reference values

    public func putReferenceValues(
        tenantId: String, name: String, values: [JSONValue], expiresAt: Date?, provenance: JSONValue?, condition: RevisionCondition,
        now: Date
    ) async throws(StoreError) -> ReferenceValueSet {
        try StoreValidation.tenantId(tenantId)
        try StoreValidation.name(name, field: "reference-value set name")
        return try await write { db in
            try Self.putReferenceValues(
                tenantId: tenantId, name: name, values: values, expiresAt: expiresAt, provenance: provenance, condition: condition,
                now: now, in: db)
        }
    }

    public func referenceValuesPut(
        tenantId: String, name: String, values: [JSONValue], expiresAt: Date?, provenance: JSONValue?, condition: RevisionCondition,
        now: Date
    ) -> StoreStep<Result<ReferenceValueSet, StoreError>> {
        step { db in
            try StoreValidation.tenantId(tenantId)
            try StoreValidation.name(name, field: "reference-value set name")
            return try Self.putReferenceValues(
                tenantId: tenantId, name: name, values: values, expiresAt: expiresAt, provenance: provenance, condition: condition,
                now: now, in: db)
        }
    }

    /// Writes a named set if `condition` holds; in db.
    static func putReferenceValues(
        tenantId: String, name: String, values: [JSONValue], expiresAt: Date?, provenance: JSONValue?, condition: RevisionCondition,
        now: Date, in db: Database
    ) throws -> ReferenceValueSet {
        let valuesJSON = CanonicalJSON.string(.array(values))
        let provenanceJSON = provenance.map(CanonicalJSON.string)
        try Self.requireTenant(tenantId, in: db)
        let current = try Int64.fetchOne(
            db, sql: "SELECT revision FROM reference_value_set WHERE tenant_id = ? AND name = ?", arguments: [tenantId, name])
        guard condition.holds(current: current) else {
            throw StoreError(
                .preconditionFailed,
                current.map { "reference values \(name) are at revision \($0), which the request's condition excludes" }
                    ?? "reference values \(name) do not exist, and the request's condition needs them to")
        }
        let revision = (current ?? 0) + 1
        try db.execute(
            sql: """
                INSERT INTO reference_value_set (tenant_id, name, revision, values_json, expires_at, provenance_json, updated_at)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (tenant_id, name) DO UPDATE SET revision = excluded.revision, values_json = excluded.values_json,
                    expires_at = excluded.expires_at, provenance_json = excluded.provenance_json, updated_at = excluded.updated_at
                """,
            arguments: [tenantId, name, revision, valuesJSON, expiresAt?.storeMillis, provenanceJSON, now.storeMillis])
        return ReferenceValueSet(
            tenantId: tenantId, name: name, revision: revision, values: values,
            expiresAt: expiresAt.map { Date(storeMillis: $0.storeMillis) }, provenance: provenance,
            updatedAt: Date(storeMillis: now.storeMillis))
    }

    public func referenceValues(tenantId: String, name: String) async throws(StoreError) -> ReferenceValueSet {
        try await read { db in
            guard
                let row = try Row.fetchOne(
                    db, sql: "SELECT * FROM reference_value_set WHERE tenant_id = ? AND name = ?", arguments: [tenantId, name])
            else { throw StoreError(.notFound, "no reference values \(name)") }
            guard case .array(let values) = try Self.json(row, "values_json") else {
                throw StoreError(.corrupted, "reference values \(name) are not a JSON array")
            }
            // (Not a ternary: `nil` there would become JSONValue.null through its nil literal.)
            var provenance: JSONValue?
            if try row.decode(String?.self, forColumn: "provenance_json") != nil { provenance = try Self.json(row, "provenance_json") }
            return ReferenceValueSet(
                tenantId: tenantId, name: name, revision: try row.decode(Int64.self, forColumn: "revision"), values: values,
                expiresAt: try row.decode(Int64?.self, forColumn: "expires_at").map(Date.init(storeMillis:)), provenance: provenance,
                updatedAt: Date(storeMillis: try row.decode(Int64.self, forColumn: "updated_at")))
        }
    }

    static func json(_ row: Row, _ column: String) throws -> JSONValue {
        let text = try row.decode(String.self, forColumn: column)
        do { return try JSONValue.parse(text) } catch { throw StoreError(.corrupted, "stored \(column) is not valid JSON: \(error)") }
    }

    // MARK: - Appraisals

    public func insertAppraisal(_ appraisal: Appraisal) async throws(StoreError) {
        try await write { db in try Self.insertAppraisal(appraisal, in: db) }
    }

    public func hasAppraisals(tenantId: String, createdBefore cutoff: Date) async throws(StoreError) -> Bool {
        try await read { db in
            try Bool.fetchOne(
                db, sql: "SELECT EXISTS (SELECT 1 FROM appraisal WHERE tenant_id = ? AND created_at < ?)",
                arguments: [tenantId, cutoff.storeMillis]) ?? false
        }
    }

    public func deleteAppraisals(tenantId: String, createdBefore cutoff: Date, limit: Int) async throws(StoreError) -> Int {
        guard limit > 0 else { throw StoreError(.invalidInput, "the deletion limit must be positive") }
        return try await write { db in
            // The subquery reads the (tenant_id, created_at) index; `seq` is the rowid.
            try db.execute(
                sql: """
                    DELETE FROM appraisal WHERE seq IN
                        (SELECT seq FROM appraisal WHERE tenant_id = ? AND created_at < ? LIMIT ?)
                    """,
                arguments: [tenantId, cutoff.storeMillis, limit])
            return db.changesCount
        }
    }

    public func deleteReleaseCounts(tenantId: String, firstBefore cutoff: Date) async throws(StoreError) -> Int {
        try await write { db in
            // One statement: the table has no index on first_at, so batches would each read the tenant's rows again.
            try db.execute(
                sql: "DELETE FROM secret_release_count WHERE tenant_id = ? AND first_at < ?", arguments: [tenantId, cutoff.storeMillis])
            return db.changesCount
        }
    }

    public func appraisalInsert(_ appraisal: Appraisal) throws(StoreError) -> StoreWrite {
        try StoreValidation.appraisal(appraisal)
        return StoreWrite(database: ObjectIdentifier(pool)) { db in try Self.insertAppraisal(appraisal, in: db) }
    }

    /// Inserts an appraisal in db: the hot-path write, designed to run inside a group-commit batch.
    /// - Throws: ``StoreError`` (`invalidInput`, `conflict` for a duplicate id, `notFound` for an unknown tenant).
    public static func insertAppraisal(_ appraisal: Appraisal, in db: Database) throws {
        try StoreValidation.appraisal(appraisal)
        do {
            try db.cachedStatement(
                sql: """
                    INSERT INTO appraisal (id, tenant_id, workload_id, tee, created_at, status, policy_id, policy_sha256,
                        trust_vector_json, claims_json, trace_json, token_jti, evidence_sha256)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """
            ).execute(
                arguments: [
                    appraisal.id, appraisal.tenantId, appraisal.workloadId, appraisal.tee, appraisal.createdAt.storeMillis,
                    appraisal.status.rawValue, appraisal.policyId, appraisal.policySHA256, CanonicalJSON.string(appraisal.trustVector),
                    CanonicalJSON.string(appraisal.claims), CanonicalJSON.string(appraisal.trace), appraisal.tokenJTI,
                    Data(appraisal.evidenceSHA256),
                ])
        } catch let error as DatabaseError where error.extendedResultCode == .SQLITE_CONSTRAINT_FOREIGNKEY {
            throw StoreError(.notFound, "no tenant \(appraisal.tenantId)")
        } catch let error as DatabaseError where error.resultCode == .SQLITE_CONSTRAINT {
            throw StoreError(.conflict, "appraisal \(appraisal.id) already exists")
        }
    }

    public func appraisal(tenantId: String, id: String) async throws(StoreError) -> Appraisal {
        try await read { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM appraisal WHERE id = ? AND tenant_id = ?", arguments: [id, tenantId])
            else { throw StoreError(.notFound, "no appraisal \(id)") }
            return try Self.appraisal(row)
        }
    }

    public func listAppraisals(_ query: AppraisalQuery) async throws(StoreError) -> AppraisalPage {
        guard (1...AppraisalQuery.maximumLimit).contains(query.limit) else {
            throw StoreError(.invalidInput, "limit must be 1…\(AppraisalQuery.maximumLimit), got \(query.limit)")
        }
        let bounds = Self.appraisalBounds(query)
        let limit = query.limit
        return try await read { db in
            var range: (low: Int64, high: Int64)? = nil
            if let bounds {
                let row = try Row.fetchOne(db, sql: bounds.sql, arguments: bounds.arguments)
                guard let low = row.flatMap({ Int64.fromDatabaseValue($0[0] as DatabaseValue) }),
                    let high = row.flatMap({ Int64.fromDatabaseValue($0[1] as DatabaseValue) })
                else { return AppraisalPage(items: [], nextCursor: nil) }
                range = (low, high)
            }
            let (sql, arguments) = try Self.appraisalListing(query, seqs: range)
            let rows = try Row.fetchAll(db, sql: sql, arguments: arguments)
            let page = rows.prefix(limit)
            let items = try page.map(Self.appraisal)
            var next: String?
            if rows.count > limit, let last = page.last { next = "c\(try last.decode(Int64.self, forColumn: "seq"))" }
            return AppraisalPage(items: items, nextCursor: next)
        }
    }

    /// For a listing with `since`/`until`: the first and last seq of the tenant's (or workload's) appraisals in that
    /// time range, read from store-v1's `created_at` indexes without touching the rows. Times are the appraisals' own
    /// and need not rise with seq, so the bounds come from the index; the page then reads only between them.
    static func appraisalBounds(_ query: AppraisalQuery) -> (sql: String, arguments: StatementArguments)? {
        guard query.since != nil || query.until != nil else { return nil }
        var conditions = ["tenant_id = ?"]
        var arguments: StatementArguments = [query.tenantId]
        if let workload = query.workloadId {
            conditions.append("workload_id = ?")
            arguments += [workload]
        }
        if let since = query.since {
            conditions.append("created_at >= ?")
            arguments += [since.storeMillis]
        }
        if let until = query.until {
            conditions.append("created_at <= ?")
            arguments += [until.storeMillis]
        }
        return ("SELECT MIN(seq), MAX(seq) FROM appraisal WHERE \(conditions.joined(separator: " AND "))", arguments)
    }

    /// The SELECT of ``listAppraisals(_:)``: newest first by `seq`, which store-v3's `(tenant_id, seq)` and
    /// `(tenant_id, workload_id, seq)` indexes give without sorting the tenant's rows. The time terms are written
    /// `+created_at` so that SQLite never reads the page through a `created_at` index (and sorts every row in range):
    /// `seqs` (``appraisalBounds(_:)``) narrows the page instead.
    static func appraisalListing(
        _ query: AppraisalQuery, seqs: (low: Int64, high: Int64)? = nil
    ) throws(StoreError) -> (sql: String, arguments: StatementArguments) {
        var conditions = ["tenant_id = ?"]
        var arguments: StatementArguments = [query.tenantId]
        /// Adds `condition` (one `?`) with its value when the filter is set.
        func filter(_ condition: String, _ value: (any DatabaseValueConvertible)?) {
            guard let value else { return }
            conditions.append(condition)
            _ = arguments.append(contentsOf: [value])
        }
        filter("workload_id = ?", query.workloadId)
        filter("+created_at >= ?", query.since?.storeMillis)
        filter("+created_at <= ?", query.until?.storeMillis)
        filter("status = ?", query.status?.rawValue)
        filter("tee = ?", query.tee)
        filter("seq >= ?", seqs?.low)
        filter("seq <= ?", seqs?.high)
        if let cursor = query.cursor {
            guard cursor.hasPrefix("c"), let seq = Int64(cursor.dropFirst()), seq > 0 else {
                throw StoreError(.invalidInput, "the cursor is not one this store issued")
            }
            filter("seq < ?", seq)
        }
        let sql = "SELECT * FROM appraisal WHERE \(conditions.joined(separator: " AND ")) ORDER BY seq DESC LIMIT \(query.limit + 1)"
        return (sql, arguments)
    }

    static func appraisal(_ row: Row) throws -> Appraisal {
        let statusText = try row.decode(String.self, forColumn: "status")
        guard let status = AppraisalStatus(rawValue: statusText) else {
            throw StoreError(.corrupted, "unknown appraisal status \(statusText)")
        }
        return Appraisal(
            id: try row.decode(String.self, forColumn: "id"), tenantId: try row.decode(String.self, forColumn: "tenant_id"),
            workloadId: try row.decode(String.self, forColumn: "workload_id"), tee: try row.decode(String.self, forColumn: "tee"),
            createdAt: Date(storeMillis: try row.decode(Int64.self, forColumn: "created_at")), status: status,
            policyId: try row.decode(String.self, forColumn: "policy_id"),
            policySHA256: try row.decode(String.self, forColumn: "policy_sha256"),
            trustVector: try json(row, "trust_vector_json"), claims: try json(row, "claims_json"), trace: try json(row, "trace_json"),
            tokenJTI: try row.decode(String?.self, forColumn: "token_jti"),
            evidenceSHA256: [UInt8](try row.decode(Data.self, forColumn: "evidence_sha256")))
    }

    // MARK: - SEV launches

    public func createLaunch(_ launch: NewLaunch) async throws(StoreError) -> Launch {
        try StoreValidation.tenantId(launch.tenantId)
        try StoreValidation.name(launch.id, field: "launch id")
        try StoreValidation.text(launch.workloadId, field: "workload id", max: 256, allowEmpty: false)
        try StoreValidation.text(launch.policyId, field: "policy id", max: 256, allowEmpty: false)
        guard launch.tee == "sev" || launch.tee == "sev-es" else { throw StoreError(.invalidInput, "launch tee must be sev or sev-es") }
        guard launch.expiresAt > launch.createdAt else { throw StoreError(.invalidInput, "a launch must expire after it is created") }
        if let secret = launch.sessionSecret { try StoreValidation.secretValue(secret) }
        let keys = keys
        return try await write { db in
            try Self.requireTenant(launch.tenantId, in: db)
            try Self.eraseStaleLaunchSessions(now: launch.createdAt, in: db)
            var session: (keyId: Int64, box: Sealing.Box)?
            if let secret = launch.sessionSecret {
                let (keyId, dek) = try Self.currentDEK(tenantId: launch.tenantId, keys: keys, in: db)
                session = (
                    keyId,
                    try Sealing.seal(secret, key: dek, aad: Sealing.launchAAD(tenantId: launch.tenantId, launchId: launch.id, keyId: keyId))
                )
            }
            do {
                try db.execute(
                    sql: """
                        INSERT INTO launch (id, tenant_id, workload_id, tee, policy_id, guest_policy, state, created_at, expires_at,
                            session_key_id, session_nonce, session_ciphertext, session_tag)
                        VALUES (?, ?, ?, ?, ?, ?, 'created', ?, ?, ?, ?, ?, ?)
                        """,
                    arguments: [
                        launch.id, launch.tenantId, launch.workloadId, launch.tee, launch.policyId, Int64(launch.guestPolicy),
                        launch.createdAt.storeMillis, launch.expiresAt.storeMillis, session?.keyId, session.map { Data($0.box.nonce) },
                        session.map { Data($0.box.ciphertext) }, session.map { Data($0.box.tag) },
                    ])
            } catch let error as DatabaseError where error.resultCode == .SQLITE_CONSTRAINT {
                throw StoreError(.conflict, "launch \(launch.id) already exists")
            }
            return try Self.fetchLaunch(tenantId: launch.tenantId, id: launch.id, in: db)
        }
    }

    public func recordLaunchMeasurement(tenantId: String, id: String, measurement: [UInt8], now: Date) async throws(StoreError) -> Launch {
        try await write { db in try Self.recordLaunchMeasurement(tenantId: tenantId, id: id, measurement: measurement, now: now, in: db) }
    }

    /// Records the launch measurement in db: exactly once, while `created` and unexpired.
    ///
    /// The same measurement again while the launch is `measured` and undecided is a retry after a decision that
    /// failed before it was recorded (the service answered 503): the launch is returned as it is, to be decided again,
    /// while its session secret is kept (``staleLaunchGrace`` after expiry). A different measurement, or any after the
    /// decision, is a conflict.
    public static func recordLaunchMeasurement(tenantId: String, id: String, measurement: [UInt8], now: Date, in db: Database) throws
        -> Launch
    {
        guard measurement.count == 48 else { throw StoreError(.invalidInput, "a launch measurement is 48 bytes, got \(measurement.count)") }
        let launch = try fetchLaunch(tenantId: tenantId, id: id, in: db)
        if launch.state == .measured, launch.decidedAt == nil, launch.measurement == measurement {
            try eraseStaleLaunchSessions(now: now, in: db)
            let kept = try Bool.fetchOne(
                db, sql: "SELECT session_ciphertext IS NOT NULL FROM launch WHERE id = ? AND tenant_id = ?", arguments: [id, tenantId])
            guard kept == true else {
                throw StoreError(
                    .conflict, "launch \(id) was measured but never decided, and its session secret is erased: start a new launch")
            }
            return launch
        }
        guard launch.state == .created else {
            throw StoreError(.conflict, "launch \(id) already has a measurement (state \(launch.state.rawValue))")
        }
        guard now < launch.expiresAt else { throw StoreError(.conflict, "launch \(id) expired at \(launch.expiresAt)") }
        try eraseStaleLaunchSessions(now: now, in: db)
        try db.execute(
            sql:
                "UPDATE launch SET state = 'measured', measurement = ?, measured_at = ? WHERE id = ? AND tenant_id = ? AND state = 'created'",
            arguments: [Data(measurement), now.storeMillis, id, tenantId])
        guard db.changesCount == 1 else { throw StoreError(.conflict, "launch \(id) already has a measurement") }
        return try fetchLaunch(tenantId: tenantId, id: id, in: db)
    }

    public func decideLaunch(tenantId: String, id: String, allowed: Bool, appraisalId: String?, reason: String?, now: Date)
        async throws(StoreError) -> Launch
    {
        if let reason { try StoreValidation.text(reason, field: "reason", max: 4096, allowEmpty: true) }
        return try await write { db in
            try Self.decideLaunch(tenantId: tenantId, id: id, allowed: allowed, appraisalId: appraisalId, reason: reason, now: now, in: db)
        }
    }

    public func launchDecision(tenantId: String, id: String, allowed: Bool, appraisalId: String?, reason: String?, now: Date)
        throws(StoreError) -> StoreWrite
    {
        if let reason { try StoreValidation.text(reason, field: "reason", max: 4096, allowEmpty: true) }
        return StoreWrite(database: ObjectIdentifier(pool)) { db in
            _ = try Self.decideLaunch(
                tenantId: tenantId, id: id, allowed: allowed, appraisalId: appraisalId, reason: reason, now: now, in: db)
        }
    }

    /// Records the decision on a measured launch in db and erases its session secret (TEK/TIK) either way: an allowed
    /// launch's secret packet is built before its decision is recorded, so nothing needs the keys afterwards.
    public static func decideLaunch(
        tenantId: String, id: String, allowed: Bool, appraisalId: String?, reason: String?, now: Date, in db: Database
    ) throws -> Launch {
        let launch = try fetchLaunch(tenantId: tenantId, id: id, in: db)
        guard launch.state == .measured else {
            throw StoreError(.conflict, "launch \(id) cannot be decided in state \(launch.state.rawValue)")
        }
        try db.execute(
            sql: """
                UPDATE launch SET state = ?, decided_at = ?, appraisal_id = ?, decision_reason = ?, session_key_id = NULL,
                    session_nonce = NULL, session_ciphertext = NULL, session_tag = NULL
                WHERE id = ? AND tenant_id = ?
                """,
            arguments: [allowed ? "allowed" : "denied", now.storeMillis, appraisalId, reason, id, tenantId])
        return try fetchLaunch(tenantId: tenantId, id: id, in: db)
    }

    /// How long after its expiry a launch stuck in `measured` (its decision failed after the measurement was
    /// recorded) keeps its session secret: long past any decision still in flight.
    public static let staleLaunchGrace: TimeInterval = 3600

    /// Erases the session secrets (TEK/TIK) of launches that can no longer use them: `created` and expired (no
    /// measurement is accepted after expiry), or `measured` more than ``staleLaunchGrace`` after expiry. Run in the
    /// transactions that create a launch or record a measurement, so stale keys do not outlive the next launch.
    static func eraseStaleLaunchSessions(now: Date, in db: Database) throws {
        try db.execute(
            sql: """
                UPDATE launch SET session_key_id = NULL, session_nonce = NULL, session_ciphertext = NULL, session_tag = NULL
                WHERE session_ciphertext IS NOT NULL
                    AND ((state = 'created' AND expires_at <= ?) OR (state <> 'created' AND expires_at <= ?))
                """,
            arguments: [now.storeMillis, now.addingTimeInterval(-Self.staleLaunchGrace).storeMillis])
    }

    public func markLaunchInjected(tenantId: String, id: String, now: Date) async throws(StoreError) -> Launch {
        try await write { db in try Self.markLaunchInjected(tenantId: tenantId, id: id, now: now, in: db) }
    }

    public func launchInjection(tenantId: String, id: String, now: Date) -> StoreWrite {
        StoreWrite(database: ObjectIdentifier(pool)) { db in _ = try Self.markLaunchInjected(tenantId: tenantId, id: id, now: now, in: db) }
    }

    /// Marks an allowed launch injected in db and erases its session secret.
    public static func markLaunchInjected(tenantId: String, id: String, now: Date, in db: Database) throws -> Launch {
        let launch = try Self.fetchLaunch(tenantId: tenantId, id: id, in: db)
        guard launch.state == .allowed else {
            throw StoreError(.conflict, "launch \(id) cannot be injected in state \(launch.state.rawValue)")
        }
        try db.execute(
            sql: """
                UPDATE launch SET state = 'injected', injected_at = ?, session_key_id = NULL, session_nonce = NULL,
                    session_ciphertext = NULL, session_tag = NULL
                WHERE id = ? AND tenant_id = ?
                """,
            arguments: [now.storeMillis, id, tenantId])
        return try Self.fetchLaunch(tenantId: tenantId, id: id, in: db)
    }

    public func launch(tenantId: String, id: String) async throws(StoreError) -> Launch {
        try await read { db in try Self.fetchLaunch(tenantId: tenantId, id: id, in: db) }
    }

    public func openLaunchSessionSecret(tenantId: String, id: String) async throws(StoreError) -> SecretBytes {
        let keys = keys
        return try await read { db in
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM launch WHERE id = ? AND tenant_id = ?", arguments: [id, tenantId])
            else {
                throw StoreError(.notFound, "no launch \(id)")
            }
            guard let keyId = try row.decode(Int64?.self, forColumn: "session_key_id"),
                let nonce = try row.decode(Data?.self, forColumn: "session_nonce"),
                let ciphertext = try row.decode(Data?.self, forColumn: "session_ciphertext"),
                let tag = try row.decode(Data?.self, forColumn: "session_tag")
            else { throw StoreError(.notFound, "launch \(id) has no session secret (none was stored, or it was erased)") }
            let dek = try Self.dek(tenantId: tenantId, id: keyId, keys: keys, in: db)
            return try Sealing.open(
                Sealing.Box(nonce: [UInt8](nonce), ciphertext: [UInt8](ciphertext), tag: [UInt8](tag)), key: dek,
                aad: Sealing.launchAAD(tenantId: tenantId, launchId: id, keyId: keyId), what: "launch \(id)'s session secret")
        }
    }

    static func fetchLaunch(tenantId: String, id: String, in db: Database) throws -> Launch {
        guard let row = try Row.fetchOne(db, sql: "SELECT * FROM launch WHERE id = ? AND tenant_id = ?", arguments: [id, tenantId]) else {
            throw StoreError(.notFound, "no launch \(id)")
        }
        let stateText = try row.decode(String.self, forColumn: "state")
        guard let state = LaunchState(rawValue: stateText) else { throw StoreError(.corrupted, "unknown launch state \(stateText)") }
        guard let guestPolicy = UInt32(exactly: try row.decode(Int64.self, forColumn: "guest_policy")) else {
            throw StoreError(.corrupted, "launch \(id) has an out-of-range guest policy")
        }
        return Launch(
            id: id, tenantId: tenantId, workloadId: try row.decode(String.self, forColumn: "workload_id"),
            tee: try row.decode(String.self, forColumn: "tee"), policyId: try row.decode(String.self, forColumn: "policy_id"),
            guestPolicy: guestPolicy, state: state, createdAt: Date(storeMillis: try row.decode(Int64.self, forColumn: "created_at")),
            expiresAt: Date(storeMillis: try row.decode(Int64.self, forColumn: "expires_at")),
            measurement: try row.decode(Data?.self, forColumn: "measurement").map { [UInt8]($0) },
            measuredAt: try row.decode(Int64?.self, forColumn: "measured_at").map(Date.init(storeMillis:)),
            decidedAt: try row.decode(Int64?.self, forColumn: "decided_at").map(Date.init(storeMillis:)),
            appraisalId: try row.decode(String?.self, forColumn: "appraisal_id"),
            decisionReason: try row.decode(String?.self, forColumn: "decision_reason"),
            injectedAt: try row.decode(Int64?.self, forColumn: "injected_at").map(Date.init(storeMillis:)))
    }
}

// MARK: - Time

extension Date {
    /// Unix milliseconds, as every time column stores it (rounded down).
    public var storeMillis: Int64 {
        let millis = (timeIntervalSince1970 * 1000).rounded(.down)
        guard millis.isFinite, let value = Int64(exactly: millis) else { return millis < 0 ? Int64.min / 2 : Int64.max / 2 }
        return value
    }

    /// The date of a stored Unix-milliseconds value.
    public init(storeMillis: Int64) { self.init(timeIntervalSince1970: Double(storeMillis) / 1000) }
}
