import CustosCrypto
public import CustosPolicy
import Foundation

/// A ``JSONValue`` for `Codable` output (`Output.printJSON`) and input.
struct JSONValueBox: Codable, Sendable, Equatable {
    let value: JSONValue

    init(_ value: JSONValue) { self.value = value }

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            value = .null
        } else if let flag = try? container.decode(Bool.self) {
            value = .bool(flag)
        } else if let number = try? container.decode(Int64.self) {
            value = .integer(number)
        } else if let text = try? container.decode(String.self) {
            value = .string(text)
        } else if let array = try? container.decode([JSONValueBox].self) {
            value = .array(array.map(\.value))
        } else {
            value = .object(try container.decode([String: JSONValueBox].self).mapValues(\.value))
        }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch value {
        case .null: try container.encodeNil()
        case .bool(let flag): try container.encode(flag)
        case .integer(let number): try container.encode(number)
        case .string(let text): try container.encode(text)
        case .array(let elements): try container.encode(elements.map(JSONValueBox.init))
        case .object(let members): try container.encode(members.mapValues(JSONValueBox.init))
        }
    }
}

/// `custos tdx verify --json` output: the report's members plus `"claims"` (the TDX claims document, only when
/// the quote verified) in the schema policies evaluate.
struct VerifyOutputJSON: Encodable {
    let report: VerifyJSON
    let claims: JSONValue?

    private enum Key: String, CodingKey { case claims }

    func encode(to encoder: any Encoder) throws {
        try report.encode(to: encoder)
        var container = encoder.container(keyedBy: Key.self)
        try container.encodeIfPresent(claims.map(JSONValueBox.init), forKey: .claims)
    }
}

/// `PolicyLoadError` in the CLI's error contract: exit 2 (unusable input), the first problem's position as the field.
extension PolicyLoadError: CustosReportableError {
    public var errorCode: String { "policyInvalid" }
    public var errorMessage: String {
        guard let first = problems.first else { return "invalid policy" }
        return problems.count == 1 ? first.description : "\(first.description) (and \(problems.count - 1) more problems)"
    }
    public var errorField: String? { problems.first.map { $0.location.description } }
    public var exitStatus: Int32 { 2 }
}

enum PolicyCLI {
    /// The default policy directory: `$CUSTOS_POLICIES`, else `Policies` in the working directory.
    static var defaultDirectory: String {
        if let env = ProcessInfo.processInfo.environment["CUSTOS_POLICIES"], !env.isEmpty { return env }
        return "Policies"
    }

    /// Loads a directory; a missing directory or any problem is a usage/input error (exit 2), every problem listed.
    static func load(_ directory: String, at time: Date) throws -> PolicySet {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw CLIError("policy directory not found: \(directory)")
        }
        do {
            return try PolicySet.load(directory: URL(fileURLWithPath: directory), at: time)
        } catch {
            throw CLIError(
                "policies in \(directory) do not load:\n" + error.problems.map { display($0, directory: directory) }.joined(separator: "\n")
            )
        }
    }

    /// `DIR/file:line:col: message`.
    static func display(_ problem: PolicyProblem, directory: String) -> String {
        "\(path(problem.location.file, directory: directory)):\(problem.location.line):\(problem.location.column): \(problem.message)"
    }

    /// A file relative to the policy directory, as the user named the directory.
    static func path(_ file: String, directory: String) -> String {
        (directory.hasSuffix("/") ? directory : directory + "/") + file
    }

    /// Reads a claims document from a file or `-` (stdin). Accepts the claims object itself or the output of
    /// `custos tdx verify --json` (its `"claims"` member).
    static func readClaims(_ path: String) throws -> JSONValue {
        // stdin through the same reader: read until EOF, never past the claims limit.
        let bytes = try readInputFile(path == "-" ? "/dev/stdin" : path, kind: .claims)
        let parsed: JSONValue
        do { parsed = try JSONValue.parse(bytes) } catch { throw CLIError("claims \(path): \(error)") }
        guard case .object(let members) = parsed else { throw CLIError("claims \(path): the claims document must be a JSON object") }
        if case .bool(let verified) = members["verified"] {
            // `custos tdx verify --json` output.
            guard verified, let claims = members["claims"] else {
                throw CLIError("claims \(path): the quote did not verify, so there are no claims to evaluate", exitCode: 1)
            }
            guard case .object = claims else { throw CLIError("claims \(path): \"claims\" must be a JSON object") }
            return claims
        }
        return parsed
    }

    static func text(_ value: JSONValue) -> String {
        if case .string(let text) = value { return "\"\(text)\"" }
        return CanonicalJSON.string(value)
    }
}
