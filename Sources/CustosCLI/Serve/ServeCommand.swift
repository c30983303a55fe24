import ArgumentParser
import CustosServer
import CustosStore
import Foundation
import Hummingbird
import Logging

/// `custos serve`: the attestation service (KBS protocol 0.4.0, the /v1 API, the audit API).
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the attestation service (KBS protocol 0.4.0, /v1 API, audit API).",
        discussion: """
            Defaults: listen on 127.0.0.1:8080, state in ./var/, policies from Policies/, anchors from Certs/, \
            collateral from Intel PCS with an on-disk cache. A YAML --config file sets the same keys \
            (listen, data, policies, certs, collateral, pccs, tdx_root, sev_roots, tls_cert, tls_key, issuer, \
            kbs_denial_status, evidence_limit, json_limit, token_lifetime_seconds, challenge_lifetime_seconds); \
            flags override it.
            """
    )

    @Option(help: "A YAML configuration file.") var config: String?
    @Option(help: "Listen address HOST:PORT (default 127.0.0.1:8080).") var listen: String?
    @Option(help: "Data directory (default ./var).") var data: String?
    @Option(help: "Policies directory (default ./Policies).") var policies: String?
    @Option(help: "Trust-anchor directory (default ./Certs).") var certs: String?
    @Option(help: "Offline collateral directory (PCS layout); nothing is fetched.") var collateral: String?
    @Option(help: "PCCS or PCS base URL to fetch collateral from.") var pccs: String?
    @Option(name: .customLong("tdx-root"), help: "Test only: a PEM root replacing Intel's pinned root.") var tdxRoot: String?
    @Option(name: .customLong("sev-roots"), help: "Test only: a directory replacing AMD's pinned roots.") var sevRoots: String?
    @Option(name: .customLong("tls-cert"), help: "Serve HTTPS with this PEM certificate chain.") var tlsCert: String?
    @Option(name: .customLong("tls-key"), help: "The PEM private key of --tls-cert.") var tlsKey: String?
    /// `--json`: a start-up error is printed as the one JSON error object (the service itself logs as text).
    @OptionGroup var global: GlobalOptions

    func validate() throws {
        if collateral != nil, pccs != nil { throw ValidationError("--collateral and --pccs exclude each other") }
    }

    func resolvedConfiguration() throws -> ServerConfiguration {
        var configuration = ServerConfiguration()
        do {
            if let config {
                // The CLI's one file reader (its size limit and fileNotFound / notAFile / unreadable codes).
                guard let text = String(validating: try InputFile.read(config, kind: .policy, what: "configuration file"), as: UTF8.self)
                else { throw CLIError("the configuration file \(config) is not UTF-8 text", field: "config") }
                try configuration.apply(yaml: text, file: config)
            }
            if let listen { try configuration.setListen(listen) }
            if let data { configuration.dataDirectory = data }
            if let policies { configuration.policiesDirectory = policies }
            if let certs { configuration.certsDirectory = certs }
            if let collateral { configuration.collateral = .directory(collateral) }
            if let pccs { configuration.collateral = .service(url: pccs) }
            if let tdxRoot { configuration.tdxRootOverride = tdxRoot }
            if let sevRoots { configuration.sevRootsOverride = sevRoots }
            if let tlsCert { configuration.tlsCertificate = tlsCert }
            if let tlsKey { configuration.tlsKey = tlsKey }
            try configuration.validate()
        } catch let error as ConfigurationError {
            throw CLIError(error.message)
        }
        return configuration
    }

    func run() async throws {
        let configuration = try resolvedConfiguration()
        // Never serve plain HTTP to someone who asked for HTTPS.
        if configuration.tlsCertificate != nil || configuration.tlsKey != nil {
            throw CLIError(
                "built-in TLS is not available yet: terminate TLS at a reverse proxy in front of custos serve "
                    + "(listen on 127.0.0.1 and let the proxy forward), and leave --tls-cert/--tls-key unset")
        }
        var logger = Logger(label: "custos") { CustosLogHandler(label: $0) }
        logger.logLevel = ProcessInfo.processInfo.environment["LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info
        if configuration.usesTestAnchors {
            logger.warning("test trust anchors replace the pinned vendor roots; tokens and audit entries say so")
        }
        let parts = try await CustosService.assemble(configuration: configuration, logger: logger)
        let app = CustosService.makeApplication(parts)
        logger.info("custos serve listening on \(configuration.baseURL)")
        try await app.runService()
    }
}
