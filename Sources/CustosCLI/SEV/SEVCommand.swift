import ArgumentParser

/// `custos sev …` (owned by the SEV issue).
struct SEVCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sev", abstract: "SEV commands.", subcommands: [])
}

extension BenchCommand {
    /// The SEV benchmarks (`custos bench …`).
    static let sevBenchmarks: [any ParsableCommand.Type] = []
}
