public import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// `custos serve` as a child process on a loopback port, the way the process-level tests (graceful stop, crash
/// recovery, the console in a browser, the guest agent) start it: the built executable, real argument parsing, real
/// signals. Killed with SIGKILL when released while still running, so a failed test leaves no server behind.
public final class ServeProcess: @unchecked Sendable {
    public struct Failed: Error, CustomStringConvertible {
        public let description: String
        init(_ description: String) { self.description = description }
    }

    public let process: Process
    public let port: Int
    /// `http://127.0.0.1:PORT`.
    public let baseURL: String
    /// Where the server's stdout and stderr go (appended), or `nil` for `/dev/null`.
    public let logFile: URL?

    /// Starts `custos serve --listen 127.0.0.1:PORT arguments…`.
    /// - Parameters:
    ///   - arguments: Everything after `--listen` (`--data`, `--policies`, …).
    ///   - port: The port to listen on (default: one that was free a moment ago).
    ///   - log: A file that receives stdout and stderr, appended to (created when missing).
    ///   - logLevel: `LOG_LEVEL` for the server (default: inherited).
    ///   - workingDirectory: The server's current directory (default: inherited).
    public init(
        arguments: [String], port: Int? = nil, log: URL? = nil, logLevel: String? = nil, workingDirectory: URL? = nil
    ) throws {
        self.port = try port ?? Self.freePort()
        baseURL = "http://127.0.0.1:\(self.port)"
        logFile = log
        let process = Process()
        process.executableURL = CustosExecutable.url
        process.arguments = ["serve", "--listen", "127.0.0.1:\(self.port)"] + arguments
        if let workingDirectory { process.currentDirectoryURL = workingDirectory }
        var environment = ProcessInfo.processInfo.environment
        if let logLevel { environment["LOG_LEVEL"] = logLevel }
        process.environment = environment
        if let log {
            if !FileManager.default.fileExists(atPath: log.path) { _ = FileManager.default.createFile(atPath: log.path, contents: nil) }
            let handle = try FileHandle(forWritingTo: log)
            handle.seekToEndOfFile()
            process.standardOutput = handle
            process.standardError = handle
        } else {
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
        }
        try process.run()
        self.process = process
    }

    deinit { kill() }

    /// The log so far (empty without a log file).
    public var logText: String { logFile.flatMap { try? String(contentsOf: $0, encoding: .utf8) } ?? "" }

    /// Waits until `GET /healthz` answers 200 (returning its body). Throws, with the end of the log, when the server
    /// exits first or does not answer within `timeout`.
    @discardableResult
    public func waitUntilHealthy(timeout: Duration = .seconds(60)) async throws -> String {
        let deadline = ContinuousClock.now + timeout
        // The server is asked once more after the deadline passed: on a loaded 2-core runner whose cooperative threads
        // are busy with other tests' blocking work, this task may sleep through the whole timeout and must not blame
        // a server that was answering all along.
        while true {
            guard process.isRunning else {
                throw Failed("custos serve exited with status \(process.terminationStatus): \(logText.suffix(2000))")
            }
            if let health = Self.get("\(baseURL)/healthz"), health.status == 200 { return health.body }
            guard ContinuousClock.now < deadline else { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw Failed("custos serve did not answer /healthz within \(timeout): \(logText.suffix(2000))")
    }

    /// Sends SIGTERM and waits up to `timeout` for the exit. Returns the exit status, or `nil` when the server did
    /// not exit normally in time (it is then killed).
    @discardableResult
    public func stop(timeout: Duration = .seconds(10)) async -> Int32? {
        guard process.isRunning else { return process.terminationReason == .exit ? process.terminationStatus : nil }
        Glibc.kill(process.processIdentifier, SIGTERM)
        let deadline = ContinuousClock.now + timeout
        while process.isRunning, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(50)) }
        guard !process.isRunning else {
            kill()
            return nil
        }
        return process.terminationReason == .exit ? process.terminationStatus : nil
    }

    /// Sends SIGKILL (when still running) and waits for the process to go.
    public func kill() {
        guard process.isRunning else { return }
        Glibc.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// A loopback port that was free a moment ago (bound to 0, read back, closed).
    public static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failed("socket: errno \(errno)") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw Failed("bind/getsockname on 127.0.0.1:0: errno \(errno)") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// `GET url` through curl (optionally with a Bearer token): the status and the body, or `nil` when nothing answered.
    public static func get(_ url: String, token: String? = nil) -> (status: Int, body: String)? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        var arguments = ["-s", "-o", "-", "-w", "\n%{http_code}", url]
        if let token { arguments += ["-H", "Authorization: Bearer \(token)"] }
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        guard (try? process.run()) != nil else { return nil }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        guard let newline = text.lastIndex(of: "\n"), let status = Int(text[text.index(after: newline)...]), status != 0 else {
            return nil
        }
        return (status, String(text[..<newline]))
    }
}
