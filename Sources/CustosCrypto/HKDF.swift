public import Foundation

/// HKDF (RFC 5869) over ``HMAC``: extract-then-expand key derivation for sealing keys and token keys.
public enum HKDF {
    /// HKDF-Extract: `PRK = HMAC-Hash(salt, IKM)`; an empty salt means `HashLen` zero bytes (RFC 5869 §2.2).
    public static func extract(_ algorithm: DigestAlgorithm, salt: [UInt8], inputKeyMaterial: some ContiguousBytes) -> SecretBytes {
        let key = salt.isEmpty ? [UInt8](repeating: 0, count: algorithm.byteCount) : salt
        return SecretBytes(HMAC.authenticationCode(algorithm, key: key, data: inputKeyMaterial))
    }

    /// HKDF-Expand (RFC 5869 §2.3).
    /// - Throws: ``CryptoError/Code-swift.struct/invalidParameter`` when `length` exceeds 255 × HashLen.
    public static func expand(
        _ algorithm: DigestAlgorithm, pseudoRandomKey: SecretBytes, info: [UInt8], length: Int
    ) throws(CryptoError) -> SecretBytes {
        guard length >= 0, length <= 255 * algorithm.byteCount else {
            throw CryptoError(.invalidParameter, "HKDF output length \(length) exceeds 255 × \(algorithm.byteCount)")
        }
        var output: [UInt8] = []
        output.reserveCapacity(length + algorithm.byteCount)
        var previous: [UInt8] = []
        var counter: UInt8 = 1
        while output.count < length {
            previous = pseudoRandomKey.withBytes { prk in
                HMAC.authenticationCode(algorithm, key: prk, data: previous + info + [counter])
            }
            output += previous
            counter &+= 1
        }
        secureZero(&previous)
        let result = SecretBytes(Array(output.prefix(length)))
        secureZero(&output)
        return result
    }

    /// Extract then expand.
    public static func deriveKey(
        _ algorithm: DigestAlgorithm, inputKeyMaterial: some ContiguousBytes, salt: [UInt8], info: [UInt8], length: Int
    ) throws(CryptoError) -> SecretBytes {
        try expand(
            algorithm, pseudoRandomKey: extract(algorithm, salt: salt, inputKeyMaterial: inputKeyMaterial), info: info, length: length)
    }
}
