/// The one error type of ``CustosAudit``: an extensible ``Code``, a sentence, and where known the entry's `seq`.
///
/// Equal by code only (STYLE.md §6), so tests compare against `AuditError.Code` values.
public struct AuditError: Error, Hashable, Sendable, CustomStringConvertible {
    /// An extensible code (a struct of `static let` values).
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        public init(_ name: String) { self.name = name }
        public var description: String { name }

        /// A signed note is not well-formed (specs/audit.md §6).
        public static let malformedNote = Code("malformedNote")
        /// No trusted key signed the note, or a trusted key's signature is wrong.
        public static let noteNotVerified = Code("noteNotVerified")
        /// A checkpoint's text is not well-formed or names another origin (§7).
        public static let malformedCheckpoint = Code("malformedCheckpoint")
        /// A verifier key (vkey), a key name or a log key file is unusable.
        public static let malformedKey = Code("malformedKey")
        /// An event cannot be logged (unknown type, not an object, too large, a field that looks secret).
        public static let invalidEvent = Code("invalidEvent")
        /// A proof was asked for indices or sizes the log does not have.
        public static let outOfRange = Code("outOfRange")
        /// The database is not an audit log, or was created for another origin or key.
        public static let notAnAuditLog = Code("notAnAuditLog")
        /// The stored log contradicts itself or its signed checkpoints (the log refuses to append).
        public static let corrupted = Code("corrupted")
        /// The database holds fewer entries than a checkpoint it signed: a restored backup; appending would fork.
        public static let behindCheckpoint = Code("behindCheckpoint")
        /// SQLite failed (I/O, locking, a file that is not a database).
        public static let database = Code("database")
    }

    public let code: Code
    /// A sentence for a human.
    public let reason: String
    /// The entry concerned, when there is one.
    public let seq: UInt64?
    public let file: String
    public let line: Int

    public init(_ code: Code, _ reason: String, seq: UInt64? = nil, file: String = #fileID, line: Int = #line) {
        self.code = code
        self.reason = reason
        self.seq = seq
        self.file = file
        self.line = line
    }

    public static func == (lhs: AuditError, rhs: AuditError) -> Bool { lhs.code == rhs.code }
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }

    public var description: String {
        if let seq { return "\(code): \(reason) (seq \(seq))" }
        return "\(code): \(reason)"
    }
}
