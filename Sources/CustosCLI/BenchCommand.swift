import ArgumentParser

/// `custos bench …`: performance goals are measured here, never by timed tests.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "Benchmarks (iterations, latency percentiles, throughput).",
        subcommands: tdxBenchmarks + sevBenchmarks + ukiBenchmarks + auditBenchmarks + policyBenchmarks)
}
