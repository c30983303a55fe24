public import ArgumentParser
import Foundation

/// Flags every command shares.
struct GlobalOptions: ParsableArguments {
    @Flag(name: .long, help: "Print machine-readable JSON instead of a report.") var json = false
}

/// An error the CLI prints as one line and maps to an exit code: 1 for a failed verification, 2 for bad usage or
/// input the command cannot work with. Reported through the error contract (``CustosReportableError``).
struct CLIError: Error, CustomStringConvertible, CustosReportableError {
    let message: String
    let exitCode: Int32
    /// The stable code under `--json`; by default `rejected` (exit 1) or `unusableInput` (exit 2).
    let code: String
    let field: String?
    let offset: Int?

    init(_ message: String, code: String? = nil, field: String? = nil, offset: Int? = nil, exitCode: Int32 = 2) {
        self.message = message
        self.exitCode = exitCode
        self.code = code ?? (exitCode == 1 ? "rejected" : "unusableInput")
        self.field = field
        self.offset = offset
    }
    var description: String { message }

    var errorCode: String { code }
    var errorMessage: String { message }
    var errorField: String? { field }
    var errorOffset: Int? { offset }
    var exitStatus: Int32 { exitCode }
}

enum Output {
    static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        return encoder
    }

    /// Prints a value as pretty JSON on stdout.
    static func printJSON(_ value: some Encodable) throws {
        let data = try encoder().encode(value)
        print(String(decoding: data, as: UTF8.self))
    }

    static func iso(_ date: Date?) -> String {
        guard let date else { return "-" }
        return ISO8601DateFormatter().string(from: date)
    }
}

// MARK: - The top-level error handler (the error contract of ErrorContract.swift)

/// What the top-level handler does with an error: the exit status, and what goes to stdout and stderr.
struct ErrorReport: Equatable {
    let status: Int32
    let stdout: String?
    let stderr: String?

    /// Maps any error a command (or argument parsing) throws onto the contract. Never traps: unknown error types
    /// become `internalError`, exit 2.
    /// - Parameters:
    ///   - error: what was thrown.
    ///   - json: whether `--json` was given (stdout then gets exactly one JSON object).
    static func make(for error: any Error, json: Bool) -> ErrorReport {
        // A command that printed its own result (a rejected verification's report) ends with ExitCode(1).
        if let exit = error as? ExitCode {
            return ErrorReport(status: CustosCommand.usageMapped(exit).rawValue, stdout: nil, stderr: nil)
        }
        let reportable: any CustosReportableError
        if let known = error as? any CustosReportableError {
            reportable = known
        } else {
            let code = CustosCommand.exitCode(for: error)
            if code == .success {
                // --help, --version: a clean exit with ArgumentParser's text.
                return ErrorReport(status: 0, stdout: CustosCommand.fullMessage(for: error), stderr: nil)
            }
            if code == .validationFailure {
                reportable = UsageError(message: CustosCommand.message(for: error), full: CustosCommand.fullMessage(for: error))
            } else {
                reportable = InternalError(message: "\(error)")
            }
        }
        var human = "error: \(reportable.errorMessage)"
        if let usage = reportable as? UsageError { human = usage.full }
        let stdout = json ? ErrorJSON(reportable).envelopeText : nil
        return ErrorReport(status: reportable.exitStatus, stdout: stdout, stderr: human)
    }

    /// Prints the report (stdout, then the human line on stderr) and returns the status.
    func emit() -> Int32 {
        if let stdout { print(stdout) }
        if let stderr { FileHandle.standardError.write(Data((stderr + "\n").utf8)) }
        return status
    }
}

/// An argument-parsing or validation error: exit 2, code `usage`.
struct UsageError: CustosReportableError {
    let message: String
    let full: String
    var errorCode: String { "usage" }
    var errorMessage: String { message }
    var exitStatus: Int32 { 2 }
}

/// An error of a type the contract does not know: exit 2, code `internalError`, still one JSON object.
struct InternalError: CustosReportableError {
    let message: String
    var errorCode: String { "internalError" }
    var errorMessage: String { message }
    var exitStatus: Int32 { 2 }
}

extension CustosCommand {
    /// Whether `--json` was given: the raw arguments before a `--` terminator (so a line that failed to parse still
    /// answers in JSON).
    static func wantsJSON(_ arguments: [String]) -> Bool {
        arguments.prefix { $0 != "--" }.contains("--json")
    }

    /// Parses and runs a command line in-process and returns the exit status the executable would have, printing
    /// exactly what it would print: what the tests use to check exit codes and the error contract.
    static func exitStatus(running arguments: [String]) -> Int32 {
        let json = wantsJSON(arguments)
        do {
            var command = try parseAsRoot(arguments)
            if command is any AsyncParsableCommand {
                // Async commands run through the executable; in-process tests call synchronous ones.
                throw InternalError(message: "\(type(of: command)) is asynchronous; run it through the executable")
            }
            try command.run()
            return 0
        } catch {
            return ErrorReport.make(for: error, json: json).emit()
        }
    }

    /// The same for any command, asynchronous ones included (swift-testing tests can `await` it).
    static func exitStatus(running arguments: [String]) async -> Int32 {
        let json = wantsJSON(arguments)
        do {
            var command = try parseAsRoot(arguments)
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
            return 0
        } catch {
            return ErrorReport.make(for: error, json: json).emit()
        }
    }

    /// ArgumentParser reports usage errors with EX_USAGE (64); Custos's contract is 2 for bad usage or input.
    static func usageMapped(_ code: ExitCode) -> ExitCode { code == .validationFailure ? ExitCode(2) : code }

    /// Runs the command line with Custos's error contract: every error, of any type, becomes one line on stderr,
    /// one `{"error": {…}}` object on stdout under `--json`, and exit status 1 or 2. No stack trace.
    public static func runMain() async {
        let arguments = Array(CommandLine.arguments.dropFirst())
        let json = wantsJSON(arguments)
        do {
            var command = try parseAsRoot(arguments)
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            Foundation.exit(ErrorReport.make(for: error, json: json).emit())
        }
    }
}
