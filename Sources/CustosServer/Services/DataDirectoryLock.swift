public import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// An exclusive lock on a data directory (`DATA/custos.lock`, flock): one `custos serve` per data directory, and
/// offline maintenance (`custos keys rotate`) only while no service runs, since the service keeps the audit log's
/// tree head in memory and a second writer would fork it.
public final class DataDirectoryLock: Sendable {
    public static let fileName = "custos.lock"
    private let descriptor: Int32

    /// Takes the lock or throws ``ConfigurationError`` naming the holder's likely identity.
    public init(directory: URL) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let path = directory.appendingPathComponent(Self.fileName).path
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw ConfigurationError("cannot open \(path): \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            throw ConfigurationError("\(directory.path) is in use by a running custos serve (\(path) is locked); stop it first")
        }
        let pid = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = pid.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        descriptor = fd
    }

    deinit { close(descriptor) }
}
