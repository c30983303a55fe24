import ArgumentParser
import CustosAgent
import CustosCrypto
public import CustosVirt
import Foundation

/// `custos launch`: measured SEV/SEV-ES launches and TDX trust domains through libvirt (issue 12 §2, §3).
struct LaunchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "launch",
        abstract: "Launch a confidential guest through libvirt: a measured SEV/SEV-ES launch, or a TDX trust domain from a signed UKI.",
        subcommands: [LaunchSEVCommand.self, LaunchTDXCommand.self])
}

/// The flags both launch commands share.
struct GuestLaunchOptions: ParsableArguments {
    @Option(name: .long, help: "The Custos service's base URL (https://custos.example:8443).")
    var service: String?
    @Option(name: .long, help: "A file holding the bearer token (a launcher token for SEV, a tenant-admin token for TDX).")
    var token: String?
    @Option(name: .long, help: "The domain name (also the workload id).")
    var name: String
    @Option(name: .long, help: "The OVMF firmware image (AmdSev build for SEV, IntelTdx build for TDX).")
    var firmware: String
    @Option(name: .long, help: "The signed UKI, booted as the direct-boot kernel.")
    var uki: String
    @Option(name: .long, help: "The libvirt URI (default qemu:///system; qemu+ssh://host/system works too).")
    var connect: String?
    @Flag(
        name: .long, help: "Allow a plain http:// --service that is not on this machine (the token then crosses the network in the clear).")
    var insecureHTTP = false
    @Flag(
        name: .long,
        help:
            "Print the domain XML after every refusal check; create nothing and ask no service (libvirt is only read, over a read-only connection, for the capabilities and running guests, unless --domcaps is given without --connect)."
    )
    var dryRun = false
    @Option(name: .long, help: "Domain capabilities XML (virsh domcapabilities) to use instead of asking libvirt.")
    var domcaps: String?

    /// The service, the token and the connection, for a real launch.
    func validateLaunch() throws {
        guard !dryRun else { return }
        guard let service, !service.isEmpty else { throw ValidationError("--service is required (unless --dry-run)") }
        guard service.hasPrefix("http://") || service.hasPrefix("https://") else {
            throw ValidationError("--service must be an http:// or https:// URL")
        }
        if service.hasPrefix("http://"), !insecureHTTP {
            // The bearer token (a launcher's) goes with every request: plain HTTP only to this machine, as the agent.
            guard let host = URL(string: service)?.host, KBSAgentClient.isLoopback(host) else {
                throw ValidationError(
                    "--service \(service): plain HTTP to another machine would send the bearer token in the clear; use https, or --insecure-http"
                )
            }
        }
        guard token != nil else { throw ValidationError("--token is required (unless --dry-run)") }
    }

    func readToken() throws -> String {
        guard let token else { throw CLIError("--token is required", code: "usage", field: "token") }
        let text = String(decoding: try InputFile.read(token, kind: .key, what: "token file"), as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        guard !text.isEmpty else { throw CLIError("the token file \(token) is empty", code: "unusableInput", field: "token") }
        return text
    }

    /// Checks that an input file is there and readable (the hypervisor reads it by path).
    func requireFile(_ path: String, what: String) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw InputFileError(code: .fileNotFound, path: path, message: "\(what) \(path) does not exist")
        }
        guard !isDirectory.boolValue else { throw InputFileError(code: .notAFile, path: path, message: "\(what) \(path) is a directory") }
        guard FileManager.default.isReadableFile(atPath: path) else {
            throw InputFileError(code: .unreadable, path: path, message: "cannot read \(what) \(path)")
        }
    }

    /// The host's domain capabilities: `--domcaps`, else the connection's (read-only).
    func capabilities() async throws -> DomainCapabilities {
        if let domcaps {
            let bytes = try InputFile.read(domcaps, kind: .collateral, what: "domain capabilities")
            return try DomainCapabilities(xml: String(decoding: bytes, as: UTF8.self))
        }
        let connection = try await LibvirtConnection.open(uri: connect ?? "qemu:///system", readOnly: true)
        return try await Self.closing({ await connection.close() }) {
            try DomainCapabilities(xml: try await connection.domainCapabilitiesXML(virtType: "kvm"))
        }
    }

    /// The confidential guests running on the host, for a dry run's ASID limits: counted read-only through `--connect`
    /// (qemu:///system when neither --connect nor --domcaps is given); none with --domcaps alone (an offline check).
    func runningGuestsForDryRun() async throws -> RunningGuests {
        guard connect != nil || domcaps == nil else { return .none }
        let connection = try await LibvirtConnection.open(uri: connect ?? "qemu:///system", readOnly: true)
        return try await Self.closing({ await connection.close() }) { try await RunningGuests.count(on: connection) }
    }

    /// Runs `body`, then `close`, also when `body` throws: a `defer` cannot await, and a close left to an unstructured
    /// task may never run before the process exits.
    static func closing<T>(_ close: () async -> Void, _ body: () async throws -> T) async throws -> T {
        let value: T
        do { value = try await body() } catch {
            await close()
            throw error
        }
        await close()
        return value
    }

    /// The libvirt hypervisor for a real launch.
    func hypervisor() async throws -> LibvirtHypervisor { try await LibvirtHypervisor.open(uri: connect ?? "qemu:///system") }

    /// Absolute paths (libvirt resolves relative ones against its own working directory).
    static func absolute(_ path: String) -> String {
        path.hasPrefix("/") ? path : URL(fileURLWithPath: path).standardizedFileURL.path
    }
}

// MARK: - Output

/// Prints a flow's progress: one line per event, or one JSON object per line under `--json`.
enum LaunchOutput {
    static func progress(json: Bool) -> LaunchProgress {
        { event in
            if json {
                var object: [String: JSONValue] = [
                    "step": .string(event.step.rawValue), "phase": .string(event.phase.rawValue), "message": .string(event.message),
                ]
                if !event.details.isEmpty { object["details"] = .object(event.details.mapValues { .string($0) }) }
                line(["event": .object(object)])
            } else {
                let mark =
                    switch event.phase {
                    case .started: "…"
                    case .completed: "ok"
                    case .failed: "FAILED"
                    }
                print("[\(event.step.rawValue)] \(mark) \(event.message)")
            }
        }
    }

    /// One JSON object on one line (RFC 8785 bytes).
    static func line(_ value: JSONValue) {
        print(String(decoding: CanonicalJSON.encode(value), as: UTF8.self))
    }

    static func note(_ text: String) {
        FileHandle.standardError.write(Data(("note: " + text + "\n").utf8))
    }
}

// MARK: - Errors under the CLI contract

// A refused or denied launch is a rejection (exit 1); a launch that could not be carried out is exit 2.
extension LaunchFlowError: CustosReportableError {
    public var errorCode: String { code }
    public var errorMessage: String { description }
    public var errorField: String? { field ?? step.rawValue }
    public var exitStatus: Int32 { kind == .rejected ? 1 : 2 }
}
