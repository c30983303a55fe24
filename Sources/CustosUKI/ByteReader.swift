/// A bounds-checked little-endian cursor over untrusted bytes.
///
/// Offsets are absolute positions in the whole file so that every ``PEParseError`` names a file offset. PE/COFF
/// is little-endian throughout (PE Format, "General Concepts"), so every read here is little-endian.
struct ByteReader {
    let bytes: [UInt8]
    /// The absolute offset of the next read.
    private(set) var position: Int
    /// One past the last byte this reader may read (a sub-range of `bytes`).
    let limit: Int

    init(_ bytes: [UInt8], at position: Int = 0, limit: Int? = nil) {
        self.bytes = bytes
        self.limit = min(limit ?? bytes.count, bytes.count)
        self.position = max(0, min(position, self.limit))
    }

    var remaining: Int { limit - position }

    mutating func seek(to offset: Int, what: String) throws(PEParseError) {
        guard offset >= 0, offset <= limit else {
            throw PEParseError(.truncated, at: offset, "\(what) starts beyond the end of the input (\(limit) bytes)")
        }
        position = offset
    }

    mutating func skip(_ count: Int, what: String) throws(PEParseError) {
        guard count >= 0, count <= remaining else {
            throw PEParseError(.truncated, at: position, "\(what): needs \(count) bytes, \(remaining) left")
        }
        position += count
    }

    mutating func readBytes(_ count: Int, what: String) throws(PEParseError) -> ArraySlice<UInt8> {
        guard count >= 0, count <= remaining else {
            throw PEParseError(.truncated, at: position, "\(what): needs \(count) bytes, \(remaining) left")
        }
        defer { position += count }
        return bytes[position..<position + count]
    }

    mutating func readUInt8(_ what: String) throws(PEParseError) -> UInt8 {
        guard remaining >= 1 else { throw PEParseError(.truncated, at: position, "\(what): input ends") }
        defer { position += 1 }
        return bytes[position]
    }

    mutating func readUInt16LE(_ what: String) throws(PEParseError) -> UInt16 {
        let raw = try readBytes(2, what: what)
        return UInt16(raw[raw.startIndex]) | UInt16(raw[raw.startIndex + 1]) << 8
    }

    mutating func readUInt32LE(_ what: String) throws(PEParseError) -> UInt32 {
        let raw = try readBytes(4, what: what)
        var value: UInt32 = 0
        for (shift, byte) in raw.enumerated() { value |= UInt32(byte) << (8 * UInt32(shift)) }
        return value
    }

    mutating func readUInt64LE(_ what: String) throws(PEParseError) -> UInt64 {
        let raw = try readBytes(8, what: what)
        var value: UInt64 = 0
        for (shift, byte) in raw.enumerated() { value |= UInt64(byte) << (8 * UInt64(shift)) }
        return value
    }
}

/// `a + b` for offsets taken from input, or a ``PEParseError/Status/lengthOverflow``.
func checkedAdd(_ a: Int, _ b: Int, at offset: Int, _ what: String) throws(PEParseError) -> Int {
    let (sum, overflow) = a.addingReportingOverflow(b)
    guard !overflow else { throw PEParseError(.lengthOverflow, at: offset, "\(what) overflows") }
    return sum
}
