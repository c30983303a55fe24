/// A JSON value as Custos hashes, signs and logs it.
///
/// Numbers are integers only (`Int64` within ±(2^53−1), the range an IEEE double holds exactly): audit entries,
/// policies and claims documents carry no fractions (specs/audit.md §5, "Custos decision"), so RFC 8785's ES6
/// double formatting is never needed. A fraction or an out-of-range number is a parse error, not a rounding.
///
/// Objects keep their members in a dictionary: duplicate keys are rejected at parse time (RFC 8785 §3.1) and the
/// canonical form sorts members anyway.
public enum JSONValue: Hashable, Sendable {
    case null
    case bool(Bool)
    case integer(Int64)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    /// The largest magnitude an integer member may have (2^53 − 1, JavaScript's `Number.MAX_SAFE_INTEGER`).
    public static let maxSafeInteger: Int64 = 9_007_199_254_740_991

    public subscript(key: String) -> JSONValue? {
        if case .object(let members) = self { return members[key] }
        return nil
    }

    public var stringValue: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    public var integerValue: Int64? {
        if case .integer(let value) = self { return value }
        return nil
    }

    public var boolValue: Bool? {
        if case .bool(let value) = self { return value }
        return nil
    }

    public var arrayValue: [JSONValue]? {
        if case .array(let value) = self { return value }
        return nil
    }

    public var objectValue: [String: JSONValue]? {
        if case .object(let value) = self { return value }
        return nil
    }

    /// Follows a dotted path of object keys (`"tdx.quote.body.mr_td"`); `nil` when a step is missing.
    ///
    /// A key that itself contains dots (`ear.veraison.annotated-evidence`) is found too: at each step the longest
    /// key of the current object that matches a dotted prefix of the remaining path wins.
    public func value(atPath path: String) -> JSONValue? {
        value(atComponents: path.split(separator: ".", omittingEmptySubsequences: false).map(String.init)[...])
    }

    private func value(atComponents components: ArraySlice<String>) -> JSONValue? {
        guard let first = components.first else { return self }
        guard case .object(let members) = self else { return nil }
        var end = components.endIndex
        while end > components.startIndex {
            let key = components[components.startIndex..<end].joined(separator: ".")
            if let member = members[key], let found = member.value(atComponents: components[end...]) {
                return found
            }
            end -= 1
        }
        _ = first
        return nil
    }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .integer(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }
    public init(nilLiteral: ()) { self = .null }
}

/// Why bytes are not a JSON value Custos accepts; `offset` is the byte where parsing stopped.
public struct JSONError: Error, Hashable, Sendable, CustomStringConvertible {
    public let message: String
    public let offset: Int
    public init(_ message: String, offset: Int) {
        self.message = message
        self.offset = offset
    }
    public var description: String { "invalid JSON at byte \(offset): \(message)" }
}
