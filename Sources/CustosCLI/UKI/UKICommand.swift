import ArgumentParser

/// `custos uki …`: signed Unified Kernel Images.
struct UKICommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "uki", abstract: "Inspect and verify signed Unified Kernel Images (Authenticode, PCR 11, RTMR1).",
        subcommands: [UKIInspectCommand.self, UKIVerifyCommand.self, UKIBootedCommand.self])
}

extension BenchCommand {
    /// The UKI benchmarks (`custos bench …`).
    static let ukiBenchmarks: [any ParsableCommand.Type] = []
}
