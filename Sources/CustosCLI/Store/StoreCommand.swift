import ArgumentParser
import CustosServer
public import CustosStore
import Foundation

/// `custos store …`: the data directory (database, master key).
struct StoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store", abstract: "Create the data directory and rotate the master key that seals secrets at rest.",
        subcommands: [StoreInitCommand.self, StoreRotateMasterKeyCommand.self])
}

/// The data directory option shared by the `store` verbs.
struct DataDirectoryOptions: ParsableArguments {
    @Option(name: .long, help: "The data directory (custos.sqlite, master.key).") var data: String

    var directory: DataDirectory { DataDirectory(path: data) }

    /// The data directory's lock (`DATA/custos.lock`): maintenance refuses to run beside a `custos serve` on the same
    /// directory, whose in-memory master key and audit head a second writer would invalidate.
    func lock() throws -> DataDirectoryLock {
        do { return try DataDirectoryLock(directory: directory.url) } catch let error as ConfigurationError {
            throw CLIError(error.message, code: "dataDirectoryInUse", field: "data")
        }
    }
}

extension StoreError: CustosReportableError {
    /// `store` + the code: `storeMasterKey`, `storeCorrupted`, `storeUnusablePath`, …
    public var errorCode: String { "store" + code.name.prefix(1).uppercased() + code.name.dropFirst() }
    public var errorMessage: String { reason }
    /// Every store error is input Custos could not use (a path, a key file, a damaged database): exit 2.
    public var exitStatus: Int32 { 2 }
}

enum StoreCLI {
    /// Runs a store operation and maps its ``StoreError`` to a one-line ``CLIError`` with exit status 2, keeping its
    /// code (`store<Code>`) for `--json`.
    static func run<T>(_ body: () throws(StoreError) -> T) throws -> T {
        do throws(StoreError) { return try body() } catch {
            throw CLIError("\(error.errorCode): \(error.reason)", code: error.errorCode, exitCode: error.exitStatus)
        }
    }

    static func runAsync<T>(_ body: () async throws(StoreError) -> T) async throws -> T {
        do throws(StoreError) { return try await body() } catch {
            throw CLIError("\(error.errorCode): \(error.reason)", code: error.errorCode, exitCode: error.exitStatus)
        }
    }
}
