public import Foundation

/// Runs the built `custos` executable (it sits next to the test bundle) as a user would: real argument parsing,
/// exit codes, stdout and stderr.
public enum CustosExecutable {
    /// The `custos` binary of the build the tests run from.
    public static var url: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
            .appendingPathComponent("custos")
    }

    /// Whether the binary was built (`swift build --build-tests` builds it; `make test` does that first).
    public static var isBuilt: Bool { FileManager.default.isExecutableFile(atPath: url.path) }

    public struct Result: Sendable {
        public let status: Int32
        public let stdout: String
        public let stderr: String
    }

    /// Runs `custos arguments…` in the package root and waits for it. Stderr goes to a temporary file, so a chatty
    /// command cannot block on a full pipe while stdout is being read.
    public static func run(_ arguments: [String], environment: [String: String] = [:]) throws -> Result {
        let process = Process()
        process.executableURL = url
        process.arguments = arguments
        process.currentDirectoryURL = TestData.packageRoot
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let errURL = FileManager.default.temporaryDirectory.appendingPathComponent("custos-stderr-\(UUID().uuidString)")
        FileManager.default.createFile(atPath: errURL.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: errURL) }
        let errHandle = try FileHandle(forWritingTo: errURL)
        let out = Pipe()
        process.standardOutput = out
        process.standardError = errHandle
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        try errHandle.close()
        let stderr = (try? Data(contentsOf: errURL)) ?? Data()
        return Result(
            status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
            stderr: String(decoding: stderr, as: UTF8.self))
    }
}
