import CustosCrypto
import CustosTDX
public import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

// MARK: - A fake configfs-tsm tree (guest.md §1)

/// Emulates `<configfs>/tsm/report` in an ordinary directory, for the guest agent's tests.
///
/// A thread watches the report directory. For each entry the agent creates with `mkdir` it adds what the kernel
/// would: `inblob` (empty), `generation` (`0\n`) and `provider` (`tdx_guest\n`, written last). When the agent has
/// written 64 bytes to `inblob`, it makes a quote with ``TDXQuoteFactory`` whose REPORTDATA is those bytes, writes it
/// to `outblob`, then bumps `generation` to 1 (each file replaced by a rename, so a reader never sees half).
///
/// With `readRaces` = n, the first n entries bump `generation` *during* the agent's read: `outblob` is a FIFO, and
/// once the agent has opened it the fake writes `generation` 2 before it writes the quote — the agent reads a whole
/// quote and then a generation that moved, deterministically.
///
/// With ``init(root:factory:concurrentWrites:readRaces:provider:)``'s `concurrentWrites` = n, the first n entries behave as if
/// another process wrote `inblob` too: `outblob` holds the other writer's quote and `generation` reads 2 — what the
/// agent must detect and retry on a fresh entry.
///
/// Unlike configfs, `rmdir` of an entry fails here (its files are real); the tree is removed with the test's
/// directory.
public final class FakeConfigfsTSM: Sendable {
    public let root: URL
    public var reportDirectory: URL { root.appendingPathComponent("tsm/report") }
    let factory: TDXQuoteFactory
    let provider: String

    struct State {
        var concurrentWritesLeft: Int
        var readRacesLeft: Int
        var initialized: Set<String> = []
        var answered: Set<String> = []
        var entries: [String] = []
        var quotes = 0
        var races = 0
        var running = false
        var stopRequested = false
    }
    let state: Mutex<State>
    let stopped = DispatchSemaphore(value: 0)

    /// - Parameters:
    ///   - root: the fake configfs root (created).
    ///   - factory: makes the quotes.
    ///   - concurrentWrites: how many of the first entries get another writer's quote and generation 2.
    ///   - readRaces: how many of the (following) entries get generation 2 during the outblob read.
    ///   - provider: what `provider` reads (`tdx_guest`).
    public init(
        root: URL, factory: TDXQuoteFactory, concurrentWrites: Int = 0, readRaces: Int = 0,
        provider: String = "tdx_guest"
    ) throws {
        self.root = root
        self.factory = factory
        self.provider = provider
        state = Mutex(State(concurrentWritesLeft: concurrentWrites, readRacesLeft: readRaces))
        try FileManager.default.createDirectory(at: root.appendingPathComponent("tsm/report"), withIntermediateDirectories: true)
    }

    /// Entries the agent created, in order.
    public var entries: [String] { state.withLock { $0.entries } }
    /// Quotes handed out (concurrent-writer answers included).
    public var quotesIssued: Int { state.withLock { $0.quotes } }
    /// Entries answered as if another writer had been there.
    public var racesInjected: Int { state.withLock { $0.races } }

    /// Starts the watcher thread.
    public func start() {
        state.withLock { $0.running = true }
        Thread.detachNewThread { [self] in
            while !state.withLock({ $0.stopRequested }) {
                poll()
                usleep(1000)
            }
            stopped.signal()
        }
    }

    /// Stops the watcher thread and waits for it.
    public func stop() {
        let wasRunning = state.withLock { state -> Bool in
            state.stopRequested = true
            return state.running
        }
        if wasRunning { stopped.wait() }
    }

    func poll() {
        let fm = FileManager.default
        guard let names = try? fm.contentsOfDirectory(atPath: reportDirectory.path) else { return }
        for name in names.sorted() {
            let entry = reportDirectory.appendingPathComponent(name)
            let isNew = state.withLock { state -> Bool in
                guard !state.initialized.contains(name) else { return false }
                state.initialized.insert(name)
                state.entries.append(name)
                return true
            }
            if isNew {
                _ = fm.createFile(
                    atPath: entry.appendingPathComponent("inblob").path, contents: nil, attributes: [.posixPermissions: 0o600])
                Self.replace(entry.appendingPathComponent("generation"), Array("0\n".utf8))
                Self.replace(entry.appendingPathComponent("provider"), Array("\(provider)\n".utf8))
                continue
            }
            guard !state.withLock({ $0.answered.contains(name) }),
                let inblob = fm.contents(atPath: entry.appendingPathComponent("inblob").path), inblob.count == 64
            else { continue }
            enum Answer { case normal, concurrentWrite, readRace }
            let answer = state.withLock { state -> Answer in
                state.answered.insert(name)
                state.quotes += 1
                if state.concurrentWritesLeft > 0 {
                    state.concurrentWritesLeft -= 1
                    state.races += 1
                    return .concurrentWrite
                }
                if state.readRacesLeft > 0 {
                    state.readRacesLeft -= 1
                    state.races += 1
                    return .readRace
                }
                return .normal
            }
            let reportData = answer == .concurrentWrite ? [UInt8](repeating: 0xee, count: 64) : [UInt8](inblob)
            guard let quote = try? factory.quote(reportData: reportData) else { continue }
            let outblob = entry.appendingPathComponent("outblob")
            let generation = entry.appendingPathComponent("generation")
            switch answer {
            case .normal:
                Self.replace(outblob, quote)
                Self.replace(generation, Array("1\n".utf8))
            case .concurrentWrite:
                Self.replace(outblob, quote)
                Self.replace(generation, Array("2\n".utf8))
            case .readRace:
                guard mkfifo(outblob.path, 0o600) == 0 else { continue }
                Self.replace(generation, Array("1\n".utf8))
                Thread.detachNewThread { [self] in feedDuringRead(outblob, generation: generation, quote: quote) }
            }
        }
    }

    /// Waits for a reader on the `outblob` FIFO, bumps `generation`, then writes the quote and closes.
    func feedDuringRead(_ outblob: URL, generation: URL, quote: [UInt8]) {
        var fd: Int32 = -1
        while fd < 0 {
            if state.withLock({ $0.stopRequested }) { return }
            fd = open(outblob.path, O_WRONLY | O_NONBLOCK | O_CLOEXEC)  // ENXIO until a reader opened it
            if fd < 0 { usleep(1000) }
        }
        defer { close(fd) }
        _ = fcntl(fd, F_SETFL, 0)
        Self.replace(generation, Array("2\n".utf8))
        var written = 0
        while written < quote.count {
            let n = quote.withUnsafeBytes { raw -> Int in
                guard let base = raw.baseAddress else { return -1 }
                return write(fd, base + written, raw.count - written)
            }
            if n <= 0 { return }
            written += n
        }
    }

    /// Replaces a file by writing a hidden temporary and renaming it.
    static func replace(_ url: URL, _ bytes: [UInt8]) {
        let temporary = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).\(UUID().uuidString)")
        guard FileManager.default.createFile(atPath: temporary.path, contents: Data(bytes)) else { return }
        rename(temporary.path, url.path)
    }
}

// MARK: - Fake sysfs (CCEL) and securityfs (efi_secret) trees

/// Directories laid out as the kernel's, for the agent's `--sysfs` and `--securityfs`.
public enum FakeGuestTrees {
    /// The real CCEL of the COS-113 TD (go-tdx-guest) in `$CUSTOS_TESTDATA`: the ACPI table and the log area.
    public static func realCCEL() throws -> (table: [UInt8], data: [UInt8]) {
        (try TestData.bytes("tdx/eventlog/gotdx_ccel_table.dat"), try TestData.bytes("tdx/eventlog/gotdx_ccel_data.dat"))
    }

    /// RTMR0…3 of the quote that TD produced (q10): its CCEL replays to these (MANIFEST), so a generated quote with
    /// them is consistent with the real log.
    public static func realRTMRs() throws -> [[UInt8]] {
        try Quote(parsing: TestData.bytes("tdx/quotes/q10_gotdx_cos113_v4.bin")).body.rtmrs
    }

    /// `<root>/firmware/acpi/tables/CCEL` and `…/tables/data/CCEL`.
    public static func makeSysfs(at root: URL, table: [UInt8]?, data: [UInt8]?) throws {
        let tables = root.appendingPathComponent("firmware/acpi/tables")
        try FileManager.default.createDirectory(at: tables.appendingPathComponent("data"), withIntermediateDirectories: true)
        if let table { try Data(table).write(to: tables.appendingPathComponent("CCEL")) }
        if let data { try Data(data).write(to: tables.appendingPathComponent("data/CCEL")) }
    }

    /// `<root>/secrets/coco/<guid>` (mode 0440) for each secret; `nil` secrets makes a mounted securityfs without
    /// the efi_secret directory.
    public static func makeSecurityfs(at root: URL, secrets: [String: [UInt8]]?) throws {
        try FileManager.default.createDirectory(at: root.appendingPathComponent("lsm-placeholder"), withIntermediateDirectories: true)
        guard let secrets else { return }
        let coco = root.appendingPathComponent("secrets/coco")
        try FileManager.default.createDirectory(at: coco, withIntermediateDirectories: true)
        for (guid, value) in secrets {
            let file = coco.appendingPathComponent(guid)
            try Data(value).write(to: file)
            try FileManager.default.setAttributes([.posixPermissions: 0o440], ofItemAtPath: file.path)
        }
    }
}
