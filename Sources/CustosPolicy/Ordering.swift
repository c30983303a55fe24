import CustosCrypto
import Foundation

/// An operand of `lessOrEquals` / `greaterOrEquals`. Its form is fixed by the policy's operand at load; the claim
/// must have the same form or the condition fails ("not comparable").
enum OrderedValue: Sendable, Hashable {
    case integer(Int64)
    /// An RFC 3339 date or date-time, as seconds since the epoch.
    case date(Double)
    /// A dotted version (`1.51`, `6.2.2`), compared number by number; missing parts count as 0.
    case version([Int64])
    /// A hex SVN string (`06010300…`): one SVN per byte, compared byte by byte (every byte must satisfy the
    /// ordering, as Intel compares TCB SVN arrays); the lengths must be equal.
    case hexSVN([UInt8])

    var formName: String {
        switch self {
        case .integer: return "integer"
        case .date: return "RFC 3339 date"
        case .version: return "dotted version"
        case .hexSVN: return "hex SVN"
        }
    }

    /// Reads a policy operand: an integer, or a string that is an RFC 3339 date, a dotted version or hex SVN bytes.
    static func operand(_ value: YNode.Value) -> OrderedValue? {
        switch value {
        case .integer(let number): return .integer(number)
        case .string(let text): return parseString(text)
        default: return nil
        }
    }

    static func parseString(_ text: String) -> OrderedValue? {
        if let date = parseDate(text) { return .date(date) }
        if let version = parseVersion(text) { return .version(version) }
        if let bytes = parseHex(text) { return .hexSVN(bytes) }
        return nil
    }

    /// Reads a claim value in the same form as `self`; `nil` when it is not comparable.
    func sameForm(_ claim: JSONValue) -> OrderedValue? {
        switch (self, claim) {
        case (.integer, .integer(let number)): return .integer(number)
        case (.date, .string(let text)): return OrderedValue.parseDate(text).map { .date($0) }
        case (.version, .string(let text)): return OrderedValue.parseVersion(text).map { .version($0) }
        case (.version, .integer(let number)): return .version([number])
        case (.hexSVN(let mine), .string(let text)):
            guard let bytes = OrderedValue.parseHex(text), bytes.count == mine.count else { return nil }
            return .hexSVN(bytes)
        default: return nil
        }
    }

    /// `claim <= bound` (or `>=` when `greater`).
    static func holds(_ claim: OrderedValue, _ bound: OrderedValue, greater: Bool) -> Bool {
        func compare<T: Comparable>(_ a: T, _ b: T) -> Bool { greater ? a >= b : a <= b }
        switch (claim, bound) {
        case (.integer(let a), .integer(let b)): return compare(a, b)
        case (.date(let a), .date(let b)): return compare(a, b)
        case (.version(let a), .version(let b)):
            let count = max(a.count, b.count)
            for index in 0..<count {
                let left = index < a.count ? a[index] : 0
                let right = index < b.count ? b[index] : 0
                if left != right { return compare(left, right) }
            }
            return true
        case (.hexSVN(let a), .hexSVN(let b)):
            guard a.count == b.count else { return false }
            return zip(a, b).allSatisfy { compare($0, $1) }
        default: return false
        }
    }

    // MARK: Forms

    /// RFC 3339 `full-date` (`2026-01-31`, midnight UTC) or `date-time` (`2026-01-31T12:00:00Z`, `…+02:00`,
    /// fractional seconds allowed).
    static func parseDate(_ text: String) -> Double? {
        let utf8 = Array(text.utf8)
        guard utf8.count >= 10, utf8.count <= 40, utf8[4] == UInt8(ascii: "-"), utf8[7] == UInt8(ascii: "-") else { return nil }
        func digits(_ range: Range<Int>) -> Int? {
            guard range.upperBound <= utf8.count else { return nil }
            var value = 0
            for index in range {
                let byte = utf8[index]
                guard byte >= 0x30, byte <= 0x39 else { return nil }
                value = value * 10 + Int(byte - 0x30)
            }
            return value
        }
        guard let year = digits(0..<4), let month = digits(5..<7), let day = digits(8..<10), (1...12).contains(month),
            (1...31).contains(day)
        else { return nil }
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
        let monthDays = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        guard day <= monthDays[month - 1] else { return nil }
        var secondsOfDay = 0
        var offsetSeconds = 0
        var fraction = 0.0
        if utf8.count > 10 {
            guard utf8[10] == UInt8(ascii: "T") || utf8[10] == UInt8(ascii: "t"), utf8.count >= 20,
                let hour = digits(11..<13), let minute = digits(14..<16), let second = digits(17..<19),
                utf8[13] == UInt8(ascii: ":"), utf8[16] == UInt8(ascii: ":"), hour < 24, minute < 60, second < 61
            else { return nil }
            secondsOfDay = hour * 3600 + minute * 60 + min(second, 59)
            var index = 19
            if utf8[index] == UInt8(ascii: ".") {
                index += 1
                var scale = 0.1
                let start = index
                while index < utf8.count, utf8[index] >= 0x30, utf8[index] <= 0x39 {
                    fraction += Double(utf8[index] - 0x30) * scale
                    scale /= 10
                    index += 1
                }
                guard index > start else { return nil }
            }
            guard index < utf8.count else { return nil }
            if utf8[index] == UInt8(ascii: "Z") || utf8[index] == UInt8(ascii: "z") {
                guard index + 1 == utf8.count else { return nil }
            } else if utf8[index] == UInt8(ascii: "+") || utf8[index] == UInt8(ascii: "-") {
                guard index + 6 == utf8.count, utf8[index + 3] == UInt8(ascii: ":"), let hours = digits(index + 1..<index + 3),
                    let minutes = digits(index + 4..<index + 6), hours < 24, minutes < 60
                else { return nil }
                offsetSeconds = (hours * 3600 + minutes * 60) * (utf8[index] == UInt8(ascii: "+") ? 1 : -1)
            } else {
                return nil
            }
        }
        return Double(daysFromCivil(year: year, month: month, day: day) * 86_400 + secondsOfDay - offsetSeconds) + fraction
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
    static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    /// `1.51`, `6.2.2`: at least two dot-separated decimal numbers.
    static func parseVersion(_ text: String) -> [Int64]? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count >= 2, parts.count <= 8 else { return nil }
        var numbers: [Int64] = []
        for part in parts {
            guard !part.isEmpty, part.count <= 9, part.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let number = Int64(part) else {
                return nil
            }
            numbers.append(number)
        }
        return numbers
    }

    /// Even-length hexadecimal digits, no prefix.
    static func parseHex(_ text: String) -> [UInt8]? {
        let utf8 = Array(text.utf8)
        guard !utf8.isEmpty, utf8.count % 2 == 0, utf8.count <= 256 else { return nil }
        func nibble(_ byte: UInt8) -> UInt8? {
            switch byte {
            case 0x30...0x39: return byte - 0x30
            case 0x61...0x66: return byte - 0x61 + 10
            case 0x41...0x46: return byte - 0x41 + 10
            default: return nil
            }
        }
        var out: [UInt8] = []
        out.reserveCapacity(utf8.count / 2)
        var index = 0
        while index < utf8.count {
            guard let high = nibble(utf8[index]), let low = nibble(utf8[index + 1]) else { return nil }
            out.append(high << 4 | low)
            index += 2
        }
        return out
    }
}
