import CustosTDX
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

// MARK: - Where TD quotes come from

/// A source of TD quotes bound to a 64-byte REPORTDATA.
public protocol TDQuoteSource: Sendable {
    /// A short name for messages (`configfs-tsm`, `/dev/tdx_guest`).
    var name: String { get }
    /// A quote whose TD report carries exactly `reportData`.
    /// - Throws: ``AgentError`` at stage `evidence`.
    func quote(reportData: [UInt8]) async throws(AgentError) -> [UInt8]
}

/// Chooses the quote source as guest.md §1 and issue 13 say: configfs-tsm when `<configfs>/tsm/report` exists,
/// the legacy `/dev/tdx_guest` ioctl only when it does not.
public enum TDQuoteSources {
    /// - Parameters:
    ///   - configfsRoot: the configfs mount (`/sys/kernel/config`, or a test tree).
    ///   - deviceDirectory: where `tdx_guest` would be (`/dev`).
    /// - Throws: ``AgentError`` (`evidence`, unusable) when neither exists.
    public static func detect(configfsRoot: String, deviceDirectory: String = "/dev") throws(AgentError) -> any TDQuoteSource {
        let tsm = ConfigfsTSMQuoteSource(configfsRoot: configfsRoot)
        if POSIXFile.isDirectory(tsm.reportDirectory) { return tsm }
        let device = deviceDirectory + "/tdx_guest"
        if POSIXFile.exists(device) { return TDXGuestDeviceQuoteSource(devicePath: device) }
        throw AgentError(
            .evidence, .unusable,
            "no configfs-tsm report directory at \(tsm.reportDirectory) and no \(device): mount configfs "
                + "(mount -t configfs none \(configfsRoot)), load the provider (modprobe tdx_guest), and check that this guest is a TD")
    }
}

// MARK: - configfs-tsm (Linux ≥ 6.7)

/// TD quotes through `<configfs>/tsm/report/<entry>` (guest.md §1.8): a private entry per attempt, one `inblob`
/// write of the 64 bytes, `outblob` read to EOF, `generation` checked before and after (a concurrent writer means
/// retry on a fresh entry), the quote's REPORTDATA compared with what was written, the entry removed with `rmdir`.
public struct ConfigfsTSMQuoteSource: TDQuoteSource {
    /// Attempts on fresh entries when another writer changed `generation`, the quote's REPORTDATA was not ours, or
    /// the provider was busy.
    public static let maximumAttempts = 5
    /// The largest `outblob` read (the newest kernels allow 16 MiB).
    public static let maximumQuoteBytes = 16 << 20
    /// The provider name `tdx_guest` writes (with a trailing newline, trimmed before comparing; T11).
    public static let tdxProvider = "tdx_guest"

    public let configfsRoot: String
    /// How long to wait for attributes to appear after `mkdir` and for `generation` to move after the `inblob`
    /// close. configfs does both synchronously, so on a kernel the first look succeeds; an emulated tree (the tests'
    /// fake configfs) needs a moment.
    public var settleTimeout: Duration = .seconds(5)
    /// The wait before retrying after `EBUSY`/`ETIMEDOUT` (doubled each time; T9).
    public var busyBackoff: Duration = .seconds(1)

    public var name: String { "configfs-tsm" }
    public var reportDirectory: String { configfsRoot + "/tsm/report" }

    public init(configfsRoot: String) { self.configfsRoot = configfsRoot }

    enum Attempt {
        case quote([UInt8])
        case retry(String, busy: Bool)
    }

    public func quote(reportData: [UInt8]) async throws(AgentError) -> [UInt8] {
        guard reportData.count == 64 else {
            throw AgentError(.evidence, .unusable, "REPORTDATA must be exactly 64 bytes for TDX, is \(reportData.count) (T3)")
        }
        removeStaleEntries()
        var reasons: [String] = []
        var backoff = busyBackoff
        for _ in 0..<Self.maximumAttempts {
            switch try await attempt(reportData) {
            case .quote(let quote): return quote
            case .retry(let reason, let busy):
                reasons.append(reason)
                if busy {
                    try? await Task.sleep(for: backoff)
                    backoff = min(backoff * 2, .seconds(30))
                }
            }
        }
        throw AgentError(
            .evidence, .unusable,
            "no consistent quote from configfs-tsm after \(Self.maximumAttempts) attempts: " + reasons.joined(separator: "; "))
    }

    /// Removes entries a crashed agent left behind (T13): `custos-agent-<pid>-<hex>` whose process is gone. Leaked
    /// entries pin kernel memory and, on newer kernels, keep the provider from registering again.
    func removeStaleEntries() {
        guard let names = try? POSIXFile.list(reportDirectory) else { return }
        for name in names where name.hasPrefix("custos-agent-") {
            let parts = name.split(separator: "-")
            guard parts.count == 4, let pid = Int32(parts[2]), pid > 0, pid != getpid() else { continue }
            if kill(pid, 0) != 0 && errno == ESRCH { rmdir(reportDirectory + "/" + name) }
        }
    }

    func fail(_ message: String) -> AgentError { AgentError(.evidence, .unusable, message) }

    func attempt(_ reportData: [UInt8]) async throws(AgentError) -> Attempt {
        let entry = reportDirectory + "/custos-agent-\(getpid())-\(POSIXFile.randomHex(8))"
        guard mkdir(entry, 0o700) == 0 else {
            let code = errno
            switch code {
            case ENXIO: throw fail("mkdir \(entry): no TSM provider is registered (ENXIO): modprobe tdx_guest; is this guest a TD?")
            case ENOENT: throw fail("mkdir \(entry): configfs-tsm is not there (ENOENT): mount configfs and load tsm/tdx_guest")
            default: throw fail(POSIXFile.Failure(errno: code, operation: "mkdir", path: entry).message)
            }
        }
        // Never a recursive delete (T12, T13): configfs removes the attributes with the entry.
        defer { rmdir(entry) }

        let provider = try await settledText(entry + "/provider")
        guard provider == Self.tdxProvider else {
            throw fail("the TSM provider is \"\(provider)\", not \(Self.tdxProvider): this agent sends TDX quotes only")
        }
        let g0 = try generation(entry)
        do { try POSIXFile.writeAttribute(entry + "/inblob", reportData) } catch { throw fail(error.message) }
        // The commit happens at close and its error is discarded (T4): the write counts only if generation moved.
        var g = try generation(entry)
        let clock = ContinuousClock()
        let deadline = clock.now + settleTimeout
        while g == g0 && clock.now < deadline {
            try? await Task.sleep(for: .milliseconds(2))
            g = try generation(entry)
        }
        guard g != g0 else { throw fail("the inblob write was not committed (generation stayed \(g0))") }
        guard g == g0 + 1 else { return .retry("another writer changed generation from \(g0) to \(g) before the read", busy: false) }
        let quote: [UInt8]
        do { quote = try POSIXFile.read(entry + "/outblob", limit: Self.maximumQuoteBytes) } catch {
            switch error.errno {
            case EBUSY, EINTR, ETIMEDOUT, EIO: return .retry(error.message, busy: true)
            default: throw fail(error.message)
            }
        }
        let g1 = try generation(entry)
        guard g1 == g0 + 1 else { return .retry("generation changed from \(g0 + 1) to \(g1) during the read", busy: false) }
        // A short outblob is what pre-7.0 kernels return when GetQuote failed silently (T8).
        guard quote.count >= 632 else { return .retry("outblob is \(quote.count) bytes, not a quote", busy: true) }
        let parsed: Quote
        do { parsed = try Quote(parsing: quote) } catch {
            throw fail("outblob is not a TD quote: \(error.reason)")
        }
        guard parsed.body.reportData == reportData else {
            return .retry("the quote's REPORTDATA is not the inblob written (T5)", busy: false)
        }
        return .quote(quote)
    }

    /// The trimmed text of an attribute, waiting up to ``settleTimeout`` for it to appear.
    func settledText(_ path: String) async throws(AgentError) -> String {
        let clock = ContinuousClock()
        let deadline = clock.now + settleTimeout
        while true {
            do {
                let bytes = try POSIXFile.read(path, limit: 4096)
                return String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            } catch {
                guard error.errno == ENOENT, clock.now < deadline else { throw fail(error.message) }
            }
            try? await Task.sleep(for: .milliseconds(2))
        }
    }

    func generation(_ entry: String) throws(AgentError) -> UInt64 {
        let path = entry + "/generation"
        let bytes: [UInt8]
        do { bytes = try POSIXFile.read(path, limit: 64) } catch { throw fail(error.message) }
        let text = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard let value = UInt64(text) else { throw fail("\(path) is \"\(text.prefix(32))\", not a decimal counter") }
        return value
    }
}

// MARK: - The legacy /dev/tdx_guest ioctl (Linux 6.2–6.6)

/// `TDX_CMD_GET_REPORT0` on `/dev/tdx_guest` (guest.md §1.11): used only when configfs-tsm is absent.
///
/// The ioctl returns a TDREPORT, which only the platform's Quoting Enclave can verify; turning it into a quote needs
/// Intel's QGS over vsock or an out-of-tree ioctl, which Custos does not speak (guest-components dropped that path
/// too). So this source gets the TDREPORT — proving the device works and REPORTDATA is bound — and then fails with
/// the reason, rather than sending evidence no verifier accepts (T14).
public struct TDXGuestDeviceQuoteSource: TDQuoteSource {
    /// `_IOWR('T', 1, struct tdx_report_req)` with a 64 + 1024-byte request.
    static let getReport0: UInt = 0xC440_5401

    public let devicePath: String
    public var name: String { devicePath }

    public init(devicePath: String) { self.devicePath = devicePath }

    /// The 1024-byte TDREPORT for `reportData`.
    public func tdReport(reportData: [UInt8]) throws(AgentError) -> [UInt8] {
        guard reportData.count == 64 else { throw AgentError(.evidence, .unusable, "REPORTDATA must be 64 bytes") }
        let fd = open(devicePath, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else {
            throw AgentError(.evidence, .unusable, POSIXFile.Failure(errno: errno, operation: "open", path: devicePath).message)
        }
        defer { close(fd) }
        var request = reportData + [UInt8](repeating: 0, count: 1024)
        let result = request.withUnsafeMutableBytes { raw -> Int32 in
            guard let base = raw.baseAddress else { return -1 }
            return ioctl(fd, Self.getReport0, base)
        }
        guard result == 0 else {
            throw AgentError(
                .evidence, .unusable, POSIXFile.Failure(errno: errno, operation: "ioctl TDX_CMD_GET_REPORT0", path: devicePath).message)
        }
        return Array(request[64...])
    }

    public func quote(reportData: [UInt8]) async throws(AgentError) -> [UInt8] {
        _ = try tdReport(reportData: reportData)
        throw AgentError(
            .evidence, .unusable,
            "\(devicePath) gives a TDREPORT, which a remote verifier cannot check; a quote needs configfs-tsm (Linux ≥ 6.7, "
                + "CONFIG_TSM_REPORTS, modprobe tdx_guest)")
    }
}
