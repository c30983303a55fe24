public import CustosCrypto
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The 32-byte key that wraps every tenant's data-encryption key (AES-256-GCM).
///
/// Its ``id`` (the first 8 bytes of its SHA-256, hex) is stored next to each wrapped key, so a database can hold keys
/// wrapped under an old and a new master key while a rotation is under way, and a wrong key is named, not guessed.
public struct MasterKey: Sendable {
    public static let byteCount = 32
    /// Lowercase hex of the first 8 bytes of SHA-256(key): 16 characters.
    public let id: String
    let material: SecretBytes

    /// Wraps 32 bytes of key material.
    /// - Throws: ``StoreError/Code-swift.struct/masterKey`` when it is not 32 bytes.
    public init(material: SecretBytes) throws(StoreError) {
        guard material.count == Self.byteCount else {
            throw StoreError(.masterKey, "a master key must be \(Self.byteCount) bytes, got \(material.count)")
        }
        self.material = material
        self.id = material.withBytes { Hex.encode(Digest.sha256($0).prefix(8)) }
    }

    /// A fresh random key.
    public static func generate() throws(StoreError) -> MasterKey {
        let material: SecretBytes
        do { material = try SecretBytes.random(byteCount) } catch {
            throw StoreError(.masterKey, "cannot generate a master key: \(error)")
        }
        return try MasterKey(material: material)
    }

    /// Parses the base64 form used by `CUSTOS_MASTER_KEY`.
    public init(base64 text: String) throws(StoreError) {
        var bytes: [UInt8]
        do { bytes = try Base64.decode(text) } catch {
            throw StoreError(.masterKey, "the master key is not valid base64")
        }
        defer { secureZero(&bytes) }
        try self.init(material: SecretBytes(bytes))
    }
}

/// The master keys a database may be sealed under: the current one, and while a rotation is unfinished the
/// previous one (`master.key.old`).
public struct MasterKeyRing: Sendable {
    public let current: MasterKey
    public let previous: MasterKey?

    public init(current: MasterKey, previous: MasterKey? = nil) {
        self.current = current
        self.previous = previous
    }

    /// The key with this id, if the ring holds it.
    public func key(id: String) -> MasterKey? {
        if current.id == id { return current }
        if let previous, previous.id == id { return previous }
        return nil
    }

    /// The ids of the keys held, current first.
    public var ids: [String] { [current.id] + (previous.map { [$0.id] } ?? []) }
}

// MARK: - Key files

/// Reading and writing master-key files: 32 raw bytes, mode 0600, never group/world-accessible, written with
/// `O_EXCL` + `fsync` and renamed into place so a crash never leaves a torn key file.
enum MasterKeyFile {
    /// Reads a key file, refusing anything but a regular 32-byte file without group/other permission bits.
    static func read(path: String) throws(StoreError) -> MasterKey {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { throw StoreError(.masterKey, "cannot open master key file \(path): \(errnoText())") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw StoreError(.masterKey, "cannot stat \(path): \(errnoText())") }
        guard info.st_mode & S_IFMT == S_IFREG else { throw StoreError(.masterKey, "master key \(path) is not a regular file") }
        guard info.st_mode & 0o077 == 0 else {
            throw StoreError(
                .masterKey,
                "master key \(path) has mode \(String(info.st_mode & 0o777, radix: 8)); it must not be readable by group or others (chmod 600)"
            )
        }
        guard info.st_size == MasterKey.byteCount else {
            throw StoreError(.masterKey, "master key \(path) must be exactly \(MasterKey.byteCount) bytes, is \(info.st_size)")
        }
        var bytes = [UInt8](repeating: 0, count: MasterKey.byteCount + 1)
        defer { secureZero(&bytes) }
        let count = bytes.withUnsafeMutableBytes { posixRead(fd, $0.baseAddress, $0.count) }
        guard count == MasterKey.byteCount else {
            throw StoreError(.masterKey, "master key \(path) could not be read whole (\(count) bytes)")
        }
        return try MasterKey(material: SecretBytes(Array(bytes.prefix(MasterKey.byteCount))))
    }

    /// Writes `key` to `path` atomically: a temporary file (O_EXCL, 0600, fsync) renamed over `path`, then the
    /// directory is fsynced. With `replace == false` an existing `path` is an error (link instead of rename).
    static func write(_ key: MasterKey, to path: String, replace: Bool) throws(StoreError) {
        // A name of this writer's own: two processes writing the first key never share (or unlink) a temporary file.
        let temporary = path + ".tmp-\(getpid())-\(StoreIDs.randomHex(8))"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw StoreError(.masterKey, "cannot create \(temporary): \(errnoText())") }
        var ok = fchmod(fd, 0o600) == 0
        if ok {
            let written = key.material.withBytes { bytes in bytes.withUnsafeBytes { posixWrite(fd, $0.baseAddress, $0.count) } }
            ok = written == MasterKey.byteCount && fsync(fd) == 0
        }
        let reason = errnoText()
        close(fd)
        guard ok else {
            _ = unlink(temporary)
            throw StoreError(.masterKey, "cannot write \(temporary): \(reason)")
        }
        if replace {
            guard rename(temporary, path) == 0 else {
                let reason = errnoText()
                _ = unlink(temporary)
                throw StoreError(.masterKey, "cannot move \(temporary) to \(path): \(reason)")
            }
        } else {
            // link(2) fails with EEXIST instead of replacing: two processes racing to create the first key cannot
            // both win.
            let linked = link(temporary, path) == 0
            let reason = errnoText()
            _ = unlink(temporary)
            guard linked else { throw StoreError(.masterKey, "cannot create \(path): \(reason)") }
        }
        try syncDirectory(of: path)
    }

    /// Removes a key file and makes the removal durable.
    static func remove(path: String) throws(StoreError) {
        guard unlink(path) == 0 || errno == ENOENT else {
            throw StoreError(.masterKey, "cannot remove \(path): \(errnoText())")
        }
        try syncDirectory(of: path)
    }

    static func exists(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0
    }

    static func syncDirectory(of path: String) throws(StoreError) {
        let directory = (path as NSString).deletingLastPathComponent
        let fd = open(directory.isEmpty ? "." : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw StoreError(.masterKey, "cannot open \(directory): \(errnoText())") }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw StoreError(.masterKey, "cannot fsync \(directory): \(errnoText())") }
    }
}

func errnoText() -> String { String(cString: strerror(errno)) }

private func posixRead(_ fd: Int32, _ buffer: UnsafeMutableRawPointer?, _ count: Int) -> Int {
    #if canImport(Glibc)
        Glibc.read(fd, buffer, count)
    #else
        Darwin.read(fd, buffer, count)
    #endif
}

private func posixWrite(_ fd: Int32, _ buffer: UnsafeRawPointer?, _ count: Int) -> Int {
    #if canImport(Glibc)
        Glibc.write(fd, buffer, count)
    #else
        Darwin.write(fd, buffer, count)
    #endif
}
