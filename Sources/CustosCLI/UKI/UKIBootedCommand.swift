import ArgumentParser
import CustosCrypto
import CustosTDX
import CustosUKI
import Foundation

extension EventLog {
    /// The log's events as CustosUKI reads them: CC MR index, event type and SHA-384 digest (events without a
    /// SHA-384 digest are left out). The two verifiers stay independent; the CLI and the server join them here.
    var replayedEvents: [ReplayedEvent] {
        events.compactMap { event in
            event.sha384.map {
                ReplayedEvent(register: MeasurementRegister(ccMRIndex: event.mrIndex), eventType: event.eventType, digest: $0)
            }
        }
    }
}

/// What `custos uki booted` prints.
struct UKIBootedJSON: Codable, Equatable {
    let booted: Bool
    let rtmr1EventDigest: String
    let applicationEventIndex: Int?
    let sections: String?
    let reason: String?
    let rtmr: [String]?
    let error: ErrorJSON?
}

/// `custos uki booted`: does a TD's replayed event log show that this UKI booted?
/// Exit 0 when it did, 1 when it did not or the log is malformed, 2 on unreadable input.
struct UKIBootedCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "booted",
        abstract: "Check a TD's CCEL event log for this UKI: its Authenticode SHA-384 in RTMR1 and its sections in RTMR2.")

    @Argument(help: "The UKI (PE image).") var file: String
    @Option(name: .long, help: "The CCEL log area (TCG2 crypto-agile, SHA-384).") var log: String
    @OptionGroup var global: GlobalOptions

    func run() throws {
        let ukiBytes = try InputFile.read(file, kind: .uki)
        let logBytes = try InputFile.read(log, kind: .eventLog)
        // A malformed image is rejected evidence: its PEParseError goes to the top-level handler (exit 1).
        let uki = try UnifiedKernelImage(bytes: ukiBytes)
        let digest = Hex.encode(uki.rtmr1EventDigest())
        let output: UKIBootedJSON
        do {
            let parsed = try EventLog(parsing: logBytes)
            let rtmrs = try parsed.replay().map { Hex.encode($0) }
            switch uki.bootVerdict(events: parsed.replayedEvents) {
            case .booted(let evidence):
                let sections: String
                switch evidence.sections {
                case .matched(let count): sections = "matched \(count) section measurements in RTMR2"
                case .notMeasured: sections = "RTMR2 has no systemd-stub section events"
                }
                output = UKIBootedJSON(
                    booted: true, rtmr1EventDigest: digest, applicationEventIndex: evidence.applicationEventIndex, sections: sections,
                    reason: nil, rtmr: rtmrs, error: nil)
            case .notBooted(let reason):
                output = UKIBootedJSON(
                    booted: false, rtmr1EventDigest: digest, applicationEventIndex: nil, sections: nil, reason: reason, rtmr: rtmrs,
                    error: nil)
            }
        } catch {
            output = UKIBootedJSON(
                booted: false, rtmr1EventDigest: digest, applicationEventIndex: nil, sections: nil, reason: error.reason, rtmr: nil,
                error: ErrorJSON(error))
        }
        if global.json {
            try Output.printJSON(output)
        } else if output.booted {
            print("BOOTED: RTMR1 event #\(output.applicationEventIndex ?? -1) is the UKI's Authenticode SHA-384 \(digest)")
            if let sections = output.sections { print("  \(sections)") }
        } else {
            print("NOT BOOTED: \(output.reason ?? "unknown")")
        }
        if !output.booted { throw ExitCode(1) }
    }
}
