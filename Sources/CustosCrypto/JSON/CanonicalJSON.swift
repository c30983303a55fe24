/// RFC 8785 JSON Canonicalization Scheme (JCS) for ``JSONValue``: no whitespace, members sorted by their keys as
/// UTF-16 code-unit arrays, strings escaped as JCS §3.2.2.2 says, integers in plain decimal.
///
/// These bytes are what Custos hashes: audit leaves (`SHA-256(0x00‖JCS(entry))`), policy ids
/// (`id@sha256:<hex SHA-256 of JCS(policy)>`) and the KBS REPORTDATA binding.
public enum CanonicalJSON {
    /// The canonical UTF-8 bytes of `value`.
    public static func encode(_ value: JSONValue) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        write(value, into: &out)
        return out
    }

    /// The canonical form as a `String`.
    public static func string(_ value: JSONValue) -> String {
        String(decoding: encode(value), as: UTF8.self)
    }

    /// Parses `bytes` strictly (``JSONValue/parse(_:maxDepth:)``) and returns their canonical form.
    public static func canonicalize(_ bytes: some Collection<UInt8>) throws(JSONError) -> [UInt8] {
        encode(try JSONValue.parse(bytes))
    }

    /// Orders keys as JCS does: by UTF-16 code units, as unsigned integers, a prefix first.
    public static func keyPrecedes(_ a: String, _ b: String) -> Bool {
        var a = a
        var b = b
        return a.withUTF8 { left in b.withUTF8 { right in utf16Precedes(left, right) } }
    }

    /// UTF-16 code-unit order computed on UTF-8 bytes, in one pass up to the first difference.
    ///
    /// UTF-8 byte order is code-point order, and UTF-16 order differs from it only between a character in
    /// U+E000–U+FFFF (UTF-8 lead byte 0xEE or 0xEF) and a supplementary character (lead 0xF0–0xF4), whose surrogates
    /// (0xD800–0xDBFF) sort first. A continuation byte (0x80–0xBF) can differ first only after equal lead bytes, where
    /// both characters are of the same kind and byte order holds.
    @inline(__always)
    static func utf16Precedes(_ left: UnsafeBufferPointer<UInt8>, _ right: UnsafeBufferPointer<UInt8>) -> Bool {
        let common = Swift.min(left.count, right.count)
        var index = 0
        while index < common, left[index] == right[index] { index += 1 }
        if index == common { return left.count < right.count }
        let l = left[index]
        let r = right[index]
        if l >= 0xF0, r == 0xEE || r == 0xEF { return true }
        if r >= 0xF0, l == 0xEE || l == 0xEF { return false }
        return l < r
    }

    private static func write(_ value: JSONValue, into out: inout [UInt8]) {
        switch value {
        case .null: out.append(contentsOf: "null".utf8)
        case .bool(let flag): out.append(contentsOf: (flag ? "true" : "false").utf8)
        case .integer(let number): out.append(contentsOf: String(number).utf8)
        case .string(let text): writeString(text, into: &out)
        case .array(let elements):
            out.append(UInt8(ascii: "["))
            for (position, element) in elements.enumerated() {
                if position > 0 { out.append(UInt8(ascii: ",")) }
                write(element, into: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let members):
            out.append(UInt8(ascii: "{"))
            for (position, member) in members.sorted(by: { keyPrecedes($0.key, $1.key) }).enumerated() {
                if position > 0 { out.append(UInt8(ascii: ",")) }
                writeString(member.key, into: &out)
                out.append(UInt8(ascii: ":"))
                write(member.value, into: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    /// Whether `byte` is written as is inside a string (JCS §3.2.2.2: everything but controls, `"` and `\\`; UTF-8
    /// sequences pass through unescaped).
    @inline(__always) private static func isPlain(_ byte: UInt8) -> Bool { byte >= 0x20 && byte != 0x22 && byte != 0x5C }

    private static func writeString(_ text: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        let copied: Bool? = text.utf8.withContiguousStorageIfAvailable { bytes in
            guard bytes.allSatisfy(isPlain) else { return false }
            out.append(contentsOf: bytes)
            return true
        }
        if copied != true {
            for byte in text.utf8 { writeEscaped(byte, into: &out) }
        }
        out.append(UInt8(ascii: "\""))
    }

    @inline(__always) private static func writeEscaped(_ byte: UInt8, into out: inout [UInt8]) {
        switch byte {
        case 0x08: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "b")])
        case 0x09: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
        case 0x0A: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
        case 0x0C: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "f")])
        case 0x0D: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
        case 0x22: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
        case 0x5C: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
        case 0x00..<0x20:
            out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0")])
            out.append(hexDigits[Int(byte >> 4)])
            out.append(hexDigits[Int(byte & 0x0F)])
        default: out.append(byte)
        }
    }
}
