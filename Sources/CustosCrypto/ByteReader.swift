/// The one bounds-checked reader over untrusted bytes, shared by CustosTDX, CustosSEV and CustosUKI (issue 9).
///
/// Offsets are absolute positions in `bytes`, so every error can name a file offset. One clamping rule: the start is
/// clamped into `0…bytes.count` and the end into `start…bytes.count`, so a reader is always a valid (possibly empty)
/// window and no read can trap. Reads check `count` against the bytes left and move the offset only on success.
/// Integers are little-endian, as the TDX, SEV and PE/COFF structures are; every call says so in its name.
///
/// Each module keeps its own error type: it wraps this reader and maps ``ByteReaderError`` (which names the field,
/// the offset and what was missing) to its own code (`malformedQuote`, `truncated`, …).
public struct ByteReader: Sendable {
    /// The whole input.
    public let bytes: [UInt8]
    /// The absolute offset of the next read.
    public private(set) var offset: Int
    /// One past the last byte this reader may read.
    public let end: Int

    /// A reader over `bytes[offset..<end]`, clamped as the type documents.
    public init(_ bytes: [UInt8], offset: Int = 0, end: Int? = nil) {
        self.bytes = bytes
        let start = max(0, min(offset, bytes.count))
        self.offset = start
        self.end = max(start, min(end ?? bytes.count, bytes.count))
    }

    /// Bytes left before ``end``.
    public var remaining: Int { end - offset }

    /// The error for a read of `count` bytes of `field` that does not fit.
    private func truncated(_ field: String, _ count: Int) -> ByteReaderError {
        ByteReaderError(field: field, offset: offset, needed: count, remaining: remaining)
    }

    /// Moves to an absolute offset inside the window.
    /// - Throws: ``ByteReaderError`` when `offset` is outside `0…end`.
    public mutating func seek(to offset: Int, _ field: String) throws(ByteReaderError) {
        guard offset >= 0, offset <= end else {
            throw ByteReaderError(field: field, offset: offset, needed: 0, remaining: 0, beyondEnd: true)
        }
        self.offset = offset
    }

    /// Skips `count` bytes.
    public mutating func skip(_ count: Int, _ field: String) throws(ByteReaderError) {
        guard count >= 0, count <= remaining else { throw truncated(field, count) }
        offset += count
    }

    /// Reads `count` bytes as a slice of ``bytes`` (absolute indices).
    public mutating func readSlice(_ count: Int, _ field: String) throws(ByteReaderError) -> ArraySlice<UInt8> {
        guard count >= 0, count <= remaining else { throw truncated(field, count) }
        defer { offset += count }
        return bytes[offset..<offset + count]
    }

    /// Reads `count` bytes.
    public mutating func read(_ count: Int, _ field: String) throws(ByteReaderError) -> [UInt8] {
        Array(try readSlice(count, field))
    }

    /// Reads one byte.
    public mutating func readUInt8(_ field: String) throws(ByteReaderError) -> UInt8 {
        guard remaining >= 1 else { throw truncated(field, 1) }
        defer { offset += 1 }
        return bytes[offset]
    }

    /// Reads a little-endian u16.
    public mutating func readUInt16LE(_ field: String) throws(ByteReaderError) -> UInt16 {
        UInt16(truncatingIfNeeded: try readLittleEndian(2, field))
    }

    /// Reads a little-endian u32.
    public mutating func readUInt32LE(_ field: String) throws(ByteReaderError) -> UInt32 {
        UInt32(truncatingIfNeeded: try readLittleEndian(4, field))
    }

    /// Reads a little-endian u64.
    public mutating func readUInt64LE(_ field: String) throws(ByteReaderError) -> UInt64 {
        try readLittleEndian(8, field)
    }

    private mutating func readLittleEndian(_ size: Int, _ field: String) throws(ByteReaderError) -> UInt64 {
        let raw = try readSlice(size, field)
        var value: UInt64 = 0
        for byte in raw.reversed() { value = value << 8 | UInt64(byte) }
        return value
    }
}

/// A read that did not fit: which field, where, and how many bytes it needed and had.
public struct ByteReaderError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The field being read.
    public let field: String
    /// The absolute offset of the read (or of the seek target).
    public let offset: Int
    /// Bytes the read needed.
    public let needed: Int
    /// Bytes that were left.
    public let remaining: Int
    /// A seek beyond the end (rather than a short read).
    public let beyondEnd: Bool

    public init(field: String, offset: Int, needed: Int, remaining: Int, beyondEnd: Bool = false) {
        self.field = field
        self.offset = offset
        self.needed = needed
        self.remaining = remaining
        self.beyondEnd = beyondEnd
    }

    /// One line, as the modules put it into their own errors.
    public var description: String {
        beyondEnd ? "\(field) starts beyond the end of the input" : "truncated: \(field) needs \(needed) bytes, \(remaining) remain"
    }
}
