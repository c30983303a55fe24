import ArgumentParser
import CustosAudit
import CustosCrypto
import CustosServer
import CustosStore
import Foundation

/// `custos keys …`: the EAR token signing keys of a data directory.
struct KeysCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys", abstract: "List and rotate the EAR token signing keys (offline: stop custos serve first).",
        subcommands: [KeysList.self, KeysRotate.self])
}

struct KeysList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "The current and retired token keys.")
    @Option(name: .long, help: "The data directory.") var data = "var"
    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let ring: TokenKeyRing
        do { ring = try TokenKeyRing.open(dataDirectory: URL(fileURLWithPath: data), create: false) } catch let error as ConfigurationError
        {
            throw CLIError(error.message)
        }
        if global.json {
            let retired: [JSONValue] = ring.retired.map {
                ["kid": .string($0.keyID), "retired_at": .string(Date.ISO8601FormatStyle().format($0.retiredAt))]
            }
            print(
                String(decoding: CanonicalJSON.encode(["current": .string(ring.currentKeyID), "retired": .array(retired)]), as: UTF8.self))
        } else {
            print("current  \(ring.currentKeyID)")
            for key in ring.retired { print("retired  \(key.keyID)  at \(Date.ISO8601FormatStyle().format(key.retiredAt))") }
        }
    }
}

struct KeysRotate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rotate",
        abstract: "Make a new EAR signing key; the old one stays in the JWKS until its tokens expire. Audited.",
        discussion: "Takes the data directory's lock, so it refuses to run beside a custos serve on the same directory.")
    @Option(name: .long, help: "The data directory.") var data = "var"
    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let directory = URL(fileURLWithPath: data)
        let lock: DataDirectoryLock
        do { lock = try DataDirectoryLock(directory: directory) } catch let error as ConfigurationError { throw CLIError(error.message) }
        defer { withExtendedLifetime(lock) {} }
        let store = try StoreCLI.run { () throws(StoreError) in try SQLiteStore.open(dataDirectory: directory, create: false) }
        let ring: TokenKeyRing
        do { ring = try TokenKeyRing.open(dataDirectory: directory, create: false) } catch let error as ConfigurationError {
            throw CLIError(error.message)
        }
        let key = try LogKeyFile.load(path: LogKeyFile.defaultPath(forDatabase: DataDirectory(directory).databasePath), create: false)
        let reader = try AuditLogReader(database: store.pool)
        let log = try await AuditLog.open(pool: store.pool, signingKey: key, origin: reader.origin)
        let rotated: (old: String, new: String)
        do { rotated = try ring.rotate(now: Date()) } catch let error as ConfigurationError { throw CLIError(error.message) }
        let event = AuditEvent(
            tenant: Bootstrap.defaultTenant, type: AuditEventType.keyRotated,
            actor: ["kind": "operator", "command": "custos keys rotate"],
            object: ["key": "ear-signing", "old_kid": .string(rotated.old), "new_kid": .string(rotated.new)])
        let receipt = try await log.append(event)
        _ = try await log.signCheckpoint()
        if global.json {
            print(
                String(
                    decoding: CanonicalJSON.encode([
                        "old_kid": .string(rotated.old), "new_kid": .string(rotated.new), "audit_index": .integer(Int64(receipt.seq)),
                    ]), as: UTF8.self))
        } else {
            print(
                "rotated the EAR signing key: \(rotated.old) → \(rotated.new) (audit entry \(receipt.seq)); restart custos serve to use it")
        }
    }
}
