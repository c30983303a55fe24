import ArgumentParser
import CustosStore
import Foundation

/// `custos store init --data DIR`: creates the data directory, database, master key and tenant `default`.
struct StoreInitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract:
            "Create (or check) the data directory: database, master key (0600 file unless CUSTOS_MASTER_KEY is set) and tenant 'default'.")
    @OptionGroup var location: DataDirectoryOptions
    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let directory = location.directory
        let lock = try location.lock()
        defer { withExtendedLifetime(lock) {} }
        let report = try await StoreCLI.runAsync { () async throws(StoreError) in try await directory.initialize() }
        if global.json {
            try Output.printJSON(report)
            return
        }
        print("data:       \(report.data)")
        print("database:   \(report.database) (\(report.databaseCreated ? "created" : "existing"))")
        switch report.masterKeySource {
        case .file:
            print(
                "master key: \(report.masterKeyFile ?? "") id \(report.masterKeyId) (\(report.masterKeyCreated ? "created" : "existing"))")
        case .environment:
            print("master key: $\(DataDirectory.masterKeyVariable) id \(report.masterKeyId)")
        }
        print("tenant:     \(report.tenant) (\(report.tenantCreated ? "created" : "existing"))")
    }
}
