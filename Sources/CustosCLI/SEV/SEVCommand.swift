import ArgumentParser

/// `custos sev …`: the guest owner's side of AMD SEV/SEV-ES launch.
struct SEVCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sev",
        abstract:
            "AMD SEV/SEV-ES guest owner: verify the platform chain, make the launch session, compute and check the measurement, build the secret.",
        subcommands: [SEVVerifyChain.self, SEVSession.self, SEVMeasure.self, SEVCheckMeasurement.self, SEVSecret.self])
}

extension BenchCommand {
    /// The SEV benchmarks (`custos bench …`).
    static let sevBenchmarks: [any ParsableCommand.Type] = [SEVBenchMeasure.self]
}
