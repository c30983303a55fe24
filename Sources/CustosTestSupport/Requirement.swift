// Only test builds can import Testing (release builds of custos-bench, which links this target, cannot).
#if canImport(Testing)
    public import Foundation
    public import Testing

    /// What a test needs from its environment (vendor testdata, a peer tool, root, the built executable), as a trait.
    ///
    /// Without `CUSTOS_REQUIRE_ALL`, a test or suite whose requirement is not met is skipped with the reason, as
    /// `.enabled(if:)` does. Under `CUSTOS_REQUIRE_ALL=1` (what `make test` and CI set), it runs nothing and records a
    /// failure naming the reason instead, so that a run can never be green by skipping.
    ///
    /// ```swift
    /// @Suite(Requirement.testData)
    /// struct QuoteParsingTests { … }
    /// @Test(Requirement.skipOrFail(if: !peerInstalled, "install dcap-qvl"))
    /// ```
    public struct Requirement: TestTrait, SuiteTrait, TestScoping {
        let isMet: @Sendable () -> Bool
        let reason: String

        /// Whether `CUSTOS_REQUIRE_ALL` is set (to anything but empty or 0).
        public static var requireAll: Bool {
            let value = ProcessInfo.processInfo.environment["CUSTOS_REQUIRE_ALL"] ?? ""
            return !value.isEmpty && value != "0"
        }

        /// A requirement: `isMet` is evaluated when the test is about to run.
        /// - Parameters:
        ///   - isMet: whether the environment provides what the test needs.
        ///   - reason: what is missing and how to provide it.
        public static func skipOrFail(unless isMet: @autoclosure @escaping @Sendable () -> Bool, _ reason: String) -> Self {
            Self(isMet: isMet, reason: reason)
        }

        /// The vendor testdata (`$CUSTOS_TESTDATA`).
        public static var testData: Self { skipOrFail(unless: TestData.isAvailable, TestData.skipReason) }

        /// The built `custos` executable.
        public static var custosExecutable: Self {
            skipOrFail(unless: CustosExecutable.isBuilt, "needs the custos executable (swift build)")
        }

        /// The built `custos` executable and the vendor testdata.
        public static var executableAndTestData: Self {
            skipOrFail(
                unless: CustosExecutable.isBuilt && TestData.isAvailable,
                "needs the custos executable (swift build) and the vendor testdata")
        }

        public var isRecursive: Bool { true }

        /// Skips (the usual mode) before the test runs when the requirement is not met.
        public func prepare(for test: Test) async throws {
            guard !Self.requireAll, !isMet() else { return }
            try await ConditionTrait.enabled(if: false, Comment(rawValue: reason)).prepare(for: test)
        }

        /// Only under `CUSTOS_REQUIRE_ALL`: the outermost scope that finds the requirement unmet records the failure and
        /// runs nothing inside it.
        public func scopeProvider(for test: Test, testCase: Test.Case?) -> Self? { Self.requireAll ? self : nil }

        /// Under `CUSTOS_REQUIRE_ALL=1`, an unmet requirement is a failure and the test body does not run.
        public func provideScope(
            for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void
        ) async throws {
            guard isMet() else {
                Issue.record("CUSTOS_REQUIRE_ALL=1 and a requirement is not met: \(reason)")
                return
            }
            try await function()
        }
    }
#endif
