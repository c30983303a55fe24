public import Foundation

/// Finds the exact bytes of top-level members of a JSON object without re-encoding anything.
///
/// Intel signs the *bytes* of the `tcbInfo` / `enclaveIdentity` object as PCS serves it (spec §2.2 step 2, §8 trap
/// 2), so the verifier must take the raw substring rather than re-serialize parsed JSON.
enum RawJSON {
    /// The byte range of the value of `key` in the top-level object `bytes`, or `nil` if absent.
    /// - Throws: ``TDXError/Code/malformedCollateral`` when `bytes` is not a syntactically plausible JSON object.
    static func memberRange(_ key: String, in bytes: [UInt8]) throws(TDXError) -> Range<Int>? {
        var index = 0
        let keyBytes = Array(key.utf8)
        func fail(_ reason: String) -> TDXError { TDXError(.malformedCollateral, "JSON: \(reason) at byte \(index)") }
        func skipSpace() {
            while index < bytes.count, [0x20, 0x09, 0x0a, 0x0d].contains(bytes[index]) { index += 1 }
        }
        /// Skips a string starting at `index` (which must be a quote); returns the raw content range.
        func skipString() throws(TDXError) -> Range<Int> {
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw fail("expected a string") }
            index += 1
            let start = index
            while index < bytes.count {
                switch bytes[index] {
                case UInt8(ascii: "\\"): index += 2
                case UInt8(ascii: "\""):
                    let range = start..<index
                    index += 1
                    return range
                default: index += 1
                }
            }
            throw fail("unterminated string")
        }
        func skipValue() throws(TDXError) {
            guard index < bytes.count else { throw fail("expected a value") }
            switch bytes[index] {
            case UInt8(ascii: "\""): _ = try skipString()
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                var depth = 0
                while index < bytes.count {
                    switch bytes[index] {
                    case UInt8(ascii: "\""):
                        _ = try skipString()
                        continue
                    case UInt8(ascii: "{"), UInt8(ascii: "["):
                        depth += 1
                        guard depth <= 64 else { throw fail("nesting deeper than 64") }
                    case UInt8(ascii: "}"), UInt8(ascii: "]"):
                        depth -= 1
                        if depth == 0 {
                            index += 1
                            return
                        }
                    default: break
                    }
                    index += 1
                }
                throw fail("unterminated object or array")
            default:
                let start = index
                while index < bytes.count,
                    ![UInt8(ascii: ","), UInt8(ascii: "}"), UInt8(ascii: "]"), 0x20, 0x09, 0x0a, 0x0d].contains(bytes[index])
                {
                    index += 1
                }
                guard index > start else { throw fail("expected a value") }
            }
        }
        skipSpace()
        guard index < bytes.count, bytes[index] == UInt8(ascii: "{") else { throw fail("expected an object") }
        index += 1
        var found: Range<Int>? = nil
        while true {
            skipSpace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "}") { break }
            let name = try skipString()
            skipSpace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw fail("expected ':'") }
            index += 1
            skipSpace()
            let start = index
            try skipValue()
            if bytes[name].elementsEqual(keyBytes) {
                guard found == nil else { throw fail("duplicate member \(key)") }
                found = start..<index
            }
            skipSpace()
            guard index < bytes.count else { throw fail("unterminated object") }
            if bytes[index] == UInt8(ascii: ",") {
                index += 1
                continue
            }
            guard bytes[index] == UInt8(ascii: "}") else { throw fail("expected ',' or '}'") }
            break
        }
        return found
    }

    /// Decodes `type` from JSON bytes, mapping errors to ``TDXError/Code/malformedCollateral``.
    static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8], what: String) throws(TDXError) -> T {
        do {
            return try JSONDecoder().decode(type, from: Data(bytes))
        } catch {
            throw TDXError(.malformedCollateral, "\(what): \(error)")
        }
    }
}

/// Parses the RFC 3339 UTC timestamps Intel uses (`2025-06-19T10:16:03Z`, optional fraction), without a formatter.
enum Timestamp {
    static func parse(_ text: String, field: String) throws(TDXError) -> Date {
        let b = Array(text.utf8)
        func digits(_ range: Range<Int>) -> Int? {
            guard range.upperBound <= b.count else { return nil }
            var value = 0
            for i in range {
                guard b[i] >= 0x30, b[i] <= 0x39 else { return nil }
                value = value * 10 + Int(b[i] - 0x30)
            }
            return value
        }
        guard b.count >= 20, b[4] == UInt8(ascii: "-"), b[7] == UInt8(ascii: "-"), b[10] == UInt8(ascii: "T"),
            b[13] == UInt8(ascii: ":"), b[16] == UInt8(ascii: ":"),
            let year = digits(0..<4), let month = digits(5..<7), let day = digits(8..<10), let hour = digits(11..<13),
            let minute = digits(14..<16), let second = digits(17..<19), (1...12).contains(month), (1...31).contains(day), hour < 24,
            minute < 60, second < 61
        else { throw TDXError(.malformedCollateral, "\(field) is not an RFC 3339 UTC time: \(text)") }
        var index = 19
        var fraction = 0.0
        if b[index] == UInt8(ascii: ".") {
            index += 1
            var scale = 0.1
            while index < b.count, b[index] >= 0x30, b[index] <= 0x39 {
                fraction += Double(b[index] - 0x30) * scale
                scale /= 10
                index += 1
            }
        }
        guard index == b.count - 1, b[index] == UInt8(ascii: "Z") else {
            throw TDXError(.malformedCollateral, "\(field) is not an RFC 3339 UTC time: \(text)")
        }
        // Days from civil (H. Hinnant's algorithm).
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146097 + doe - 719468
        let seconds = Double(days * 86400 + hour * 3600 + minute * 60 + second) + fraction
        return Date(timeIntervalSince1970: seconds)
    }
}
