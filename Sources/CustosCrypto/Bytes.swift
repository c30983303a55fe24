/// Hex and Base64 helpers shared by every Custos module.
public enum Hex {
    /// Lowercase hex of `bytes`.
    public static func encode(_ bytes: some Sequence<UInt8>) -> String {
        // Contiguous bytes take the unspecialized-generic-free path (this runs several times per attestation).
        if let text = bytes.withContiguousStorageIfAvailable({ encode(buffer: $0) }) { return text }
        return Array(bytes).withUnsafeBufferPointer { encode(buffer: $0) }
    }

    private static func encode(buffer bytes: UnsafeBufferPointer<UInt8>) -> String {
        String(unsafeUninitializedCapacity: bytes.count * 2) { out in
            for (i, byte) in bytes.enumerated() {
                out[2 * i] = digit(byte >> 4)
                out[2 * i + 1] = digit(byte & 0x0f)
            }
            return bytes.count * 2
        }
    }

    @inline(__always) private static func digit(_ nibble: UInt8) -> UInt8 {
        nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") + nibble - 10
    }

    /// Decodes hex (either case, no separators).
    /// - Throws: ``CryptoError/Code-swift.struct/malformedInput`` on odd length or a non-hex character.
    public static func decode(_ text: some StringProtocol) throws(CryptoError) -> [UInt8] {
        let utf8 = Array(text.utf8)
        guard utf8.count % 2 == 0 else { throw CryptoError(.malformedInput, "hex string has odd length \(utf8.count)") }
        var out: [UInt8] = []
        out.reserveCapacity(utf8.count / 2)
        var index = 0
        while index < utf8.count {
            guard let high = nibble(utf8[index]), let low = nibble(utf8[index + 1]) else {
                throw CryptoError(.malformedInput, "invalid hex character at offset \(index)")
            }
            out.append(high << 4 | low)
            index += 2
        }
        return out
    }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

/// Base64 (RFC 4648 §4) and base64url without padding (§5), as JWK and JWS need.
public enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    private static let urlAlphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    /// Value of each byte: 0…63, 64 for `=`, 65 for ignored whitespace, 255 for anything else. Both alphabets.
    private static let values: [UInt8] = {
        var table = [UInt8](repeating: 255, count: 256)
        for (index, c) in alphabet.enumerated() { table[Int(c)] = UInt8(index) }
        table[Int(UInt8(ascii: "-"))] = 62
        table[Int(UInt8(ascii: "_"))] = 63
        table[Int(UInt8(ascii: "="))] = 64
        for c in [UInt8(ascii: " "), UInt8(ascii: "\n"), UInt8(ascii: "\r"), UInt8(ascii: "\t")] { table[Int(c)] = 65 }
        return table
    }()

    /// ``values`` without the URL-safe characters: the standard alphabet only.
    private static let standardValues: [UInt8] = {
        var table = values
        table[Int(UInt8(ascii: "-"))] = 255
        table[Int(UInt8(ascii: "_"))] = 255
        return table
    }()

    /// Encodes with `table`; `pad` adds `=` to a multiple of four characters.
    private static func encode(_ bytes: [UInt8], table: [UInt8], pad: Bool) -> String {
        let full = bytes.count / 3
        let rest = bytes.count - full * 3
        let length = full * 4 + (rest == 0 ? 0 : (pad ? 4 : rest + 1))
        return String(unsafeUninitializedCapacity: length) { out in
            bytes.withUnsafeBufferPointer { input in
                table.withUnsafeBufferPointer { table in
                    var o = 0
                    var i = 0
                    while i + 3 <= input.count {
                        let n = UInt32(input[i]) << 16 | UInt32(input[i + 1]) << 8 | UInt32(input[i + 2])
                        out[o] = table[Int(n >> 18 & 63)]
                        out[o + 1] = table[Int(n >> 12 & 63)]
                        out[o + 2] = table[Int(n >> 6 & 63)]
                        out[o + 3] = table[Int(n & 63)]
                        o += 4
                        i += 3
                    }
                    if rest > 0 {
                        let n = UInt32(input[i]) << 16 | (rest == 2 ? UInt32(input[i + 1]) << 8 : 0)
                        out[o] = table[Int(n >> 18 & 63)]
                        out[o + 1] = table[Int(n >> 12 & 63)]
                        o += 2
                        if rest == 2 {
                            out[o] = table[Int(n >> 6 & 63)]
                            o += 1
                        }
                        if pad {
                            while o % 4 != 0 {
                                out[o] = UInt8(ascii: "=")
                                o += 1
                            }
                        }
                    }
                    return o
                }
            }
        }
    }

    public static func encode(_ bytes: [UInt8]) -> String { encode(bytes, table: alphabet, pad: true) }

    /// Decodes standard or URL-safe Base64, with or without padding; whitespace is ignored.
    public static func decode(_ text: some StringProtocol) throws(CryptoError) -> [UInt8] {
        try decode(utf8: text.utf8)
    }

    /// Decodes Base64 given as UTF-8 bytes (see ``decode(_:)-(StringProtocol)``).
    public static func decode(utf8 text: some Collection<UInt8>) throws(CryptoError) -> [UInt8] {
        // The loop runs over contiguous bytes: a generic collection iterated across the module boundary is not
        // specialized and costs a witness-table call per character (6 % of a KBS attestation's CPU was this).
        try decode(utf8: text, table: values)
    }

    /// Decodes the standard alphabet only (RFC 4648 §4), as PEM is written (RFC 7468 §3): `-` and `_` are refused.
    /// Padding is optional and whitespace is ignored, as in ``decode(utf8:)``. (A PEM body decoded with both alphabets
    /// read a `-` as 62 where dcap-qvl, and OpenSSL's PEM reader, refuse the certificate.)
    public static func decodeStandard(utf8 text: some Collection<UInt8>) throws(CryptoError) -> [UInt8] {
        try decode(utf8: text, table: standardValues)
    }

    private static func decode(utf8 text: some Collection<UInt8>, table: [UInt8]) throws(CryptoError) -> [UInt8] {
        let result: Result<[UInt8], CryptoError>? = text.withContiguousStorageIfAvailable { decode(buffer: $0, table: table) }
        switch result ?? Array(text).withUnsafeBufferPointer({ decode(buffer: $0, table: table) }) {
        case .success(let bytes): return bytes
        case .failure(let error): throw error
        }
    }

    private static func decode(buffer text: UnsafeBufferPointer<UInt8>, table values: [UInt8]) -> Result<[UInt8], CryptoError> {
        var accumulator: UInt32 = 0
        var count = 0
        var padding = 0
        var failure: CryptoError? = nil
        var out = [UInt8](unsafeUninitializedCapacity: text.count / 4 * 3 + 3) { out, written in
            values.withUnsafeBufferPointer { table in
                var o = 0
                for offset in 0..<text.count {
                    let v = table[Int(text[offset])]
                    if v < 64 {
                        guard padding == 0 else {
                            failure = CryptoError(.malformedInput, "base64 data after padding at offset \(offset)")
                            break
                        }
                        accumulator = accumulator << 6 | UInt32(v)
                        count += 1
                        if count == 4 {
                            out[o] = UInt8(truncatingIfNeeded: accumulator >> 16)
                            out[o + 1] = UInt8(truncatingIfNeeded: accumulator >> 8)
                            out[o + 2] = UInt8(truncatingIfNeeded: accumulator)
                            o += 3
                            accumulator = 0
                            count = 0
                        }
                    } else if v == 64 {
                        padding += 1
                    } else if v != 65 {
                        failure = CryptoError(.malformedInput, "invalid base64 character at offset \(offset)")
                        break
                    }
                }
                written = o
            }
        }
        if let failure { return .failure(failure) }
        guard count != 1, padding <= 2 else { return .failure(CryptoError(.malformedInput, "base64 length is invalid")) }
        if count == 2 {
            out.append(UInt8(truncatingIfNeeded: accumulator >> 4))
        } else if count == 3 {
            out.append(UInt8(truncatingIfNeeded: accumulator >> 10))
            out.append(UInt8(truncatingIfNeeded: accumulator >> 2))
        }
        return .success(out)
    }

    /// base64url without padding (RFC 7515 §2).
    public static func urlEncode(_ bytes: [UInt8]) -> String { encode(bytes, table: urlAlphabet, pad: false) }
}

extension Array where Element == UInt8 {
    /// Lowercase hex of the bytes.
    public var hexString: String { Hex.encode(self) }
}

extension ArraySlice where Element == UInt8 {
    /// Lowercase hex of the bytes.
    public var hexString: String { Hex.encode(self) }
}
