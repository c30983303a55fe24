public import CustosStore
public import Foundation
public import Logging

/// First start on an empty data directory: tenant `default` and one `service-admin` token, written once to
/// `DATA/bootstrap-admin.token` (mode 0600). The log says where the token is, never the token. A start that finds no
/// usable service-admin credential (every one revoked or expired) writes a new one the same way; an existing token
/// file is never overwritten (the start logs an error naming it and goes on without a new token).
public enum Bootstrap {
    public static let tokenFileName = "bootstrap-admin.token"
    public static let defaultTenant = "default"

    /// What ``prepare(store:dataDirectory:logger:now:)`` did.
    public struct Outcome: Sendable, Equatable {
        public var createdDefaultTenant = false
        /// The token file written by this start, if any.
        public var adminTokenFile: String?
        public init(createdDefaultTenant: Bool = false, adminTokenFile: String? = nil) {
            self.createdDefaultTenant = createdDefaultTenant
            self.adminTokenFile = adminTokenFile
        }
    }

    public static func prepare(store: any Store, dataDirectory: URL, logger: Logger, now: Date = Date()) async throws -> Outcome {
        var outcome = Outcome()
        let tenants = try await store.listTenants()
        if !tenants.contains(where: { $0.id == defaultTenant }) {
            _ = try await store.createTenant(id: defaultTenant, displayName: "Default tenant", now: now)
            outcome.createdDefaultTenant = true
        }
        // Only a usable admin counts: with none (never made, or every one revoked or expired), this start writes a new
        // token — the way back in for whoever holds the data directory.
        let admins = try await store.listCredentials(tenantId: nil).filter {
            $0.role == .serviceAdmin && $0.revokedAt == nil && ($0.expiresAt.map { now < $0 } ?? true)
        }
        guard admins.isEmpty else { return outcome }
        let issued = try await store.createCredential(
            tenantId: nil, role: .serviceAdmin, label: "bootstrap", expiresAt: nil, now: now)
        let path = dataDirectory.appendingPathComponent(tokenFileName).path
        do { try writeOnce(Array((issued.token + "\n").utf8), to: path) } catch {
            // A token nobody can read must not stand in for the admin the next start would make; the service still
            // starts (attestation does not need an admin).
            _ = try? await store.revokeCredential(id: issued.credential.id, now: now)
            logger.error("no service-admin token could be written: \(error); remove \(path) and restart to get one")
            return outcome
        }
        logger.notice("first start: the service-admin token is in \(path) (mode 0600); move it somewhere safe")
        outcome.adminTokenFile = path
        return outcome
    }

    /// Creates `path` with mode 0600 and `O_EXCL`: an existing file (a token from an earlier start, or a planted
    /// symlink) is never overwritten or followed.
    static func writeOnce(_ bytes: [UInt8], to path: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw BootstrapError("cannot create \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == bytes.count, fsync(fd) == 0 else {
            let reason = String(cString: strerror(errno))
            _ = unlink(path)  // ours (O_EXCL): a torn token file must not block the next start
            throw BootstrapError("cannot write \(path): \(reason)")
        }
    }
}

public struct BootstrapError: Error, Sendable, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
