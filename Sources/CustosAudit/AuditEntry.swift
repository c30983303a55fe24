public import CustosCrypto
public import Foundation

// MARK: - Events (service.md §11.1)

/// An event type of service.md §11.1.
public struct AuditEventType: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String
    /// - Throws: ``AuditError/Code-swift.struct/invalidEvent`` for a type not in ``all``.
    public init(_ rawValue: String) throws(AuditError) {
        guard Self.all.contains(rawValue) else { throw AuditError(.invalidEvent, "unknown event type \"\(rawValue)\"") }
        self.rawValue = rawValue
    }
    private init(known rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }

    /// Every type the log accepts.
    public static let all: Set<String> = [
        "launch.created", "launch.measurement.allowed", "launch.measurement.denied", "launch.secret.injected",
        "challenge.issued",
        "attestation.affirmed", "attestation.warning", "attestation.contraindicated", "attestation.error",
        "secret.released", "secret.denied", "secret.created", "secret.rotated", "secret.deleted",
        "policy.loaded", "policy.changed", "policy.rejected", "refvalue.changed",
        "key.rotated", "admin.auth.failed", "config.changed", "checkpoint.signed",
        "appraisal.pruned",
    ]

    public static let launchCreated = AuditEventType(known: "launch.created")
    public static let attestationAffirmed = AuditEventType(known: "attestation.affirmed")
    public static let attestationContraindicated = AuditEventType(known: "attestation.contraindicated")
    public static let secretReleased = AuditEventType(known: "secret.released")
    public static let secretDenied = AuditEventType(known: "secret.denied")
    public static let secretCreated = AuditEventType(known: "secret.created")
    public static let secretRotated = AuditEventType(known: "secret.rotated")
    public static let secretDeleted = AuditEventType(known: "secret.deleted")
    public static let refvalueChanged = AuditEventType(known: "refvalue.changed")
    public static let policyLoaded = AuditEventType(known: "policy.loaded")
    public static let keyRotated = AuditEventType(known: "key.rotated")
    public static let configChanged = AuditEventType(known: "config.changed")
}

/// What a caller logs; the log adds `v`, `seq` and `prev_leaf` (service.md §11.1). Never put secrets here.
public struct AuditEvent: Sendable, Equatable {
    public var time: Date
    public var tenant: String
    public var type: AuditEventType
    /// Who acted (an object: `{"kind":"tee","tee":"tdx","key_jkt":"…"}`, `{"kind":"admin","id":"…"}`).
    public var actor: JSONValue
    /// What was acted on (an object).
    public var object: JSONValue
    /// The appraisal summary (an object), when the event follows one.
    public var appraisal: JSONValue?
    public var requestId: String?

    public init(
        time: Date = Date(), tenant: String, type: AuditEventType, actor: JSONValue, object: JSONValue,
        appraisal: JSONValue? = nil, requestId: String? = nil
    ) {
        self.time = time
        self.tenant = tenant
        self.type = type
        self.actor = actor
        self.object = object
        self.appraisal = appraisal
        self.requestId = requestId
    }
}

// MARK: - Entries (specs/audit.md §5)

/// The JCS entry format: building an entry for a seq, and checking a stored one.
public enum AuditEntry {
    /// The largest entry (tlog-tiles bundles carry a uint16 length; Trap 21).
    public static let maxByteCount = 65_535
    /// The entry's members, exactly.
    public static let keys: Set<String> = [
        "v", "seq", "time", "tenant", "type", "actor", "object", "appraisal", "request_id", "prev_leaf",
    ]
    /// Member names that must never appear anywhere in an entry: they name secret material.
    public static let forbiddenKeys: Set<String> = [
        "password", "passphrase", "private_key", "privateKey", "plaintext", "secret_value", "secretValue", "seed",
        "key_material", "tek", "tik",
    ]
    /// `prev_leaf` of entry 0.
    public static let zeroLeaf = String(repeating: "0", count: 64)

    /// The canonical bytes of `event` as entry `seq` following the leaf `previousLeaf`.
    /// - Throws: ``AuditError/Code-swift.struct/invalidEvent`` when the event is unfit (see ``validate(_:)``) or the
    ///   entry exceeds ``maxByteCount``.
    public static func encode(_ event: AuditEvent, seq: UInt64, previousLeaf: [UInt8]?) throws(AuditError) -> [UInt8] {
        try validate(event)
        guard let seqValue = Int64(exactly: seq), seqValue <= JSONValue.maxSafeInteger else {
            throw AuditError(.invalidEvent, "seq \(seq) is beyond JSON's safe integers")
        }
        let entry: JSONValue = .object([
            "v": 1, "seq": .integer(seqValue), "time": .string(timestamp(event.time)), "tenant": .string(event.tenant),
            "type": .string(event.type.rawValue), "actor": event.actor, "object": event.object,
            "appraisal": event.appraisal ?? .null, "request_id": event.requestId.map(JSONValue.string) ?? .null,
            "prev_leaf": .string(previousLeaf.map(Hex.encode) ?? zeroLeaf),
        ])
        let bytes = CanonicalJSON.encode(entry)
        guard bytes.count <= maxByteCount else {
            throw AuditError(.invalidEvent, "the entry is \(bytes.count) bytes, more than \(maxByteCount)")
        }
        return bytes
    }

    /// Checks what the caller controls: tenant, objects, no secret-looking member names, integers in range.
    public static func validate(_ event: AuditEvent) throws(AuditError) {
        guard !event.tenant.isEmpty, event.tenant.utf8.count <= 256 else {
            throw AuditError(.invalidEvent, "the tenant must be 1…256 bytes")
        }
        guard case .object = event.actor else { throw AuditError(.invalidEvent, "actor must be a JSON object") }
        guard case .object = event.object else { throw AuditError(.invalidEvent, "object must be a JSON object") }
        if let appraisal = event.appraisal, appraisal != .null {
            guard case .object = appraisal else { throw AuditError(.invalidEvent, "appraisal must be a JSON object") }
        }
        for value in [event.actor, event.object, event.appraisal ?? .null] { try check(value, depth: 0) }
    }

    private static func check(_ value: JSONValue, depth: Int) throws(AuditError) {
        guard depth < 32 else { throw AuditError(.invalidEvent, "the event nests deeper than 32 levels") }
        switch value {
        case .integer(let number):
            guard number.magnitude <= JSONValue.maxSafeInteger.magnitude else {
                throw AuditError(.invalidEvent, "integer \(number) out of range")
            }
        case .array(let elements):
            for element in elements { try check(element, depth: depth + 1) }
        case .object(let members):
            for (key, member) in members {
                guard !forbiddenKeys.contains(key) else {
                    throw AuditError(.invalidEvent, "member \"\(key)\" names secret material; secrets are never logged")
                }
                guard key.unicodeScalars.allSatisfy({ $0.isASCII }) else {
                    throw AuditError(.invalidEvent, "member names are ASCII (specs/audit.md Trap 16)")
                }
                try check(member, depth: depth + 1)
            }
        case .null, .bool, .string: break
        }
    }

    /// `YYYY-MM-DDTHH:MM:SS.mmmZ` in UTC.
    public static func timestamp(_ date: Date) -> String { RFC3339.format(date, milliseconds: true) }

    /// Why a stored entry is not the entry `seq` after `previousLeaf`, or `nil` when it is.
    ///
    /// Checks: valid UTF-8 JSON that is already in JCS form (the bytes are exactly what was hashed), exactly the
    /// members of ``keys``, `v` = 1, `seq` = its position, `prev_leaf` = the previous leaf hash, string fields.
    public static func problem(in body: [UInt8], seq: UInt64, previousLeaf: [UInt8]?) -> String? {
        switch inspect(body, seq: seq, previousLeaf: previousLeaf) {
        case .success: nil
        case .failure(let problem): problem.reason
        }
    }

    struct Problem: Error {
        let reason: String
        init(_ reason: String) { self.reason = reason }
    }

    /// ``problem(in:seq:previousLeaf:)`` returning the entry's members when it is fine.
    static func inspect(_ body: [UInt8], seq: UInt64, previousLeaf: [UInt8]?) -> Result<[String: JSONValue], Problem> {
        guard body.count <= maxByteCount else { return .failure(Problem("the entry is longer than \(maxByteCount) bytes")) }
        guard String(validating: body, as: UTF8.self) != nil else { return .failure(Problem("the entry is not valid UTF-8")) }
        let value: JSONValue
        do { value = try JSONValue.parse(body) } catch {
            return .failure(Problem("the entry is not valid JSON (\(error.message) at byte \(error.offset))"))
        }
        guard case .object(let members) = value, Set(members.keys) == keys else {
            return .failure(Problem("the entry does not have the entry members"))
        }
        guard CanonicalJSON.encode(value) == body else { return .failure(Problem("the entry is not in canonical (JCS) form")) }
        guard members["v"] == .integer(1) else { return .failure(Problem("the entry's version is not 1")) }
        guard let stored = members["seq"]?.integerValue, stored >= 0, UInt64(stored) == seq else {
            let found = members["seq"].map { CanonicalJSON.string($0) } ?? "missing"
            return .failure(Problem("the entry's seq field is \(found), not \(seq)"))
        }
        let expectedPrevious = previousLeaf.map(Hex.encode) ?? zeroLeaf
        guard members["prev_leaf"]?.stringValue == expectedPrevious else {
            return .failure(Problem("prev_leaf does not match the leaf hash of entry \(seq == 0 ? "-" : String(seq - 1))"))
        }
        guard members["time"]?.stringValue != nil, members["tenant"]?.stringValue != nil,
            let type = members["type"]?.stringValue, AuditEventType.all.contains(type)
        else { return .failure(Problem("time, tenant or type is missing or invalid")) }
        return .success(members)
    }
}

// MARK: - Fast structural check (verify without --full)

extension AuditEntry {
    /// The top-level member names in JCS order (RFC 8785 sorts by UTF-16 code units; all ASCII here).
    static let canonicalKeyOrder: [[UInt8]] = [
        "actor", "appraisal", "object", "prev_leaf", "request_id", "seq", "tenant", "time", "type", "v",
    ].map { Array("\"\($0)\":".utf8) }

    /// Why a stored entry is not the entry `seq` after `previousLeaf` whose filter columns are `columns`
    /// (tenant, type, time), or `nil` — checked by one bounds-checked scan of the top-level members, without
    /// building a ``JSONValue`` or re-canonicalising (that is ``problem(in:seq:previousLeaf:)``, `verify --full`).
    ///
    /// Checks: exactly the entry members, in JCS order; `v` = 1; `seq` = its position; `prev_leaf` = the previous
    /// leaf hash; `actor`/`object` objects, `appraisal` an object or null, `request_id` a string or null; `tenant`,
    /// `time`, `type` strings equal to the columns; `type` a known event type.
    static func quickProblem(_ body: [UInt8], seq: UInt64, previousLeaf: [UInt8]?, columns: [String?]) -> String? {
        guard body.count <= maxByteCount else { return "the entry is longer than \(maxByteCount) bytes" }
        return body.withUnsafeBufferPointer { bytes -> String? in
            guard let members = topLevelMembers(bytes) else { return "the entry does not have the entry members" }
            func raw(_ index: Int) -> UnsafeBufferPointer<UInt8> { UnsafeBufferPointer(rebasing: bytes[members[index]]) }
            guard raw(9).elementsEqual([UInt8(ascii: "1")]) else { return "the entry's version is not 1" }
            guard raw(5).elementsEqual(String(seq).utf8) else {
                return "the entry's seq field is \(String(decoding: raw(5), as: UTF8.self)), not \(seq)"
            }
            guard isQuotedHex(raw(3), of: previousLeaf) else {
                return "prev_leaf does not match the leaf hash of entry \(seq == 0 ? "-" : String(seq - 1))"
            }
            let brace = UInt8(ascii: "{")
            guard raw(0).first == brace, raw(2).first == brace, raw(1).first == brace || raw(1).elementsEqual("null".utf8),
                raw(4).first == UInt8(ascii: "\"") || raw(4).elementsEqual("null".utf8)
            else { return "the entry does not have the entry members" }
            // tenant (6), type (8), time (7) against the columns, which serve filtering only.
            guard let tenant = stringValue(raw(6)), let time = stringValue(raw(7)), let type = stringValue(raw(8)),
                AuditEventType.all.contains(type)
            else { return "time, tenant or type is missing or invalid" }
            return columns == [tenant, type, time] ? nil : "the tenant, type or time column differs from the entry"
        }
    }

    /// The byte ranges of the ten top-level values when `bytes` is an object with exactly the entry members in JCS
    /// order, else `nil`. Nested values are skipped by matching brackets outside strings (their full JSON syntax
    /// is checked by `--full`).
    static func topLevelMembers(_ bytes: UnsafeBufferPointer<UInt8>) -> [Range<Int>]? {
        let count = bytes.count
        guard count >= 2, bytes[0] == UInt8(ascii: "{"), bytes[count - 1] == UInt8(ascii: "}") else { return nil }
        var ranges: [Range<Int>] = []
        ranges.reserveCapacity(canonicalKeyOrder.count)
        var position = 1
        for (index, key) in canonicalKeyOrder.enumerated() {
            if index > 0 {
                guard position < count, bytes[position] == UInt8(ascii: ",") else { return nil }
                position += 1
            }
            guard count - position >= key.count, UnsafeBufferPointer(rebasing: bytes[position..<(position + key.count)]).elementsEqual(key)
            else { return nil }
            position += key.count
            guard let end = skipValue(bytes, from: position, limit: count - 1) else { return nil }
            ranges.append(position..<end)
            position = end
        }
        return position == count - 1 ? ranges : nil
    }

    /// The end of the JSON value starting at `start` (before `limit`), or `nil`.
    private static func skipValue(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int, limit: Int) -> Int? {
        guard start < limit else { return nil }
        var position = start
        switch bytes[position] {
        case UInt8(ascii: "\""):
            return skipString(bytes, from: position, limit: limit)
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            var depth = 0
            while position < limit {
                switch bytes[position] {
                case UInt8(ascii: "\""):
                    guard let end = skipString(bytes, from: position, limit: limit) else { return nil }
                    position = end
                    continue
                case UInt8(ascii: "{"), UInt8(ascii: "["):
                    depth += 1
                    guard depth <= 64 else { return nil }
                case UInt8(ascii: "}"), UInt8(ascii: "]"):
                    depth -= 1
                    if depth == 0 { return position + 1 }
                default: break
                }
                position += 1
            }
            return nil
        default:
            while position < limit, bytes[position] != UInt8(ascii: ","), bytes[position] != UInt8(ascii: "}") { position += 1 }
            return position > start ? position : nil
        }
    }

    /// The end of the string whose opening quote is at `start` (before `limit`), or `nil`.
    private static func skipString(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int, limit: Int) -> Int? {
        var position = start + 1
        while position < limit {
            switch bytes[position] {
            case UInt8(ascii: "\""): return position + 1
            case UInt8(ascii: "\\"): position += 2
            default: position += 1
            }
        }
        return nil
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    /// Whether `raw` is `"<64 lowercase hex digits of leaf>"` (the zero leaf when `leaf` is `nil`).
    private static func isQuotedHex(_ raw: UnsafeBufferPointer<UInt8>, of leaf: [UInt8]?) -> Bool {
        guard raw.count == 66, raw[0] == UInt8(ascii: "\""), raw[65] == UInt8(ascii: "\"") else { return false }
        let digits = hexDigits
        for index in 0..<32 {
            let byte = leaf.map { index < $0.count ? $0[index] : 0 } ?? 0
            guard raw[1 + 2 * index] == digits[Int(byte >> 4)], raw[2 + 2 * index] == digits[Int(byte & 0x0f)] else { return false }
        }
        return leaf.map { $0.count == 32 } ?? true
    }

    /// The text of the JSON string `raw` (quotes included), or `nil` when it is not a valid string.
    private static func stringValue(_ raw: UnsafeBufferPointer<UInt8>) -> String? {
        guard raw.count >= 2, raw[0] == UInt8(ascii: "\""), raw[raw.count - 1] == UInt8(ascii: "\"") else { return nil }
        let inner = UnsafeBufferPointer(rebasing: raw[1..<(raw.count - 1)])
        if !inner.contains(UInt8(ascii: "\\")) { return String(validating: inner, as: UTF8.self) }
        return (try? JSONValue.parse(Array(raw)))?.stringValue
    }
}
