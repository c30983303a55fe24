import CCustosSystem
public import CustosCrypto
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

// MARK: - Secrets on tmpfs (guest.md T17)

/// Writes secrets as files of mode 0400 in memory-backed directories only: `statfs` must say tmpfs
/// (`TMPFS_MAGIC` 0x01021994) or ramfs (`RAMFS_MAGIC` 0x858458f6) unless disk was allowed explicitly. Each file is
/// written to a fresh temporary name in its final directory (`O_CREAT|O_EXCL|O_NOFOLLOW`, mode 0400), synced, then
/// renamed over the final name, so a reader sees the old secret or the whole new one, never a part.
public struct SecretFileWriter: Sendable {
    public static let tmpfsMagic = 0x0102_1994
    public static let ramfsMagic = 0x8584_58f6

    /// Whether a directory that is not tmpfs/ramfs is accepted (`--allow-disk`).
    public let allowDisk: Bool

    public init(allowDisk: Bool) { self.allowDisk = allowDisk }

    /// The `f_type` of the file system holding `path` (`statfs(2)`).
    public static func fileSystemType(_ path: String) -> Int? {
        // Through a C shim (Sources/CCustosSystem): Glibc's Swift module does not import <sys/vfs.h>.
        var type: Int64 = 0
        guard custos_statfs_type(path, &type) == 0 else { return nil }
        return Int(type)
    }

    /// Whether `path` is on tmpfs or ramfs.
    public static func isMemoryBacked(_ path: String) -> Bool {
        guard let type = fileSystemType(path) else { return false }
        return type == tmpfsMagic || type == ramfsMagic
    }

    /// Checks (and creates, mode 0700) a directory for secrets: the nearest existing ancestor must be on tmpfs or
    /// ramfs unless ``allowDisk``.
    /// - Throws: ``AgentError`` (`write`, unusable).
    public func prepareDirectory(_ path: String) throws(AgentError) {
        var existing = path
        while !POSIXFile.exists(existing) {
            let parent = (existing as NSString).deletingLastPathComponent
            if parent == existing { break }
            // A relative path's last ancestor is the current directory ("secrets" used to be statfs'd itself).
            existing = parent.isEmpty ? "." : parent
        }
        if !allowDisk {
            guard let type = Self.fileSystemType(existing) else {
                throw AgentError(.write, .unusable, "cannot statfs \(existing): \(String(cString: strerror(errno)))")
            }
            guard type == Self.tmpfsMagic || type == Self.ramfsMagic else {
                throw AgentError(
                    .write, .unusable,
                    "\(path) is not on tmpfs or ramfs (f_type 0x\(String(type, radix: 16))): secrets are not written to disk; "
                        + "use a tmpfs directory such as /run/… or pass --allow-disk")
            }
        }
        try makeDirectories(path)
    }

    func makeDirectories(_ path: String) throws(AgentError) {
        if POSIXFile.isDirectory(path) { return }
        let parent = (path as NSString).deletingLastPathComponent
        if !parent.isEmpty, parent != path { try makeDirectories(parent) }
        guard mkdir(path, 0o700) == 0 || errno == EEXIST else {
            throw AgentError(.write, .unusable, POSIXFile.Failure(errno: errno, operation: "mkdir", path: path).message)
        }
        guard POSIXFile.isDirectory(path) else { throw AgentError(.write, .unusable, "\(path) exists and is not a directory") }
    }

    /// Writes `secret` to `directory/name` (mode 0400) through a temporary file and `rename`.
    /// - Returns: the final path.
    /// - Throws: ``AgentError`` (`write`, unusable); the temporary file is removed on failure.
    @discardableResult
    public func write(_ secret: SecretBytes, directory: String, name: String) throws(AgentError) -> String {
        try prepareDirectory(directory)
        let final = directory + "/" + name
        // A fixed-length name: `.<name>.tmp-…` exceeded NAME_MAX (255) for names over 233 bytes, which the resource
        // syntax allows.
        let temporary = directory + "/.custos-tmp-\(POSIXFile.randomHex(8))"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o400)
        guard fd >= 0 else {
            throw AgentError(.write, .unusable, POSIXFile.Failure(errno: errno, operation: "open", path: temporary).message)
        }
        var failure: POSIXFile.Failure? = nil
        secret.withBytes { bytes in
            do throws(POSIXFile.Failure) { try POSIXFile.writeAll(fd, bytes, path: temporary) } catch { failure = error }
        }
        if failure == nil, fchmod(fd, 0o400) != 0 { failure = POSIXFile.Failure(errno: errno, operation: "fchmod", path: temporary) }
        if failure == nil, fsync(fd) != 0 { failure = POSIXFile.Failure(errno: errno, operation: "fsync", path: temporary) }
        if close(fd) != 0, failure == nil { failure = POSIXFile.Failure(errno: errno, operation: "close", path: temporary) }
        if failure == nil, rename(temporary, final) != 0 { failure = POSIXFile.Failure(errno: errno, operation: "rename", path: final) }
        if let failure {
            unlink(temporary)
            throw AgentError(.write, .unusable, failure.message)
        }
        return final
    }

    /// One secret written by ``writeAll(_:under:)``.
    public struct WrittenFile: Sendable, Equatable {
        public let resource: ResourcePath
        public let path: String
        public let bytes: Int
    }

    /// Writes every fetched secret to `out/<type>/<tag>`, all or nothing: when one write fails, the files already
    /// written are removed, so a failed run leaves none of its secrets behind.
    /// - Throws: the failing write's ``AgentError``, saying how many files were removed.
    public func writeAll(_ secrets: [FetchedSecret], under out: String) throws(AgentError) -> [WrittenFile] {
        var written: [WrittenFile] = []
        for fetched in secrets {
            let path: String
            do {
                path = try write(fetched.secret, directory: out + "/" + fetched.resource.type, name: fetched.resource.tag)
            } catch {
                for file in written { unlink(file.path) }
                guard !written.isEmpty else { throw error }
                throw AgentError(
                    error.stage, error.kind, "\(error.reason) (the \(written.count) secret file(s) written before it were removed)")
            }
            written.append(WrittenFile(resource: fetched.resource, path: path, bytes: fetched.secret.count))
        }
        return written
    }
}
