import CustosCrypto
import Foundation
import GRDB
import Testing

@testable import CustosStore

@Suite struct MasterKeyTests {
    @Test func keyIdIsTheFirstEightBytesOfSHA256() throws {
        // Expected ids from Python: hashlib.sha256(bytes(range(32))).hexdigest()[:16].
        #expect(try MasterKey(material: SecretBytes(Array(0..<32))).id == "630dcd2966c43366")
        #expect(try MasterKey(base64: "paWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaU=").id == "fc8b64001c5fdd0f")
        #expect(throws: StoreError(.masterKey, "")) { try MasterKey(material: SecretBytes(Array(repeating: 1, count: 31))) }
        #expect(throws: StoreError(.masterKey, "")) { try MasterKey(base64: "not base64!") }
    }

    @Test func firstStartCreatesA0600KeyFileOf32Bytes() throws {
        let dir = try TemporaryDirectory()
        let opened = try dir.data.open(environment: [:], create: true)
        #expect(opened.createdMasterKey && opened.createdDatabase && opened.keySource == .file)
        let attributes = try FileManager.default.attributesOfItem(atPath: dir.data.masterKeyPath)
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        let bytes = try #require(FileManager.default.contents(atPath: dir.data.masterKeyPath))
        #expect(bytes.count == 32)
        #expect(opened.store.keys.current.id == Hex.encode(Digest.sha256([UInt8](bytes)).prefix(8)))
        // Reopening uses the same key and creates nothing.
        let again = try dir.data.open(environment: [:], create: true)
        #expect(!again.createdMasterKey && !again.createdDatabase)
        #expect(again.store.keys.current.id == opened.store.keys.current.id)
    }

    @Test(arguments: [0o644, 0o640, 0o604, 0o660])
    func aKeyFileOthersCanReadIsRefused(mode: Int) throws {
        let dir = try TemporaryDirectory()
        _ = try dir.data.open(environment: [:], create: true)
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: dir.data.masterKeyPath)
        let error = #expect(throws: StoreError.self) { _ = try dir.data.open(environment: [:], create: true) }
        #expect(error?.code == .masterKey)
        #expect(error?.reason.contains("chmod 600") == true)
    }

    @Test(arguments: [0, 31, 33, 64])
    func aKeyFileOfTheWrongSizeIsRefused(size: Int) throws {
        let dir = try TemporaryDirectory()
        _ = FileManager.default.createFile(
            atPath: dir.data.masterKeyPath, contents: Data(repeating: 7, count: size), attributes: [.posixPermissions: 0o600])
        let error = #expect(throws: StoreError.self) { _ = try dir.data.open(environment: [:], create: true) }
        #expect(error?.code == .masterKey)
        // Nothing half-written: the refused open created no database.
        #expect(!FileManager.default.fileExists(atPath: dir.data.databasePath))
    }

    @Test func aMissingKeyIsNotReplacedWhenTheDatabaseHoldsSealedKeys() async throws {
        let dir = try TemporaryDirectory()
        _ = try await Fixtures.store(in: dir)
        try FileManager.default.removeItem(atPath: dir.data.masterKeyPath)
        let error = #expect(throws: StoreError.self) { _ = try dir.data.open(environment: [:], create: true) }
        #expect(error?.code == .masterKey)
        #expect(!FileManager.default.fileExists(atPath: dir.data.masterKeyPath))
    }

    @Test func theEnvironmentKeyIsUsedInsteadOfAFile() async throws {
        let dir = try TemporaryDirectory()
        let env = [DataDirectory.masterKeyVariable: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="]
        let opened = try dir.data.open(environment: env, create: true)
        #expect(opened.keySource == .environment && !opened.createdMasterKey)
        #expect(opened.store.keys.current.id == "630dcd2966c43366")
        #expect(!FileManager.default.fileExists(atPath: dir.data.masterKeyPath))
        let bad = [DataDirectory.masterKeyVariable: "AAECAwQF"]
        #expect(throws: StoreError(.masterKey, "")) { _ = try dir.data.open(environment: bad, create: true) }
    }

    // MARK: - Rotation

    /// Puts versions of several secrets in two tenants; returns the expected plaintext of every (tenant, path, version).
    static func populate(_ store: SQLiteStore) async throws -> [String: String] {
        var expected: [String: String] = [:]
        for tenant in ["acme", "globex"] {
            for path in ["db/password", "kbs/key/disk"] {
                for round in 1...3 {
                    let value = "\(tenant)|\(path)|\(round)"
                    let version = try await store.putSecret(tenantId: tenant, path: path, value: Fixtures.secret(value), now: Fixtures.t0)
                    expected["\(tenant)|\(path)|\(version.version)"] = value
                }
            }
        }
        return expected
    }

    static func checkAllVersions(_ store: SQLiteStore, _ expected: [String: String]) async throws {
        for (key, value) in expected {
            let parts = key.split(separator: "|").map(String.init)
            let opened = try await store.openSecret(tenantId: parts[0], path: parts[1], version: Int64(parts[2]), now: Fixtures.t0)
            #expect(opened.value == Fixtures.secret(value), "\(key)")
        }
    }

    @Test func rotationRewrapsEveryKeyWithoutLosingAVersion() async throws {
        let dir = try TemporaryDirectory()
        let store = try await Fixtures.store(in: dir, tenants: ["acme", "globex"])
        let expected = try await Self.populate(store)
        let before = try store.pool.read { db in try Row.fetchAll(db, sql: "SELECT * FROM secret_version ORDER BY tenant_id, path, version")
        }
        let oldId = store.keys.current.id
        try store.pool.close()

        let report = try dir.data.rotateMasterKey(environment: [:])
        #expect(report.oldKeyId == oldId && report.newKeyId != oldId)
        #expect(report.rewrappedKeys == 2)
        #expect(!FileManager.default.fileExists(atPath: dir.data.oldMasterKeyPath))

        let reopened = try dir.data.open(environment: [:], create: false).store
        #expect(reopened.keys.current.id == report.newKeyId && reopened.keys.previous == nil)
        let ids = try await reopened.pool.read { db in try String.fetchAll(db, sql: "SELECT DISTINCT master_key_id FROM tenant_key") }
        #expect(ids == [report.newKeyId])
        // Secrets are sealed under the DEKs: their rows are untouched, and every version still opens.
        let after = try reopened.pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM secret_version ORDER BY tenant_id, path, version")
        }
        #expect(before == after)
        try await Self.checkAllVersions(reopened, expected)
        // The old key alone no longer opens the database.
        let oldKey = Base64.encode(store.keys.current.material.unsafeCopy())
        #expect(throws: StoreError(.masterKey, "")) {
            _ = try dir.data.open(environment: [DataDirectory.masterKeyVariable: oldKey], create: false)
        }
    }

    /// A crash after the new key file is in place but before the database commit: both keys are on disk, opening
    /// works, and the next rotation finishes the interrupted one first.
    @Test func anInterruptedRotationLeavesAUsableKeySetAndIsFinishedNextTime() async throws {
        let dir = try TemporaryDirectory()
        let store = try await Fixtures.store(in: dir, tenants: ["acme", "globex"])
        let expected = try await Self.populate(store)
        let old = store.keys.current
        try store.pool.close()
        // Steps (1) and (2) of the rotation, then "crash".
        try MasterKeyFile.write(old, to: dir.data.oldMasterKeyPath, replace: true)
        let newKey = try MasterKey.generate()
        try MasterKeyFile.write(newKey, to: dir.data.masterKeyPath, replace: true)

        let midway = try dir.data.open(environment: [:], create: false).store
        #expect(midway.keys.current.id == newKey.id && midway.keys.previous?.id == old.id)
        try await Self.checkAllVersions(midway, expected)
        // A tenant created midway gets its key wrapped under the new master key.
        _ = try await midway.createTenant(id: "initech", displayName: "Initech", now: Fixtures.t0)
        try midway.pool.close()

        let report = try dir.data.rotateMasterKey(environment: [:])
        #expect(report.finishedInterruptedRotation)
        #expect(report.oldKeyId == newKey.id)
        #expect(report.rewrappedKeys == 3)
        #expect(!FileManager.default.fileExists(atPath: dir.data.oldMasterKeyPath))
        let done = try dir.data.open(environment: [:], create: false).store
        try await Self.checkAllVersions(done, expected)
    }

    @Test func rotationWithTheEnvironmentKeyTakesTheNewKeyFromTheEnvironment() async throws {
        let dir = try TemporaryDirectory()
        let oldEnv = [DataDirectory.masterKeyVariable: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="]
        let store = try dir.data.open(environment: oldEnv, create: true).store
        _ = try await store.createTenant(id: "acme", displayName: "Acme", now: Fixtures.t0)
        _ = try await store.createTenant(id: "globex", displayName: "Globex", now: Fixtures.t0)
        let expected = try await Self.populate(store)
        try store.pool.close()

        #expect(throws: StoreError(.masterKey, "")) { _ = try dir.data.rotateMasterKey(environment: oldEnv) }
        var rotateEnv = oldEnv
        rotateEnv[DataDirectory.newMasterKeyVariable] = "paWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaU="
        let report = try dir.data.rotateMasterKey(environment: rotateEnv)
        #expect(report.oldKeyId == "630dcd2966c43366" && report.newKeyId == "fc8b64001c5fdd0f" && report.rewrappedKeys == 2)
        #expect(throws: StoreError(.masterKey, "")) { _ = try dir.data.open(environment: oldEnv, create: false) }
        let newEnv = [DataDirectory.masterKeyVariable: "paWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaU="]
        try await Self.checkAllVersions(try dir.data.open(environment: newEnv, create: false).store, expected)
    }
}
