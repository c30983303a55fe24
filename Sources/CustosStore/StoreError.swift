/// The one error type of ``CustosStore``.
///
/// Errors are equal by ``code`` only (as `CryptoError` is), so tests and callers switch on the code while the
/// ``reason`` still reaches the user. The CLI maps every code to exit status 2 (unusable input) and the server maps
/// them to HTTP statuses (`notFound` → 404, `conflict` → 409, `preconditionFailed` → 412, `capacity` → 429/503, …).
public struct StoreError: Error, Hashable, Sendable, CustomStringConvertible {
    /// An extensible error code (a struct of `static let` values, so new codes do not break users).
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        public init(_ name: String) { self.name = name }
        public var description: String { name }

        /// The tenant, credential, secret (version), reference-value set, appraisal or launch does not exist.
        public static let notFound = Code("notFound")
        /// The write conflicts with the current state: a duplicate id, a second measurement for one launch, a launch
        /// state transition that is not allowed.
        public static let conflict = Code("conflict")
        /// An `If-Match` revision did not match the stored one.
        public static let preconditionFailed = Code("preconditionFailed")
        /// A caller-supplied value is out of range or malformed (a tenant id, a secret path, a cursor, a token).
        public static let invalidInput = Code("invalidInput")
        /// Sealing or unsealing failed: a ciphertext or wrapped key does not authenticate under the key and binding
        /// it claims (tampered, copied to another tenant/path, or the wrong master key).
        public static let sealing = Code("sealing")
        /// The master key is missing, unreadable, readable by group/others, not 32 bytes, or does not match the
        /// keys the database was sealed with.
        public static let masterKey = Code("masterKey")
        /// The database file is not a Custos SQLite database or is damaged (`SQLITE_CORRUPT`, `SQLITE_NOTADB`), or a
        /// stored row does not decode.
        public static let corrupted = Code("corrupted")
        /// The data directory or database path cannot be used (missing parent, not a directory, no permission).
        public static let unusablePath = Code("unusablePath")
        /// The database was written by a newer Custos (it has store migrations this build does not know).
        public static let schemaTooNew = Code("schemaTooNew")
        /// An in-memory cache (challenges) is full; the caller should answer 429/503 with `Retry-After`.
        public static let capacity = Code("capacity")
        /// A release would exceed its policy's `maxReleasesPerAttestation` for this appraisal.
        public static let releaseLimit = Code("releaseLimit")
        /// Any other database failure (I/O error, disk full, lock held past the busy timeout).
        public static let database = Code("database")
    }

    public let code: Code
    /// A sentence for a human: what failed and why. Never contains secret material or statement arguments.
    public let reason: String
    public let file: String
    public let line: Int

    public init(_ code: Code, _ reason: String, file: String = #fileID, line: Int = #line) {
        self.code = code
        self.reason = reason
        self.file = file
        self.line = line
    }

    public static func == (lhs: StoreError, rhs: StoreError) -> Bool { lhs.code == rhs.code }
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }

    public var description: String { "\(code): \(reason)" }
}
