import CustosCrypto

/// Sealing at rest (issue 10 part 1): secrets are AES-256-GCM ciphertexts under a per-tenant data-encryption key
/// (DEK); each DEK is stored wrapped (AES-256-GCM) under the master key.
///
/// The additional authenticated data binds each ciphertext to where it belongs, so a row copied elsewhere does not
/// open: a wrapped DEK to its tenant, DEK generation and master-key id; a secret to its tenant, path, version and
/// DEK generation; a launch-session secret to its tenant and launch id. AAD fields are length-prefixed (4-byte
/// big-endian), so no two field lists encode alike.
enum Sealing {
    static let nonceLength = 12
    static let tagLength = 16
    static let dekLength = 32

    /// A GCM ciphertext as the tables store it.
    struct Box: Sendable {
        let nonce: [UInt8]
        let ciphertext: [UInt8]
        let tag: [UInt8]
    }

    static func aad(_ label: String, _ fields: [String]) -> [UInt8] {
        var out: [UInt8] = []
        for field in [label] + fields {
            let bytes = Array(field.utf8)
            let count = UInt32(truncatingIfNeeded: bytes.count)
            out += [UInt8(count >> 24 & 0xff), UInt8(count >> 16 & 0xff), UInt8(count >> 8 & 0xff), UInt8(count & 0xff)]
            out += bytes
        }
        return out
    }

    static func dekAAD(tenantId: String, keyId: Int64, masterKeyId: String) -> [UInt8] {
        aad("custos-dek-v1", [tenantId, String(keyId), masterKeyId])
    }

    static func secretAAD(tenantId: String, path: String, version: Int64, keyId: Int64) -> [UInt8] {
        aad("custos-secret-v1", [tenantId, path, String(version), String(keyId)])
    }

    static func launchAAD(tenantId: String, launchId: String, keyId: Int64) -> [UInt8] {
        aad("custos-launch-session-v1", [tenantId, launchId, String(keyId)])
    }

    /// Encrypts `plaintext` under `key` with a fresh random nonce.
    static func seal(_ plaintext: SecretBytes, key: SecretBytes, aad: [UInt8]) throws(StoreError) -> Box {
        do throws(CryptoError) {
            let box = try key.withBytes { (k: [UInt8]) throws(CryptoError) in
                try plaintext.withBytes { (p: [UInt8]) throws(CryptoError) in try AES.GCM.seal(key: k, plaintext: p, aad: aad) }
            }
            return Box(nonce: box.nonce, ciphertext: box.ciphertext, tag: box.tag)
        } catch {
            throw StoreError(.sealing, "sealing failed: \(error.code)")
        }
    }

    /// Decrypts and authenticates; the plaintext comes back as ``SecretBytes``.
    static func open(_ box: Box, key: SecretBytes, aad: [UInt8], what: String) throws(StoreError) -> SecretBytes {
        guard box.nonce.count == nonceLength, box.tag.count == tagLength else {
            throw StoreError(.corrupted, "\(what): stored nonce or tag has the wrong length")
        }
        do throws(CryptoError) {
            let plain = try key.withBytes { (k: [UInt8]) throws(CryptoError) in
                try AES.GCM.open(key: k, box: AES.GCM.SealedBox(nonce: box.nonce, ciphertext: box.ciphertext, tag: box.tag), aad: aad)
            }
            return SecretBytes(plain)
        } catch {
            throw StoreError(.sealing, "\(what) does not authenticate (tampered, moved, or sealed under another key)")
        }
    }
}
