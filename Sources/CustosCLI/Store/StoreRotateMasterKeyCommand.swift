import ArgumentParser
import CustosStore
import Foundation

/// `custos store rotate-master-key --data DIR`: re-wraps every tenant key under a new master key.
struct StoreRotateMasterKeyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rotate-master-key",
        abstract:
            "Write a new master key and re-wrap every tenant key under it in one transaction (stop the service first; with CUSTOS_MASTER_KEY set, the new key comes from CUSTOS_NEW_MASTER_KEY).",
        discussion: "Takes the data directory's lock, so it refuses to run beside a custos serve on the same directory.")
    @OptionGroup var location: DataDirectoryOptions
    @OptionGroup var global: GlobalOptions

    func run() throws {
        let directory = location.directory
        let lock = try location.lock()
        defer { withExtendedLifetime(lock) {} }
        let report = try StoreCLI.run { () throws(StoreError) in try directory.rotateMasterKey() }
        if global.json {
            try Output.printJSON(report)
            return
        }
        if report.finishedInterruptedRotation { print("finished an interrupted rotation first") }
        print("master key \(report.oldKeyId) → \(report.newKeyId): \(report.rewrappedKeys) tenant keys re-wrapped")
        if report.masterKeySource == .environment {
            print("set \(DataDirectory.masterKeyVariable) to the new key before starting the service")
        }
    }
}
