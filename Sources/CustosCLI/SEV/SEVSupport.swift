import ArgumentParser
import CustosAnchors
import CustosCrypto
import CustosSEV
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// File and argument helpers shared by the `custos sev` verbs. No logic of their own: parsing, verification and
/// cryptography are CustosSEV's.
enum SEVFiles {
    /// Reads a whole file through the CLI's one reader (``InputFile``), with the limit of its kind.
    static func read(_ path: String, what: String, kind: InputKind = .kernel) throws(InputFileError) -> [UInt8] {
        try InputFile.read(path, kind: kind, what: what)
    }

    /// A file that holds either raw bytes of `rawSize` or their base64 text (libvirt hands out base64; sevctl
    /// and `PDH_CERT_EXPORT` write raw).
    static func readRawOrBase64(_ path: String, rawSize: Int, what: String) throws -> [UInt8] {
        let bytes = try read(path, what: what, kind: .certificate)
        if bytes.count == rawSize { return bytes }
        let text = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        // Malformed evidence (exit 1, as a short certificate is): the file was read, its bytes are not a certificate.
        guard let decoded = try? Base64.decode(text) else {
            throw CLIError(
                "\(what) \(path) is neither \(rawSize) raw bytes nor base64 (\(bytes.count) bytes)", code: "invalidValue", field: what,
                exitCode: 1)
        }
        return decoded
    }

    /// A 16-byte TEK or TIK file.
    static func readKey(_ path: String, what: String) throws -> SecretBytes {
        var bytes = try read(path, what: what, kind: .key)
        defer { secureZero(&bytes) }
        guard bytes.count == 16 else { throw CLIError("\(what) \(path) must hold 16 raw bytes, has \(bytes.count)") }
        return SecretBytes(bytes)
    }

    /// Writes `bytes` with mode 0600, refusing to follow a symlink; used for TEK/TIK.
    static func writeSecret(_ bytes: [UInt8], to path: String) throws {
        _ = unlink(path)
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw CLIError("cannot create \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        guard fchmod(fd, 0o600) == 0 else { throw CLIError("cannot set mode 0600 on \(path)") }
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == bytes.count else { throw CLIError("short write to \(path)") }
    }

    static func writeText(_ text: String, to path: String) throws {
        do { try Data((text + "\n").utf8).write(to: URL(fileURLWithPath: path)) } catch {
            throw CLIError("cannot write \(path): \(error.localizedDescription)")
        }
    }

    static func parsePolicy(_ text: String) throws -> GuestPolicy {
        let value: UInt32?
        if text.lowercased().hasPrefix("0x") { value = UInt32(text.dropFirst(2), radix: 16) } else { value = UInt32(text) }
        guard let value else { throw ValidationError("policy must be a 32-bit number (decimal or 0x-hex), got \(text)") }
        return GuestPolicy(rawValue: value)
    }

    /// The error as the contract reports it (its code and offset). Exit 2 by default: the owner's own inputs
    /// (firmware, kernel, secrets, parameters); platform evidence passes `error.exitStatus` (1 for a malformed or
    /// forged certificate).
    static func sevError(_ error: SEVError, exitCode: Int32 = 2) -> CLIError {
        CLIError(error.description, code: error.code.name, offset: error.offset, exitCode: exitCode)
    }
}

/// A read-only, private mapping of a whole regular file, unmapped on deinit.
///
/// `custos sev measure` hashes a multi-MiB firmware image straight from the page cache: no 4 MiB allocation to
/// fault in and no copy (issue 4 "Performance"; measured with scripts/sev/bench-measure.sh). Non-regular files
/// (pipes, /dev/null) and empty files are not mapped; callers fall back to ``SEVFiles/read(_:what:)``. As with any
/// mapping, a file truncated while it is hashed makes the next access fault with SIGBUS; ``withBytes(_:)`` turns
/// that into a one-line error and exit status 2 instead of a crash (copying the file out first would cost a
/// third of the command's time).
final class MappedFile {
    private let base: UnsafeMutableRawPointer
    let count: Int

    /// Maps `path`, or returns nil when it is not a non-empty regular file that can be mapped.
    init?(path: String) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG, let size = Int(exactly: info.st_size), size > 0,
            size <= InputKind.firmware.limit
        else { return nil }
        #if canImport(Glibc)
            let flags = MAP_PRIVATE | MAP_POPULATE
        #else
            let flags = MAP_PRIVATE
        #endif
        guard let pointer = mmap(nil, size, PROT_READ, flags, fd, 0), pointer != MAP_FAILED else { return nil }
        base = pointer
        count = size
    }

    deinit { munmap(base, count) }

    /// Lends the bytes; they must not escape `body`. While `body` runs, SIGBUS (the file shrank under the mapping)
    /// prints an error and exits with status 2; the previous handler is restored afterwards.
    func withBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        var action = sigaction()
        var previous = sigaction()
        #if canImport(Glibc)
            action.__sigaction_handler.sa_handler = { _ in mappedFileShrank() }
        #else
            action.__sigaction_u.__sa_handler = { _ in mappedFileShrank() }
        #endif
        sigemptyset(&action.sa_mask)
        let installed = sigaction(SIGBUS, &action, &previous) == 0
        defer { if installed { sigaction(SIGBUS, &previous, nil) } }
        return try body(UnsafeRawBufferPointer(start: base, count: count))
    }
}

/// The SIGBUS handler of ``MappedFile/withBytes(_:)``: async-signal-safe (a static message, `write`, `_exit`).
private func mappedFileShrank() {
    let message: StaticString = "error: the firmware file shrank while it was being hashed; nothing was measured\n"
    _ = write(2, message.utf8Start, message.utf8CodeUnitCount)
    _exit(2)
}

/// Where the platform chain comes from: a folder, or libvirt's pdh + cert-chain.
struct PlatformInput: ParsableArguments {
    @Option(name: .long, help: "Folder with cek.cert pek.cert oca.cert pdh.cert (raw 0x824-byte SEV certificates).")
    var platform: String?
    @Option(name: .long, help: "PDH certificate: raw 2084 bytes or libvirt's base64 'pdh'.")
    var pdh: String?
    @Option(name: .customLong("cert-chain"), help: "libvirt's 'cert-chain' PEK‖OCA‖CEK: raw 6252 bytes or base64.")
    var certChain: String?

    func load() throws -> PlatformCertificates { try Self.load(platform: platform, pdh: pdh, certChain: certChain) }

    static func load(platform: String?, pdh: String?, certChain: String?) throws -> PlatformCertificates {
        do {
            if let platform {
                func cert(_ name: String) throws -> SEVCertificate {
                    do {
                        return try SEVCertificate(bytes: try SEVFiles.read("\(platform)/\(name)", what: name, kind: .certificate))
                    } catch let error
                        as SEVError
                    {
                        throw CLIError(
                            "\(platform)/\(name): \(error)", code: error.code.name, field: name, offset: error.offset,
                            exitCode: error.exitStatus)
                    }
                }
                return PlatformCertificates(
                    pdh: try cert("pdh.cert"), pek: try cert("pek.cert"), oca: try cert("oca.cert"), cek: try cert("cek.cert"))
            }
            guard let pdh, let certChain else { throw ValidationError("give --platform DIR, or --pdh FILE with --cert-chain FILE") }
            return try PlatformCertificates(
                pdh: try SEVFiles.readRawOrBase64(pdh, rawSize: SEVCertificate.size, what: "PDH"),
                certChain: try SEVFiles.readRawOrBase64(certChain, rawSize: 3 * SEVCertificate.size, what: "cert-chain"))
        } catch let error as SEVError {
            throw SEVFiles.sevError(error, exitCode: error.exitStatus)
        }
    }
}

/// The AMD roots to verify against: a folder, or every pinned product line.
struct RootsInput: ParsableArguments {
    @Option(
        name: .long,
        help:
            "Folder with ark.cert and ask.cert of one product line, or with <line>/ark.cert and <line>/ask.cert subfolders. Default: every pinned product line in Certs/amd."
    )
    var roots: String?
    @Option(name: .long, help: "The Certs directory (default: $CUSTOS_CERTS, ./Certs, or the source tree's Certs).")
    var certs: String?

    func load() throws -> [AMDRoots] {
        let fm = FileManager.default
        if let roots {
            func pair(_ dir: String, _ line: ProductLine) throws -> AMDRoots {
                do {
                    return try AMDRoots(
                        productLine: line, ark: try SEVFiles.read("\(dir)/ark.cert", what: "ARK", kind: .certificate),
                        ask: try SEVFiles.read("\(dir)/ask.cert", what: "ASK", kind: .certificate))
                } catch let error as SEVError { throw CLIError("\(dir): \(error)") }
            }
            if fm.fileExists(atPath: "\(roots)/ark.cert") {
                // Name the product line from the published display hashes when it is one of AMD's.
                var found = try pair(roots, ProductLine(URL(fileURLWithPath: roots).lastPathComponent))
                if let line = ProductLine.publishedDisplayHashes.first(where: { $0.value.ark == Hex.encode(found.ark.displayHash) })?.key {
                    found = AMDRoots(productLine: line, ark: found.ark, ask: found.ask)
                }
                return [found]
            }
            let lines = ProductLine.allPublished.filter { fm.fileExists(atPath: "\(roots)/\($0.name)/ark.cert") }
            guard !lines.isEmpty else { throw CLIError("\(roots) has neither ark.cert/ask.cert nor <line>/ark.cert subfolders") }
            return try lines.map { try pair("\(roots)/\($0.name)", $0) }
        }
        let store: AnchorStore
        do { store = try AnchorStore(directory: AnchorStore.locateDirectory(explicit: certs)) } catch { throw CLIError(error.description) }
        var out: [AMDRoots] = []
        var problems: [String] = []
        for line in ProductLine.allPublished {
            do {
                let ark = try store.load("amd-\(line.name)-ark")
                let ask = try store.load("amd-\(line.name)-ask")
                out.append(try AMDRoots(productLine: line, ark: ark, ask: ask))
            } catch {
                problems.append("\(line): \(error)")
            }
        }
        guard !out.isEmpty else {
            throw CLIError("no pinned AMD roots are installed (run `custos certs install`): \(problems.joined(separator: "; "))")
        }
        return out
    }
}

/// The launch inputs of `measure` and `check-measurement`.
struct LaunchOptions: ParsableArguments {
    @Option(name: .long, help: "The OVMF image (the stateless <loader>).") var firmware: String
    @Option(name: .long, help: "Kernel (direct boot with kernelHashes='yes').") var kernel: String?
    @Option(name: .long, help: "Initrd (with --kernel).") var initrd: String?
    @Option(name: .long, help: "Kernel command line (with --kernel).") var cmdline: String?
    @Option(name: .long, help: "Guest policy (0x3 SEV, 0x7 SEV-ES; bit 2 selects SEV-ES).") var policy: String
    @Option(name: .long, help: "SEV-ES: vCPUs at launch.") var vcpus: Int = 1
    @Option(name: .customLong("cpu-family"), help: "SEV-ES: guest CPU family.") var cpuFamily: Int?
    @Option(name: .customLong("cpu-model"), help: "SEV-ES: guest CPU model.") var cpuModel: Int?
    @Option(name: .customLong("cpu-stepping"), help: "SEV-ES: guest CPU stepping.") var cpuStepping: Int?
    @Option(name: .customLong("vmsa-variant"), help: "SEV-ES VMSA: legacy (stock QEMU/KVM) or init2.") var vmsaVariant: String = "legacy"

    /// The launch inputs; with `readFirmware: false` the firmware is left empty for ``digest()`` to map.
    func inputs(readFirmware: Bool = true) throws -> LaunchInputs {
        let policy = try SEVFiles.parsePolicy(policy)
        guard let variant = VMSAVariant(rawValue: vmsaVariant) else { throw ValidationError("--vmsa-variant must be legacy or init2") }
        guard (1...4096).contains(vcpus) else { throw ValidationError("--vcpus must be 1…4096") }
        var signature: CPUSignature? = nil
        if let cpuFamily, let cpuModel, let cpuStepping {
            do { signature = try CPUSignature(family: cpuFamily, model: cpuModel, stepping: cpuStepping) } catch {
                throw ValidationError(error.description)
            }
        } else if policy.isEncryptedState {
            throw ValidationError("SEV-ES (policy bit 2) needs --cpu-family, --cpu-model and --cpu-stepping")
        }
        if kernel == nil, initrd != nil || cmdline != nil { throw ValidationError("--initrd and --cmdline need --kernel") }
        return LaunchInputs(
            firmware: readFirmware ? try SEVFiles.read(firmware, what: "firmware", kind: .firmware) : [],
            kernel: try kernel.map { try SEVFiles.read($0, what: "kernel") },
            initrd: try initrd.map { try SEVFiles.read($0, what: "initrd") },
            cmdline: cmdline, policy: policy, vcpus: vcpus, cpuSignature: signature, vmsaVariant: variant)
    }

    /// The expected launch digest. A regular firmware file is mapped and hashed in place (see ``MappedFile``).
    func digest() throws -> LaunchDigest {
        do {
            if let mapped = MappedFile(path: firmware) {
                let inputs = try inputs(readFirmware: false)
                return try mapped.withBytes { (bytes) throws(SEVError) in try LaunchDigest(inputs, firmware: bytes) }
            }
            return try LaunchDigest(try inputs())
        } catch let error as SEVError { throw SEVFiles.sevError(error) }
    }
}

/// The firmware version triple LAUNCH_MEASURE MACs.
struct FirmwareVersionOptions: ParsableArguments {
    @Option(name: .customLong("api-major"), help: "sev-api-major.") var apiMajor: UInt8?
    @Option(name: .customLong("api-minor"), help: "sev-api-minor.") var apiMinor: UInt8?
    @Option(name: .customLong("build-id"), help: "sev-build-id.") var buildID: UInt8?

    var version: FirmwareVersion? {
        guard let apiMajor, let apiMinor, let buildID else { return nil }
        return FirmwareVersion(apiMajor: apiMajor, apiMinor: apiMinor, buildID: buildID)
    }
}

/// A SEV error in the contract's shape (`code`, `message`, `field`, `offset`); a chain failure's link is its field.
struct SEVErrorJSON: Encodable {
    let code: String
    let message: String
    let field: String?
    let offset: Int?
    init(_ error: SEVError, link: ChainLink? = nil) {
        code = error.code.name
        message = error.reason
        field = link?.rawValue
        offset = error.offset
    }
}
