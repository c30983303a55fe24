import ArgumentParser

/// `custos uki …` (owned by the UKI issue).
struct UKICommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "uki", abstract: "UKI commands.", subcommands: [])
}

extension BenchCommand {
    /// The UKI benchmarks (`custos bench …`).
    static let ukiBenchmarks: [any ParsableCommand.Type] = []
}
