import CustosAgent
import CustosCrypto
import CustosKBS
import CustosTDX
import CustosTestSupport
import Foundation
import Testing

@Suite struct ResourcePathTests {
    @Test func listsAreSplitAndChecked() throws {
        let paths = try ResourcePath.parseList(["default/key/disk,default/cert/tls", "other/key/api"])
        #expect(paths.map(\.description) == ["default/key/disk", "default/cert/tls", "other/key/api"])
        #expect(paths[1].type == "cert" && paths[1].tag == "tls")
    }

    @Test(arguments: ["", "a/b", "a/b/c/d", "a//c", "a/../c", "a/./c", "a/b/c d", "a/b/ü", "/a/b"])
    func malformedPathsAreRefused(text: String) {
        #expect(throws: AgentError(.usage, .unusable, "")) { try ResourcePath.parseList([text]) }
    }

    @Test func twoResourcesForOneFileAreRefused() {
        #expect(throws: AgentError(.usage, .unusable, "")) { try ResourcePath.parseList(["a/key/disk,b/key/disk"]) }
    }
}

@Suite struct KBSClientConfigurationTests {
    struct NoQuotes: TDQuoteSource {
        var name: String { "none" }
        func quote(reportData: [UInt8]) async throws(AgentError) -> [UInt8] { throw AgentError(.evidence, .unusable, "none") }
    }

    @Test(arguments: [
        ("http://127.0.0.1:8080", true), ("http://localhost:8080", true), ("http://[::1]:8080", true), ("https://kbs.example", true),
        ("http://10.0.0.1:8080", false), ("http://kbs.example", false), ("ftp://127.0.0.1", false), ("https://kbs.example/path", false),
        ("kbs.example:8080", false),
    ])
    func plainHTTPOnlyToLoopback(url: String, accepted: Bool) {
        let result = Result { () throws(AgentError) in
            try KBSAgentClient(configuration: KBSClientConfiguration(url: url), quoteSource: NoQuotes(), eventLog: nil)
        }
        #expect(((try? result.get()) != nil) == accepted, "\(url)")
    }

    @Test func insecureHTTPAllowsOtherHosts() throws {
        var configuration = KBSClientConfiguration(url: "http://10.0.0.1:8080")
        configuration.insecureHTTP = true
        _ = try KBSAgentClient(configuration: configuration, quoteSource: NoQuotes(), eventLog: nil)
    }

    /// A server that sends the head of its answer and then trickles the body (a space every 0.5 s, 200 in all): the
    /// exchange has one deadline, so the agent gives up after `requestTimeout` instead of waiting for every byte
    /// (AsyncHTTPClient's own timeouts end at the head, or restart with each read).
    @Test(.timeLimit(.minutes(10))) func aTricklingAnswerMeetsTheDeadline() async throws {
        let server = try PortProcess.tricklingHTTPServer()
        defer { server.stop() }
        var configuration = KBSClientConfiguration(url: "http://127.0.0.1:\(server.port)")
        configuration.requestTimeout = 2
        configuration.handshakeAttempts = 1
        let client = try KBSAgentClient(configuration: configuration, quoteSource: NoQuotes(), eventLog: nil)
        let error = await #expect(throws: AgentError.self) { try await client.fetch([try ResourcePath(parsing: "default/key/disk")]) }
        #expect(error?.kind == .unreachable, "\(String(describing: error))")
        #expect(error?.reason.contains("deadline") == true, "\(String(describing: error))")
    }
}

/// The configfs-tsm source in-process, on the fake tree.
@Suite struct ConfigfsTSMSourceTests {
    static func tree(provider: String = "tdx_guest", concurrentWrites: Int = 0) throws -> FakeConfigfsTSM {
        var spec = TDXQuoteSpec()
        spec.issueDate = "2025-01-01T00:00:00Z"
        let factory = try TDXTestHierarchy().quoteFactory(spec)
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("custos-tsm-\(UUID().uuidString)")
        return try FakeConfigfsTSM(root: root, factory: factory, concurrentWrites: concurrentWrites, provider: provider)
    }

    @Test(.timeLimit(.minutes(10)))
    func quoteCarriesTheReportData() async throws {
        let fake = try Self.tree()
        fake.start()
        defer {
            fake.stop()
            try? FileManager.default.removeItem(at: fake.root)
        }
        var random = SeededRandom("quoteCarriesTheReportData")
        let reportData = (0..<64).map { _ in UInt8.random(in: 0...255, using: &random) }
        let quote = try await ConfigfsTSMQuoteSource(configfsRoot: fake.root.path).quote(reportData: reportData)
        // v4: REPORTDATA at 48 + 520.
        #expect(Array(quote[568..<632]) == reportData)
    }

    @Test(.timeLimit(.minutes(10)))
    func anotherProviderIsRefused() async throws {
        let fake = try Self.tree(provider: "sev_guest")
        fake.start()
        defer {
            fake.stop()
            try? FileManager.default.removeItem(at: fake.root)
        }
        let error = await #expect(throws: AgentError.self) {
            try await ConfigfsTSMQuoteSource(configfsRoot: fake.root.path).quote(reportData: [UInt8](repeating: 1, count: 64))
        }
        #expect(error?.stage == .evidence)
        #expect(error?.reason.contains("sev_guest") == true)
    }

    @Test(.timeLimit(.minutes(10)))
    func persistentRacesGiveUpAfterTheBound() async throws {
        let fake = try Self.tree(concurrentWrites: 100)
        fake.start()
        defer {
            fake.stop()
            try? FileManager.default.removeItem(at: fake.root)
        }
        let error = await #expect(throws: AgentError.self) {
            try await ConfigfsTSMQuoteSource(configfsRoot: fake.root.path).quote(reportData: [UInt8](repeating: 2, count: 64))
        }
        #expect(error?.reason.contains("after \(ConfigfsTSMQuoteSource.maximumAttempts) attempts") == true)
        #expect(fake.entries.count == ConfigfsTSMQuoteSource.maximumAttempts)
    }

    /// Entries of dead agents are removed before a new one is made; a live process's entry stays. No provider
    /// answers here (no watcher), so the attempt itself fails after the settle time, and its own entry goes too.
    @Test(.timeLimit(.minutes(10)))
    func staleEntriesOfDeadAgentsAreRemoved() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("custos-tsm-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        let report = root.appendingPathComponent("tsm/report")
        // pid_max is at most 2^22: no process has this id.
        let stale = report.appendingPathComponent("custos-agent-99999999-00112233aabbccdd")
        let live = report.appendingPathComponent("custos-agent-1-00112233aabbccdd")
        for entry in [stale, live] { try FileManager.default.createDirectory(at: entry, withIntermediateDirectories: true) }
        var source = ConfigfsTSMQuoteSource(configfsRoot: root.path)
        source.settleTimeout = .milliseconds(50)
        let error = await #expect(throws: AgentError.self) { try await source.quote(reportData: [UInt8](repeating: 3, count: 64)) }
        #expect(error?.stage == .evidence)
        #expect(try FileManager.default.contentsOfDirectory(atPath: report.path) == [live.lastPathComponent])
    }

    @Test func absentConfigfsIsAClearError() {
        let error = #expect(throws: AgentError.self) {
            try TDQuoteSources.detect(configfsRoot: "/nonexistent-configfs", deviceDirectory: "/nonexistent-dev")
        }
        #expect(error?.reason.contains("modprobe tdx_guest") == true)
    }

    @Test func shortReportDataIsRefused() async {
        await #expect(throws: AgentError(.evidence, .unusable, "")) {
            try await ConfigfsTSMQuoteSource(configfsRoot: "/nonexistent").quote(reportData: [UInt8](repeating: 0, count: 48))
        }
    }
}

/// The CCEL reader on the real log: what it sends replays to q10's RTMRs (the vendor pairing in MANIFEST.tsv).
@Suite(.enabled(if: TestData.isAvailable, Comment(rawValue: TestData.skipReason)))
struct CCELReaderTests {
    @Test func realLogIsTrimmedAndStillReplays() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("custos-sys-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        let (table, data) = try FakeGuestTrees.realCCEL()
        try FakeGuestTrees.makeSysfs(at: root, table: table, data: data)
        let log = try #require(try CCELReader(sysfsRoot: root.path).read())
        #expect(log.count < data.count)
        #expect(Array(data.prefix(log.count)) == log)
        // Everything cut off is fill (0x00 or 0xFF).
        #expect(data[log.count...].allSatisfy { $0 == 0 || $0 == 0xff })
        #expect(try EventLog(parsing: log).replay() == (try FakeGuestTrees.realRTMRs()))
    }

    @Test func noLogAreaMeansNull() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("custos-sys-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        try FakeGuestTrees.makeSysfs(at: root, table: nil, data: nil)
        #expect(try CCELReader(sysfsRoot: root.path).read() == nil)
    }

    @Test func aTableThatIsNotCCELIsRefused() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("custos-sys-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        let (table, data) = try FakeGuestTrees.realCCEL()
        var other = table
        other[36] = 1  // CC type SEV
        try FakeGuestTrees.makeSysfs(at: root, table: other, data: data)
        #expect(throws: AgentError(.evidence, .unusable, "")) { try CCELReader(sysfsRoot: root.path).read() }
    }
}

@Suite struct SecretFileWriterTests {
    /// A second write replaces the 0400 file whole (rename), leaves no temporary file, keeps mode 0400.
    @Test func writesReplaceAtomicallyWithMode0400() throws {
        try #require(SecretFileWriter.isMemoryBacked("/dev/shm"), "/dev/shm is not tmpfs here")
        let directory = "/dev/shm/custos-writer-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let writer = SecretFileWriter(allowDisk: false)
        let path = try writer.write(SecretBytes(Array("first".utf8)), directory: directory + "/key", name: "disk")
        try writer.write(SecretBytes(Array("second, longer".utf8)), directory: directory + "/key", name: "disk")
        #expect(path == directory + "/key/disk")
        #expect(FileManager.default.contents(atPath: path) == Data("second, longer".utf8))
        #expect(try permissions(path) == 0o400)
        #expect(try permissions(directory + "/key") == 0o700)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory + "/key") == ["disk"])
    }

    /// Every name the resource syntax allows (1–255 bytes) can be written: the temporary name no longer embeds it
    /// (`.<name>.tmp-<16 hex>` passed NAME_MAX above 233 bytes, so such a secret was released and then not stored).
    @Test(arguments: [233, 234, 255]) func longestNamesAreWritten(length: Int) throws {
        try #require(SecretFileWriter.isMemoryBacked("/dev/shm"), "/dev/shm is not tmpfs here")
        let directory = "/dev/shm/custos-writer-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let name = String(repeating: "a", count: length)
        _ = try ResourcePath(parsing: "r/t/" + name)
        let path = try SecretFileWriter(allowDisk: false).write(SecretBytes([7]), directory: directory, name: name)
        #expect(FileManager.default.contents(atPath: path) == Data([7]))
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == [name])
    }

    /// A relative `--out` that does not exist yet is judged by the current directory's file system (the package root,
    /// on disk here): refused with the tmpfs message before anything else (it used to fail with "cannot statfs").
    @Test(.enabled(if: CustosExecutable.isBuilt)) func aRelativeOutIsJudgedByTheCurrentDirectory() throws {
        let name = "custos-rel-\(UUID().uuidString)"
        try #require(!SecretFileWriter.isMemoryBacked(TestData.packageRoot.path), "the package root is on tmpfs here")
        let result = try CustosExecutable.run([
            "agent", "fetch", "--url", "http://127.0.0.1:9", "--resource", "default/key/disk", "--out", name + "/secrets", "--json",
        ])
        #expect(result.status == 2)
        let message = try JSONValue.parse(result.stdout).value(atPath: "error.message")?.stringValue ?? ""
        #expect(message.contains("not on tmpfs or ramfs"), "\(result.stdout) \(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: TestData.packageRoot.appendingPathComponent(name).path))
    }

    /// Secrets are written all or nothing: when the second cannot be written (a file stands where its directory
    /// goes), the first is removed again and the error says so.
    @Test func aFailedWriteRemovesTheSecretsWrittenBeforeIt() throws {
        try #require(SecretFileWriter.isMemoryBacked("/dev/shm"), "/dev/shm is not tmpfs here")
        let directory = "/dev/shm/custos-writer-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let writer = SecretFileWriter(allowDisk: false)
        try writer.prepareDirectory(directory)
        #expect(FileManager.default.createFile(atPath: directory + "/blocked", contents: Data([0])))
        let secrets = [
            FetchedSecret(resource: try ResourcePath(parsing: "r/key/disk"), secret: SecretBytes([1])),
            FetchedSecret(resource: try ResourcePath(parsing: "r/blocked/tag"), secret: SecretBytes([2])),
        ]
        let error = #expect(throws: AgentError.self) { try writer.writeAll(secrets, under: directory) }
        #expect(error?.reason.contains("1 secret file(s) written before it were removed") == true, "\(String(describing: error))")
        #expect(!FileManager.default.fileExists(atPath: directory + "/key/disk"))
        // Without the obstacle both are written.
        try FileManager.default.removeItem(atPath: directory + "/blocked")
        let written = try writer.writeAll(secrets, under: directory)
        #expect(written.map(\.path) == [directory + "/key/disk", directory + "/blocked/tag"])
        #expect(written.map(\.bytes) == [1, 1])
    }

    /// A full tmpfs (4 KiB, mounted for the test): the short write is retried until the file system says ENOSPC, the
    /// error names it, and neither the temporary file nor the final one is left behind.
    @Test func aFullFileSystemFailsTheWriteAndLeavesNothing() throws {
        try #require(getuid() == 0, "mounting a tmpfs needs root")
        let mountPoint = "/tmp/custos-full-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: mountPoint) }
        let mount = Process()
        mount.executableURL = URL(fileURLWithPath: "/bin/mount")
        mount.arguments = ["-t", "tmpfs", "-o", "size=4k,mode=0700", "tmpfs", mountPoint]
        try mount.run()
        mount.waitUntilExit()
        try #require(mount.terminationStatus == 0, "mount -t tmpfs failed")
        defer {
            let umount = Process()
            umount.executableURL = URL(fileURLWithPath: "/bin/umount")
            umount.arguments = [mountPoint]
            try? umount.run()
            umount.waitUntilExit()
        }
        let error = #expect(throws: AgentError.self) {
            try SecretFileWriter(allowDisk: false).write(
                SecretBytes(Array(repeating: 0x5A, count: 64 * 1024)), directory: mountPoint, name: "big")
        }
        #expect(error?.stage == .write)
        #expect("\(error.map { String(describing: $0) } ?? "")".contains("No space left"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: mountPoint).isEmpty)
        // A secret that fits is written.
        try SecretFileWriter(allowDisk: false).write(SecretBytes([1, 2, 3]), directory: mountPoint, name: "small")
        #expect(FileManager.default.contents(atPath: mountPoint + "/small") == Data([1, 2, 3]))
    }

    /// The package's own directory is on disk here: refused, unless disk is allowed.
    @Test func diskIsRefusedUnlessAllowed() throws {
        let root = TestData.packageRoot.appendingPathComponent(".build").path
        try #require(!SecretFileWriter.isMemoryBacked(root), "the package is on tmpfs here")
        let directory = root + "/custos-writer-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let error = #expect(throws: AgentError.self) {
            try SecretFileWriter(allowDisk: false).write(SecretBytes([1]), directory: directory, name: "x")
        }
        #expect(error?.stage == .write)
        #expect(!FileManager.default.fileExists(atPath: directory))
        try SecretFileWriter(allowDisk: true).write(SecretBytes([1]), directory: directory, name: "x")
        #expect(FileManager.default.contents(atPath: directory + "/x") == Data([1]))
    }
}

/// Without configfs-tsm the legacy device is chosen; it cannot produce a quote and says why.
@Suite struct LegacyDeviceTests {
    @Test func legacyDeviceIsUsedOnlyWithoutConfigfs() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("custos-dev-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: root.appendingPathComponent("tdx_guest").path, contents: Data())
        let source = try TDQuoteSources.detect(configfsRoot: root.appendingPathComponent("config").path, deviceDirectory: root.path)
        #expect(source is TDXGuestDeviceQuoteSource)
        // A regular file answers the ioctl with ENOTTY: an evidence error naming the ioctl.
        let error = await #expect(throws: AgentError.self) { try await source.quote(reportData: [UInt8](repeating: 0, count: 64)) }
        #expect(error?.stage == .evidence)
        #expect(error?.reason.contains("TDX_CMD_GET_REPORT0") == true, "\(String(describing: error))")
        // With configfs-tsm present, it wins.
        try FileManager.default.createDirectory(at: root.appendingPathComponent("config/tsm/report"), withIntermediateDirectories: true)
        let preferred = try TDQuoteSources.detect(configfsRoot: root.appendingPathComponent("config").path, deviceDirectory: root.path)
        #expect(preferred is ConfigfsTSMQuoteSource)
    }
}

extension ConfigfsTSMSourceTests {
    /// In-process: a generation bump during the read is retried, and the bound holds when every entry races.
    @Test(.timeLimit(.minutes(10)))
    func generationBumpDuringTheReadIsDetected() async throws {
        var spec = TDXQuoteSpec()
        spec.issueDate = "2025-01-01T00:00:00Z"
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("custos-tsm-\(UUID().uuidString)")
        let fake = try FakeConfigfsTSM(root: root, factory: try TDXTestHierarchy().quoteFactory(spec), readRaces: 100)
        fake.start()
        defer {
            fake.stop()
            try? FileManager.default.removeItem(at: root)
        }
        let error = await #expect(throws: AgentError.self) {
            try await ConfigfsTSMQuoteSource(configfsRoot: root.path).quote(reportData: [UInt8](repeating: 4, count: 64))
        }
        #expect(error?.reason.contains("during the read") == true, "\(String(describing: error))")
        #expect(fake.racesInjected == ConfigfsTSMQuoteSource.maximumAttempts)
    }
}
