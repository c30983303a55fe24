/// Ed25519 (RFC 8032, pure: no pre-hash, no context), the audit log's checkpoint signature (C2SP signed-note type
/// `0x01`).
///
/// Keys are the raw 32-byte encodings of RFC 8032 §5.1.5: the private key is the 32-byte seed, the public key the
/// encoded point. Signatures are the 64-byte `R ‖ S`. OpenSSL does the work (``Ed25519PrivateKey`` and
/// ``Ed25519PublicKey`` wrap an `EVP_PKEY` of type `EVP_PKEY_ED25519`).
public enum Ed25519 {
    /// Bytes in a raw private key (the seed) and in a public key.
    public static let keyByteCount = 32
    /// Bytes in a signature (`R ‖ S`).
    public static let signatureByteCount = 64
}
