import ArgumentParser

/// `custos tdx …`: Intel TDX DCAP quote verification, quote inspection, event-log replay, collateral fetch.
struct TDXCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tdx", abstract: "Intel TDX: verify and inspect DCAP quotes, replay event logs, fetch collateral.",
        subcommands: [TDXVerify.self, TDXInspect.self, TDXEventLogCommand.self, TDXCollateralCommand.self])
}

extension BenchCommand {
    /// The TDX benchmarks (`custos bench …`).
    static let tdxBenchmarks: [any ParsableCommand.Type] = [TDXBenchVerify.self]
}
