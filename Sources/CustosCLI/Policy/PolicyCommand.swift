import ArgumentParser
import CustosCrypto
import CustosPolicy
import Foundation

/// `custos policy …`: lint, evaluate, hash and list the declarative policies in `Policies/`.
struct PolicyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy", abstract: "Declarative appraisal, launch and release policies: lint, eval, hash, list.",
        subcommands: [PolicyLint.self, PolicyEval.self, PolicyHash.self, PolicyList.self])
}

/// `custos policy lint [DIR]`: exit 0 when every file loads, 1 with one `file:line:col: message` per problem.
struct PolicyLint: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lint", abstract: "Check every policy and reference-value file (exit 1 with file:line:col: message per problem).")

    @Argument(help: "The policy directory (default: $CUSTOS_POLICIES or ./Policies).") var directory: String?
    @Option(name: .long, help: "Check reference-value expiry at this time, ISO 8601 (default: now).") var at: String?
    @OptionGroup var global: GlobalOptions

    func run() throws {
        let directory = directory ?? PolicyCLI.defaultDirectory
        let time = try parseVerificationTime(at)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw CLIError("policy directory not found: \(directory)")
        }
        let problems: [PolicyProblem]
        var loaded: PolicySet? = nil
        do {
            loaded = try PolicySet.load(directory: URL(fileURLWithPath: directory), at: time)
            problems = []
        } catch {
            problems = error.problems
        }
        if global.json {
            let list: [JSONValue] = problems.map {
                [
                    "file": .string(PolicyCLI.path($0.location.file, directory: directory)),
                    "line": .integer(Int64($0.location.line)), "column": .integer(Int64($0.location.column)),
                    "message": .string($0.message),
                ]
            }
            try Output.printJSON(JSONValueBox(["ok": .bool(problems.isEmpty), "problems": .array(list)]))
        } else if let loaded {
            print("\(directory): \(loaded.policies.count) policies, \(loaded.referenceValues.count) reference-value sets, no problems")
            let examples = loaded.exampleSets
            if !examples.isEmpty {
                print(
                    "note: \(examples.count) of the sets are examples (\(examples.map(\.name).joined(separator: ", "))): they match public images; replace them before a service holds a real secret"
                )
            }
        } else {
            for problem in problems { print(PolicyCLI.display(problem, directory: directory)) }
        }
        if !problems.isEmpty { throw ExitCode(1) }
    }
}

/// `custos policy eval`: evaluates one policy against a claims document.
struct PolicyEval: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval", abstract: "Evaluate a policy against a claims document (exit 0 allow, 1 deny).")

    @Option(name: .long, help: "The policy directory (default: $CUSTOS_POLICIES or ./Policies).") var policies: String?
    @Option(name: .long, help: "The policy id.") var policy: String
    @Option(name: .long, help: "The claims JSON file, or - for stdin (`custos tdx verify --json` output works too).") var claims: String
    @Option(name: .long, help: "Release policies: the secret path asked for.") var secret: String?
    @Option(name: .long, help: "Release policies: the appraisal status (affirming, warning, contraindicated, none).") var status: String?
    @Option(name: .long, help: "Evaluation time, ISO 8601 (default: now).") var at: String?
    @OptionGroup var global: GlobalOptions

    func run() throws {
        let time = try parseVerificationTime(at)
        let set = try PolicyCLI.load(policies ?? PolicyCLI.defaultDirectory, at: time)
        guard let loaded = set.policy(id: policy) else {
            throw CLIError("no policy with id '\(policy)' (have: \(set.policies.map(\.id).joined(separator: ", ")))")
        }
        let document = try PolicyCLI.readClaims(claims)
        let result: PolicyResult
        if let release = loaded.release {
            guard let secret else { throw CLIError("\(policy) is a release policy: pass --secret PATH (and --status)") }
            guard let tier = TrustTier(rawValue: status ?? "none") else {
                throw CLIError("--status must be affirming, warning, contraindicated or none")
            }
            result = release.evaluate(path: secret, status: tier, claims: document, referenceValues: set.referenceValues, at: time)
        } else {
            guard secret == nil, status == nil else { throw CLIError("--secret and --status apply to release policies only") }
            guard let evaluated = loaded.evaluate(claims: document, referenceValues: set.referenceValues, at: time) else {
                throw CLIError("\(policy) cannot be evaluated on claims alone")
            }
            result = evaluated
        }
        if global.json {
            try Output.printJSON(JSONValueBox(result.jsonValue))
        } else {
            print("\(result.decision == .allow ? "ALLOW" : "DENY"): \(result.policy), status \(result.status.rawValue)")
            let vector = result.trustVector.values.sorted { $0.key < $1.key }
            if !vector.isEmpty { print("trust vector: " + vector.map { "\($0.key.rawValue) \($0.value)" }.joined(separator: ", ")) }
            for line in result.trace {
                print(
                    "  \(line.passed ? "✓" : "✗") [\(line.rule)] \(line.claim) \(line.operator) \(PolicyCLI.text(line.expected)) — actual \(PolicyCLI.text(line.actual.jsonValue))"
                )
            }
        }
        if result.decision != .allow { throw ExitCode(1) }
    }
}

/// `custos policy hash FILE`: the content address `id@sha256:<hex>` of one policy file.
struct PolicyHash: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hash", abstract: "Print a policy's content address, id@sha256:<SHA-256 of its RFC 8785 canonical JSON>.")

    @Argument(help: "The policy file (YAML).") var file: String
    @OptionGroup var global: GlobalOptions

    func run() throws {
        let bytes = try readInputFile(file, kind: .policy)
        guard let text = String(bytes: bytes, encoding: .utf8) else { throw CLIError("\(file): not UTF-8 text") }
        let loaded: LoadedPolicy
        do { loaded = try PolicySet.parsePolicy(yaml: text, file: file) } catch {
            throw CLIError(error.problems.map(\.description).joined(separator: "\n"))
        }
        if global.json {
            try Output.printJSON(
                JSONValueBox(["id": .string(loaded.id), "sha256": .string(loaded.sha256), "reference": .string(loaded.reference)]))
        } else {
            print(loaded.reference)
        }
    }
}

/// `custos policy list`: every policy with its kind, TEE, file and hash.
struct PolicyList: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List the policies of a directory.")

    @Option(name: .long, help: "The policy directory (default: $CUSTOS_POLICIES or ./Policies).") var policies: String?
    @OptionGroup var global: GlobalOptions

    func run() throws {
        let set = try PolicyCLI.load(policies ?? PolicyCLI.defaultDirectory, at: Date())
        if global.json {
            let list: [JSONValue] = set.policies.map {
                [
                    "id": .string($0.id), "kind": .string($0.kind.rawValue), "tee": $0.tee.map { .string($0) } ?? .null,
                    "file": .string($0.file), "sha256": .string($0.sha256),
                ]
            }
            try Output.printJSON(JSONValueBox(.array(list)))
        } else {
            for policy in set.policies {
                print("\(policy.id)\t\(policy.kind.rawValue)\t\(policy.tee ?? "-")\t\(policy.file)\tsha256:\(policy.sha256)")
            }
        }
    }
}
