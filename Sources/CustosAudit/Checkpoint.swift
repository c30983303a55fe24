import CustosCrypto

/// A C2SP `tlog-checkpoint` v1.0.0 body: origin, tree size, base64 root hash (specs/audit.md §7).
public struct Checkpoint: Sendable, Equatable {
    /// The log's origin line.
    public let origin: String
    /// The tree size.
    public let size: UInt64
    /// `MTH(D[0:size])`, 32 bytes.
    public let rootHash: [UInt8]

    /// - Throws: ``AuditError/Code-swift.struct/malformedCheckpoint`` for an empty or multi-line origin, a root that
    ///   is not 32 bytes, or a size-0 checkpoint whose root is not `MTH({})`.
    public init(origin: String, size: UInt64, rootHash: [UInt8]) throws(AuditError) {
        guard !origin.isEmpty, !origin.unicodeScalars.contains(where: { $0.value < 0x20 }) else {
            throw AuditError(.malformedCheckpoint, "the origin must be one non-empty line")
        }
        guard rootHash.count == MerkleHash.byteCount else {
            throw AuditError(.malformedCheckpoint, "the root hash is \(rootHash.count) bytes, not 32")
        }
        guard size != 0 || rootHash == MerkleHash.emptyRoot else {
            throw AuditError(.malformedCheckpoint, "a size-0 checkpoint must carry the empty tree's root")
        }
        self.origin = origin
        self.size = size
        self.rootHash = rootHash
    }

    /// The checkpoint text (the signed bytes): three lines, each ending in LF, no extension lines.
    public var text: String { "\(origin)\n\(size)\n\(Base64.encode(rootHash))\n" }

    /// Parses a checkpoint text strictly (§7 verifier steps 1–5); extension lines are allowed and ignored.
    /// - Parameters:
    ///   - text: The note text (as ``SignedNote/open(_:verifiers:)`` returns it).
    ///   - expectedOrigin: When given, line 1 must equal it byte for byte.
    /// - Throws: ``AuditError/Code-swift.struct/malformedCheckpoint``.
    public init(parsing text: String, expectedOrigin: String? = nil) throws(AuditError) {
        guard text.hasSuffix("\n") else { throw AuditError(.malformedCheckpoint, "the checkpoint text does not end in a newline") }
        let lines = text.dropLast().split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.count >= 3, lines.allSatisfy({ !$0.isEmpty }) else {
            throw AuditError(.malformedCheckpoint, "a checkpoint has at least three non-empty lines")
        }
        let origin = String(lines[0])
        if let expectedOrigin, Array(origin.utf8) != Array(expectedOrigin.utf8) {
            throw AuditError(.malformedCheckpoint, "the checkpoint's origin \"\(origin)\" is not \"\(expectedOrigin)\"")
        }
        guard let size = Self.parseSize(lines[1]) else {
            throw AuditError(.malformedCheckpoint, "the tree size \"\(lines[1])\" is not a canonical decimal UInt64")
        }
        guard let root = StrictBase64.decode(String(lines[2])), root.count == MerkleHash.byteCount else {
            throw AuditError(.malformedCheckpoint, "the root hash is not canonical base64 of 32 bytes")
        }
        try self.init(origin: origin, size: size, rootHash: root)
    }

    /// `0` or `[1-9][0-9]*`, at most 20 digits, fitting `UInt64` (never `UInt64(String)`, which takes `+8`, `08`).
    static func parseSize(_ text: Substring) -> UInt64? {
        let digits = Array(text.utf8)
        guard !digits.isEmpty, digits.count <= 20, digits.allSatisfy({ (0x30...0x39).contains($0) }) else { return nil }
        guard digits.count == 1 || digits[0] != 0x30 else { return nil }
        var value: UInt64 = 0
        for digit in digits {
            let (times10, o1) = value.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times10.addingReportingOverflow(UInt64(digit - 0x30))
            guard !o1, !o2 else { return nil }
            value = sum
        }
        return value
    }
}

/// A checkpoint together with its signed note, as the log stores and serves it.
public struct SignedCheckpoint: Sendable, Equatable {
    /// The parsed body.
    public let checkpoint: Checkpoint
    /// The whole signed note (text, blank line, signature line).
    public let note: String

    /// Signs `checkpoint` with `signer` (whose key name should be the origin).
    public init(signing checkpoint: Checkpoint, with signer: NoteSigner) throws(AuditError) {
        self.checkpoint = checkpoint
        self.note = try signer.sign(text: checkpoint.text)
    }

    /// Opens and parses a stored or fetched note with the log's key and origin.
    /// - Throws: ``AuditError/Code-swift.struct/malformedNote``, ``AuditError/Code-swift.struct/noteNotVerified`` or
    ///   ``AuditError/Code-swift.struct/malformedCheckpoint``.
    public init(verifying note: [UInt8], key: NoteVerifierKey, origin: String) throws(AuditError) {
        let opened = try SignedNote.open(note, verifiers: [key])
        self.checkpoint = try Checkpoint(parsing: opened.text, expectedOrigin: origin)
        self.note = String(decoding: note, as: UTF8.self)
    }
}
