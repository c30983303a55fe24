import ArgumentParser
import CustosAgent
import CustosCrypto
import CustosKBS
import Foundation

/// `custos agent fetch`: auth → attest → resource against a KBS, secrets written 0400 to tmpfs.
struct AgentFetchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fetch",
        abstract: "Attest this TD to a KBS (protocol 0.4.0) and write the released secrets to <out>/<type>/<tag> (mode 0400).",
        discussion: """
            The quote comes from configfs-tsm (<configfs>/tsm/report), the event log from <sysfs>/firmware/acpi/tables/data/CCEL. \
            TLS verifies the server against the system roots or --ca; plain HTTP only to loopback or with --insecure-http. \
            The output directory must be on tmpfs or ramfs unless --allow-disk. Exit 1 when the service refuses \
            (attestation, policy), 2 when the agent cannot do its work (no configfs-tsm, service unreachable, disk directory).
            """)

    @Option(name: .long, help: "The KBS base URL, e.g. https://kbs.example:8080.") var url: String
    @Option(name: .long, help: "REPOSITORY/TYPE/TAG[,…] (repeatable).") var resource: [String]
    @Option(name: .long, help: "Directory for the secrets (tmpfs/ramfs).") var out: String
    @Option(name: .customLong("init-data"), help: "Init-data TOML sent with the attestation (its digest is the TD's MRCONFIGID).")
    var initData: String?
    @Option(name: .long, help: "PEM certificate(s) to trust instead of the system roots.") var ca: String?
    @Option(name: .customLong("tee-key"), help: "The ephemeral TEE key: P-256 (default), P-384 or RSA.") var teeKey = "P-256"
    @Flag(name: .customLong("allow-disk"), help: "Accept an output directory that is not tmpfs/ramfs.") var allowDisk = false
    @Flag(name: .customLong("insecure-http"), help: "Allow plain HTTP to a host other than loopback.") var insecureHTTP = false
    @OptionGroup var roots: AgentRoots
    @OptionGroup var global: GlobalOptions

    func validate() throws {
        guard TEEKeyType(rawValue: teeKey.uppercased()) != nil else { throw ValidationError("--tee-key must be P-256, P-384 or RSA") }
    }

    func run() async throws {
        let resources = try ResourcePath.parseList(resource)
        var configuration = KBSClientConfiguration(url: url)
        configuration.keyType = TEEKeyType(rawValue: teeKey.uppercased()) ?? .p256
        configuration.insecureHTTP = insecureHTTP
        if let ca { configuration.caPEM = try InputFile.read(ca, kind: .certificate, what: "--ca") }
        if let initData {
            let bytes = try InputFile.read(initData, kind: .policy, what: "--init-data")
            guard let text = String(validating: bytes, as: UTF8.self) else {
                throw AgentError(.usage, .unusable, "--init-data \(initData) is not UTF-8 text")
            }
            configuration.initData = KBSInitData(format: "toml", body: text)
        }
        if let milliseconds = ProcessInfo.processInfo.environment["CUSTOS_AGENT_RETRY_BACKOFF_MS"].flatMap(Int.init), milliseconds >= 0 {
            configuration.retryBackoff = .milliseconds(milliseconds)
        }
        let writer = SecretFileWriter(allowDisk: allowDisk)
        // Refuse a disk directory before attesting: no secret should be released that cannot be stored.
        try writer.prepareDirectory(out)
        let client = try KBSAgentClient(
            configuration: configuration, quoteSource: try TDQuoteSources.detect(configfsRoot: roots.configfs),
            eventLog: CCELReader(sysfsRoot: roots.sysfs))
        let report = try await client.fetch(resources)
        let written = try writer.writeAll(report.secrets, under: out).map { file -> JSONValue in
            ["resource": .string(file.resource.description), "path": .string(file.path), "bytes": .integer(Int64(file.bytes))]
        }
        if global.json {
            AgentOutput.printJSON([
                "written": .array(written), "handshakes": .integer(Int64(report.handshakes)), "teeKey": .string(report.keyType.rawValue),
                "quoteSource": .string(report.quoteSource), "eventLogBytes": report.eventLogBytes.map { .integer(Int64($0)) } ?? .null,
            ])
        } else {
            for item in written {
                print(
                    "wrote \(item["resource"]?.stringValue ?? "") to \(item["path"]?.stringValue ?? "") (\(item["bytes"]?.integerValue ?? 0) bytes, mode 0400)"
                )
            }
        }
    }
}
