import CustosCrypto
import Foundation
import GRDB
import Testing

@testable import CustosStore

@Suite struct SealingTests {
    @Test func sealedSecretsAreNotInTheDatabaseFileOrItsWAL() async throws {
        let dir = try TemporaryDirectory()
        let store = try await Fixtures.store(in: dir)
        let plaintext = "correct-horse-battery-staple-\(UUID().uuidString)"
        _ = try await store.putSecret(tenantId: "acme", path: "kbs/key/disk", value: Fixtures.secret(plaintext), now: Fixtures.t0)
        let opened = try await store.openSecret(tenantId: "acme", path: "kbs/key/disk", version: nil, now: Fixtures.t0)
        #expect(opened.value == Fixtures.secret(plaintext))
        // The value is in the WAL (not yet checkpointed) or the main file: neither may hold the plaintext.
        let needle = Array(plaintext.utf8)
        let files = ["custos.sqlite", "custos.sqlite-wal", "custos.sqlite-shm"].map(dir.path)
        #expect(files.contains { FileManager.default.fileExists(atPath: $0) })
        for file in files { #expect(!Fixtures.file(file, contains: needle), "\(file) holds the plaintext") }
        // Nor after a checkpoint moves everything into the main file.
        _ = try await store.pool.writeWithoutTransaction { db in try db.checkpoint(.truncate) }
        for file in files { #expect(!Fixtures.file(file, contains: needle), "\(file) holds the plaintext") }
        // The ciphertext is there: the test looks in the right place.
        let ciphertext = try await store.pool.read { db in try Data.fetchOne(db, sql: "SELECT ciphertext FROM secret_version") }
        #expect(try #require(ciphertext).count == needle.count)
        #expect(Fixtures.file(dir.path("custos.sqlite"), contains: [UInt8](try #require(ciphertext))))
    }

    /// The secret's AAD binds tenant, path and version: a row copied to another path, version or tenant does not open.
    @Test func aCiphertextCopiedElsewhereDoesNotOpen() async throws {
        let dir = try TemporaryDirectory()
        let store = try await Fixtures.store(in: dir, tenants: ["acme", "globex"])
        _ = try await store.putSecret(tenantId: "acme", path: "a/b", value: Fixtures.secret("one"), now: Fixtures.t0)
        _ = try await store.putSecret(tenantId: "acme", path: "c/d", value: Fixtures.secret("two"), now: Fixtures.t0)
        _ = try await store.putSecret(tenantId: "globex", path: "a/b", value: Fixtures.secret("three"), now: Fixtures.t0)
        // Copy acme's a/b ciphertext over acme's c/d, and over globex's a/b (same path, other tenant).
        _ = try await store.pool.write { db in
            for (tenant, path) in [("acme", "c/d"), ("globex", "a/b")] {
                try db.execute(
                    sql: """
                        UPDATE secret_version SET (nonce, ciphertext, tag) =
                            (SELECT nonce, ciphertext, tag FROM secret_version WHERE tenant_id = 'acme' AND path = 'a/b')
                        WHERE tenant_id = ? AND path = ?
                        """, arguments: [tenant, path])
            }
        }
        #expect(try await store.openSecret(tenantId: "acme", path: "a/b", version: nil, now: Fixtures.t0).value == Fixtures.secret("one"))
        for (tenant, path) in [("acme", "c/d"), ("globex", "a/b")] {
            await #expect(throws: StoreError(.sealing, "")) {
                _ = try await store.openSecret(tenantId: tenant, path: path, version: nil, now: Fixtures.t0)
            }
        }
        // A wrapped DEK copied to another tenant does not unwrap either.
        _ = try await store.pool.write { db in
            try db.execute(
                sql: """
                    UPDATE tenant_key SET (nonce, wrapped, tag) = (SELECT nonce, wrapped, tag FROM tenant_key WHERE tenant_id = 'acme')
                    WHERE tenant_id = 'globex'
                    """)
        }
        await #expect(throws: StoreError(.sealing, "")) {
            _ = try await store.openSecret(tenantId: "globex", path: "a/b", version: nil, now: Fixtures.t0)
        }
    }

    @Test func aWrongMasterKeyIsRefusedAtOpen() async throws {
        let dir = try TemporaryDirectory()
        let env = [DataDirectory.masterKeyVariable: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="]
        let store = try dir.data.open(environment: env, create: true).store
        _ = try await store.createTenant(id: "acme", displayName: "Acme", now: Fixtures.t0)
        let other = [DataDirectory.masterKeyVariable: "paWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaU="]
        let error = #expect(throws: StoreError.self) { _ = try dir.data.open(environment: other, create: true) }
        #expect(error?.code == .masterKey)
        // The message names both key ids (first 8 bytes of SHA-256 of each key, computed with Python's hashlib).
        #expect(error?.reason.contains("630dcd2966c43366") == true)
        #expect(error?.reason.contains("fc8b64001c5fdd0f") == true)
        // No key file was created while refusing.
        #expect(!FileManager.default.fileExists(atPath: dir.data.masterKeyPath))
    }
}
