import ArgumentParser
import CustosCrypto
import CustosTDX
import Foundation

/// The output of `custos tdx eventlog --json`.
public struct EventLogJSON: Codable, Sendable, Equatable {
    public struct Event: Codable, Sendable, Equatable {
        public let index: Int
        public let mrIndex: UInt32
        public let rtmr: Int?
        public let type: String
        public let typeName: String
        public let sha384: String?
        public let dataLength: Int
        public let decoded: String?
    }
    public struct Table: Codable, Sendable, Equatable {
        public let ccType: Int
        public let ccSubtype: Int
        public let laml: String
        public let lasa: String
    }
    public let table: Table?
    public let events: [Event]
    public let rtmr: [String]
    public let bootServicesApplicationDigests: [String]
    public let quoteRtmr: [String]?
    public let rtmrMatches: [Bool]?
    public let matchesQuote: Bool?
}

/// `custos tdx eventlog`: parses a CCEL event log, replays RTMR0-3 and compares with a quote.
/// Exit 0 when the log parses (and matches the quote, if given), 1 on a malformed log or a mismatch.
struct TDXEventLogCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eventlog", abstract: "Parse a TDX CCEL event log, replay RTMR0-3 and compare them with a quote.")

    @Option(name: .long, help: "The CCEL log area (TCG2 crypto-agile, SHA-384).") var log: String
    @Option(name: .long, help: "The ACPI CCEL table (56 bytes).") var table: String?
    @Option(name: .long, help: "A quote whose RTMRs the replay must match.") var quote: String?
    @OptionGroup var global: GlobalOptions

    func run() throws {
        let logBytes = try readInputFile(log, kind: .eventLog)
        let tableBytes = try table.map { try readInputFile($0, kind: .eventLog) }
        let quoteBytes = try quote.map { try readInputFile($0, kind: .quote) }
        // A malformed table, log or quote throws its TDXError to the top-level handler (exit 1, one JSON object).
        do {
            let ccel = try tableBytes.map { bytes throws(TDXError) in try CCELTable(parsing: bytes) }
            let parsed = try EventLog(parsing: logBytes)
            let replayed = try parsed.replay()
            let quoteRTMRs = try quoteBytes.map { bytes throws(TDXError) in try Quote(parsing: bytes).body.rtmrs }
            let matches = quoteRTMRs.map { q in zip(q, replayed).map { constantTimeEqual($0, $1) } }
            let output = EventLogJSON(
                table: ccel.map {
                    .init(
                        ccType: Int($0.ccType), ccSubtype: Int($0.ccSubtype), laml: "0x" + String($0.logAreaMinimumLength, radix: 16),
                        lasa: "0x" + String($0.logAreaStartAddress, radix: 16))
                },
                events: parsed.events.map {
                    .init(
                        index: $0.index, mrIndex: $0.mrIndex, rtmr: $0.rtmrIndex, type: "0x" + String($0.eventType, radix: 16),
                        typeName: $0.typeName, sha384: $0.sha384.map { Hex.encode($0) }, dataLength: $0.data.count, decoded: $0.decodedData)
                },
                rtmr: replayed.map { Hex.encode($0) },
                bootServicesApplicationDigests: parsed.bootServicesApplicationDigests.map { Hex.encode($0) },
                quoteRtmr: quoteRTMRs.map { $0.map { Hex.encode($0) } }, rtmrMatches: matches,
                matchesQuote: matches.map { $0.allSatisfy { $0 } })
            if global.json {
                try Output.printJSON(output)
            } else {
                printReport(output)
            }
            if output.matchesQuote == false { throw ExitCode(1) }
        }
    }

    private func printReport(_ output: EventLogJSON) {
        if let table = output.table {
            print("CCEL table: CC type \(table.ccType), subtype \(table.ccSubtype), LAML \(table.laml), LASA \(table.lasa)")
        }
        print("\(output.events.count) events (including EV_NO_ACTION):")
        for event in output.events {
            let register = event.rtmr.map { "RTMR\($0)" } ?? "MR\(event.mrIndex)"
            let digest = event.sha384.map { String($0.prefix(16)) + "…" } ?? "-"
            print("  #\(event.index) \(register) \(event.typeName) \(digest)\(event.decoded.map { " \"\($0)\"" } ?? "")")
        }
        for (index, value) in output.rtmr.enumerated() {
            let mark =
                output.rtmrMatches.map { $0[index] ? " (matches quote)" : " (MISMATCH: quote has \(output.quoteRtmr?[index] ?? "-"))" }
                ?? ""
            print("RTMR\(index) \(value)\(mark)")
        }
        if let matches = output.matchesQuote {
            print(matches ? "MATCH: the log replays to the quote's RTMRs" : "MISMATCH: the log does not replay to the quote's RTMRs")
        }
    }
}
