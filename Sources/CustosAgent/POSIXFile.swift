import Foundation

#if canImport(Glibc)
    import Glibc
#endif

// MARK: - POSIX file access for configfs, sysfs, securityfs and tmpfs

/// Plain `open`/`read`/`write`/`close` (guest.md T12: configfs and sysfs attributes cannot be written through
/// Foundation's atomic writes or removed with `FileManager`; their `stat` sizes mean nothing, so every read goes to
/// EOF).
enum POSIXFile {
    /// An `errno` with its text, for messages.
    struct Failure: Error, Sendable {
        let errno: Int32
        let operation: String
        let path: String
        var message: String { "\(operation) \(path): \(String(cString: strerror(errno))) (errno \(errno))" }
    }

    /// Reads a file to EOF, refusing more than `limit` bytes.
    static func read(_ path: String, limit: Int) throws(Failure) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Failure(errno: errno, operation: "open", path: path) }
        defer { close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        // The chunk may hold secret bytes (efi_secret): cleared before it is freed.
        defer {
            chunk.withUnsafeMutableBytes { raw in
                if let base = raw.baseAddress { memset(base, 0, raw.count) }
            }
        }
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw Failure(errno: errno, operation: "read", path: path)
            }
            if n == 0 { break }
            guard out.count + n <= limit else { throw Failure(errno: EFBIG, operation: "read", path: path) }
            out += chunk[0..<n]
        }
        return out
    }

    /// Writes `bytes` with one `open(O_WRONLY)` … `close()`, as configfs binary attributes need (the commit happens
    /// at close, guest.md §1.5). Never an empty write.
    static func writeAttribute(_ path: String, _ bytes: [UInt8]) throws(Failure) {
        guard !bytes.isEmpty else { throw Failure(errno: EINVAL, operation: "write (empty)", path: path) }
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Failure(errno: errno, operation: "open", path: path) }
        do { try writeAll(fd, bytes, path: path) } catch {
            close(fd)
            throw error
        }
        guard close(fd) == 0 else { throw Failure(errno: errno, operation: "close", path: path) }
    }

    /// Writes all of `bytes` to `fd`, retrying short writes and `EINTR`. A `write` that accepts nothing is an error
    /// (`EIO`) rather than a reason to try forever.
    static func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String) throws(Failure) {
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { raw -> Int in
                guard let base = raw.baseAddress else { return 0 }
                return Glibc.write(fd, base + written, raw.count - written)
            }
            if n < 0 {
                if errno == EINTR { continue }
                throw Failure(errno: errno, operation: "write", path: path)
            }
            guard n > 0 else { throw Failure(errno: EIO, operation: "write (no progress)", path: path) }
            written += n
        }
    }

    static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    static func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }

    /// The names in a directory (without `.` and `..`), sorted.
    static func list(_ path: String) throws(Failure) -> [String] {
        guard let dir = opendir(path) else { throw Failure(errno: errno, operation: "opendir", path: path) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// Random lower-case hex for file and entry names.
    static func randomHex(_ byteCount: Int) -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<byteCount).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
    }
}
