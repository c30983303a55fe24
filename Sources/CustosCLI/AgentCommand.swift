import ArgumentParser
public import CustosAgent
import CustosCrypto
import CustosKBS
import Foundation

/// `custos agent …`: the guest side (issue 13). In a TD: fetch secrets over the KBS protocol with a configfs-tsm
/// quote and the CCEL; in a SEV/SEV-ES guest: take the secret the launcher injected (efi_secret).
struct AgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent", abstract: "Guest agent: fetch a TD's secrets from the KBS; take a SEV guest's injected secret.",
        subcommands: [AgentFetchCommand.self, AgentEvidenceCommand.self, AgentSEVSecretCommand.self])
}

/// The roots every agent command reads, replaceable so tests run on fake trees.
struct AgentRoots: ParsableArguments {
    @Option(name: .long, help: "The configfs mount (configfs-tsm lives in <ROOT>/tsm/report).") var configfs = "/sys/kernel/config"
    @Option(name: .long, help: "The sysfs mount (the CCEL is <ROOT>/firmware/acpi/tables[/data]/CCEL).") var sysfs = "/sys"
    @Option(name: .long, help: "The securityfs mount (efi_secret: <ROOT>/secrets/coco/<guid>).") var securityfs = "/sys/kernel/security"
}

// MARK: - Errors under the CLI's contract

extension AgentError: CustosReportableError {
    /// `attestRejected`, `resourceRejected`, `authUnreachable`, `evidenceUnusable`, `writeUnusable`, …
    public var errorCode: String { code }
    /// The stage first: `resource: GET … answered 401: PolicyDeny: …`.
    public var errorMessage: String { description }
    /// The failing stage (`evidence`, `auth`, `attest`, `resource`, `write`, `secret`, `usage`).
    public var errorField: String? { stage.rawValue }
}

enum AgentOutput {
    static func printJSON(_ value: JSONValue) {
        print(String(decoding: CanonicalJSON.encode(value), as: UTF8.self))
    }
}
