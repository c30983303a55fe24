import ArgumentParser

/// `custos tdx …` (owned by the TDX issue).
struct TDXCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tdx", abstract: "TDX commands.", subcommands: [])
}

extension BenchCommand {
    /// The TDX benchmarks (`custos bench …`).
    static let tdxBenchmarks: [any ParsableCommand.Type] = []
}
