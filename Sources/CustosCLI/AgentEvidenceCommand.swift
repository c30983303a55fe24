import ArgumentParser
import CustosAgent
import CustosCrypto
import Foundation

/// `custos agent evidence --report-data HEX`: a quote from configfs-tsm (debug aid).
struct AgentEvidenceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evidence", abstract: "Print a TD quote for the given REPORTDATA (base64; debug aid).")

    @Option(name: .customLong("report-data"), help: "REPORTDATA: up to 64 bytes as hex, zero-padded to 64.") var reportData: String
    @OptionGroup var roots: AgentRoots
    @OptionGroup var global: GlobalOptions

    func run() async throws {
        guard let bytes = try? Hex.decode(reportData), bytes.count <= 64 else {
            throw AgentError(.usage, .unusable, "--report-data must be at most 64 bytes of hex")
        }
        let padded = bytes + [UInt8](repeating: 0, count: 64 - bytes.count)
        let source = try TDQuoteSources.detect(configfsRoot: roots.configfs)
        let quote = try await source.quote(reportData: padded)
        let log = try CCELReader(sysfsRoot: roots.sysfs).read()
        if global.json {
            AgentOutput.printJSON([
                "quote": .string(Base64.encode(quote)), "source": .string(source.name), "reportData": .string(Hex.encode(padded)),
                "ccEventlogBytes": log.map { .integer(Int64($0.count)) } ?? .null,
            ])
        } else {
            print(Base64.encode(quote))
        }
    }
}
