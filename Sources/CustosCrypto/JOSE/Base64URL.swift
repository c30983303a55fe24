// MARK: - Strict base64url

/// base64url without padding exactly as JOSE requires (RFC 7515 §2, RFC 4648 §5).
///
/// ``Base64/decode(_:)`` is lenient (either alphabet, padding, whitespace) for PEM and vendor files. JOSE values
/// have one encoding only, so this decoder refuses anything else: the standard alphabet's `+` and `/`, `=`, white
/// space, a length of 1 mod 4, and non-zero unused bits in the last character (which would let two strings decode
/// to the same bytes).
public enum Base64URL {
    /// base64url of `bytes`, without padding.
    public static func encode(_ bytes: [UInt8]) -> String { Base64.urlEncode(bytes) }

    /// base64url of the UTF-8 bytes of `text`.
    public static func encode(utf8 text: String) -> String { Base64.urlEncode(Array(text.utf8)) }

    /// Decodes strict base64url.
    /// - Parameters:
    ///   - text: the encoded value.
    ///   - field: the JOSE member it came from, for the error message.
    /// - Throws: ``CryptoError/Code-swift.struct/malformedInput`` naming `field` and the offending offset.
    public static func decode(_ text: some StringProtocol, field: String = "value") throws(CryptoError) -> [UInt8] {
        let utf8 = Array(text.utf8)
        var lastValue: UInt8 = 0
        for (offset, c) in utf8.enumerated() {
            switch c {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): lastValue = c - UInt8(ascii: "A")
            case UInt8(ascii: "a")...UInt8(ascii: "z"): lastValue = c - UInt8(ascii: "a") + 26
            case UInt8(ascii: "0")...UInt8(ascii: "9"): lastValue = c - UInt8(ascii: "0") + 52
            case UInt8(ascii: "-"): lastValue = 62
            case UInt8(ascii: "_"): lastValue = 63
            default:
                throw CryptoError(.malformedInput, "\(field) is not base64url without padding (byte \(c) at offset \(offset))")
            }
        }
        switch utf8.count % 4 {
        case 1: throw CryptoError(.malformedInput, "\(field) has an impossible base64url length \(utf8.count)")
        case 2 where lastValue & 0x0f != 0, 3 where lastValue & 0x03 != 0:
            throw CryptoError(.malformedInput, "\(field) is not canonical base64url (unused bits set in the last character)")
        default: break
        }
        return try Base64.decode(utf8: utf8)
    }
}
