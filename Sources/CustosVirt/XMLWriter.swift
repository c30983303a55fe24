/// A small XML tree and writer: element and attribute names come from Custos's code, every value (text or
/// attribute) is escaped, and characters XML 1.0 cannot carry are refused, so no input can change the document's
/// structure (issue 12: no string concatenation of user input).
public struct XMLTree: Sendable, Equatable {
    /// An element: name, attributes in order, children.
    public struct Element: Sendable, Equatable {
        public var name: String
        public var attributes: [(String, String)]
        public var children: [Node]

        public init(_ name: String, _ attributes: [(String, String)] = [], _ children: [Node] = []) {
            self.name = name
            self.attributes = attributes
            self.children = children
        }

        /// An element holding one text value.
        public init(_ name: String, _ attributes: [(String, String)] = [], text: String) {
            self.init(name, attributes, [.text(text)])
        }

        public static func == (lhs: Self, rhs: Self) -> Bool {
            lhs.name == rhs.name && lhs.attributes.map { [$0.0, $0.1] } == rhs.attributes.map { [$0.0, $0.1] }
                && lhs.children == rhs.children
        }
    }

    /// A child: an element or text.
    public indirect enum Node: Sendable, Equatable {
        case element(Element)
        case text(String)
    }

    public var root: Element
    public init(root: Element) { self.root = root }

    /// The document as text, indented by two spaces per level (libvirt's own style).
    /// - Throws: ``VirtError/Code/invalidSpec`` when a value holds a character XML 1.0 cannot represent, or a name
    ///   is not a plain XML name.
    public func serialize() throws(VirtError) -> String {
        var out = ""
        try Self.write(root, depth: 0, into: &out)
        return out
    }

    private static func write(_ element: Element, depth: Int, into out: inout String) throws(VirtError) {
        try checkName(element.name)
        let indent = String(repeating: "  ", count: depth)
        out += indent + "<" + element.name
        for (name, value) in element.attributes {
            try checkName(name)
            out += " " + name + "='" + (try escape(value, attribute: true)) + "'"
        }
        if element.children.isEmpty {
            out += "/>\n"
            return
        }
        if element.children.count == 1, case .text(let text) = element.children[0] {
            out += ">" + (try escape(text, attribute: false)) + "</" + element.name + ">\n"
            return
        }
        out += ">\n"
        for child in element.children {
            switch child {
            case .element(let inner): try write(inner, depth: depth + 1, into: &out)
            case .text(let text): out += indent + "  " + (try escape(text, attribute: false)) + "\n"
            }
        }
        out += indent + "</" + element.name + ">\n"
    }

    /// Names are Custos's constants; a check anyway, so a bug cannot emit markup.
    private static func checkName(_ name: String) throws(VirtError) {
        let allowed = name.unicodeScalars.allSatisfy { scalar in
            (scalar >= "a" && scalar <= "z") || (scalar >= "A" && scalar <= "Z") || (scalar >= "0" && scalar <= "9") || scalar == "_"
                || scalar == "-" || scalar == ":" || scalar == "."
        }
        guard !name.isEmpty, allowed else { throw VirtError(.invalidSpec, "not an XML name: \(name.debugDescription)") }
    }

    /// Escapes `&`, `<`, `>` and (in attributes) both quotes; refuses characters outside XML 1.0's `Char` production
    /// (control characters other than tab, LF and CR; U+FFFE/U+FFFF), which no escape can carry.
    static func escape(_ value: String, attribute: Bool) throws(VirtError) -> String {
        var out = ""
        out.reserveCapacity(value.utf8.count)
        for scalar in value.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "'" where attribute: out += "&apos;"
            case "\"" where attribute: out += "&quot;"
            // Attribute-value normalisation would turn these into spaces; character references keep them.
            case "\t" where attribute: out += "&#9;"
            case "\n" where attribute: out += "&#10;"
            case "\r": out += "&#13;"
            case "\t", "\n": out.unicodeScalars.append(scalar)
            default:
                guard scalar.value >= 0x20, scalar.value != 0xFFFE, scalar.value != 0xFFFF else {
                    throw VirtError(
                        .invalidSpec, "a value holds U+\(String(scalar.value, radix: 16, uppercase: true)), which XML cannot carry")
                }
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}
