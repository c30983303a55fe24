public import CustosCrypto
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

// MARK: - Launch secrets of a SEV / SEV-ES guest (guest.md §3)

/// The secrets the launcher injected, as the `efi_secret` driver shows them: one file per entry in
/// `<securityfs>/secrets/coco/<guid>` (lower-case GUID, mode 0440, read to EOF). Unlinking a file wipes the entry
/// from guest memory (guest.md §3.3), which is what ``remove(guid:)`` does once the secret is safe on tmpfs.
public struct EFISecretStore: Sendable {
    /// The real securityfs mount; only there does the store load the driver itself.
    public static let defaultRoot = "/sys/kernel/security"
    /// The largest secret read (the whole OVMF secret area is a few KiB).
    public static let maximumBytes = 1 << 20

    public let securityfsRoot: String
    /// Runs `modprobe efi_secret` (replaceable in tests; only called for the real root).
    let loadDriver: @Sendable () -> Void

    public var directory: String { securityfsRoot + "/secrets/coco" }

    public init(securityfsRoot: String) {
        self.securityfsRoot = securityfsRoot
        self.loadDriver = Self.modprobe
    }

    /// The GUID in the file-name form: lower-case 8-4-4-4-12 hex.
    /// - Throws: ``AgentError`` (`usage`) for anything else.
    public static func normalize(guid: String) throws(AgentError) -> String {
        let lower = guid.lowercased()
        let groups = lower.split(separator: "-", omittingEmptySubsequences: false)
        guard groups.map(\.count) == [8, 4, 4, 4, 12], groups.allSatisfy({ $0.allSatisfy(\.isHexDigit) && $0.allSatisfy(\.isASCII) }) else {
            throw AgentError(.usage, .unusable, "\"\(guid.prefix(64))\" is not a GUID (8-4-4-4-12 hex digits)")
        }
        return lower
    }

    /// Makes sure `secrets/coco` is there: securityfs mounted, driver loaded (`modprobe efi_secret` when the root is
    /// the real one).
    /// - Throws: ``AgentError`` (`secret`, unusable) naming what is missing.
    public func ensureDirectory() throws(AgentError) {
        if POSIXFile.isDirectory(directory) { return }
        let mounted = POSIXFile.isDirectory(securityfsRoot) && !((try? POSIXFile.list(securityfsRoot)) ?? []).isEmpty
        guard mounted else {
            throw AgentError(
                .secret, .unusable,
                "securityfs is not mounted at \(securityfsRoot) (mount -t securityfs securityfs \(securityfsRoot))")
        }
        if securityfsRoot == Self.defaultRoot {
            loadDriver()
            if POSIXFile.isDirectory(directory) { return }
        }
        throw AgentError(
            .secret, .unusable,
            "no \(directory): the efi_secret driver is absent (CONFIG_EFI_SECRET, modprobe efi_secret) or the guest has no "
                + "injected secret area (SEV/SEV-ES with OVMF AmdSev only)")
    }

    /// The GUIDs present (never the values).
    public func list() throws(AgentError) -> [String] {
        try ensureDirectory()
        do { return try POSIXFile.list(directory) } catch { throw AgentError(.secret, .unusable, error.message) }
    }

    /// The secret of entry `guid`.
    /// - Throws: ``AgentError`` (`secret`, unusable) when the entry is absent (listing what is there) or unreadable.
    public func read(guid: String) throws(AgentError) -> SecretBytes {
        let name = try Self.normalize(guid: guid)
        try ensureDirectory()
        let path = directory + "/" + name
        guard POSIXFile.exists(path) else {
            let present = (try? POSIXFile.list(directory)) ?? []
            throw AgentError(
                .secret, .unusable,
                "no secret \(name) in \(directory) (present: \(present.isEmpty ? "none" : present.joined(separator: ", ")))")
        }
        do { return SecretBytes(try POSIXFile.read(path, limit: Self.maximumBytes)) } catch {
            throw AgentError(.secret, .unusable, error.message)
        }
    }

    /// Unlinks entry `guid`: the driver zeroes the secret and drops the entry from the table.
    public func remove(guid: String) throws(AgentError) {
        let path = directory + "/" + (try Self.normalize(guid: guid))
        guard unlink(path) == 0 else {
            throw AgentError(.secret, .unusable, POSIXFile.Failure(errno: errno, operation: "unlink", path: path).message)
        }
    }

    @Sendable static func modprobe() {
        for candidate in ["/usr/sbin/modprobe", "/sbin/modprobe"] where FileManager.default.isExecutableFile(atPath: candidate) {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: candidate)
            process.arguments = ["efi_secret"]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            guard (try? process.run()) != nil else { return }
            process.waitUntilExit()
            return
        }
    }
}
