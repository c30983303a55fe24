import ArgumentParser
public import CustosAudit
import CustosCrypto
import CustosStore
import Foundation
import GRDB

/// `custos audit …`: the tamper-evident log (specs/audit.md): verify, read, prove, export.
struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit", abstract: "Verify, read, prove and export the tamper-evident audit log.",
        subcommands: [
            AuditVerifyCommand.self, AuditTailCommand.self, AuditShowCommand.self, AuditCheckpointCommand.self, AuditKeyCommand.self,
            AuditProofCommand.self, AuditConsistencyCommand.self, AuditExportCommand.self,
        ])
}

/// `--db FILE`, shared by every audit command.
struct AuditDatabaseOptions: ParsableArguments {
    @Option(name: .long, help: "The Custos SQLite database holding the audit log.") var db: String
}

extension AuditError: CustosReportableError {
    public var errorCode: String { "audit" + code.name.prefix(1).uppercased() + code.name.dropFirst() }
    public var errorMessage: String { reason }
    public var errorField: String? { seq.map { "seq \($0)" } }
    /// 1 when the log itself was checked and failed; 2 when the input could not be used.
    public var exitStatus: Int32 {
        switch code {
        case .corrupted, .behindCheckpoint, .noteNotVerified, .malformedNote, .malformedCheckpoint: 1
        default: 2
        }
    }
}

enum AuditCLI {
    /// The error the CLI throws for an ``AuditError``.
    ///
    /// Until the top-level `--json` error handler lands, `runMain` maps only ``CLIError`` to an exit status, so the
    /// audit error travels as one (same message, same status); once the handler handles ``CustosReportableError``,
    /// return `error` itself here.
    static func reportable(_ error: AuditError) -> any Error {
        CLIError(error.description, code: error.errorCode, field: error.errorField, offset: error.errorOffset, exitCode: error.exitStatus)
    }

    /// Opens an existing database read-only (never creates one: a mistyped path is a usage error, exit 2). Every audit
    /// command only reads: a read-write open turned an empty file into a database (SQLite writes the WAL header), and
    /// would need write access to a log an auditor may only read.
    static func openPool(_ path: String) throws -> any DatabaseReader {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue else {
            throw CLIError("no database file at \(path)")
        }
        // A read-only pool: `audit verify` reads partitions of a large log in parallel, one connection per core.
        do { return try StoreDatabase.openPool(path: path, readOnly: true) } catch {
            throw CLIError("cannot open \(path) as a SQLite database: \(error)")
        }
    }

    /// Opens a file that starts like a SQLite database but failed to open, with `writable_schema` on: SQLite then
    /// trusts the file's real size over the page count in its header (a truncated file), and reads fail only where
    /// pages are missing. Only ever read from.
    static func openDamaged(_ path: String) -> DatabaseQueue? {
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        guard let header = try? handle.read(upToCount: 16), header == Data("SQLite format 3\u{0}".utf8) else { return nil }
        var configuration = Configuration()
        configuration.readonly = true
        configuration.busyMode = .timeout(StoreDatabase.busyTimeoutSeconds)
        configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA writable_schema = ON") }
        return try? DatabaseQueue(path: path, configuration: configuration)
    }

    /// Opens the log recorded in an existing database for reading.
    static func openReader(_ path: String) throws -> AuditLogReader {
        let pool = try openPool(path)
        do throws(AuditError) { return try AuditLogReader(database: pool) } catch { throw reportable(error) }
    }

    /// Runs `body`, turning an ``AuditError`` into the CLI's error.
    static func run<T>(_ body: () throws(AuditError) -> T) throws -> T {
        do throws(AuditError) { return try body() } catch { throw reportable(error) }
    }

    /// Prints a JSON value on one line (JCS: stable member order).
    static func printJSON(_ value: JSONValue) {
        print(CanonicalJSON.string(value))
    }

    static func integer(_ value: UInt64) -> JSONValue { .integer(Int64(clamping: value)) }

    static func hexArray(_ hashes: [[UInt8]]) -> JSONValue { .array(hashes.map { .string(Hex.encode($0)) }) }

    /// An entry as the read commands print it.
    static func json(_ record: AuditRecord) -> JSONValue {
        .object(["seq": integer(record.seq), "leafHash": .string(Hex.encode(record.leafHash)), "entry": record.entry])
    }
}

// MARK: - verify

/// `custos audit verify --db FILE`: re-derives every leaf, the chain, the tree and every checkpoint from the rows.
struct AuditVerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Re-derive every leaf, the prev_leaf chain and the tree from the rows and check every signed checkpoint.",
        discussion: "Exit status: 0 verified, 1 the log fails a check (the first bad seq and why are printed), 2 unusable input.")
    @OptionGroup var database: AuditDatabaseOptions
    @Flag(help: "Also re-parse every entry as strict JSON and check it is valid UTF-8 in canonical (JCS) form (slower).")
    var full = false
    @OptionGroup var global: GlobalOptions

    struct Report: Encodable {
        let verified: Bool
        let size: UInt64
        let rootHash: String
        let firstBadSeq: UInt64?
        let reason: String?
        let checkpointsChecked: Int
    }

    func run() throws {
        // A damaged SQLite file (truncated: its header counts more pages than it has) fails to open or to read; it is
        // opened again leniently so the rows that remain are checked and the first one lost is reported. Anything
        // else stays exit 2 (the first error is reported when the lenient attempt fails too).
        let result: AuditVerification
        do {
            let pool = try AuditCLI.openPool(database.db)
            result = try AuditCLI.run { () throws(AuditError) in try AuditVerifier.verify(pool: pool, full: full) }
        } catch {
            guard let lenient = AuditCLI.openDamaged(database.db),
                let retried = try? AuditCLI.run({ () throws(AuditError) in try AuditVerifier.verify(pool: lenient, full: full) })
            else { throw error }
            result = retried
        }
        let report = Report(
            verified: result.verified, size: result.size, rootHash: Hex.encode(result.rootHash), firstBadSeq: result.firstBadSeq,
            reason: result.reason, checkpointsChecked: result.checkpointsChecked)
        if global.json {
            try Output.printJSON(report)
        } else if result.verified {
            print("verified: \(result.size) entries, root \(report.rootHash), \(result.checkpointsChecked) signed checkpoint(s) checked")
        } else {
            let seq = result.firstBadSeq.map { "first bad seq \($0)" } ?? "no single entry to blame"
            print("NOT verified: \(seq): \(result.reason ?? "")")
        }
        if !result.verified { throw ExitCode(1) }
    }
}

// MARK: - tail / show

/// Filters shared by `tail` and `show`.
struct AuditFilterOptions: ParsableArguments {
    @Option(name: .long, help: "Only this tenant's entries.") var tenant: String?
    @Option(name: .long, help: "Only entries of this event type (e.g. secret.released).") var type: String?
}

/// `custos audit tail --db FILE`: the newest entries.
struct AuditTailCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tail", abstract: "Print the newest entries (oldest first).")
    @OptionGroup var database: AuditDatabaseOptions
    @OptionGroup var filter: AuditFilterOptions
    @Option(name: .long, help: "How many entries (1…10000).") var limit: Int = 10
    @OptionGroup var global: GlobalOptions

    func validate() throws {
        guard (1...10_000).contains(limit) else { throw ValidationError("--limit must be 1…10000, not \(limit)") }
    }

    func run() throws {
        let reader = try AuditCLI.openReader(database.db)
        let records = try AuditCLI.run { () throws(AuditError) in
            try reader.latestEntries(tenant: filter.tenant, type: filter.type, limit: limit)
        }
        if global.json {
            AuditCLI.printJSON(.object(["entries": .array(records.map(AuditCLI.json))]))
        } else {
            for record in records { print(String(decoding: record.body, as: UTF8.self)) }
        }
    }
}

/// `custos audit show --db FILE`: entries in seq order from `--from`.
struct AuditShowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "Print entries in seq order.")
    @OptionGroup var database: AuditDatabaseOptions
    @OptionGroup var filter: AuditFilterOptions
    @Option(name: .long, help: "The first seq to consider.") var from: UInt64 = 0
    @Option(name: .long, help: "Only entries whose time is at or after this RFC 3339 time (e.g. 2026-12-01T00:00:00Z).")
    var since: String?
    @Option(name: .long, help: "Only entries whose time is at or before this RFC 3339 time.") var until: String?
    @Option(name: .long, help: "How many entries at most (1…10000).") var limit: Int = 100
    @OptionGroup var global: GlobalOptions

    func validate() throws {
        guard (1...10_000).contains(limit) else { throw ValidationError("--limit must be 1…10000, not \(limit)") }
        _ = try Self.time(since, "since")
        _ = try Self.time(until, "until")
    }

    static func time(_ text: String?, _ option: String) throws -> Date? {
        guard let text else { return nil }
        guard let date = RFC3339.parse(text) else {
            throw CLIError("--\(option) \(text) is not an RFC 3339 time (e.g. 2026-12-01T00:00:00Z)", code: "usage", field: option)
        }
        return date
    }

    func run() throws {
        let reader = try AuditCLI.openReader(database.db)
        let since = try Self.time(since, "since")
        let until = try Self.time(until, "until")
        let page = try AuditCLI.run { () throws(AuditError) in
            try reader.entries(tenant: filter.tenant, type: filter.type, since: since, until: until, limit: limit, cursor: from)
        }
        if global.json {
            var object: [String: JSONValue] = ["entries": .array(page.records.map(AuditCLI.json))]
            if let next = page.nextCursor { object["nextCursor"] = AuditCLI.integer(next) }
            AuditCLI.printJSON(.object(object))
        } else {
            for record in page.records { print(String(decoding: record.body, as: UTF8.self)) }
        }
    }
}

// MARK: - checkpoint / key

/// `custos audit checkpoint --db FILE`: the latest signed note.
struct AuditCheckpointCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "checkpoint", abstract: "Print the latest signed checkpoint (C2SP tlog-checkpoint signed note).")
    @OptionGroup var database: AuditDatabaseOptions
    @OptionGroup var global: GlobalOptions

    func run() throws {
        let reader = try AuditCLI.openReader(database.db)
        guard let latest = try AuditCLI.run({ () throws(AuditError) in try reader.latestCheckpoint() }) else {
            throw CLIError("the log has no signed checkpoint yet", exitCode: 1)
        }
        if global.json {
            AuditCLI.printJSON([
                "origin": .string(latest.checkpoint.origin), "size": AuditCLI.integer(latest.checkpoint.size),
                "rootHash": .string(Hex.encode(latest.checkpoint.rootHash)), "note": .string(latest.note),
            ])
        } else {
            print(latest.note, terminator: "")
        }
    }
}

/// `custos audit key --db FILE`: the log's verifier key.
struct AuditKeyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "key", abstract: "Print the log's verifier key (C2SP signed-note vkey: name+keyid+base64(0x01‖key)).")
    @OptionGroup var database: AuditDatabaseOptions
    @OptionGroup var global: GlobalOptions

    func run() throws {
        let reader = try AuditCLI.openReader(database.db)
        if global.json {
            AuditCLI.printJSON(["vkey": .string(reader.verifierKey), "origin": .string(reader.origin)])
        } else {
            print(reader.verifierKey)
        }
    }
}

// MARK: - proofs

/// `custos audit proof --db FILE --index I [--size N]`.
struct AuditProofCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "proof", abstract: "Print the RFC 9162 inclusion proof of one entry (default size: the latest checkpoint's).")
    @OptionGroup var database: AuditDatabaseOptions
    @Option(name: .long, help: "The entry's seq (leaf index).") var index: UInt64
    @Option(name: .long, help: "The tree size (default: the latest signed checkpoint's).") var size: UInt64?
    @OptionGroup var global: GlobalOptions

    func run() throws {
        let reader = try AuditCLI.openReader(database.db)
        let proof = try AuditCLI.run { () throws(AuditError) in try reader.inclusionProof(index: index, treeSize: size) }
        if global.json {
            AuditCLI.printJSON([
                "leafIndex": AuditCLI.integer(proof.leafIndex), "treeSize": AuditCLI.integer(proof.treeSize),
                "leafHash": .string(Hex.encode(proof.leafHash)), "hashes": AuditCLI.hexArray(proof.hashes),
            ])
        } else {
            print("leaf \(proof.leafIndex) of \(proof.treeSize): \(Hex.encode(proof.leafHash))")
            for hash in proof.hashes { print(Hex.encode(hash)) }
        }
    }
}

/// `custos audit consistency --db FILE --first M --second N`.
struct AuditConsistencyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "consistency", abstract: "Print the RFC 9162 consistency proof between two tree sizes.")
    @OptionGroup var database: AuditDatabaseOptions
    @Option(name: .long, help: "The older size (> 0).") var first: UInt64
    @Option(name: .long, help: "The newer size.") var second: UInt64
    @OptionGroup var global: GlobalOptions

    func run() throws {
        let reader = try AuditCLI.openReader(database.db)
        let hashes = try AuditCLI.run { () throws(AuditError) in try reader.consistencyProof(first: first, second: second) }
        if global.json {
            AuditCLI.printJSON(["hashes": AuditCLI.hexArray(hashes)])
        } else {
            for hash in hashes { print(Hex.encode(hash)) }
        }
    }
}

// MARK: - export

/// `custos audit export --db FILE`: JSON lines an auditor checks offline (scripts/audit/verify_export.py).
///
/// Line 1: `{"type":"checkpoint","origin","vkey","size","rootHash","note"}` (the latest signed checkpoint). Then one
/// line per entry below its size: `{"type":"entry","seq","body","leafHash","proof"}` where `body` is the exact
/// entry text that was hashed and `proof` the inclusion path (hex, leaf-upward) against that checkpoint.
struct AuditExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export", abstract: "Write the log as JSON lines with inclusion proofs against the latest checkpoint.",
        discussion:
            "The output is JSON lines with or without --json (which makes a failure print the contract's JSON error object); a failure partway through a very large log leaves the lines already written."
    )
    @OptionGroup var database: AuditDatabaseOptions
    @OptionGroup var global: GlobalOptions

    func run() throws {
        let reader = try AuditCLI.openReader(database.db)
        guard let latest = try AuditCLI.run({ () throws(AuditError) in try reader.latestCheckpoint() }) else {
            throw CLIError("the log has no signed checkpoint to export against", exitCode: 1)
        }
        let size = latest.checkpoint.size
        AuditCLI.printJSON([
            "type": "checkpoint", "origin": .string(reader.origin), "vkey": .string(reader.verifierKey),
            "size": AuditCLI.integer(size), "rootHash": .string(Hex.encode(latest.checkpoint.rootHash)), "note": .string(latest.note),
        ])
        var cursor: UInt64? = 0
        while let start = cursor, start < size {
            let page = try AuditCLI.run { () throws(AuditError) in try reader.entries(limit: 1000, cursor: start) }
            for record in page.records where record.seq < size {
                let proof = try AuditCLI.run { () throws(AuditError) in try reader.inclusionProof(index: record.seq, treeSize: size) }
                AuditCLI.printJSON([
                    "type": "entry", "seq": AuditCLI.integer(record.seq), "body": .string(String(decoding: record.body, as: UTF8.self)),
                    "leafHash": .string(Hex.encode(record.leafHash)), "proof": AuditCLI.hexArray(proof.hashes),
                ])
            }
            cursor = page.nextCursor
        }
    }
}
