import CustosCrypto
import Foundation
import Testing

@testable import CustosPolicy

/// Helpers shared by the policy tests.
enum Fixture {
    /// 2026-06-01T00:00:00Z: the evaluation time of the inline policies.
    static let now = Date(timeIntervalSince1970: 1_780_272_000)

    /// An appraisal policy whose `hardware` claim is 2 when `condition` holds, else 97.
    static func appraisal(_ condition: String, references: [String] = [], id: String = "t") -> String {
        """
        apiVersion: custos/v1
        kind: AppraisalPolicy
        id: \(id)
        tee: tdx
        referenceValues: [\(references.joined(separator: ", "))]
        trustVector:
          hardware:
            value: 2
            else: 97
            when: \(condition)
        """
    }

    /// Loads sources or fails the test with the problems.
    static func load(_ sources: [(file: String, text: String)], at time: Date = now) throws -> PolicySet {
        try PolicySet.load(sources: sources, at: time)
    }

    /// The problems of loading `sources` (empty when they load).
    static func problems(_ sources: [(file: String, text: String)], at time: Date = now) -> [PolicyProblem] {
        do {
            _ = try PolicySet.load(sources: sources, at: time)
            return []
        } catch {
            return error.problems
        }
    }

    static func json(_ text: String) throws -> JSONValue { try JSONValue.parse(text) }

    /// The repository's `Policies/` folder.
    static var policiesDirectory: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Policies")
    }
}
