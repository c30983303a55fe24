public import Foundation

/// RFC 3339 timestamps in UTC (`YYYY-MM-DDTHH:MM:SSZ`, or with `.mmm` milliseconds), formatted by arithmetic: no
/// formatter object, calendar or locale (Foundation's `ISO8601DateFormatter` builds ICU calendars and symbol tables
/// each time it is created, which the attestation hot path did per request).
public enum RFC3339 {
    /// `date` in UTC, to whole seconds or to milliseconds. Years outside 0…9999
    /// are written with as many digits as they need.
    public static func format(_ date: Date, milliseconds: Bool) -> String {
        // Milliseconds are rounded to the nearest (a time read back from a decimal string, like 0.598 s, is a binary
        // fraction just below it); whole seconds are truncated. Both as Foundation's ISO8601DateFormatter does.
        let seconds = date.timeIntervalSince1970
        let millis = milliseconds ? Int64((seconds * 1000).rounded()) : Int64(seconds.rounded(.down)) * 1000
        let days = millis >= 0 ? millis / 86_400_000 : (millis - 86_399_999) / 86_400_000
        let msOfDay = millis - days * 86_400_000
        // Civil date from days since 1970-01-01 (Howard Hinnant's days_from_civil inverse).
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        var out: [UInt8] = []
        out.reserveCapacity(24)
        func digits(_ value: Int64, _ width: Int) {
            let text = Array(String(value).utf8)
            if text.count < width { out.append(contentsOf: repeatElement(UInt8(ascii: "0"), count: width - text.count)) }
            out.append(contentsOf: text)
        }
        digits(year, 4)
        out.append(UInt8(ascii: "-"))
        digits(month, 2)
        out.append(UInt8(ascii: "-"))
        digits(day, 2)
        out.append(UInt8(ascii: "T"))
        digits(msOfDay / 3_600_000, 2)
        out.append(UInt8(ascii: ":"))
        digits(msOfDay / 60_000 % 60, 2)
        out.append(UInt8(ascii: ":"))
        digits(msOfDay / 1000 % 60, 2)
        if milliseconds {
            out.append(UInt8(ascii: "."))
            digits(msOfDay % 1000, 3)
        }
        out.append(UInt8(ascii: "Z"))
        return String(decoding: out, as: UTF8.self)
    }

    /// Parses an RFC 3339 time with or without fractional seconds.
    public static func parse(_ text: String) -> Date? {
        if let date = try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(text) { return date }
        return try? Date.ISO8601FormatStyle().parse(text)
    }
}
