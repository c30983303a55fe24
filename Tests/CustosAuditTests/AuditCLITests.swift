import CustosAudit
import CustosCrypto
import CustosStore
import CustosTestSupport
import Foundation
import GRDB
import Testing

/// `custos audit …` and `custos bench audit-append` as a user runs them: tamper evidence (rows changed behind the
/// triggers' back with the sqlite3 CLI), crash safety under SIGKILL, offline export checked by Python, bad input.
@Suite(.serialized, .enabled(if: CustosExecutable.isBuilt, "build the custos executable first (swift build --build-tests)"))
struct AuditCLITests {
    final class Scratch {
        let directory: URL
        var db: String { directory.appendingPathComponent("custos.sqlite").path }
        init() throws {
            directory = FileManager.default.temporaryDirectory.appendingPathComponent("custos-audit-cli-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        }
        deinit { try? FileManager.default.removeItem(at: directory) }
    }

    /// A log of `entries` entries written by the bench (a clean exit, so the WAL is folded into the file).
    static func makeLog(_ scratch: Scratch, entries: Int, checkpointEvery: Int = 10) throws {
        let result = try CustosExecutable.run([
            "bench", "audit-append", "--db", scratch.db, "--entries", String(entries), "--concurrency", "8", "--checkpoint-every",
            String(checkpointEvery),
        ])
        #expect(result.status == 0, "bench failed: \(result.stderr)")
    }

    static func verify(_ db: String, full: Bool = false) throws -> (status: Int32, report: [String: Any]) {
        let result = try CustosExecutable.run(["audit", "verify", "--db", db, "--json"] + (full ? ["--full"] : []))
        let object = (try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8))) as? [String: Any] ?? [:]
        return (result.status, object)
    }

    /// Runs SQL with the sqlite3 CLI (a second, independent SQLite client), dropping the triggers first.
    static func tamper(_ db: String, _ sql: String) throws {
        let drop = ["audit_entries_no_update", "audit_entries_no_delete", "audit_nodes_no_update", "audit_nodes_no_delete"]
            .map { "DROP TRIGGER \($0);" }.joined()
        let result = try Subprocess.run("/usr/bin/sqlite3", [db, drop + sql])
        #expect(result.status == 0, "sqlite3 failed (install the Debian package sqlite3): \(result.stderr)")
    }

    @Test(.timeLimit(.minutes(10))) func cleanLogVerifiesAndProofsCheckOut() throws {
        let scratch = try Scratch()
        try Self.makeLog(scratch, entries: 37)
        let (status, report) = try Self.verify(scratch.db)
        #expect(status == 0)
        #expect(report["verified"] as? Bool == true)
        #expect(report["size"] as? Int == 37)
        #expect(report["firstBadSeq"] == nil)
        let (fullStatus, fullReport) = try Self.verify(scratch.db, full: true)
        #expect(fullStatus == 0)
        #expect(fullReport["rootHash"] as? String == report["rootHash"] as? String)

        // key: the vkey parses and matches the checkpoint's signature.
        let key = try CustosExecutable.run(["audit", "key", "--db", scratch.db])
        let vkey = try NoteVerifierKey(parsing: key.stdout.trimmingCharacters(in: .newlines))
        #expect(vkey.name == AuditLog.defaultOrigin)
        let note = try CustosExecutable.run(["audit", "checkpoint", "--db", scratch.db])
        let checkpoint = try SignedCheckpoint(verifying: Array(note.stdout.utf8), key: vkey, origin: AuditLog.defaultOrigin)
        #expect(checkpoint.checkpoint.size == 37)

        // proof and consistency (JSON shapes of the issue), verified with the static verifiers.
        let bodies = try Self.bodies(scratch.db)
        let proof = try CustosExecutable.run(["audit", "proof", "--db", scratch.db, "--index", "20", "--json"])
        let proofJSON = try JSONValue.parse(proof.stdout.trimmingCharacters(in: .newlines))
        #expect(proofJSON["leafIndex"] == 20 && proofJSON["treeSize"] == 37)
        #expect(proofJSON["leafHash"]?.stringValue == Hex.encode(MerkleHash.leaf(bodies[20])))
        let path = try (proofJSON["hashes"]?.arrayValue ?? []).map { try Hex.decode($0.stringValue ?? "") }
        #expect(
            MerkleProof.verifyInclusion(
                index: 20, size: 37, leafHash: MerkleHash.leaf(bodies[20]), path: path, root: checkpoint.checkpoint.rootHash) == .verified)
        let consistency = try CustosExecutable.run([
            "audit", "consistency", "--db", scratch.db, "--first", "10", "--second", "37", "--json",
        ])
        let hashes = try (JSONValue.parse(consistency.stdout.trimmingCharacters(in: .newlines))["hashes"]?.arrayValue ?? []).map {
            try Hex.decode($0.stringValue ?? "")
        }
        let root10 = MerkleHash.root(leafHashes: bodies.prefix(10).map { MerkleHash.leaf($0) })
        #expect(
            MerkleProof.verifyConsistency(
                first: 10, second: 37, firstRoot: root10, secondRoot: checkpoint.checkpoint.rootHash, path: hashes)
                == .verified)
        let outOfRange = try CustosExecutable.run(["audit", "proof", "--db", scratch.db, "--index", "37", "--json"])
        #expect(outOfRange.status == 2)

        // tail/show filters.
        let tail = try CustosExecutable.run(["audit", "tail", "--db", scratch.db, "--tenant", "bench-3", "--limit", "100", "--json"])
        let entries = try JSONValue.parse(tail.stdout.trimmingCharacters(in: .newlines))["entries"]?.arrayValue ?? []
        #expect(entries.count == (0..<37).filter { $0 % 8 == 3 }.count)
        #expect(entries.allSatisfy { $0["entry"]?["tenant"] == "bench-3" })
        let show = try CustosExecutable.run(["audit", "show", "--db", scratch.db, "--type", "secret.denied", "--json"])
        #expect(try JSONValue.parse(show.stdout.trimmingCharacters(in: .newlines))["entries"] == .array([]))

        // export → the offline Python auditor (stdlib + cryptography, no Custos).
        let export = try CustosExecutable.run(["audit", "export", "--db", scratch.db])
        #expect(export.status == 0)
        let exportFile = scratch.directory.appendingPathComponent("export.jsonl")
        try Data(export.stdout.utf8).write(to: exportFile)
        let script = TestData.packageRoot.appendingPathComponent("scripts/audit/verify_export.py").path
        let offline = try Subprocess.run("/usr/bin/python3", [script, "export", exportFile.path, "--vkey", vkey.encoded])
        #expect(offline.status == 0, "offline check failed: \(offline.stdout) \(offline.stderr)")
        // The same auditor catches an edited export.
        try Data(export.stdout.replacingOccurrences(of: "bench/5\\\"", with: "bench/6\\\"").utf8).write(to: exportFile)
        let edited = try Subprocess.run("/usr/bin/python3", [script, "export", exportFile.path, "--vkey", vkey.encoded])
        #expect(edited.status == 1)
    }

    static func bodies(_ db: String) throws -> [[UInt8]] {
        let pool = try StoreDatabase.openPool(path: db)
        return try pool.read { db in try Data.fetchAll(db, sql: "SELECT body FROM audit_entries ORDER BY seq").map { [UInt8]($0) } }
    }

    // MARK: Tamper evidence

    /// Both modes: the default byte scan and `--full` (JCS re-canonicalisation).
    @Test(.timeLimit(.minutes(10)), arguments: [false, true]) func oneChangedByteIsReportedAtItsSeq(full: Bool) throws {
        let scratch = try Scratch()
        try Self.makeLog(scratch, entries: 40)
        // Flip one byte inside entry 17's body: "bench/N" → "bencH/N" (still valid JSON). The bench appends from 8
        // workers, so which index landed at seq 17 depends on scheduling: the edit must not name the index.
        try Self.tamper(
            scratch.db, "UPDATE audit_entries SET body = CAST(replace(CAST(body AS TEXT), '\"bench/', '\"bencH/') AS BLOB) WHERE seq = 17;")
        #expect(String(decoding: try Self.bodies(scratch.db)[17], as: UTF8.self).contains("\"bencH/"), "the tamper missed entry 17")
        let (status, report) = try Self.verify(scratch.db, full: full)
        #expect(status == 1)
        #expect(report["verified"] as? Bool == false)
        #expect(report["firstBadSeq"] as? Int == 17, "\(report)")
    }

    /// Both modes: the default byte scan and `--full` (JCS re-canonicalisation).
    @Test(.timeLimit(.minutes(10)), arguments: [false, true]) func rewrittenLeafHashIsCaughtByTheChain(full: Bool) throws {
        let scratch = try Scratch()
        try Self.makeLog(scratch, entries: 40)
        // Change the body and recompute its leaf hash with sqlite3 (no sha256 there: copy another row's body and
        // hash) — entry 12 becomes a copy of entry 30: seq field and chain both break at 12.
        try Self.tamper(
            scratch.db,
            "UPDATE audit_entries SET body = (SELECT body FROM audit_entries WHERE seq = 30), "
                + "leaf_hash = (SELECT leaf_hash FROM audit_entries WHERE seq = 30) WHERE seq = 12;")
        let (status, report) = try Self.verify(scratch.db, full: full)
        #expect(status == 1)
        #expect(report["firstBadSeq"] as? Int == 12, "\(report)")
    }

    /// Both modes: the default byte scan and `--full` (JCS re-canonicalisation).
    @Test(.timeLimit(.minutes(10)), arguments: [false, true]) func deletedRowIsReportedAtItsSeq(full: Bool) throws {
        let scratch = try Scratch()
        try Self.makeLog(scratch, entries: 40)
        try Self.tamper(scratch.db, "DELETE FROM audit_entries WHERE seq = 23;")
        let (status, report) = try Self.verify(scratch.db, full: full)
        #expect(status == 1)
        #expect(report["firstBadSeq"] as? Int == 23, "\(report)")
        #expect((report["reason"] as? String)?.contains("missing") == true)
    }

    /// Both modes: the default byte scan and `--full` (JCS re-canonicalisation).
    @Test(.timeLimit(.minutes(10)), arguments: [false, true]) func swappedRowsAreReportedAtTheFirst(full: Bool) throws {
        let scratch = try Scratch()
        try Self.makeLog(scratch, entries: 40)
        try Self.tamper(
            scratch.db,
            "CREATE TEMP TABLE s AS SELECT * FROM audit_entries WHERE seq IN (8, 31);"
                + "DELETE FROM audit_entries WHERE seq IN (8, 31);"
                + "INSERT INTO audit_entries SELECT CASE seq WHEN 8 THEN 31 ELSE 8 END, body, leaf_hash, tenant, type, time FROM s;")
        let (status, report) = try Self.verify(scratch.db, full: full)
        #expect(status == 1)
        #expect(report["firstBadSeq"] as? Int == 8, "\(report)")
    }

    /// A row with a negative index (the schema does not forbid one): reported as a bad log, never a trap, by the
    /// verifier and by the log reader the service opens (`UInt64(-1)` used to stop the process).
    @Test(.timeLimit(.minutes(10)), arguments: [false, true]) func negativeIndexIsReportedNotATrap(full: Bool) throws {
        let scratch = try Scratch()
        try Self.makeLog(scratch, entries: 5)
        try Self.tamper(
            scratch.db, "DELETE FROM audit_entries; INSERT INTO audit_entries VALUES (-1, x'7b7d', zeroblob(32), 't', 'x', 't');")
        let (status, report) = try Self.verify(scratch.db, full: full)
        #expect(status == 1, "\(report)")
        #expect(report["verified"] as? Bool != true)
        let pool = try DatabasePool(path: scratch.db)
        let reader = try AuditLogReader(database: pool)
        #expect(throws: AuditError(.corrupted, "")) { try reader.size() }
    }

    /// Both modes: the default byte scan and `--full` (JCS re-canonicalisation).
    @Test(.timeLimit(.minutes(10)), arguments: [false, true]) func deletedTailIsReportedAgainstTheCheckpoint(full: Bool) throws {
        let scratch = try Scratch()
        try Self.makeLog(scratch, entries: 40)
        try Self.tamper(scratch.db, "DELETE FROM audit_entries WHERE seq >= 35;")
        let (status, report) = try Self.verify(scratch.db, full: full)
        #expect(status == 1)
        #expect(report["firstBadSeq"] as? Int == 35, "\(report)")
    }

    /// Both modes: the default byte scan and `--full` (JCS re-canonicalisation).
    @Test(.timeLimit(.minutes(10)), arguments: [false, true]) func truncatedFileIsReported(full: Bool) throws {
        let scratch = try Scratch()
        try Self.makeLog(scratch, entries: 3000, checkpointEvery: 500)
        let size = try #require(try FileManager.default.attributesOfItem(atPath: scratch.db)[.size] as? Int)
        #expect(
            !FileManager.default.fileExists(atPath: scratch.db + "-wal")
                || (try? Data(contentsOf: URL(fileURLWithPath: scratch.db + "-wal")))?.isEmpty == true)
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: scratch.db))
        try handle.truncate(atOffset: UInt64(size / 2))
        try handle.close()
        // The damaged file is still read up to the first missing page; the first lost entry is reported.
        let (status, report) = try Self.verify(scratch.db, full: full)
        #expect(status == 1)
        #expect(report["verified"] as? Bool == false)
        let seq = try #require(report["firstBadSeq"] as? Int, "\(report)")
        #expect(seq > 0 && seq < 3000)
        #expect(report["size"] as? Int == seq)
    }

    /// A non-canonical body whose leaf hash was recomputed (by Python's hashlib): the default scan still fails the
    /// log (the tree no longer has the signed root), and `--full` names the entry itself.
    @Test(.timeLimit(.minutes(10))) func nonCanonicalEntryIsPinpointedByFull() throws {
        let scratch = try Scratch()
        try Self.makeLog(scratch, entries: 40)
        let script = """
            import hashlib, sqlite3, sys
            db = sqlite3.connect(sys.argv[1])
            for t in ["audit_entries_no_update", "audit_entries_no_delete"]:
                db.execute("DROP TRIGGER " + t)
            body = db.execute("SELECT body FROM audit_entries WHERE seq = 39").fetchone()[0]
            assert b'"actor":{"' in body
            body = body.replace(b'"actor":{"', b'"actor":{ "', 1)
            leaf = hashlib.sha256(b"\\x00" + body).digest()
            db.execute("UPDATE audit_entries SET body = ?, leaf_hash = ? WHERE seq = 39", (body, leaf))
            db.commit()
            """
        let python = try Subprocess.run("/usr/bin/python3", ["-c", script, scratch.db])
        #expect(python.status == 0, "python failed: \(python.stderr)")
        let (status, report) = try Self.verify(scratch.db)
        #expect(status == 1)
        #expect(report["verified"] as? Bool == false)
        #expect((report["firstBadSeq"] as? Int).map { $0 <= 39 } == true, "\(report)")
        let (fullStatus, fullReport) = try Self.verify(scratch.db, full: true)
        #expect(fullStatus == 1)
        #expect(fullReport["firstBadSeq"] as? Int == 39, "\(fullReport)")
        #expect((fullReport["reason"] as? String)?.contains("canonical") == true, "\(fullReport)")
    }

    @Test func sqlUpdatesAndDeletesFailWithTheTriggers() throws {
        let scratch = try Scratch()
        try Self.makeLog(scratch, entries: 5)
        for sql in [
            "UPDATE audit_entries SET body = x'00' WHERE seq = 1;", "DELETE FROM audit_entries WHERE seq = 4;",
            "DELETE FROM audit_checkpoints;",
        ] {
            let result = try Subprocess.run("/usr/bin/sqlite3", [scratch.db, sql])
            #expect(result.status != 0, "\(sql) succeeded")
            #expect(result.stderr.contains("append-only"))
        }
        #expect(try Self.verify(scratch.db).status == 0)
    }

    // MARK: Bad input

    @Test func unusableDatabasesExitTwo() throws {
        let scratch = try Scratch()
        let missing = try CustosExecutable.run(["audit", "verify", "--db", scratch.directory.appendingPathComponent("nope.sqlite").path])
        #expect(missing.status == 2)
        #expect(!FileManager.default.fileExists(atPath: scratch.directory.appendingPathComponent("nope.sqlite").path))
        let garbage = scratch.directory.appendingPathComponent("garbage.sqlite")
        try Data(repeating: 0x41, count: 8192).write(to: garbage)
        let notSQLite = try CustosExecutable.run(["audit", "verify", "--db", garbage.path, "--json"])
        #expect(notSQLite.status == 2)
        // An empty file is an empty database to SQLite: every command refuses it, and none writes to it (the commands
        // open the database read-only; a read-write open made it a WAL database).
        let zero = scratch.directory.appendingPathComponent("zero.sqlite")
        #expect(FileManager.default.createFile(atPath: zero.path, contents: Data()))
        for command in [["verify"], ["key"], ["checkpoint"], ["tail"], ["show", "--from", "1"], ["export"], ["proof", "--index", "0"]] {
            let result = try CustosExecutable.run(["audit"] + command + ["--db", zero.path, "--json"])
            #expect(result.status == 2, "\(command): \(result.stderr)")
            let object = (try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8))) as? [String: Any]
            #expect(object?["error"] != nil, "\(command): \(result.stdout)")
            #expect((try FileManager.default.attributesOfItem(atPath: zero.path)[.size] as? Int) == 0, "\(command) wrote to the file")
            #expect(!FileManager.default.fileExists(atPath: zero.path + "-wal"), "\(command) made a WAL")
        }
        let empty = try StoreDatabase.openPool(path: scratch.db)
        try empty.write { db in try db.execute(sql: "CREATE TABLE other (x)") }
        for command in [["verify"], ["key"], ["checkpoint"], ["tail"], ["proof", "--index", "0"]] {
            let result = try CustosExecutable.run(["audit"] + command + ["--db", scratch.db])
            #expect(result.status == 2, "\(command): \(result.stderr)")
            #expect(!result.stderr.isEmpty)
        }
    }

    // MARK: Crash safety

    /// A child appends with `--print-acks` and is killed with SIGKILL at a random moment (seeded, printed,
    /// `CUSTOS_TEST_SEED` to replay). Every acknowledged seq is present, `audit verify` passes and appends continue.
    @Test(.timeLimit(.minutes(10))) func acknowledgedAppendsSurviveSIGKILL() throws {
        var rng = SeededGenerator.fromEnvironment(label: "acknowledgedAppendsSurviveSIGKILL")
        for round in 0..<2 {
            let scratch = try Scratch()
            let killAfter = Int.random(in: 50...3000, using: &rng)
            let process = Process()
            process.executableURL = CustosExecutable.url
            process.arguments = [
                "bench", "audit-append", "--db", scratch.db, "--entries", "1000000", "--concurrency", "32", "--print-acks",
                "--checkpoint-every",
                "100",
            ]
            let out = Pipe()
            process.standardOutput = out
            process.standardError = FileHandle.nullDevice
            try process.run()
            var acked = Set<Int>()
            var buffer = Data()
            let reader = out.fileHandleForReading
            while acked.count < killAfter {
                let chunk = reader.availableData
                if chunk.isEmpty { break }
                buffer.append(chunk)
                while let newline = buffer.firstIndex(of: 0x0A) {
                    let line = String(decoding: buffer[buffer.startIndex..<newline], as: UTF8.self)
                    buffer.removeSubrange(buffer.startIndex...newline)
                    if line.hasPrefix("ack "), let seq = Int(line.dropFirst(4)) { acked.insert(seq) }
                }
            }
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            #expect(process.terminationReason == .uncaughtSignal, "round \(round): the child exited before it was killed")
            #expect(acked.count >= killAfter)

            let (status, report) = try Self.verify(scratch.db)
            #expect(status == 0, "round \(round): \(report)")
            let size = try #require(report["size"] as? Int)
            let maxAcked = try #require(acked.max())
            #expect(size > maxAcked, "round \(round): acknowledged seq \(maxAcked) lost (size \(size))")
            let seqs = try Self.bodies(scratch.db).compactMap { try? JSONValue.parse($0)["seq"]?.integerValue }.map(Int.init)
            #expect(acked.isSubset(of: Set(seqs)))

            // Appends continue after the crash.
            let more = try CustosExecutable.run([
                "bench", "audit-append", "--db", scratch.db, "--entries", "25", "--concurrency", "4", "--json",
            ])
            #expect(more.status == 0, "\(more.stderr)")
            let bench = try #require(try JSONSerialization.jsonObject(with: Data(more.stdout.utf8)) as? [String: Any])
            #expect(bench["entries"] as? Int == 25)
            #expect((bench["cpuMicrosPerAppend"] as? Double ?? 0) > 0, "\(more.stdout)")
            let after = try Self.verify(scratch.db)
            #expect(after.status == 0)
            #expect(after.report["size"] as? Int == size + 25)
        }
    }
}
