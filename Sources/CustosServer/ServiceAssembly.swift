public import CustosAudit
import CustosCrypto
public import CustosStore
public import Foundation
public import Logging

extension CustosService {
    /// Everything `custos serve` opens at start, in order: the data directory (store, master key), the audit log (its
    /// key and unique origin in the data directory), the policies, the trust anchors; then the first-start bootstrap.
    /// Tests call this too, so the service they exercise is the one that ships.
    public static func assemble(configuration: ServerConfiguration, logger: Logger) async throws -> Parts {
        var parts = Parts(configuration: configuration, logger: logger)
        if !["127.0.0.1", "localhost", "::1"].contains(configuration.host.lowercased()), !configuration.servedOverHTTPS {
            logger.warning(
                "listening on \(configuration.host) over plain HTTP: API tokens, KBS cookies and EARs cross the network in clear; terminate TLS at a proxy and set issuer to its https:// URL"
            )
        }
        let dataDirectory = URL(fileURLWithPath: configuration.dataDirectory)
        parts.lock = try DataDirectoryLock(directory: dataDirectory)
        let store = try SQLiteStore.open(dataDirectory: dataDirectory)
        parts.store = store
        let anchors = try TrustAnchors.load(configuration)
        for problem in anchors.problems { logger.warning("trust anchor unavailable: \(problem)") }
        parts.anchors = anchors
        parts.policies = try PolicyRegistry(directory: URL(fileURLWithPath: configuration.policiesDirectory))
        if let policies = parts.policies { PolicyRegistry.warnAboutExamples(policies.current, logger: logger) }
        let keyPath = LogKeyFile.defaultPath(forDatabase: DataDirectory(dataDirectory).databasePath)
        let key = try LogKeyFile.load(path: keyPath, create: true)
        let origin = auditOrigin(store: store)
        let log = try await AuditLog.open(pool: store.pool, signingKey: key, origin: origin)
        parts.audit = AuditRecorder(log: log, usesTestAnchors: anchors.isTest, logger: logger)
        parts.discovery.auditOrigin = log.origin
        parts.discovery.auditVerifierKey = log.verifierKey
        parts.tokens = try TokenKeyRing.open(dataDirectory: dataDirectory)
        switch configuration.collateral {
        case .directory(let path): parts.collateral = CollateralDirectory(root: URL(fileURLWithPath: path))
        case .service(let url):
            // Fetched on a miss into the on-disk cache (the layout `custos tdx collateral fetch --out
            // DATA/collateral/<FMSPC>` writes, so a cache can also be filled offline).
            parts.collateral = PCSCollateralProvider(
                cacheDirectory: dataDirectory.appendingPathComponent("collateral"), base: url, trustedRoot: anchors.tdxRoot,
                logger: logger)
        }
        _ = try await Bootstrap.prepare(store: store, dataDirectory: dataDirectory, logger: logger)
        return parts
    }

    /// The origin recorded in the database, or for a new log a unique one (Trap 18 of specs/audit.md: two logs
    /// with one origin make their checkpoints interchangeable): `custos/<host>/<16 hex digits>`.
    static func auditOrigin(store: SQLiteStore) -> String {
        if let reader = try? AuditLogReader(database: store.pool) { return reader.origin }
        let host = ProcessInfo.processInfo.hostName.filter { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "." }
        let suffix = Hex.encode((try? SecureRandom.bytes(8)) ?? Array(UUID().uuidString.utf8.prefix(8)))
        return "custos/\(host.isEmpty ? "localhost" : host)/\(suffix)"
    }
}
