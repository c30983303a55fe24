/// Minimal, bounds-checked DER (X.690) reading and writing.
///
/// Enough for the structures OpenSSL has no type for: Intel's SGX extension in PCK certificates, Authenticode's
/// `SpcIndirectDataContent`, CMS `SignedData` framing. Only single-byte tags (tag numbers < 31) and definite lengths
/// are accepted; lengths longer than the input are rejected before any slicing.
public struct DERNode: Sendable, Equatable {
    /// Universal tags we name.
    public enum Tag {
        public static let boolean: UInt8 = 0x01
        public static let integer: UInt8 = 0x02
        public static let bitString: UInt8 = 0x03
        public static let octetString: UInt8 = 0x04
        public static let null: UInt8 = 0x05
        public static let objectIdentifier: UInt8 = 0x06
        public static let utf8String: UInt8 = 0x0c
        public static let printableString: UInt8 = 0x13
        public static let ia5String: UInt8 = 0x16
        public static let utcTime: UInt8 = 0x17
        public static let generalizedTime: UInt8 = 0x18
        public static let sequence: UInt8 = 0x30
        public static let set: UInt8 = 0x31
        /// `[n]` context-specific, constructed.
        public static func context(_ number: UInt8, constructed: Bool = true) -> UInt8 { 0x80 | (constructed ? 0x20 : 0) | number }
    }

    /// The identifier octet.
    public let tag: UInt8
    /// The whole TLV.
    public let encoded: ArraySlice<UInt8>
    /// The value octets.
    public let content: ArraySlice<UInt8>
    /// The offset of the TLV within the outermost input (for error messages).
    public let offset: Int

    public var isConstructed: Bool { tag & 0x20 != 0 }

    /// The children of a constructed node, in order.
    public func children() throws(CryptoError) -> [DERNode] {
        guard isConstructed else { throw CryptoError(.malformedInput, "DER: element at offset \(offset) is not constructed") }
        var reader = DERReader(content, baseOffset: offset + (encoded.count - content.count))
        var out: [DERNode] = []
        while !reader.isAtEnd {
            out.append(try reader.read())
            guard out.count <= 100_000 else { throw CryptoError(.malformedInput, "DER: too many elements at offset \(offset)") }
        }
        return out
    }

    /// The dotted form of an OBJECT IDENTIFIER.
    public func objectIdentifier() throws(CryptoError) -> String {
        guard tag == Tag.objectIdentifier, !content.isEmpty, content.count <= 64 else {
            throw CryptoError(.malformedInput, "DER: expected an OBJECT IDENTIFIER at offset \(offset)")
        }
        var arcs: [UInt64] = []
        var value: UInt64 = 0
        var started = false
        for byte in content {
            if !started && byte == 0x80 { throw CryptoError(.malformedInput, "DER: non-minimal OID arc at offset \(offset)") }
            started = byte & 0x80 != 0
            guard value >> 57 == 0 else { throw CryptoError(.malformedInput, "DER: OID arc too large at offset \(offset)") }
            value = value << 7 | UInt64(byte & 0x7f)
            if byte & 0x80 == 0 {
                arcs.append(value)
                value = 0
            }
        }
        guard !started, let first = arcs.first else { throw CryptoError(.malformedInput, "DER: truncated OID at offset \(offset)") }
        let head: [UInt64] = first < 40 ? [0, first] : (first < 80 ? [1, first - 40] : [2, first - 80])
        return (head + arcs.dropFirst()).map(String.init).joined(separator: ".")
    }

    /// The value of an INTEGER as a non-negative Int (Intel's SVNs and counters).
    public func integerValue() throws(CryptoError) -> Int {
        guard tag == Tag.integer, !content.isEmpty, content.count <= 8 else {
            throw CryptoError(.malformedInput, "DER: expected a small INTEGER at offset \(offset)")
        }
        guard content[content.startIndex] & 0x80 == 0 else {
            throw CryptoError(.malformedInput, "DER: negative INTEGER at offset \(offset)")
        }
        var value = 0
        for byte in content { value = value << 8 | Int(byte) }
        return value
    }

    /// Reads this node as a single element of `tag`, or throws.
    public func expecting(_ expected: UInt8) throws(CryptoError) -> DERNode {
        guard tag == expected else {
            throw CryptoError(
                .malformedInput, "DER: expected tag 0x\(String(expected, radix: 16)) at offset \(offset), found 0x\(String(tag, radix: 16))"
            )
        }
        return self
    }
}

/// Reads consecutive DER elements from a byte slice.
public struct DERReader: Sendable {
    private var remaining: ArraySlice<UInt8>
    private let baseOffset: Int
    private let start: Int

    public init(_ bytes: ArraySlice<UInt8>, baseOffset: Int = 0) {
        self.remaining = bytes
        self.baseOffset = baseOffset
        self.start = bytes.startIndex
    }

    public init(_ bytes: [UInt8]) { self.init(bytes[...]) }

    public var isAtEnd: Bool { remaining.isEmpty }

    /// Parses exactly one element spanning all of `bytes`.
    public static func parseSingle(_ bytes: [UInt8]) throws(CryptoError) -> DERNode {
        var reader = DERReader(bytes)
        let node = try reader.read()
        guard reader.isAtEnd else { throw CryptoError(.malformedInput, "DER: trailing bytes after offset \(node.encoded.count)") }
        return node
    }

    /// Reads the next element.
    public mutating func read() throws(CryptoError) -> DERNode {
        let offset = baseOffset + (remaining.startIndex - start)
        guard let tag = remaining.first else { throw CryptoError(.malformedInput, "DER: truncated at offset \(offset)") }
        guard tag & 0x1f != 0x1f else { throw CryptoError(.malformedInput, "DER: multi-byte tags are not supported (offset \(offset))") }
        var index = remaining.startIndex + 1
        guard index < remaining.endIndex else { throw CryptoError(.malformedInput, "DER: missing length at offset \(offset)") }
        let first = remaining[index]
        index += 1
        var length = 0
        if first & 0x80 == 0 {
            length = Int(first)
        } else {
            let count = Int(first & 0x7f)
            guard count >= 1, count <= 4 else { throw CryptoError(.malformedInput, "DER: unsupported length form at offset \(offset)") }
            guard remaining.endIndex - index >= count else {
                throw CryptoError(.malformedInput, "DER: truncated length at offset \(offset)")
            }
            for _ in 0..<count {
                length = length << 8 | Int(remaining[index])
                index += 1
            }
            guard length >= 0x80, count == 1 || length >> (8 * (count - 1)) != 0 else {
                throw CryptoError(.malformedInput, "DER: non-minimal length at offset \(offset)")
            }
        }
        guard remaining.endIndex - index >= length else {
            throw CryptoError(
                .malformedInput, "DER: element at offset \(offset) declares \(length) bytes, only \(remaining.endIndex - index) remain")
        }
        let node = DERNode(
            tag: tag, encoded: remaining[remaining.startIndex..<(index + length)], content: remaining[index..<(index + length)],
            offset: offset)
        remaining = remaining[(index + length)...]
        return node
    }

    /// Reads the next element and checks its tag.
    public mutating func read(_ tag: UInt8) throws(CryptoError) -> DERNode { try read().expecting(tag) }

    /// Reads the next element if it carries `tag`.
    public mutating func readIfPresent(_ tag: UInt8) throws(CryptoError) -> DERNode? {
        guard remaining.first == tag else { return nil }
        return try read()
    }
}

/// Builds DER.
public struct DERWriter: Sendable {
    public private(set) var bytes: [UInt8] = []

    public init() {}

    /// Appends a TLV with the given tag and value.
    public mutating func element(_ tag: UInt8, _ content: some Collection<UInt8>) {
        bytes.append(tag)
        let count = content.count
        if count < 0x80 {
            bytes.append(UInt8(count))
        } else {
            var lengthBytes: [UInt8] = []
            var rest = count
            while rest > 0 {
                lengthBytes.insert(UInt8(rest & 0xff), at: 0)
                rest >>= 8
            }
            bytes.append(0x80 | UInt8(lengthBytes.count))
            bytes += lengthBytes
        }
        bytes += content
    }

    /// Appends a constructed element whose content `body` writes.
    public mutating func constructed(_ tag: UInt8, _ body: (inout DERWriter) -> Void) {
        var inner = DERWriter()
        body(&inner)
        element(tag, inner.bytes)
    }

    public mutating func sequence(_ body: (inout DERWriter) -> Void) { constructed(DERNode.Tag.sequence, body) }
    public mutating func set(_ body: (inout DERWriter) -> Void) { constructed(DERNode.Tag.set, body) }

    /// A non-negative INTEGER from big-endian magnitude bytes.
    public mutating func integer(bigEndian magnitude: [UInt8]) {
        var value = minimalBigEndian(magnitude)
        if value[0] & 0x80 != 0 { value.insert(0, at: 0) }
        element(DERNode.Tag.integer, value)
    }

    /// A non-negative INTEGER.
    public mutating func integer(_ value: Int) {
        var magnitude: [UInt8] = []
        var rest = UInt64(max(0, value))
        repeat {
            magnitude.insert(UInt8(rest & 0xff), at: 0)
            rest >>= 8
        } while rest > 0
        integer(bigEndian: magnitude)
    }

    public mutating func boolean(_ value: Bool) { element(DERNode.Tag.boolean, [value ? 0xff : 0x00]) }
    public mutating func null() { element(DERNode.Tag.null, []) }
    public mutating func octetString(_ value: some Collection<UInt8>) { element(DERNode.Tag.octetString, value) }
    public mutating func utf8String(_ value: String) { element(DERNode.Tag.utf8String, Array(value.utf8)) }

    /// A BIT STRING with no unused bits.
    public mutating func bitString(_ value: [UInt8], unusedBits: UInt8 = 0) { element(DERNode.Tag.bitString, [unusedBits] + value) }

    /// An OBJECT IDENTIFIER from its dotted form. Invalid text writes nothing and returns false.
    @discardableResult
    public mutating func objectIdentifier(_ dotted: String) -> Bool {
        let arcs = dotted.split(separator: ".").compactMap { UInt64($0) }
        guard arcs.count >= 2, arcs.count == dotted.split(separator: ".").count, arcs[0] <= 2 else { return false }
        var content: [UInt8] = []
        for arc in [arcs[0] * 40 + arcs[1]] + arcs.dropFirst(2) {
            var chunk: [UInt8] = [UInt8(arc & 0x7f)]
            var rest = arc >> 7
            while rest > 0 {
                chunk.insert(UInt8(rest & 0x7f) | 0x80, at: 0)
                rest >>= 7
            }
            content += chunk
        }
        element(DERNode.Tag.objectIdentifier, content)
        return true
    }

    /// Appends already-encoded DER.
    public mutating func raw(_ der: some Collection<UInt8>) { bytes += der }
}
