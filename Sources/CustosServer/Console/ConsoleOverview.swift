import CustosAudit
import CustosCrypto
import CustosTDX
import Foundation

/// The overview page's data: decisions per day from the audit log, drawn as an inline SVG on the server, and the
/// freshness of the cached TDX collateral per FMSPC.
enum ConsoleOverview {
    /// The chart's series: appraisals by AR4SI status, and denials (secret releases and SEV launches refused).
    enum Series: String, CaseIterable {
        case affirming, warning, contraindicated, denied

        var types: [String] {
            switch self {
            case .affirming: ["attestation.affirmed"]
            case .warning: ["attestation.warning"]
            case .contraindicated: ["attestation.contraindicated"]
            case .denied: ["secret.denied", "launch.measurement.denied"]
            }
        }

        var colour: String {
            switch self {
            case .affirming: "#2e9e5b"
            case .warning: "#e0a100"
            case .contraindicated: "#d9453d"
            case .denied: "#6b1a1a"
            }
        }
    }

    static let days = 30
    /// The most entries read per series (the page stays cheap on a large log; the page says when it was cut).
    static let maximumEntries = 20_000

    /// The UTC day index of `date` counted back from today (0 = today), or nil outside the window.
    static func dayIndex(_ date: Date, now: Date) -> Int? {
        let today = floor(now.timeIntervalSince1970 / 86_400)
        let day = floor(date.timeIntervalSince1970 / 86_400)
        let back = Int(today - day)
        return (0..<days).contains(back) ? back : nil
    }

    /// Counts per day (index 0 = 29 days ago … 29 = today) and series, from the entries `tenant` may read.
    static func dailyCounts(log: AuditLog, tenant: String?, now: Date) throws(AuditError) -> (days: [[Series: Int]], truncated: Bool) {
        var counts = [[Series: Int]](repeating: [:], count: days)
        var truncated = false
        let since = Date(timeIntervalSince1970: (floor(now.timeIntervalSince1970 / 86_400) - Double(days - 1)) * 86_400)
        for series in Series.allCases {
            for type in series.types {
                var cursor: UInt64? = nil
                var read = 0
                repeat {
                    let page = try log.entries(tenant: tenant, type: type, since: since, limit: 5_000, cursor: cursor)
                    for record in page.records {
                        guard let text = record.entry["time"]?.stringValue, let time = RFC3339.parse(text),
                            let back = dayIndex(time, now: now)
                        else { continue }
                        counts[days - 1 - back][series, default: 0] += 1
                    }
                    read += page.records.count
                    cursor = page.nextCursor
                } while cursor != nil && read < maximumEntries
                if cursor != nil { truncated = true }
            }
        }
        return (counts, truncated)
    }

    /// A stacked bar chart, one bar per day; every text in it is a number or a date the server made.
    static func chart(_ counts: [[Series: Int]], now: Date) -> String {
        let width = 900.0
        let height = 260.0
        let left = 40.0
        let bottom = 30.0
        let top = 10.0
        let plotHeight = height - bottom - top
        let maximum = max(1, counts.map { $0.values.reduce(0, +) }.max() ?? 1)
        let slot = (width - left - 10) / Double(max(counts.count, 1))
        var svg =
            "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" role=\"img\" "
            + "aria-label=\"Decisions per day for the last \(counts.count) days\" id=\"chart\">"
        for fraction in [0.0, 0.5, 1.0] {
            let y = top + plotHeight * (1 - fraction)
            let label = Int((Double(maximum) * fraction).rounded())
            svg += "<line x1=\"\(f(left))\" y1=\"\(f(y))\" x2=\"\(f(width - 10))\" y2=\"\(f(y))\" stroke=\"#d0d5dd\"/>"
            svg += "<text x=\"\(f(left - 6))\" y=\"\(f(y + 4))\" font-size=\"11\" text-anchor=\"end\" fill=\"#667085\">\(label)</text>"
        }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "MMM d"
        for (index, day) in counts.enumerated() {
            let x = left + Double(index) * slot + slot * 0.15
            var y = top + plotHeight
            let date = now.addingTimeInterval(-Double(counts.count - 1 - index) * 86_400)
            let tooltip =
                formatter.string(from: date) + ": "
                + Series.allCases.map { "\($0.rawValue) \(day[$0] ?? 0)" }.joined(separator: ", ")
            svg += "<g class=\"day\"><title>\(escape(tooltip))</title>"
            for series in Series.allCases {
                let count = day[series] ?? 0
                guard count > 0 else { continue }
                let barHeight = plotHeight * Double(count) / Double(maximum)
                y -= barHeight
                svg +=
                    "<rect class=\"bar \(series.rawValue)\" data-count=\"\(count)\" x=\"\(f(x))\" y=\"\(f(y))\" width=\"\(f(slot * 0.7))\" "
                    + "height=\"\(f(barHeight))\" fill=\"\(series.colour)\"/>"
            }
            svg += "</g>"
            if index % 5 == 4 || index == counts.count - 1 {
                svg +=
                    "<text x=\"\(f(x + slot * 0.35))\" y=\"\(f(height - 10))\" font-size=\"11\" text-anchor=\"middle\" fill=\"#667085\">"
                    + "\(escape(formatter.string(from: date)))</text>"
            }
        }
        return svg + "</svg>"
    }

    static func f(_ value: Double) -> String { String(format: "%.1f", value) }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    // MARK: Collateral freshness

    /// The most platforms listed.
    static let maximumPlatforms = 200

    /// One row per cached platform (`DIR/<FMSPC>/` or `DIR/<FMSPC>-processor/` of a collateral directory or of the PCS
    /// cache): the next-update times of its TCB Info and CRLs, classed `bad` when past, `warning` within a week, `good` otherwise.
    static func collateralRows(_ provider: (any CollateralProvider)?, now: Date) async -> [[String: String]] {
        let root: URL
        if let directory = provider as? CollateralDirectory {
            root = directory.root
        } else if let pcs = provider as? PCSCollateralProvider {
            root = pcs.cache.root
        } else {
            return []
        }
        var directories: [URL] = []
        if FileManager.default.fileExists(atPath: root.appendingPathComponent("tcb_info.json").path) { directories.append(root) }
        let names = (try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? []
        for name in names.sorted() {
            // `<FMSPC>` (PCK Platform CA) and `<FMSPC>-processor` (PCK Processor CA).
            let fmspc = name.hasSuffix("-processor") ? name.dropLast("-processor".count) : Substring(name)
            guard fmspc.count == 12, fmspc.allSatisfy(\.isHexDigit) else { continue }
            directories.append(root.appendingPathComponent(name))
        }
        var rows: [[String: String]] = []
        for directory in directories.prefix(maximumPlatforms) {
            guard let collateral = try? CollateralDirectory.load(directory) else {
                rows.append([
                    "fmspc": directory == root ? "(single platform)" : directory.lastPathComponent, "tcb": "unreadable", "tcbClass": "bad",
                    "pck": "", "pckClass": "", "root": "", "rootClass": "",
                ])
                continue
            }
            let ca = collateral.pckCRLAuthority == .processor ? " (Processor CA)" : ""
            var row: [String: String] = ["fmspc": Hex.encode(collateral.tcbInfo.fmspc).uppercased() + ca]
            for (key, date) in [
                ("tcb", Optional(collateral.tcbInfo.nextUpdate)), ("pck", collateral.pckCRL.nextUpdate),
                ("root", collateral.rootCACRL.nextUpdate),
            ] {
                guard let date else {
                    row[key] = "none"
                    row[key + "Class"] = "warning"
                    continue
                }
                let left = date.timeIntervalSince(now)
                row[key] = RFC3339.format(date, milliseconds: false) + (left < 0 ? " (expired)" : " (in \(Int(left / 86_400)) days)")
                row[key + "Class"] = left < 0 ? "bad" : left < 7 * 86_400 ? "warning" : "good"
            }
            rows.append(row)
        }
        return rows
    }
}

/// Indented JSON for reading (display only; the bytes that are hashed are always ``CanonicalJSON``'s).
enum PrettyJSON {
    static func format(_ value: JSONValue) -> String {
        var out = ""
        write(value, indent: 0, into: &out)
        return out
    }

    private static func write(_ value: JSONValue, indent: Int, into out: inout String) {
        let pad = String(repeating: "  ", count: indent + 1)
        let close = String(repeating: "  ", count: indent)
        switch value {
        case .array(let items) where !items.isEmpty:
            out += "[\n"
            for (index, item) in items.enumerated() {
                out += pad
                write(item, indent: indent + 1, into: &out)
                out += index == items.count - 1 ? "\n" : ",\n"
            }
            out += close + "]"
        case .object(let members) where !members.isEmpty:
            out += "{\n"
            let sorted = members.sorted { $0.key < $1.key }
            for (index, member) in sorted.enumerated() {
                out += pad + String(decoding: CanonicalJSON.encode(.string(member.key)), as: UTF8.self) + ": "
                write(member.value, indent: indent + 1, into: &out)
                out += index == sorted.count - 1 ? "\n" : ",\n"
            }
            out += close + "}"
        default:
            out += String(decoding: CanonicalJSON.encode(value), as: UTF8.self)
        }
    }
}
