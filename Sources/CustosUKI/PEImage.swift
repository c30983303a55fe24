// PE/COFF parsing of untrusted images (Microsoft "PE Format", the sections cited per structure below).

// MARK: - Headers

/// The COFF file header that follows the `PE\0\0` signature (PE Format § "COFF File Header (Object and Image)").
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 2 | Machine |
/// | 2 | 2 | NumberOfSections |
/// | 4 | 4 | TimeDateStamp |
/// | 8 | 4 | PointerToSymbolTable |
/// | 12 | 4 | NumberOfSymbols |
/// | 16 | 2 | SizeOfOptionalHeader |
/// | 18 | 2 | Characteristics |
public struct COFFHeader: Sendable, Equatable {
    public static let size = 20
    public let machine: UInt16
    public let numberOfSections: Int
    public let timeDateStamp: UInt32
    public let sizeOfOptionalHeader: Int
    public let characteristics: UInt16

    init(parsing reader: inout ByteReader) throws(PEParseError) {
        machine = try reader.readUInt16LE("COFF Machine")
        numberOfSections = Int(try reader.readUInt16LE("COFF NumberOfSections"))
        timeDateStamp = try reader.readUInt32LE("COFF TimeDateStamp")
        try reader.skip(8, what: "COFF symbol table fields")
        sizeOfOptionalHeader = Int(try reader.readUInt16LE("COFF SizeOfOptionalHeader"))
        characteristics = try reader.readUInt16LE("COFF Characteristics")
    }
}

/// One `IMAGE_DATA_DIRECTORY` (PE Format § "Optional Header Data Directories"): an RVA (for the certificate table:
/// a *file offset*) and a size, both little-endian u32.
public struct DataDirectory: Sendable, Equatable {
    public let virtualAddress: UInt32
    public let size: UInt32
}

/// The optional header, PE32 or PE32+ (PE Format § "Optional Header (Image Only)").
///
/// | PE32 | PE32+ | size (PE32/+) | field |
/// |---|---|---|---|
/// | 0 | 0 | 2 | Magic (0x10b / 0x20b) |
/// | 16 | 16 | 4 | AddressOfEntryPoint |
/// | 28 | 24 | 4 / 8 | ImageBase |
/// | 32 | 32 | 4 | SectionAlignment |
/// | 36 | 36 | 4 | FileAlignment |
/// | 56 | 56 | 4 | SizeOfImage |
/// | 60 | 60 | 4 | SizeOfHeaders |
/// | 64 | 64 | 4 | CheckSum (not hashed by Authenticode) |
/// | 68 | 68 | 2 | Subsystem |
/// | 92 | 108 | 4 | NumberOfRvaAndSizes |
/// | 96 | 112 | 8 × n | data directories; [4] is the Certificate Table (not hashed) |
public struct OptionalHeader: Sendable, Equatable {
    public enum Format: String, Sendable, Equatable { case pe32 = "PE32", pe32Plus = "PE32+" }

    public let format: Format
    public let addressOfEntryPoint: UInt32
    public let imageBase: UInt64
    public let sectionAlignment: UInt32
    public let fileAlignment: UInt32
    public let sizeOfImage: UInt32
    public let sizeOfHeaders: Int
    public let checkSum: UInt32
    public let subsystem: UInt16
    public let dataDirectories: [DataDirectory]
    /// The file offset of the optional header.
    public let offset: Int

    /// The offset of CheckSum relative to the optional header (the same in both formats).
    static let checkSumOffset = 64
    /// Where the data directories start, relative to the optional header.
    var dataDirectoriesOffset: Int { format == .pe32Plus ? 112 : 96 }
    /// The certificate table's directory entry, relative to the optional header (Authenticode skips these 8 bytes).
    var certificateDirectoryOffset: Int { dataDirectoriesOffset + 8 * 4 }

    /// Where Authenticode hashing resumes after the skipped certificate directory (or after CheckSum when the header
    /// has fewer than five directories), relative to the optional header.
    var hashedHeaderResumeOffset: Int { dataDirectories.count > 4 ? certificateDirectoryOffset + 8 : Self.checkSumOffset + 4 }

    /// The Certificate Table directory (index 4), if the header has one.
    public var certificateTable: DataDirectory? { dataDirectories.count > 4 ? dataDirectories[4] : nil }

    init(parsing reader: inout ByteReader, size: Int) throws(PEParseError) {
        offset = reader.position
        let end = try checkedAdd(offset, size, at: offset, "SizeOfOptionalHeader")
        guard end <= reader.limit else {
            throw PEParseError(.truncated, at: offset, "optional header of \(size) bytes runs past the end of the file")
        }
        var r = ByteReader(reader.bytes, at: offset, limit: end)
        let magic = try r.readUInt16LE("optional header Magic")
        switch magic {
        case 0x20b: format = .pe32Plus
        case 0x10b: format = .pe32
        default:
            throw PEParseError(.invalidValue, at: offset, "optional header magic 0x\(String(magic, radix: 16)) is neither PE32 nor PE32+")
        }
        try r.skip(14, what: "optional header linker fields")
        addressOfEntryPoint = try r.readUInt32LE("AddressOfEntryPoint")
        if format == .pe32Plus {
            try r.skip(4, what: "BaseOfCode")
            imageBase = try r.readUInt64LE("ImageBase")
        } else {
            try r.skip(8, what: "BaseOfCode, BaseOfData")
            imageBase = UInt64(try r.readUInt32LE("ImageBase"))
        }
        sectionAlignment = try r.readUInt32LE("SectionAlignment")
        fileAlignment = try r.readUInt32LE("FileAlignment")
        try r.skip(16, what: "version fields")
        sizeOfImage = try r.readUInt32LE("SizeOfImage")
        sizeOfHeaders = Int(try r.readUInt32LE("SizeOfHeaders"))
        checkSum = try r.readUInt32LE("CheckSum")
        subsystem = try r.readUInt16LE("Subsystem")
        try r.skip(format == .pe32Plus ? 38 : 22, what: "DllCharacteristics and stack/heap sizes")
        let countOffset = r.position
        let count = Int(try r.readUInt32LE("NumberOfRvaAndSizes"))
        // The format defines 16 directories; more is malformed and would let the count drive a huge allocation.
        guard count <= 16 else {
            throw PEParseError(.lengthOverflow, at: countOffset, "NumberOfRvaAndSizes is \(count), at most 16 are defined")
        }
        var directories: [DataDirectory] = []
        for _ in 0..<count {
            let va = try r.readUInt32LE("data directory VirtualAddress")
            let size = try r.readUInt32LE("data directory Size")
            directories.append(DataDirectory(virtualAddress: va, size: size))
        }
        dataDirectories = directories
        reader = ByteReader(reader.bytes, at: end, limit: reader.limit)
    }
}

/// One section header, 40 bytes (PE Format § "Section Table (Section Headers)").
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 8 | Name (NUL-padded UTF-8) |
/// | 8 | 4 | VirtualSize |
/// | 12 | 4 | VirtualAddress |
/// | 16 | 4 | SizeOfRawData |
/// | 20 | 4 | PointerToRawData |
/// | 24 | 12 | relocation/line-number pointers and counts (unused in images) |
/// | 36 | 4 | Characteristics |
public struct SectionHeader: Sendable, Equatable {
    public static let size = 40
    /// The name with trailing NULs removed (`.linux`, `.initrd`, …).
    public let name: String
    /// The 8 raw name bytes.
    public let rawName: [UInt8]
    public let virtualSize: UInt32
    public let virtualAddress: UInt32
    public let sizeOfRawData: UInt32
    public let pointerToRawData: UInt32
    public let characteristics: UInt32
    /// The file offset of this header.
    public let headerOffset: Int

    init(parsing reader: inout ByteReader) throws(PEParseError) {
        headerOffset = reader.position
        rawName = Array(try reader.readBytes(8, what: "section Name"))
        name = String(decoding: rawName.prefix { $0 != 0 }, as: UTF8.self)
        virtualSize = try reader.readUInt32LE("section VirtualSize")
        virtualAddress = try reader.readUInt32LE("section VirtualAddress")
        sizeOfRawData = try reader.readUInt32LE("section SizeOfRawData")
        pointerToRawData = try reader.readUInt32LE("section PointerToRawData")
        try reader.skip(12, what: "section relocation fields")
        characteristics = try reader.readUInt32LE("section Characteristics")
    }

    /// The file range of the raw data (empty when SizeOfRawData is 0).
    public var rawDataRange: Range<Int> { Int(pointerToRawData)..<Int(pointerToRawData) + Int(sizeOfRawData) }
}

/// One `WIN_CERTIFICATE` of the attribute certificate table (PE Format § "The Attribute Certificate Table").
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 4 | dwLength (header included, excluding the padding to 8 bytes) |
/// | 4 | 2 | wRevision (0x0200) |
/// | 6 | 2 | wCertificateType (0x0002 = PKCS #7 SignedData) |
/// | 8 | dwLength − 8 | bCertificate |
public struct WinCertificate: Sendable, Equatable {
    public static let revision2: UInt16 = 0x0200
    public static let typePKCSSignedData: UInt16 = 0x0002

    public let revision: UInt16
    public let certificateType: UInt16
    /// The payload (for type 2, the DER PKCS #7 `ContentInfo`).
    public let certificate: [UInt8]
    /// The file offset of this entry.
    public let offset: Int
}

// MARK: - Image

/// A parsed PE/COFF image: headers, sections and the attribute certificate table, over the file's bytes.
///
/// Parsing checks every offset and length against the file and never traps on input. It accepts what EDK2's
/// loader and Authenticode verifier accept for UEFI images: PE32 or PE32+, at most ``maxSections`` sections, raw
/// data inside the file, and a certificate table (if any) at the very end of the file.
public struct PEImage: Sendable {
    /// Hard caps on counts and sizes (the PE loader in Windows caps sections at 96).
    public static let maxSections = 96
    public static let maxCertificates = 16
    public static let maxFileSize = 1 << 30

    /// The whole file.
    public let bytes: [UInt8]
    /// The file offset of the `PE\0\0` signature (`e_lfanew`).
    public let peHeaderOffset: Int
    public let coff: COFFHeader
    public let optionalHeader: OptionalHeader
    /// The sections in header order.
    public let sections: [SectionHeader]
    /// The file offset of the attribute certificate table, when the image has one.
    public let certificateTableOffset: Int?
    /// The size of the attribute certificate table (0 when unsigned).
    public let certificateTableSize: Int
    /// The `WIN_CERTIFICATE` entries in table order.
    public let certificates: [WinCertificate]

    /// Parses a PE/COFF image.
    /// - Parameter bytes: the whole file.
    /// - Throws: ``PEParseError`` with the file offset of the first problem.
    public init(bytes: [UInt8]) throws(PEParseError) {
        guard bytes.count <= Self.maxFileSize else {
            throw PEParseError(.lengthOverflow, at: 0, "image is \(bytes.count) bytes, more than the \(Self.maxFileSize)-byte cap")
        }
        self.bytes = bytes
        // MS-DOS stub (PE Format § "MS-DOS Stub (Image Only)"): "MZ" at 0, e_lfanew (u32 LE) at 0x3C.
        var reader = ByteReader(bytes)
        let mz = try reader.readUInt16LE("MS-DOS signature")
        guard mz == 0x5A4D else { throw PEParseError(.invalidValue, at: 0, "no MZ signature") }
        try reader.seek(to: 0x3C, what: "e_lfanew")
        let lfanew = Int(try reader.readUInt32LE("e_lfanew"))
        try reader.seek(to: lfanew, what: "PE signature")
        let signature = try reader.readUInt32LE("PE signature")
        guard signature == 0x0000_4550 else { throw PEParseError(.invalidValue, at: lfanew, "no PE\\0\\0 signature at e_lfanew") }
        peHeaderOffset = lfanew
        coff = try COFFHeader(parsing: &reader)
        guard coff.numberOfSections <= Self.maxSections else {
            throw PEParseError(
                .lengthOverflow, at: lfanew + 6, "\(coff.numberOfSections) sections, more than the cap of \(Self.maxSections)")
        }
        optionalHeader = try OptionalHeader(parsing: &reader, size: coff.sizeOfOptionalHeader)
        let optional = optionalHeader
        // Authenticode hashes [certificate directory + 8, SizeOfHeaders) (or [CheckSum + 4, …) without a
        // certificate directory), so the headers must cover it.
        let hashedHeaderStart = optional.offset + optional.hashedHeaderResumeOffset
        guard optional.sizeOfHeaders >= hashedHeaderStart, coff.sizeOfOptionalHeader >= optional.hashedHeaderResumeOffset else {
            throw PEParseError(
                .invalidValue, at: optional.offset + 60,
                "SizeOfHeaders \(optional.sizeOfHeaders) / SizeOfOptionalHeader \(coff.sizeOfOptionalHeader) do not cover the certificate table directory"
            )
        }
        guard optional.sizeOfHeaders <= bytes.count else {
            throw PEParseError(
                .truncated, at: optional.offset + 60, "SizeOfHeaders \(optional.sizeOfHeaders) exceeds the file size \(bytes.count)")
        }
        var sections: [SectionHeader] = []
        for _ in 0..<coff.numberOfSections {
            let section = try SectionHeader(parsing: &reader)
            if section.sizeOfRawData > 0 {
                let end = Int(section.pointerToRawData) + Int(section.sizeOfRawData)  // both < 2^32: no overflow on 64-bit
                guard end <= bytes.count else {
                    throw PEParseError(
                        .truncated, at: section.headerOffset,
                        "section \(section.name) raw data [0x\(String(section.pointerToRawData, radix: 16)), 0x\(String(end, radix: 16))) runs past the end of the file"
                    )
                }
            }
            sections.append(section)
        }
        guard reader.position <= optional.sizeOfHeaders else {
            throw PEParseError(.invalidValue, at: reader.position, "the section table ends after SizeOfHeaders \(optional.sizeOfHeaders)")
        }
        self.sections = sections

        // The attribute certificate table: a file offset, 8-byte aligned, and (for Authenticode) the last thing in
        // the file, since everything after the sections up to it is hashed as trailing data.
        let directory = optional.certificateTable ?? DataDirectory(virtualAddress: 0, size: 0)
        let directoryOffset = optional.offset + optional.certificateDirectoryOffset
        if directory.size == 0 {
            certificateTableOffset = nil
            certificateTableSize = 0
            certificates = []
        } else {
            let start = Int(directory.virtualAddress)
            let size = Int(directory.size)
            guard start + size <= bytes.count else {
                throw PEParseError(
                    .truncated, at: directoryOffset, "certificate table [\(start), +\(size)) runs past the end of the file (\(bytes.count))"
                )
            }
            guard start + size == bytes.count else {
                throw PEParseError(
                    .invalidValue, at: directoryOffset,
                    "certificate table ends at \(start + size), not at the end of the file (\(bytes.count))")
            }
            guard start % 8 == 0 else {
                throw PEParseError(.invalidValue, at: directoryOffset, "certificate table offset \(start) is not 8-byte aligned")
            }
            let sectionsEnd = sections.map { Int($0.pointerToRawData) + Int($0.sizeOfRawData) }.max() ?? 0
            guard start >= max(optional.sizeOfHeaders, sectionsEnd) else {
                throw PEParseError(.invalidValue, at: directoryOffset, "certificate table at \(start) overlaps the headers or section data")
            }
            certificateTableOffset = start
            certificateTableSize = size
            certificates = try Self.parseCertificates(bytes, start: start, end: start + size)
        }
    }

    static func parseCertificates(_ bytes: [UInt8], start: Int, end: Int) throws(PEParseError) -> [WinCertificate] {
        var entries: [WinCertificate] = []
        var reader = ByteReader(bytes, at: start, limit: end)
        while reader.remaining > 0 {
            let offset = reader.position
            guard entries.count < maxCertificates else {
                throw PEParseError(.lengthOverflow, at: offset, "more than \(maxCertificates) WIN_CERTIFICATE entries")
            }
            let length = Int(try reader.readUInt32LE("WIN_CERTIFICATE dwLength"))
            let revision = try reader.readUInt16LE("WIN_CERTIFICATE wRevision")
            let type = try reader.readUInt16LE("WIN_CERTIFICATE wCertificateType")
            guard length >= 8 else {
                throw PEParseError(.invalidValue, at: offset, "WIN_CERTIFICATE dwLength \(length) is smaller than its header")
            }
            let payload = Array(try reader.readBytes(length - 8, what: "WIN_CERTIFICATE bCertificate"))
            entries.append(WinCertificate(revision: revision, certificateType: type, certificate: payload, offset: offset))
            // Entries are padded with zeros to an 8-byte boundary; the last one may end the table unpadded.
            let padded = (length + 7) & ~7
            try reader.skip(min(padded - length, reader.remaining), what: "WIN_CERTIFICATE padding")
        }
        return entries
    }

    /// Whether the image carries an attribute certificate table.
    public var isSigned: Bool { !certificates.isEmpty }

    /// The first section with `name`, if any.
    public func section(named name: String) -> SectionHeader? { sections.first { $0.name == name } }

    /// A section's raw file bytes (SizeOfRawData, as stored in the file; bounds were checked at parse time).
    public func rawData(of section: SectionHeader) -> ArraySlice<UInt8> {
        guard section.sizeOfRawData > 0 else { return [] }
        return bytes[section.rawDataRange]
    }

    /// A section's bytes as the loader maps them: VirtualSize bytes, the raw data truncated or zero-filled to that
    /// size.
    /// - Parameter limit: the most bytes to return (VirtualSize comes from the file and may be huge).
    public func mappedData(of section: SectionHeader, limit: Int = 1 << 20) -> [UInt8] {
        let size = min(Int(section.virtualSize), limit)
        var out = Array(rawData(of: section).prefix(size))
        if out.count < size { out += [UInt8](repeating: 0, count: size - out.count) }
        return out
    }
}
