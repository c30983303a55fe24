import CustosCrypto

/// CustosCrypto's shared ``CustosCrypto/ByteReader`` with ``PEParseError``s.
///
/// Offsets are absolute positions in the whole file so that every ``PEParseError`` names a file offset. PE/COFF
/// is little-endian throughout (PE Format, "General Concepts"), so every read here is little-endian.
struct ByteReader {
    private var base: CustosCrypto.ByteReader

    init(_ bytes: [UInt8], at position: Int = 0, limit: Int? = nil) {
        base = CustosCrypto.ByteReader(bytes, offset: position, end: limit)
    }

    var bytes: [UInt8] { base.bytes }
    /// The absolute offset of the next read.
    var position: Int { base.offset }
    /// One past the last byte this reader may read (a sub-range of `bytes`).
    var limit: Int { base.end }
    var remaining: Int { base.remaining }

    private func mapped(_ error: ByteReaderError) -> PEParseError {
        if error.beyondEnd {
            return PEParseError(.truncated, at: error.offset, "\(error.field) starts beyond the end of the input (\(limit) bytes)")
        }
        return PEParseError(.truncated, at: error.offset, "\(error.field): needs \(error.needed) bytes, \(error.remaining) left")
    }

    mutating func seek(to offset: Int, what: String) throws(PEParseError) {
        do { try base.seek(to: offset, what) } catch { throw mapped(error) }
    }

    mutating func skip(_ count: Int, what: String) throws(PEParseError) {
        do { try base.skip(count, what) } catch { throw mapped(error) }
    }

    mutating func readBytes(_ count: Int, what: String) throws(PEParseError) -> ArraySlice<UInt8> {
        do { return try base.readSlice(count, what) } catch { throw mapped(error) }
    }

    mutating func readUInt8(_ what: String) throws(PEParseError) -> UInt8 {
        do { return try base.readUInt8(what) } catch { throw mapped(error) }
    }

    mutating func readUInt16LE(_ what: String) throws(PEParseError) -> UInt16 {
        do { return try base.readUInt16LE(what) } catch { throw mapped(error) }
    }

    mutating func readUInt32LE(_ what: String) throws(PEParseError) -> UInt32 {
        do { return try base.readUInt32LE(what) } catch { throw mapped(error) }
    }

    mutating func readUInt64LE(_ what: String) throws(PEParseError) -> UInt64 {
        do { return try base.readUInt64LE(what) } catch { throw mapped(error) }
    }
}

/// `a + b` for offsets taken from input, or a ``PEParseError/Status/lengthOverflow``.
func checkedAdd(_ a: Int, _ b: Int, at offset: Int, _ what: String) throws(PEParseError) -> Int {
    let (sum, overflow) = a.addingReportingOverflow(b)
    guard !overflow else { throw PEParseError(.lengthOverflow, at: offset, "\(what) overflows") }
    return sum
}
