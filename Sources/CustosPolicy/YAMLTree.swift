import CustosCrypto
import Foundation
import Yams

/// A YAML node as policies use it: JSON's data model (integers only) with the source position of every node.
///
/// Built once from Yams' node tree; anchors and aliases, non-string keys, floats and other YAML-only types are
/// rejected here, so the rest of the loader sees JSON-shaped data only.
struct YNode {
    indirect enum Value {
        case null
        case bool(Bool)
        case integer(Int64)
        case string(String)
        case sequence([YNode])
        /// Keys keep their own positions (for "unknown key" messages); order is the file's.
        case mapping([(key: String, keyLocation: SourceLocation, value: YNode)])
    }

    let value: Value
    let location: SourceLocation

    /// Largest YAML file accepted (policies are small; this bounds memory and time).
    static let maximumFileSize = 1 << 20
    /// Deepest nesting accepted.
    static let maximumDepth = 48

    /// Parses one YAML document. Problems go to `diagnostics`; `nil` when the file is not usable at all.
    static func parse(_ text: String, file: String, diagnostics: inout Diagnostics) -> YNode? {
        let start = SourceLocation(file: file, line: 1, column: 1)
        guard text.utf8.count <= maximumFileSize else {
            diagnostics.add(start, "file is larger than \(maximumFileSize) bytes")
            return nil
        }
        if let anchor = firstAnchorOrAlias(text) {
            diagnostics.add(
                SourceLocation(file: file, line: anchor.line, column: anchor.column),
                "YAML anchors and aliases are not allowed in policies (quote a value that starts with & or *)")
            return nil
        }
        let root: Node?
        do {
            // UTF-8 named here: Yams' default encoding reads the whole process environment on every parse (a
            // `YAMS_DEFAULT_ENCODING` there even prints a line to stdout, into `--json` output).
            var documents = try Yams.compose_all(yaml: text, .default, .default, .utf8).makeIterator()
            root = documents.next()
            if let error = documents.error { throw error }
            if root != nil, documents.next() != nil {
                diagnostics.add(start, "a policy file holds exactly one YAML document")
                return nil
            }
            if let error = documents.error { throw error }
        } catch let error as YamlError {
            let (location, message) = describe(error, file: file)
            diagnostics.add(location, message)
            return nil
        } catch {
            diagnostics.add(start, "YAML: \(error)")
            return nil
        }
        guard let root else {
            diagnostics.add(start, "empty YAML document")
            return nil
        }
        var budget = maximumNodes
        return convert(root, file: file, depth: 0, budget: &budget, diagnostics: &diagnostics)
    }

    /// Most nodes a file may hold (a second guard against alias expansion).
    static let maximumNodes = 100_000

    /// The position of the first `&anchor` or `*alias` token: a `&`/`*` at the start of a token (after a line start,
    /// blank, `[`, `{`, `,`, `:`, `-`) outside quotes and comments, followed by an anchor character. Lines end at
    /// LF, CR LF or CR, as in YAML; the column counts Unicode scalars.
    ///
    /// Yams resolves aliases while composing and keeps anchors only weakly, so they are found in the text instead.
    /// The scan reads UTF-8 bytes: every character it looks for is ASCII, and no byte of a multi-byte scalar is.
    /// (It used to split the text into `Character`s, where CR LF is one character and so never a line end: in a CR LF
    /// file, a comment after a value hid every anchor and alias after it from this check.)
    static func firstAnchorOrAlias(_ text: String) -> (line: Int, column: Int)? {
        let tokenStart = byteSet(" \t[{,:-")
        let notAnchorCharacter = byteSet(" \t,[]{}\r\n")
        var utf8 = text.utf8.makeIterator()
        var line = 1
        var column = 0  // scalars before the current byte on this line
        var quote: UInt8? = nil
        var previous = UInt8(ascii: " ")
        var inComment = false
        var skipNext = false
        var pending: UInt8? = nil  // the byte after the current one, read ahead
        func nextByte() -> UInt8? {
            if let byte = pending {
                pending = nil
                return byte
            }
            return utf8.next()
        }
        func peekByte() -> UInt8? {
            if pending == nil { pending = utf8.next() }
            return pending
        }
        while let byte = nextByte() {
            if byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\r") {
                if byte == UInt8(ascii: "\r"), peekByte() == UInt8(ascii: "\n") { _ = nextByte() }
                line += 1
                column = 0
                quote = nil
                previous = UInt8(ascii: " ")
                inComment = false
                skipNext = false
                continue
            }
            let isScalarStart = byte & 0xC0 != 0x80
            defer { if isScalarStart { column += 1 } }
            if inComment { continue }
            if skipNext {
                // The scalar after a backslash in double quotes: skip its bytes (a multi-byte one's continuation
                // bytes never match anything below).
                skipNext = false
                previous = byte
                continue
            }
            if let open = quote {
                if byte == open {
                    if open == UInt8(ascii: "'"), peekByte() == UInt8(ascii: "'") {
                        _ = nextByte()
                        column += 1
                        previous = byte
                        continue
                    }
                    quote = nil
                } else if open == UInt8(ascii: "\""), byte == UInt8(ascii: "\\") {
                    skipNext = true
                }
            } else if byte == UInt8(ascii: "#"), previous == UInt8(ascii: " ") || previous == UInt8(ascii: "\t") || column == 0 {
                inComment = true
                continue
            } else if (byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "'")) && tokenStart[Int(previous)] {
                quote = byte
            } else if byte == UInt8(ascii: "&") || byte == UInt8(ascii: "*"), tokenStart[Int(previous)],
                let next = peekByte(), !notAnchorCharacter[Int(next)]
            {
                return (line, column + 1)
            }
            previous = byte
        }
        return nil
    }

    private static func byteSet(_ members: String) -> [Bool] {
        var set = [Bool](repeating: false, count: 256)
        for byte in members.utf8 { set[Int(byte)] = true }
        return set
    }

    private static func describe(_ error: YamlError, file: String) -> (SourceLocation, String) {
        func at(_ mark: Mark) -> SourceLocation { SourceLocation(file: file, line: max(mark.line, 1), column: max(mark.column, 1)) }
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _), .composer(_, let problem, let mark, _):
            return (at(mark), "YAML syntax: \(problem)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            return (at(context.mark), "duplicate key \(duplicates.map { "'\($0)'" }.joined(separator: ", "))")
        case .reader(let problem, _, _, _):
            return (SourceLocation(file: file, line: 1, column: 1), "YAML: \(problem)")
        default:
            return (SourceLocation(file: file, line: 1, column: 1), "YAML: \(error)")
        }
    }

    private static func location(_ node: Node, file: String) -> SourceLocation {
        guard let mark = node.mark else { return SourceLocation(file: file, line: 1, column: 1) }
        return SourceLocation(file: file, line: max(mark.line, 1), column: max(mark.column, 1))
    }

    private static func convert(_ node: Node, file: String, depth: Int, budget: inout Int, diagnostics: inout Diagnostics) -> YNode? {
        let here = location(node, file: file)
        budget -= 1
        guard budget >= 0 else {
            if budget == -1 { diagnostics.add(here, "more than \(maximumNodes) YAML nodes") }
            return nil
        }
        guard depth < maximumDepth else {
            diagnostics.add(here, "nesting deeper than \(maximumDepth) levels")
            return nil
        }
        if node.anchor != nil {
            diagnostics.add(here, "YAML anchors and aliases are not allowed in policies")
            return nil
        }
        switch node {
        case .alias:
            diagnostics.add(here, "YAML anchors and aliases are not allowed in policies")
            return nil
        case .scalar(let scalar):
            return scalarValue(scalar, node: node, at: here, diagnostics: &diagnostics).map { YNode(value: $0, location: here) }
        case .sequence(let sequence):
            var elements: [YNode] = []
            var ok = true
            for element in sequence {
                if let converted = convert(element, file: file, depth: depth + 1, budget: &budget, diagnostics: &diagnostics) {
                    elements.append(converted)
                } else {
                    ok = false
                }
            }
            return ok ? YNode(value: .sequence(elements), location: here) : nil
        case .mapping(let mapping):
            var members: [(key: String, keyLocation: SourceLocation, value: YNode)] = []
            var seen: Set<String> = []
            var ok = true
            for (key, value) in mapping {
                let keyLocation = location(key, file: file)
                guard case .scalar(let keyScalar) = key, key.anchor == nil, key.tag.rawValue == Tag.Name.str.rawValue else {
                    diagnostics.add(keyLocation, "mapping keys must be plain strings")
                    ok = false
                    continue
                }
                guard seen.insert(keyScalar.string).inserted else {
                    diagnostics.add(keyLocation, "duplicate key '\(keyScalar.string)'")
                    ok = false
                    continue
                }
                if let converted = convert(value, file: file, depth: depth + 1, budget: &budget, diagnostics: &diagnostics) {
                    members.append((keyScalar.string, keyLocation, converted))
                } else {
                    ok = false
                }
            }
            return ok ? YNode(value: .mapping(members), location: here) : nil
        }
    }

    private static func scalarValue(_ scalar: Node.Scalar, node: Node, at here: SourceLocation, diagnostics: inout Diagnostics)
        -> Value?
    {
        switch Tag.Name(rawValue: node.tag.rawValue) {
        case .str: return .string(scalar.string)
        // An unquoted date or time stays the text it is: RFC 3339 values are compared as text-parsed dates later.
        case .timestamp: return .string(scalar.string)
        case .null: return .null
        case .bool:
            guard let flag = node.bool else { break }
            return .bool(flag)
        case .int:
            if let form = yaml11OnlyIntegerForm(scalar.string) {
                diagnostics.add(
                    here,
                    "'\(scalar.string)' reads as a YAML 1.1 \(form) integer; write the number in decimal, or quote it to make it a string")
                return nil
            }
            guard let number = node.int, let wide = Int64(exactly: number), wide.magnitude <= JSONValue.maxSafeInteger.magnitude else {
                diagnostics.add(here, "integer \(scalar.string) is out of range (±\(JSONValue.maxSafeInteger))")
                return nil
            }
            return .integer(wide)
        case .float:
            diagnostics.add(here, "'\(scalar.string)' is a fraction; policies hold integers only (quote it to make it a string)")
            return nil
        default: break
        }
        diagnostics.add(here, "unsupported YAML value '\(scalar.string)' (tag \(node.tag.rawValue))")
        return nil
    }

    /// The name of the YAML 1.1 integer form `text` is written in when YAML 1.2 reads it otherwise, or nil (decimal,
    /// `0x` hexadecimal). Base-60 (`15:15` is 915) is refused first of all: Yams computes it with trapping arithmetic,
    /// so a long one stopped the process (found by the policy-yaml fuzzer). The others load, but as a number that the
    /// text does not say to a reader or to a YAML 1.2 tool: `017` is 15 (1.2: 17), `0b101` is 5 and `1_000` is 1000
    /// (1.2: strings) — a leading zero in a copied SVN or digest must not change its value silently.
    static func yaml11OnlyIntegerForm(_ text: String) -> String? {
        if text.contains(":") { return "base-60" }
        if text.contains("_") { return "digit-grouped" }
        var digits = Substring(text)
        if digits.first == "+" || digits.first == "-" { digits = digits.dropFirst() }
        if digits.hasPrefix("0b") { return "binary" }
        if digits.hasPrefix("0x") { return nil }
        if digits.count > 1, digits.hasPrefix("0") { return "octal" }
        return nil
    }

    /// The node as a ``JSONValue`` (what the content hash covers).
    var json: JSONValue {
        switch value {
        case .null: return .null
        case .bool(let flag): return .bool(flag)
        case .integer(let number): return .integer(number)
        case .string(let text): return .string(text)
        case .sequence(let elements): return .array(elements.map(\.json))
        case .mapping(let members):
            var object: [String: JSONValue] = [:]
            for member in members { object[member.key] = member.value.json }
            return .object(object)
        }
    }

    /// A short name of the node's type for messages.
    var typeName: String {
        switch value {
        case .null: return "null"
        case .bool: return "a boolean"
        case .integer: return "an integer"
        case .string: return "a string"
        case .sequence: return "a list"
        case .mapping: return "a mapping"
        }
    }
}

/// Reads a mapping strictly: known keys only, required keys present, typed values.
struct MappingReader {
    let node: YNode
    let members: [(key: String, keyLocation: SourceLocation, value: YNode)]
    let context: String

    /// `nil` (and a problem) when `node` is not a mapping.
    init?(_ node: YNode, context: String, diagnostics: inout Diagnostics) {
        guard case .mapping(let members) = node.value else {
            diagnostics.add(node.location, "\(context) must be a mapping, not \(node.typeName)")
            return nil
        }
        self.node = node
        self.members = members
        self.context = context
    }

    var keys: [String] { members.map(\.key) }

    func has(_ key: String) -> Bool { members.contains { $0.key == key } }

    func optional(_ key: String) -> YNode? { members.first { $0.key == key }?.value }

    func required(_ key: String, diagnostics: inout Diagnostics) -> YNode? {
        guard let value = optional(key) else {
            diagnostics.add(node.location, "\(context) is missing required key '\(key)'")
            return nil
        }
        return value
    }

    /// Reports every key not in `allowed`; returns whether all were known.
    @discardableResult
    func checkKeys(_ allowed: [String], diagnostics: inout Diagnostics) -> Bool {
        var ok = true
        for member in members where !allowed.contains(member.key) {
            diagnostics.add(
                member.keyLocation, "unknown key '\(member.key)' in \(context) (allowed: \(allowed.joined(separator: ", ")))")
            ok = false
        }
        return ok
    }
}

extension YNode {
    func string(_ what: String, diagnostics: inout Diagnostics) -> String? {
        guard case .string(let text) = value else {
            diagnostics.add(location, "\(what) must be a string, not \(typeName)")
            return nil
        }
        return text
    }

    func integer(_ what: String, diagnostics: inout Diagnostics) -> Int64? {
        guard case .integer(let number) = value else {
            diagnostics.add(location, "\(what) must be an integer, not \(typeName)")
            return nil
        }
        return number
    }

    func bool(_ what: String, diagnostics: inout Diagnostics) -> Bool? {
        guard case .bool(let flag) = value else {
            diagnostics.add(location, "\(what) must be true or false, not \(typeName)")
            return nil
        }
        return flag
    }

    func list(_ what: String, diagnostics: inout Diagnostics) -> [YNode]? {
        guard case .sequence(let elements) = value else {
            diagnostics.add(location, "\(what) must be a list, not \(typeName)")
            return nil
        }
        return elements
    }

    func stringList(_ what: String, diagnostics: inout Diagnostics) -> [String]? {
        guard let elements = list(what, diagnostics: &diagnostics) else { return nil }
        var out: [String] = []
        var ok = true
        for element in elements {
            if let text = element.string("each entry of \(what)", diagnostics: &diagnostics) { out.append(text) } else { ok = false }
        }
        return ok ? out : nil
    }
}
