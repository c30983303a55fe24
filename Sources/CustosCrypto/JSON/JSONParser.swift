extension JSONValue {
    /// Parses RFC 8259 JSON strictly: one value with optional surrounding whitespace, no duplicate keys, no lone
    /// surrogates, integers only (see ``JSONValue``), nesting at most `maxDepth` deep.
    public static func parse(_ bytes: some Collection<UInt8>, maxDepth: Int = 64) throws(JSONError) -> JSONValue {
        var parser = StrictJSONParser(bytes: Array(bytes), maxDepth: maxDepth)
        parser.skipWhitespace()
        let value = try parser.parseValue(depth: 0)
        parser.skipWhitespace()
        guard parser.index == parser.bytes.count else { throw JSONError("trailing bytes after the value", offset: parser.index) }
        return value
    }

    public static func parse(_ text: String, maxDepth: Int = 64) throws(JSONError) -> JSONValue {
        try parse(Array(text.utf8), maxDepth: maxDepth)
    }
}

private struct StrictJSONParser {
    let bytes: [UInt8]
    let maxDepth: Int
    var index = 0

    init(bytes: [UInt8], maxDepth: Int) {
        self.bytes = bytes
        self.maxDepth = maxDepth
    }

    mutating func skipWhitespace() {
        while index < bytes.count, [0x20, 0x09, 0x0a, 0x0d].contains(bytes[index]) { index += 1 }
    }

    func peek() -> UInt8? { index < bytes.count ? bytes[index] : nil }

    mutating func expectLiteral(_ literal: String, _ value: JSONValue) throws(JSONError) -> JSONValue {
        let utf8 = Array(literal.utf8)
        guard bytes.count - index >= utf8.count, Array(bytes[index..<index + utf8.count]) == utf8 else {
            throw JSONError("unexpected token", offset: index)
        }
        index += utf8.count
        return value
    }

    mutating func parseValue(depth: Int) throws(JSONError) -> JSONValue {
        guard let byte = peek() else { throw JSONError("unexpected end of input", offset: index) }
        switch byte {
        case UInt8(ascii: "{"): return try parseObject(depth: depth + 1)
        case UInt8(ascii: "["): return try parseArray(depth: depth + 1)
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): return try expectLiteral("true", .bool(true))
        case UInt8(ascii: "f"): return try expectLiteral("false", .bool(false))
        case UInt8(ascii: "n"): return try expectLiteral("null", .null)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
        default: throw JSONError("unexpected character", offset: index)
        }
    }

    mutating func parseObject(depth: Int) throws(JSONError) -> JSONValue {
        guard depth <= maxDepth else { throw JSONError("nesting deeper than \(maxDepth)", offset: index) }
        index += 1
        var members: [String: JSONValue] = [:]
        skipWhitespace()
        if peek() == UInt8(ascii: "}") {
            index += 1
            return .object(members)
        }
        while true {
            skipWhitespace()
            guard peek() == UInt8(ascii: "\"") else { throw JSONError("expected a member name", offset: index) }
            let keyOffset = index
            let key = try parseString()
            skipWhitespace()
            guard peek() == UInt8(ascii: ":") else { throw JSONError("expected ':'", offset: index) }
            index += 1
            skipWhitespace()
            let value = try parseValue(depth: depth)
            guard members.updateValue(value, forKey: key) == nil else {
                throw JSONError("duplicate member name \"\(key)\"", offset: keyOffset)
            }
            skipWhitespace()
            switch peek() {
            case UInt8(ascii: ","): index += 1
            case UInt8(ascii: "}"):
                index += 1
                return .object(members)
            default: throw JSONError("expected ',' or '}'", offset: index)
            }
        }
    }

    mutating func parseArray(depth: Int) throws(JSONError) -> JSONValue {
        guard depth <= maxDepth else { throw JSONError("nesting deeper than \(maxDepth)", offset: index) }
        index += 1
        var elements: [JSONValue] = []
        skipWhitespace()
        if peek() == UInt8(ascii: "]") {
            index += 1
            return .array(elements)
        }
        while true {
            skipWhitespace()
            elements.append(try parseValue(depth: depth))
            skipWhitespace()
            switch peek() {
            case UInt8(ascii: ","): index += 1
            case UInt8(ascii: "]"):
                index += 1
                return .array(elements)
            default: throw JSONError("expected ',' or ']'", offset: index)
            }
        }
    }

    mutating func parseNumber() throws(JSONError) -> JSONValue {
        let start = index
        var negative = false
        if peek() == UInt8(ascii: "-") {
            negative = true
            index += 1
        }
        guard let first = peek(), first >= UInt8(ascii: "0"), first <= UInt8(ascii: "9") else {
            throw JSONError("a number needs a digit", offset: index)
        }
        if first == UInt8(ascii: "0"), index + 1 < bytes.count, bytes[index + 1] >= UInt8(ascii: "0"),
            bytes[index + 1] <= UInt8(ascii: "9")
        {
            throw JSONError("leading zero in a number", offset: index)
        }
        var magnitude: Int64 = 0
        while let digit = peek(), digit >= UInt8(ascii: "0"), digit <= UInt8(ascii: "9") {
            magnitude = magnitude * 10 + Int64(digit - UInt8(ascii: "0"))
            guard magnitude <= JSONValue.maxSafeInteger else {
                throw JSONError("integer outside ±(2^53−1); send it as a string", offset: start)
            }
            index += 1
        }
        if let next = peek(), next == UInt8(ascii: ".") || next == UInt8(ascii: "e") || next == UInt8(ascii: "E") {
            throw JSONError("only integers are accepted; send fractions and exponents as strings", offset: start)
        }
        return .integer(negative ? -magnitude : magnitude)
    }

    mutating func parseHex4() throws(JSONError) -> UInt16 {
        guard bytes.count - index >= 4 else { throw JSONError("truncated \\u escape", offset: index) }
        var value: UInt16 = 0
        for _ in 0..<4 {
            let c = bytes[index]
            let nibble: UInt8
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): nibble = c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): nibble = c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): nibble = c - UInt8(ascii: "A") + 10
            default: throw JSONError("invalid hex digit in \\u escape", offset: index)
            }
            value = value << 4 | UInt16(nibble)
            index += 1
        }
        return value
    }

    mutating func parseString() throws(JSONError) -> String {
        index += 1  // opening quote
        var scalars = String.UnicodeScalarView()
        var runStart = index
        func flushRun(_ parser: StrictJSONParser, upTo end: Int, into scalars: inout String.UnicodeScalarView) throws(JSONError) {
            guard runStart < end else { return }
            guard let text = String(validating: parser.bytes[runStart..<end], as: UTF8.self) else {
                throw JSONError("invalid UTF-8 in a string", offset: runStart)
            }
            scalars.append(contentsOf: text.unicodeScalars)
        }
        while true {
            guard let byte = peek() else { throw JSONError("unterminated string", offset: index) }
            if byte == UInt8(ascii: "\"") {
                if scalars.isEmpty {
                    // No escape seen (every escape appends a scalar): the string is this one run of bytes.
                    guard let text = String(validating: bytes[runStart..<index], as: UTF8.self) else {
                        throw JSONError("invalid UTF-8 in a string", offset: runStart)
                    }
                    index += 1
                    return text
                }
                try flushRun(self, upTo: index, into: &scalars)
                index += 1
                return String(scalars)
            }
            if byte < 0x20 { throw JSONError("unescaped control character in a string", offset: index) }
            if byte != UInt8(ascii: "\\") {
                index += 1
                continue
            }
            try flushRun(self, upTo: index, into: &scalars)
            index += 1
            guard let escape = peek() else { throw JSONError("unterminated escape", offset: index) }
            index += 1
            switch escape {
            case UInt8(ascii: "\""): scalars.append("\"")
            case UInt8(ascii: "\\"): scalars.append("\\")
            case UInt8(ascii: "/"): scalars.append("/")
            case UInt8(ascii: "b"): scalars.append("\u{08}")
            case UInt8(ascii: "f"): scalars.append("\u{0C}")
            case UInt8(ascii: "n"): scalars.append("\n")
            case UInt8(ascii: "r"): scalars.append("\r")
            case UInt8(ascii: "t"): scalars.append("\t")
            case UInt8(ascii: "u"):
                let escapeOffset = index - 2
                let unit = try parseHex4()
                if (0xD800...0xDBFF).contains(unit) {
                    guard bytes.count - index >= 6, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u")
                    else { throw JSONError("lone high surrogate", offset: escapeOffset) }
                    index += 2
                    let low = try parseHex4()
                    guard (0xDC00...0xDFFF).contains(low) else { throw JSONError("lone high surrogate", offset: escapeOffset) }
                    let value = 0x10000 + (UInt32(unit - 0xD800) << 10) + UInt32(low - 0xDC00)
                    guard let scalar = Unicode.Scalar(value) else { throw JSONError("invalid code point", offset: escapeOffset) }
                    scalars.append(scalar)
                } else if (0xDC00...0xDFFF).contains(unit) {
                    throw JSONError("lone low surrogate", offset: escapeOffset)
                } else {
                    guard let scalar = Unicode.Scalar(unit) else { throw JSONError("invalid code point", offset: escapeOffset) }
                    scalars.append(scalar)
                }
            default: throw JSONError("invalid escape", offset: index - 1)
            }
            runStart = index
        }
    }
}
