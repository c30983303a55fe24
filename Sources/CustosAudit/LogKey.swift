public import CustosCrypto
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The log key file: the raw 32-byte Ed25519 seed, mode 0600, by default `<db dir>/audit-log.key`.
public enum LogKeyFile {
    /// The default key path next to `databasePath`.
    public static func defaultPath(forDatabase databasePath: String) -> String {
        URL(fileURLWithPath: databasePath).deletingLastPathComponent().appendingPathComponent("audit-log.key").path
    }

    /// Loads the key at `path`, creating it (mode 0600, exclusively) when absent and `create` is true.
    /// - Throws: ``AuditError/Code-swift.struct/malformedKey`` when the file is not 32 bytes, is readable by group
    ///   or others, or cannot be read or created.
    public static func load(path: String, create: Bool = true) throws(AuditError) -> Ed25519PrivateKey {
        if !FileManager.default.fileExists(atPath: path) {
            guard create else { throw AuditError(.malformedKey, "no log key at \(path)") }
            return try make(path: path)
        }
        var info = stat()
        guard stat(path, &info) == 0 else { throw AuditError(.malformedKey, "cannot stat the log key \(path)") }
        guard info.st_mode & 0o077 == 0 else {
            throw AuditError(.malformedKey, "the log key \(path) is accessible to group or others (chmod 600 it)")
        }
        guard let data = FileManager.default.contents(atPath: path) else { throw AuditError(.malformedKey, "cannot read \(path)") }
        var bytes = [UInt8](data)
        defer { secureZero(&bytes) }
        guard bytes.count == Ed25519.keyByteCount else {
            throw AuditError(.malformedKey, "the log key \(path) is \(bytes.count) bytes, not a 32-byte Ed25519 seed")
        }
        do { return try Ed25519PrivateKey(rawRepresentation: SecretBytes(bytes)) } catch {
            throw AuditError(.malformedKey, "the log key \(path) is unusable: \(error.reason)")
        }
    }

    private static func make(path: String) throws(AuditError) -> Ed25519PrivateKey {
        let key: Ed25519PrivateKey
        var seed: [UInt8]
        do {
            key = try Ed25519PrivateKey()
            seed = try key.rawRepresentation.unsafeCopy()
        } catch { throw AuditError(.malformedKey, "key generation failed: \(error.reason)") }
        defer { secureZero(&seed) }
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw AuditError(.malformedKey, "cannot create the log key \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let written = seed.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == seed.count, fsync(fd) == 0 else {
            unlink(path)
            throw AuditError(.malformedKey, "cannot write the log key \(path)")
        }
        return key
    }
}
