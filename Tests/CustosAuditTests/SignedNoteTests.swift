import CustosAudit
import CustosCrypto
import CustosTestSupport
import Foundation
import Testing

/// C2SP signed notes and tlog checkpoints (specs/audit.md §6, §7) against the C2SP and Go `sumdb/note` examples, and
/// a checkpoint signed here verified by a second Ed25519 implementation (PyPI `cryptography`).
@Suite struct SignedNoteTests {
    static let peterSigner = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
    static let peterVkey = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
    static let peterText = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
    static let peterLine =
        "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
    static let enochVkey = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
    static let enochLine =
        "\u{2014} EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n"

    /// Ed25519 is deterministic: signing Go's text with Go's test key gives Go's signature line byte for byte.
    @Test func signsThePeterNeumannNoteByteForByte() throws {
        let signer = try NoteSigner(parsingGoSignerKey: Self.peterSigner)
        #expect(signer.verifierKey.encoded == Self.peterVkey)
        #expect(try signer.sign(text: Self.peterText) == Self.peterText + "\n" + Self.peterLine)
    }

    @Test func opensGoAndC2SPExamples() throws {
        let peter = try NoteVerifierKey(parsing: Self.peterVkey)
        let opened = try SignedNote.open(Array((Self.peterText + "\n" + Self.peterLine).utf8), verifiers: [peter])
        #expect(opened.text == Self.peterText)
        #expect(opened.verifiedBy == [peter])

        // Doubly signed; only Peter's key known: one verified, one ignored.
        let both = Array((Self.peterText + "\n" + Self.peterLine + Self.enochLine).utf8)
        let openedBoth = try SignedNote.open(both, verifiers: [peter])
        #expect(openedBoth.unverifiedSignatureCount == 1)
        let enoch = try NoteVerifierKey(parsing: Self.enochVkey)
        #expect(try SignedNote.open(both, verifiers: [peter, enoch]).verifiedBy.count == 2)

        let c2sp = try NoteVerifierKey(parsing: "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k")
        let note =
            "This is an example message.\n\n\u{2014} example.com/foo "
            + "Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
        #expect(try SignedNote.open(Array(note.utf8), verifiers: [c2sp]).text == "This is an example message.\n")
    }

    @Test func rejectsWrongKeysAndTamperedNotes() throws {
        let peter = try NoteVerifierKey(parsing: Self.peterVkey)
        let enoch = try NoteVerifierKey(parsing: Self.enochVkey)
        let good = Self.peterText + "\n" + Self.peterLine
        let unknown = #expect(throws: AuditError.self) { try SignedNote.open(Array(good.utf8), verifiers: [enoch]) }
        #expect(unknown?.code == .noteNotVerified)
        let tampered = good.replacingOccurrences(of: "answer", with: "ANSWER")
        let bad = #expect(throws: AuditError.self) { try SignedNote.open(Array(tampered.utf8), verifiers: [peter]) }
        #expect(bad?.code == .noteNotVerified)
        // Same name, another key ID: ignored, so nothing verified.
        let otherID = try NoteVerifierKey(name: "PeterNeumann", publicKey: enoch.publicKey)
        #expect(throws: AuditError.self) { try SignedNote.open(Array(good.utf8), verifiers: [otherID]) }
    }

    /// Go `TestOpen`'s malformed notes and friends.
    @Test(arguments: [
        "no blank line\n\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n",
        "text\n\n\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=",
        "\u{01}text\n\n\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n",
        "text\n\n\u{2014} Peter Neumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n",
        "text\n\n\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\nnot a sig\n",
        "text\n\n- PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n",
        "text\n\n\u{2014} PeterNeumann x08g\n",
        "text\n\n\u{2014} PeterNeumann x08go_ZJkuBS9UG_SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM\n",
        "text\n\n",
        "",
    ])
    func rejectsMalformedNotes(_ note: String) throws {
        let peter = try NoteVerifierKey(parsing: Self.peterVkey)
        let error = #expect(throws: AuditError.self) { try SignedNote.open(Array(note.utf8), verifiers: [peter]) }
        #expect(error?.code == .malformedNote)
    }

    @Test func rejectsInvalidUTF8AndLeadingFF() throws {
        let peter = try NoteVerifierKey(parsing: Self.peterVkey)
        let note = [0xFF] + Array((Self.peterText + "\n" + Self.peterLine).utf8)
        #expect(throws: AuditError.self) { try SignedNote.open(note, verifiers: [peter]) }
    }

    @Test(arguments: [
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  // wrong key ID
        "PeterNeumann+c74f20a3+Ahpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  // type byte 0x02
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10Q=",  // 31-byte key
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWAA==",  // 33-byte key
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  // space in the name
        "PeterNeumann+c74f20a3",  // two parts
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq_LDE4izWy10TW",  // URL-safe alphabet
    ])
    func rejectsBadVerifierKeys(_ vkey: String) {
        let error = #expect(throws: AuditError.self) { try NoteVerifierKey(parsing: vkey) }
        #expect(error?.code == .malformedKey)
    }

    // MARK: Checkpoints

    @Test func checkpointTextAndStrictParse() throws {
        let root = try Hex.decode("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")
        let checkpoint = try Checkpoint(origin: "custos.test/audit", size: 8, rootHash: root)
        #expect(checkpoint.text == "custos.test/audit\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n")
        #expect(try Checkpoint(parsing: checkpoint.text, expectedOrigin: "custos.test/audit") == checkpoint)
        let c2sp = try Checkpoint(parsing: "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n")
        #expect(c2sp.size == 20_852_163)
        // Extension lines are allowed and carry no meaning.
        #expect(try Checkpoint(parsing: checkpoint.text + "time 1727697600\n").size == 8)
        let empty = try Checkpoint(parsing: "o\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n")
        #expect(empty.rootHash == MerkleHash.emptyRoot)
    }

    @Test(arguments: [
        "o\n08\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n",
        "o\n+8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n",
        "o\n-1\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n",
        "o\n123456789012345678901\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n",
        "o\n18446744073709551616\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n",
        "o\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyh=\n",  // non-canonical last character (Trap 11)
        "o\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz-Nw7_RgQyg=\n",  // URL-safe
        "o\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg\n",  // no padding
        "o\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n\nx\n",  // empty line
        "o\n8\n",
        "\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n",
        "o\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=",
        "o\n0\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n",  // size 0 must carry MTH({})
        "other\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n",  // wrong origin
    ])
    func rejectsMalformedCheckpoints(_ text: String) {
        let error = #expect(throws: AuditError.self) { try Checkpoint(parsing: text, expectedOrigin: text.hasPrefix("other") ? "o" : nil) }
        #expect(error?.code == .malformedCheckpoint)
    }

    /// A checkpoint signed here opens with PyPI `cryptography` (an independent Ed25519 and note parser:
    /// scripts/audit/verify_export.py), and a one-byte change makes it fail there too.
    @Test func pythonCryptographyVerifiesOurCheckpoint() throws {
        let signer = try NoteSigner(name: "custos.test/audit", privateKey: try Ed25519PrivateKey())
        let root = Digest.sha256(Array("root".utf8))
        let signed = try SignedCheckpoint(signing: try Checkpoint(origin: "custos.test/audit", size: 42, rootHash: root), with: signer)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("custos-note-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let good = directory.appendingPathComponent("good.note")
        try Data(signed.note.utf8).write(to: good)
        let bad = directory.appendingPathComponent("bad.note")
        try Data(signed.note.replacingOccurrences(of: "\n42\n", with: "\n43\n").utf8).write(to: bad)
        let script = TestData.packageRoot.appendingPathComponent("scripts/audit/verify_export.py").path
        let accepted = try Subprocess.run("/usr/bin/python3", [script, "note", signer.verifierKey.encoded, good.path])
        #expect(accepted.status == 0, "python rejected our note: \(accepted.stdout) \(accepted.stderr)")
        #expect(accepted.stdout == signed.checkpoint.text)
        let rejected = try Subprocess.run("/usr/bin/python3", [script, "note", signer.verifierKey.encoded, bad.path])
        #expect(rejected.status == 1)
    }
}

/// Runs a process to completion (stdout to a pipe, stderr to a file so neither can block the other).
enum Subprocess {
    struct Result {
        let status: Int32
        let stdout: String
        let stderr: String
    }

    static func run(_ executable: String, _ arguments: [String]) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let errURL = FileManager.default.temporaryDirectory.appendingPathComponent("custos-err-\(UUID().uuidString)")
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
        return Result(
            status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
            stderr: String(decoding: (try? Data(contentsOf: errURL)) ?? Data(), as: UTF8.self))
    }
}
