import CustosCrypto
import CustosTestSupport
import Foundation
import Testing

/// `RFC3339.format` (arithmetic) against Foundation's `ISO8601DateFormatter` (ICU calendars), an independent
/// implementation, on fixed edge cases and seeded random instants between 1600 and 9999.
@Suite struct RFC3339Tests {
    static func foundation(_ date: Date, milliseconds: Bool) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.timeZone = TimeZone(identifier: "UTC")
        if milliseconds { formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds] }
        return formatter.string(from: date)
    }

    @Test func fixedInstants() {
        #expect(RFC3339.format(Date(timeIntervalSince1970: 0), milliseconds: false) == "1970-01-01T00:00:00Z")
        #expect(RFC3339.format(Date(timeIntervalSince1970: -1), milliseconds: false) == "1969-12-31T23:59:59Z")
        #expect(RFC3339.format(Date(timeIntervalSince1970: 951_782_400), milliseconds: false) == "2000-02-29T00:00:00Z")
        #expect(RFC3339.format(Date(timeIntervalSince1970: 1_764_608_400.25), milliseconds: true) == "2025-12-01T17:00:00.250Z")
        #expect(RFC3339.format(Date(timeIntervalSince1970: 253_402_300_799), milliseconds: false) == "9999-12-31T23:59:59Z")
    }

    @Test func agreesWithFoundationOnRandomInstants() {
        var random = SeededRandom("RFC3339Tests")
        print("RFC3339Tests seed \(random.seed)")
        let low: Int64 = -11_676_096_000_000  // 1600-01-01
        let high: Int64 = 253_402_300_799_000  // 9999-12-31T23:59:59
        for _ in 0..<20_000 {
            let millis = Int64.random(in: low...high, using: &random)
            let date = Date(timeIntervalSince1970: Double(millis) / 1000)
            #expect(RFC3339.format(date, milliseconds: false) == Self.foundation(date, milliseconds: false), "\(millis) ms")
            #expect(RFC3339.format(date, milliseconds: true) == Self.foundation(date, milliseconds: true), "\(millis) ms")
        }
    }

    @Test func parsesWhatItFormats() {
        let date = Date(timeIntervalSince1970: 1_764_608_400.125)
        #expect(RFC3339.parse(RFC3339.format(date, milliseconds: true)) == date)
        #expect(RFC3339.parse("2025-12-01T17:00:00Z") == Date(timeIntervalSince1970: 1_764_608_400))
        #expect(RFC3339.parse("yesterday") == nil)
    }
}
