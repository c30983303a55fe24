import CustosCrypto

/// CustosCrypto's shared ``CustosCrypto/ByteReader`` with TDX errors (TDX structures are little-endian, spec §1).
///
/// Every read names the field it reads, so that running short throws a ``TDXError`` whose code is the reader's
/// `errorCode`, naming the field and its absolute offset. The reader never traps.
struct ByteReader {
    private var base: CustosCrypto.ByteReader
    let errorCode: TDXError.Code

    init(_ bytes: [UInt8], offset: Int = 0, end: Int? = nil, errorCode: TDXError.Code = .malformedQuote) {
        base = CustosCrypto.ByteReader(bytes, offset: offset, end: end)
        self.errorCode = errorCode
    }

    var bytes: [UInt8] { base.bytes }
    var offset: Int { base.offset }
    var end: Int { base.end }
    var remaining: Int { base.remaining }

    func fail(_ field: String, _ reason: String, at offset: Int? = nil) -> TDXError {
        TDXError(errorCode, reason, field: field, offset: offset ?? self.offset)
    }

    private func mapped(_ error: ByteReaderError) -> TDXError {
        TDXError(errorCode, error.description, field: error.field, offset: error.offset)
    }

    /// Reads `count` bytes.
    mutating func read(_ count: Int, _ field: String) throws(TDXError) -> [UInt8] {
        do { return try base.read(count, field) } catch { throw mapped(error) }
    }

    /// Reads a little-endian u16.
    mutating func u16(_ field: String) throws(TDXError) -> UInt16 {
        do { return try base.readUInt16LE(field) } catch { throw mapped(error) }
    }

    /// Reads a little-endian u32.
    mutating func u32(_ field: String) throws(TDXError) -> UInt32 {
        do { return try base.readUInt32LE(field) } catch { throw mapped(error) }
    }

    /// Reads a little-endian u64.
    mutating func u64(_ field: String) throws(TDXError) -> UInt64 {
        do { return try base.readUInt64LE(field) } catch { throw mapped(error) }
    }

    /// Skips `count` bytes.
    mutating func skip(_ count: Int, _ field: String) throws(TDXError) {
        do { try base.skip(count, field) } catch { throw mapped(error) }
    }
}

/// Little-endian integer of a byte array (at most 8 bytes).
func littleEndianUInt64(_ bytes: some Collection<UInt8>) -> UInt64 {
    var value: UInt64 = 0
    for byte in bytes.reversed() { value = value << 8 | UInt64(byte) }
    return value
}
