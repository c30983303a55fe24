public import CustosCrypto
import Foundation

/// Init-data (service.md §4.3): the document the host gave the TD at launch, bound by its digest in MRCONFIGID.
///
/// Custos reads the TOML form confidential-containers uses (`version`, `algorithm`, `[data]` with string values)
/// through a deliberately small TOML subset: comments, `[table]` headers (one level), `key = value` where value is
/// a basic `"…"` or literal `'…'` string, a multi-line `"""…"""` / `'''…'''` string, an integer or a boolean, with
/// the key bare or quoted (`"aa.toml" = '''…'''`: guest.md §4.7's documents name their files so).
/// Anything else is refused (a 400), never guessed.
public struct InitData: Sendable, Equatable {
    public let claims: JSONValue
    public let algorithm: DigestAlgorithm
    /// The digest of the body, zero-padded to 48 bytes (the width of MRCONFIGID).
    public let mrConfigID: [UInt8]
    /// `tenant` (top level, or in `[data]`), when present.
    public let tenant: String?

    public struct Invalid: Error, Sendable, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    public init(_ initData: KBSInitData) throws(Invalid) {
        guard initData.format == "toml" else { throw Invalid(message: "init-data format \"\(initData.format)\" is not supported (toml)") }
        let claims = try Self.parseTOML(initData.body)
        let algorithmName: String
        switch claims["algorithm"] {
        case nil: algorithmName = "sha384"
        case .string(let name)?: algorithmName = name
        default: throw Invalid(message: "init-data algorithm must be a string")
        }
        switch algorithmName {
        case "sha256": algorithm = .sha256
        case "sha384": algorithm = .sha384
        case "sha512": algorithm = .sha512
        default: throw Invalid(message: "init-data algorithm \"\(algorithmName)\" is not sha256, sha384 or sha512")
        }
        let digest = Digest.hash(algorithm, Array(initData.body.utf8))
        mrConfigID = Array((digest + [UInt8](repeating: 0, count: 48)).prefix(48))
        self.claims = claims
        if case .string(let tenant)? = claims["tenant"] {
            self.tenant = tenant
        } else if case .string(let tenant)? = claims["data"]?["tenant"] {
            self.tenant = tenant
        } else {
            self.tenant = nil
        }
    }

    static let maximumBytes = 64 << 10

    /// The TOML subset described above, as a JSON object.
    static func parseTOML(_ text: String) throws(Invalid) -> JSONValue {
        guard text.utf8.count <= maximumBytes else { throw Invalid(message: "init-data exceeds \(maximumBytes) bytes") }
        var root: [String: JSONValue] = [:]
        var tables: [String: [String: JSONValue]] = [:]
        var tableOrder: [String] = []
        var current: String? = nil
        // TOML's newlines are LF and CR LF. Swift's `Character` holds CR LF as one character, so a split on "\n" alone
        // never split a CR LF document (and refused every valid one).
        let lines = text.split(omittingEmptySubsequences: false) { $0 == "\n" || $0 == "\r\n" }.map(String.init)
        var index = 0
        func fail(_ message: String) -> Invalid { Invalid(message: "init-data line \(index + 1): \(message)") }
        func isBareKey(_ key: Substring) -> Bool {
            !key.isEmpty && key.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") }
        }
        while index < lines.count {
            let line = lines[index].trimmingCharacters(in: .whitespaces)
            defer { index += 1 }
            if line.isEmpty || line.hasPrefix("#") { continue }
            if line.hasPrefix("[") {
                guard line.hasSuffix("]"), !line.hasPrefix("[["), case let name = line.dropFirst().dropLast(), isBareKey(name) else {
                    throw fail("only [table] headers with a bare name are supported")
                }
                let table = String(name)
                guard root[table] == nil, tables[table] == nil else { throw fail("table \(table) is defined twice") }
                tables[table] = [:]
                tableOrder.append(table)
                current = table
                continue
            }
            // The key: bare, or quoted as a basic ("…", with escapes) or literal ('…') string, as the CoCo init-data
            // documents name their files (`"aa.toml" = '''…'''`).
            let key: String
            let afterKey: Substring
            if let quote = line.first, quote == "\"" || quote == "'" {
                let body = line.dropFirst()
                guard let close = quote == "'" ? body.firstIndex(of: "'") : closingQuote(body) else {
                    throw fail("unterminated quoted key")
                }
                let raw = String(body[..<close])
                key = quote == "'" ? raw : try unescape(raw, fail)
                guard !key.isEmpty else { throw fail("an empty quoted key") }
                afterKey = body[body.index(after: close)...]
            } else {
                guard let equals = line.firstIndex(of: "=") else { throw fail("expected key = value") }
                key = line[..<equals].trimmingCharacters(in: .whitespaces)
                guard isBareKey(Substring(key)) else { throw fail("\"\(key)\" is not a bare key") }
                afterKey = line[equals...]
            }
            let assignment = afterKey.drop { $0 == " " || $0 == "\t" }
            guard assignment.first == "=" else { throw fail("expected = after the key") }
            var rest = assignment.dropFirst().trimmingCharacters(in: .whitespaces)
            let value: JSONValue
            if rest.hasPrefix("'''") || rest.hasPrefix("\"\"\"") {
                let fence = String(rest.prefix(3))
                rest.removeFirst(3)
                // TOML trims one newline right after the opening fence.
                var collected: [String] = []
                var remainder = rest
                while true {
                    if let end = remainder.range(of: fence) {
                        collected.append(String(remainder[..<end.lowerBound]))
                        let after = remainder[end.upperBound...].trimmingCharacters(in: .whitespaces)
                        guard after.isEmpty || after.hasPrefix("#") else { throw fail("text after a multi-line string") }
                        break
                    }
                    collected.append(remainder)
                    index += 1
                    guard index < lines.count else { throw fail("unterminated multi-line string") }
                    remainder = lines[index]
                }
                var joined = collected.joined(separator: "\n")
                if joined.hasPrefix("\n") { joined.removeFirst() }
                value = .string(fence == "'''" ? joined : try unescape(joined, fail))
            } else if let quote = rest.first, quote == "\"" || quote == "'" {
                let body = rest.dropFirst()
                guard let close = quote == "'" ? body.firstIndex(of: "'") : closingQuote(body) else { throw fail("unterminated string") }
                let after = body[body.index(after: close)...].trimmingCharacters(in: .whitespaces)
                guard after.isEmpty || after.hasPrefix("#") else { throw fail("text after a string") }
                let raw = String(body[..<close])
                value = .string(quote == "'" ? raw : try unescape(raw, fail))
            } else {
                let token = rest.split(separator: "#", maxSplits: 1).first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
                if token == "true" {
                    value = .bool(true)
                } else if token == "false" {
                    value = .bool(false)
                } else if let integer = Int64(token.replacingOccurrences(of: "_", with: "")), integer.magnitude <= (1 << 53) - 1 {
                    // `magnitude`, not `abs`: abs(Int64.min) traps, and the token comes from the guest.
                    value = .integer(integer)
                } else {
                    throw fail("unsupported value \"\(token)\" (strings, integers and booleans only)")
                }
            }
            if let current {
                guard tables[current]?[key] == nil else { throw fail("\(key) is defined twice") }
                tables[current]?[key] = value
            } else {
                guard root[key] == nil else { throw fail("\(key) is defined twice") }
                root[key] = value
            }
        }
        for table in tableOrder { root[table] = .object(tables[table] ?? [:]) }
        return .object(root)
    }

    private static func closingQuote(_ body: Substring) -> Substring.Index? {
        var escaped = false
        for position in body.indices {
            let character = body[position]
            if escaped {
                escaped = false
            } else if character == "\\" {
                escaped = true
            } else if character == "\"" {
                return position
            }
        }
        return nil
    }

    private static func unescape(_ raw: String, _ fail: (String) -> Invalid) throws(Invalid) -> String {
        var out = ""
        var iterator = raw.makeIterator()
        while let character = iterator.next() {
            guard character == "\\" else {
                out.append(character)
                continue
            }
            switch iterator.next() {
            case "n"?: out.append("\n")
            case "t"?: out.append("\t")
            case "r"?: out.append("\r")
            case "\""?: out.append("\"")
            case "\\"?: out.append("\\")
            case "\n"?:
                // A line-ending backslash in a multi-line basic string trims the following whitespace.
                continue
            default: throw fail("unsupported escape in a basic string")
            }
        }
        return out
    }
}
