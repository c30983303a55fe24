// MARK: - Concat KDF (NIST SP 800-56A §5.8.1, as RFC 7518 §4.6.2 uses it)

/// The single-step key derivation JOSE's ECDH-ES uses, with SHA-256.
///
/// `OtherInfo` = AlgorithmID ‖ PartyUInfo ‖ PartyVInfo ‖ SuppPubInfo, where the first three are each a 32-bit
/// big-endian length followed by the bytes, and SuppPubInfo is the key length in *bits*, 32-bit big-endian
/// (RFC 7518 §4.6.2). Round *i* (from 1) is `SHA-256(be32(i) ‖ Z ‖ OtherInfo)`; the output is the first
/// `keyBitLength / 8` bytes of the rounds concatenated.
public enum ConcatKDF {
    /// Derives a key from the ECDH shared secret `z`.
    /// - Parameters:
    ///   - z: the shared secret (the x coordinate of the ECDH result).
    ///   - algorithmID: the `alg` value for key agreement with key wrapping (`ECDH-ES+A256KW`), or the `enc` value
    ///     for direct key agreement (`A128GCM` in RFC 7518 Appendix C).
    ///   - partyUInfo: the decoded `apu` (empty when absent).
    ///   - partyVInfo: the decoded `apv` (empty when absent).
    ///   - keyBitLength: the key length in bits, a positive multiple of 8 up to 4096.
    /// - Throws: ``CryptoError/Code-swift.struct/invalidParameter`` for a bad length.
    public static func deriveKey(
        z: SecretBytes, algorithmID: String, partyUInfo: [UInt8], partyVInfo: [UInt8], keyBitLength: Int
    ) throws(CryptoError) -> SecretBytes {
        guard keyBitLength > 0, keyBitLength % 8 == 0, keyBitLength <= 4096 else {
            throw CryptoError(
                .invalidParameter, "Concat KDF key length must be a positive multiple of 8 bits up to 4096, got \(keyBitLength)")
        }
        let algorithm = Array(algorithmID.utf8)
        guard algorithm.count <= 1024, partyUInfo.count <= 1 << 20, partyVInfo.count <= 1 << 20 else {
            throw CryptoError(.invalidParameter, "Concat KDF inputs are too long")
        }
        var otherInfo: [UInt8] = []
        otherInfo += bigEndian32(UInt32(algorithm.count)) + algorithm
        otherInfo += bigEndian32(UInt32(partyUInfo.count)) + partyUInfo
        otherInfo += bigEndian32(UInt32(partyVInfo.count)) + partyVInfo
        otherInfo += bigEndian32(UInt32(keyBitLength))
        let byteCount = keyBitLength / 8
        var output: [UInt8] = []
        var counter: UInt32 = 1
        while output.count < byteCount {
            var hasher = StreamingDigest(.sha256)
            hasher.update(bigEndian32(counter))
            z.withBytes { hasher.update($0) }
            hasher.update(otherInfo)
            output += hasher.finalize()
            counter += 1
        }
        let key = SecretBytes(Array(output.prefix(byteCount)))
        secureZero(&output)
        return key
    }

    private static func bigEndian32(_ value: UInt32) -> [UInt8] {
        [UInt8(value >> 24 & 0xff), UInt8(value >> 16 & 0xff), UInt8(value >> 8 & 0xff), UInt8(value & 0xff)]
    }
}
