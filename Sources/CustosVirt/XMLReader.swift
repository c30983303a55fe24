import Foundation

/// A small strict XML parser for the documents libvirt writes (domain capabilities): elements, attributes, text,
/// the five predefined entities and character references, comments, processing instructions and CDATA.
///
/// Why not FoundationXML: on Linux its `XMLDocument` and `XMLParser` parse in libxml2's recovery mode (a truncated
/// document is accepted) and `XMLDocument` crashes on empty input, which a parser of untrusted bytes must never do.
/// This one refuses anything that is not well-formed: unbalanced tags, bad names, unknown entities, characters
/// outside XML 1.0, DOCTYPE (so no entity is ever expanded), trailing content; depth and size are capped.
enum XMLReader {
    /// The deepest nesting accepted (libvirt's documents nest under 10 levels).
    static let maximumDepth = 64

    /// Parses a whole document and returns its root element.
    /// - Throws: ``VirtError`` with `code` (the caller's) and the byte offset of the problem in the reason.
    static func parse(_ text: String, code: VirtError.Code) throws(VirtError) -> XMLTree.Element {
        var parser = Parser(bytes: Array(text.utf8), code: code)
        return try parser.document()
    }

    private struct Parser {
        let bytes: [UInt8]
        let code: VirtError.Code
        var index = 0

        func fail(_ reason: String) -> VirtError { VirtError(code, "not well-formed XML at byte \(index): \(reason)") }

        var atEnd: Bool { index >= bytes.count }
        func peek(_ offset: Int = 0) -> UInt8? { index + offset < bytes.count ? bytes[index + offset] : nil }

        func starts(with literal: String) -> Bool {
            let utf8 = Array(literal.utf8)
            guard bytes.count - index >= utf8.count else { return false }
            return bytes[index..<index + utf8.count].elementsEqual(utf8)
        }

        mutating func expect(_ literal: String) throws(VirtError) {
            guard starts(with: literal) else { throw fail("expected \(literal.debugDescription)") }
            index += literal.utf8.count
        }

        static func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D }

        mutating func skipSpace() { while let byte = peek(), Self.isSpace(byte) { index += 1 } }

        /// Skips up to and past `terminator`; fails when the input ends first.
        mutating func skip(past terminator: String, what: String) throws(VirtError) -> ArraySlice<UInt8> {
            let start = index
            while !atEnd {
                if starts(with: terminator) {
                    let content = bytes[start..<index]
                    index += terminator.utf8.count
                    return content
                }
                index += 1
            }
            throw fail("unterminated \(what)")
        }

        // MARK: Document

        mutating func document() throws(VirtError) -> XMLTree.Element {
            if starts(with: "\u{FEFF}") { index += 3 }
            try misc()
            guard peek() == UInt8(ascii: "<") else { throw fail(atEnd ? "no root element" : "content before the root element") }
            let root = try element(depth: 1)
            try misc()
            guard atEnd else { throw fail("content after the root element") }
            return root
        }

        /// Whitespace, comments and processing instructions outside the root; DOCTYPE is refused.
        mutating func misc() throws(VirtError) {
            while true {
                skipSpace()
                if starts(with: "<!--") {
                    try comment()
                } else if starts(with: "<?") {
                    index += 2
                    _ = try skip(past: "?>", what: "processing instruction")
                } else if starts(with: "<!") {
                    throw fail("DOCTYPE and other declarations are not accepted")
                } else {
                    return
                }
            }
        }

        mutating func comment() throws(VirtError) {
            index += 4
            let body = try skip(past: "-->", what: "comment")
            let text = String(decoding: body, as: UTF8.self)
            guard !text.contains("--"), !text.hasSuffix("-") else {
                throw fail("'--' inside a comment")
            }
        }

        // MARK: Elements

        mutating func name() throws(VirtError) -> String {
            let start = index
            while let byte = peek() {
                let isStart =
                    (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) || byte == UInt8(ascii: "_")
                    || byte == UInt8(ascii: ":")
                    || byte >= 0x80
                let isFollow = isStart || (byte >= 0x30 && byte <= 0x39) || byte == UInt8(ascii: "-") || byte == UInt8(ascii: ".")
                guard index == start ? isStart : isFollow else { break }
                index += 1
            }
            guard index > start else { throw fail("expected a name") }
            return String(decoding: bytes[start..<index], as: UTF8.self)
        }

        mutating func element(depth: Int) throws(VirtError) -> XMLTree.Element {
            guard depth <= XMLReader.maximumDepth else { throw fail("nesting deeper than \(XMLReader.maximumDepth)") }
            try expect("<")
            let tag = try name()
            var attributes: [(String, String)] = []
            while true {
                let hadSpace = peek().map(Self.isSpace) ?? false
                skipSpace()
                if starts(with: "/>") {
                    index += 2
                    return XMLTree.Element(tag, attributes, [])
                }
                if peek() == UInt8(ascii: ">") {
                    index += 1
                    break
                }
                guard hadSpace else { throw fail("expected whitespace before an attribute") }
                let attribute = try name()
                skipSpace()
                try expect("=")
                skipSpace()
                guard let quote = peek(), quote == UInt8(ascii: "'") || quote == UInt8(ascii: "\"") else {
                    throw fail("expected a quoted value")
                }
                index += 1
                let value = try characters(until: quote, inAttribute: true)
                index += 1
                guard !attributes.contains(where: { $0.0 == attribute }) else { throw fail("duplicate attribute \(attribute)") }
                attributes.append((attribute, value))
            }
            var children: [XMLTree.Node] = []
            while true {
                if atEnd { throw fail("element <\(tag)> is not closed") }
                if starts(with: "</") {
                    index += 2
                    let closing = try name()
                    guard closing == tag else { throw fail("</\(closing)> closes <\(tag)>") }
                    skipSpace()
                    try expect(">")
                    return XMLTree.Element(tag, attributes, children)
                } else if starts(with: "<!--") {
                    try comment()
                } else if starts(with: "<![CDATA[") {
                    index += 9
                    let body = try skip(past: "]]>", what: "CDATA section")
                    children.append(.text(try checkedText(body)))
                } else if starts(with: "<?") {
                    index += 2
                    _ = try skip(past: "?>", what: "processing instruction")
                } else if starts(with: "<!") {
                    throw fail("declarations are not accepted inside elements")
                } else if peek() == UInt8(ascii: "<") {
                    children.append(.element(try element(depth: depth + 1)))
                } else {
                    let text = try characters(until: UInt8(ascii: "<"), inAttribute: false)
                    if case .text(let previous)? = children.last {
                        children[children.count - 1] = .text(previous + text)
                    } else {
                        children.append(.text(text))
                    }
                }
            }
        }

        // MARK: Character data

        /// Text up to (not including) `terminator`, with entities decoded; the terminator must follow.
        mutating func characters(until terminator: UInt8, inAttribute: Bool) throws(VirtError) -> String {
            var out: [UInt8] = []
            while true {
                guard let byte = peek() else {
                    if inAttribute { throw fail("unterminated attribute value") }
                    throw fail("unexpected end of input in text")
                }
                if byte == terminator { break }
                if inAttribute, byte == UInt8(ascii: "<") { throw fail("'<' in an attribute value") }
                if !inAttribute, starts(with: "]]>") { throw fail("']]>' in text") }
                if byte == UInt8(ascii: "&") {
                    out += try reference()
                } else {
                    out.append(byte)
                    index += 1
                }
            }
            return try checkedText(out[...])
        }

        /// `&name;` or `&#N;`/`&#xN;` as UTF-8.
        mutating func reference() throws(VirtError) -> [UInt8] {
            index += 1
            let start = index
            while let byte = peek(), byte != UInt8(ascii: ";") {
                guard index - start < 12 else { throw fail("entity reference too long") }
                index += 1
            }
            guard peek() == UInt8(ascii: ";") else { throw fail("unterminated entity reference") }
            let body = String(decoding: bytes[start..<index], as: UTF8.self)
            index += 1
            switch body {
            case "lt": return [UInt8(ascii: "<")]
            case "gt": return [UInt8(ascii: ">")]
            case "amp": return [UInt8(ascii: "&")]
            case "apos": return [UInt8(ascii: "'")]
            case "quot": return [UInt8(ascii: "\"")]
            default:
                var value: UInt32?
                if body.hasPrefix("#x") {
                    value = UInt32(body.dropFirst(2), radix: 16)
                } else if body.hasPrefix("#") {
                    value = UInt32(body.dropFirst(1), radix: 10)
                }
                guard let value, let scalar = Unicode.Scalar(value), Self.isXMLChar(scalar) else {
                    throw fail("unknown or invalid reference &\(body);")
                }
                return Array(String(Character(scalar)).utf8)
            }
        }

        /// Checks that text is UTF-8 of XML 1.0 characters.
        func checkedText(_ raw: ArraySlice<UInt8>) throws(VirtError) -> String {
            guard let text = String(validating: raw, as: UTF8.self) else { throw fail("invalid UTF-8") }
            guard text.unicodeScalars.allSatisfy(Self.isXMLChar) else { throw fail("a character XML 1.0 does not allow") }
            return text
        }

        static func isXMLChar(_ scalar: Unicode.Scalar) -> Bool {
            switch scalar.value {
            case 0x9, 0xA, 0xD, 0x20...0xD7FF, 0xE000...0xFFFD, 0x10000...0x10FFFF: true
            default: false
            }
        }
    }
}

// MARK: - Navigation

extension XMLTree.Element {
    /// The child elements named `name`.
    func elements(named name: String) -> [XMLTree.Element] {
        children.compactMap { node in
            if case .element(let element) = node, element.name == name { return element }
            return nil
        }
    }

    /// The first child element named `name`.
    func element(named name: String) -> XMLTree.Element? { elements(named: name).first }

    /// The value of attribute `name`.
    func attribute(_ name: String) -> String? { attributes.first { $0.0 == name }?.1 }

    /// The element's own text, trimmed.
    var text: String {
        children.map { node in
            if case .text(let text) = node { return text }
            return ""
        }.joined().trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
