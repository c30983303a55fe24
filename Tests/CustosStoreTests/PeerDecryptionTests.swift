import Foundation
import GRDB
import Testing

@testable import CustosStore

/// Whether `/usr/bin/python3` can import `cryptography` (Debian: python3-cryptography).
private let pythonCryptographyAvailable: Bool = {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
    process.arguments = ["-c", "import cryptography.hazmat.primitives.ciphers.aead"]
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    guard (try? process.run()) != nil else { return false }
    process.waitUntilExit()
    return process.terminationStatus == 0
}()

/// The sealing format, checked by a peer: Python's `sqlite3` and `cryptography` (OpenSSL underneath, but a separate
/// implementation of the AAD layout and key hierarchy README.md "State" documents) open a secret from the master key
/// file and the database alone.
@Suite(.enabled(if: pythonCryptographyAvailable, "needs python3-cryptography"))
struct PeerDecryptionTests {
    static let script = #"""
        import sqlite3, struct, sys, hashlib
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        def aad(label, *fields):
            out = b""
            for f in (label,) + fields:
                b = f.encode()
                out += struct.pack(">I", len(b)) + b
            return out

        data, tenant, path, version = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
        master = open(data + "/master.key", "rb").read()
        master_id = hashlib.sha256(master).hexdigest()[:16]
        db = sqlite3.connect(data + "/custos.sqlite")
        key_id, nonce, ciphertext, tag = db.execute(
            "SELECT key_id, nonce, ciphertext, tag FROM secret_version WHERE tenant_id=? AND path=? AND version=?",
            (tenant, path, version)).fetchone()
        stored_master_id, dek_nonce, wrapped, dek_tag = db.execute(
            "SELECT master_key_id, nonce, wrapped, tag FROM tenant_key WHERE tenant_id=? AND id=?", (tenant, key_id)).fetchone()
        assert stored_master_id == master_id, (stored_master_id, master_id)
        dek = AESGCM(master).decrypt(dek_nonce, wrapped + dek_tag, aad("custos-dek-v1", tenant, str(key_id), master_id))
        plain = AESGCM(dek).decrypt(nonce, ciphertext + tag, aad("custos-secret-v1", tenant, path, str(version), str(key_id)))
        sys.stdout.write(plain.decode())
        """#

    @Test func pythonOpensASecretFromTheKeyFileAndDatabase() async throws {
        let dir = try TemporaryDirectory()
        let store = try await Fixtures.store(in: dir)
        _ = try await store.putSecret(tenantId: "acme", path: "kbs/key/one", value: Fixtures.secret("first value"), now: Fixtures.t0)
        let v2 = try await store.putSecret(tenantId: "acme", path: "kbs/key/one", value: Fixtures.secret("second value"), now: Fixtures.t0)
        try store.pool.close()

        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = ["-c", Self.script, dir.url.path, "acme", "kbs/key/one", String(v2.version)]
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(String(decoding: stderr, as: UTF8.self))")
        #expect(String(decoding: stdout, as: UTF8.self) == "second value")
    }
}
