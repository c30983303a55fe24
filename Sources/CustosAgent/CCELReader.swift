import CustosTDX

// MARK: - The CC event log (guest.md §2.2)

/// Reads the TD's CC event log from ACPI: the table `<sysfs>/firmware/acpi/tables/CCEL` (56 bytes) and the log
/// area `<sysfs>/firmware/acpi/tables/data/CCEL` (LAML bytes; Linux ≥ 6.4, root only).
///
/// The log is parsed (TCG2 crypto-agile, SHA-384) and trimmed to its events: the fill after the last event is not
/// sent (T19), as guest-components trims it. No log area means `cc_eventlog: null`.
public struct CCELReader: Sendable {
    /// The largest log area read (TDVF reserves 256 KiB to 1 MiB).
    public static let maximumBytes = 16 << 20

    public let sysfsRoot: String
    public var tablePath: String { sysfsRoot + "/firmware/acpi/tables/CCEL" }
    public var dataPath: String { sysfsRoot + "/firmware/acpi/tables/data/CCEL" }

    public init(sysfsRoot: String) { self.sysfsRoot = sysfsRoot }

    /// The trimmed log, or `nil` when the firmware published none.
    /// - Throws: ``AgentError`` (`evidence`, unusable) when the table or log is there but unreadable or malformed.
    public func read() throws(AgentError) -> [UInt8]? {
        guard POSIXFile.exists(dataPath) else { return nil }
        if POSIXFile.exists(tablePath) {
            let table: [UInt8]
            do { table = try POSIXFile.read(tablePath, limit: 4096) } catch {
                throw AgentError(.evidence, .unusable, error.message)
            }
            let parsed: CCELTable
            do { parsed = try CCELTable(parsing: table) } catch {
                throw AgentError(.evidence, .unusable, "\(tablePath): \(error.reason)")
            }
            guard parsed.ccType == 2 else {
                throw AgentError(.evidence, .unusable, "\(tablePath): CC type \(parsed.ccType) is not TDX (2)")
            }
        }
        let data: [UInt8]
        do { data = try POSIXFile.read(dataPath, limit: Self.maximumBytes) } catch {
            throw AgentError(.evidence, .unusable, error.message)
        }
        let log: EventLog
        do { log = try EventLog(parsing: data) } catch {
            throw AgentError(.evidence, .unusable, "\(dataPath) is not a TCG2 event log: \(error.reason)")
        }
        return Array(data.prefix(log.length))
    }
}
