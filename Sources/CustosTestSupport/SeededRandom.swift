public import Foundation

/// The random generator of every randomized test: SplitMix64 from a seed the test prints, so any failure can be
/// replayed exactly with `CUSTOS_TEST_SEED=<seed> swift test --filter …`.
///
/// Without `CUSTOS_TEST_SEED` each run draws a fresh seed (more inputs over time); with it, every generator of the
/// run starts from that seed.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    /// The seed this generator started from (printed when it was made).
    public let seed: UInt64
    private var state: UInt64

    /// A generator for `label` (the test's name), printing its seed.
    public init(_ label: String) {
        let seed: UInt64
        if let text = ProcessInfo.processInfo.environment["CUSTOS_TEST_SEED"], let value = Self.parse(text) {
            seed = value
        } else {
            var system = SystemRandomNumberGenerator()
            seed = system.next()
        }
        self.init(seed: seed)
        print("[seed] \(label): \(seed) — replay with CUSTOS_TEST_SEED=\(seed)")
    }

    /// A generator from an explicit seed (not printed).
    public init(seed: UInt64) {
        self.seed = seed
        state = seed
    }

    /// Parses a decimal or 0x-hex seed.
    static func parse(_ text: String) -> UInt64? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if trimmed.lowercased().hasPrefix("0x") { return UInt64(trimmed.dropFirst(2), radix: 16) }
        return UInt64(trimmed)
    }

    /// SplitMix64 (Steele, Lea, Flood 2014).
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
