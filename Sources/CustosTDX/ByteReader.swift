/// A bounds-checked little-endian reader over untrusted bytes (TDX structures are little-endian, spec §1).
///
/// Every read names the field it reads, so that running short throws a ``TDXError`` whose code is the reader's
/// `errorCode`, naming the field and its absolute offset. The reader never traps.
struct ByteReader {
    let bytes: [UInt8]
    private(set) var offset: Int
    /// One past the last byte this reader may read.
    let end: Int
    let errorCode: TDXError.Code

    init(_ bytes: [UInt8], offset: Int = 0, end: Int? = nil, errorCode: TDXError.Code = .malformedQuote) {
        self.bytes = bytes
        self.offset = max(0, min(offset, bytes.count))
        self.end = max(self.offset, min(end ?? bytes.count, bytes.count))
        self.errorCode = errorCode
    }

    var remaining: Int { end - offset }

    func fail(_ field: String, _ reason: String, at offset: Int? = nil) -> TDXError {
        TDXError(errorCode, reason, field: field, offset: offset ?? self.offset)
    }

    /// Reads `count` bytes.
    mutating func read(_ count: Int, _ field: String) throws(TDXError) -> [UInt8] {
        guard count >= 0, count <= remaining else {
            throw fail(field, "truncated: \(field) needs \(count) bytes, \(remaining) remain")
        }
        let out = Array(bytes[offset..<(offset + count)])
        offset += count
        return out
    }

    /// Reads a little-endian u16.
    mutating func u16(_ field: String) throws(TDXError) -> UInt16 {
        let b = try read(2, field)
        return UInt16(b[0]) | UInt16(b[1]) << 8
    }

    /// Reads a little-endian u32.
    mutating func u32(_ field: String) throws(TDXError) -> UInt32 {
        let b = try read(4, field)
        return UInt32(b[0]) | UInt32(b[1]) << 8 | UInt32(b[2]) << 16 | UInt32(b[3]) << 24
    }

    /// Reads a little-endian u64.
    mutating func u64(_ field: String) throws(TDXError) -> UInt64 {
        let b = try read(8, field)
        var value: UInt64 = 0
        for byte in b.reversed() { value = value << 8 | UInt64(byte) }
        return value
    }

    /// Skips `count` bytes.
    mutating func skip(_ count: Int, _ field: String) throws(TDXError) {
        guard count >= 0, count <= remaining else {
            throw fail(field, "truncated: \(field) needs \(count) bytes, \(remaining) remain")
        }
        offset += count
    }
}

/// Little-endian integer of a byte array (at most 8 bytes).
func littleEndianUInt64(_ bytes: some Collection<UInt8>) -> UInt64 {
    var value: UInt64 = 0
    for byte in bytes.reversed() { value = value << 8 | UInt64(byte) }
    return value
}
