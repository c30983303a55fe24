public import ArgumentParser
import Foundation

/// Flags every command shares.
struct GlobalOptions: ParsableArguments {
    @Flag(name: .long, help: "Print machine-readable JSON instead of a report.") var json = false
}

/// An error the CLI prints as one line and maps to an exit code: 1 for a failed verification, 2 for bad usage or
/// input the command cannot work with.
struct CLIError: Error, CustomStringConvertible {
    let message: String
    let exitCode: Int32
    init(_ message: String, exitCode: Int32 = 2) {
        self.message = message
        self.exitCode = exitCode
    }
    var description: String { message }
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

extension CustosCommand {
    /// Parses and runs a synchronous command line in-process and returns the exit status the executable would
    /// have (0, 1 for a failed verification, 2 for a usage error): what the tests use to check exit codes.
    static func exitStatus(running arguments: [String]) -> Int32 {
        do {
            var command = try parseAsRoot(arguments)
            try command.run()
            return 0
        } catch let exit as ExitCode {
            return exit.rawValue
        } catch let error as CLIError {
            return error.exitCode
        } catch {
            return usageMapped(exitCode(for: error)).rawValue
        }
    }

    /// ArgumentParser reports usage errors with EX_USAGE (64); Custos's contract is 2 for bad usage or input.
    static func usageMapped(_ code: ExitCode) -> ExitCode { code == .validationFailure ? ExitCode(2) : code }

    /// Runs the command line with Custos's error mapping: typed errors print one line on stderr.
    public static func runMain() async {
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let error as CLIError {
            FileHandle.standardError.write(Data("error: \(error.message)\n".utf8))
            Foundation.exit(error.exitCode)
        } catch {
            let code = exitCode(for: error)
            guard code == .validationFailure else { exit(withError: error) }
            FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
            Foundation.exit(usageMapped(code).rawValue)
        }
    }
}
