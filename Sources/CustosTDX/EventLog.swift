public import CustosCrypto

// MARK: - CCEL ACPI table (spec §4.3)

/// The ACPI "CCEL" table (56 bytes, spec §4.3).
///
/// | off | len | field |
/// |---:|---:|---|
/// | 0 | 36 | ACPI header (signature "CCEL", length u32 LE, …) |
/// | 36 | 1 | CC type (2 = TDX) |
/// | 37 | 1 | CC subtype |
/// | 38 | 2 | reserved |
/// | 40 | 8 | LAML: log area minimum length (u64 LE) |
/// | 48 | 8 | LASA: log area start address (u64 LE) |
public struct CCELTable: Sendable, Equatable {
    public let length: UInt32
    public let revision: UInt8
    public let oemID: String
    public let ccType: UInt8
    public let ccSubtype: UInt8
    public let logAreaMinimumLength: UInt64
    public let logAreaStartAddress: UInt64

    /// Parses the table.
    /// - Throws: ``TDXError/Code/malformedEventLog``.
    public init(parsing bytes: [UInt8]) throws(TDXError) {
        var reader = ByteReader(bytes, errorCode: .malformedEventLog)
        let signature = try reader.read(4, "ccel.signature")
        guard signature == Array("CCEL".utf8) else {
            throw TDXError(.malformedEventLog, "ACPI table signature is not CCEL", field: "ccel.signature", offset: 0)
        }
        length = try reader.u32("ccel.length")
        guard length == 56, bytes.count >= 56 else {
            throw TDXError(
                .malformedEventLog, "CCEL table length \(length) (\(bytes.count) bytes given) is not 56", field: "ccel.length", offset: 4)
        }
        revision = try reader.read(1, "ccel.revision")[0]
        try reader.skip(1, "ccel.checksum")
        oemID = String(decoding: try reader.read(6, "ccel.oemId"), as: UTF8.self).trimmingTrailingSpaces
        try reader.skip(20, "ccel.oemTableId+revisions")
        ccType = try reader.read(1, "ccel.ccType")[0]
        ccSubtype = try reader.read(1, "ccel.ccSubtype")[0]
        try reader.skip(2, "ccel.reserved")
        logAreaMinimumLength = try reader.u64("ccel.laml")
        logAreaStartAddress = try reader.u64("ccel.lasa")
    }
}

extension String {
    var trimmingTrailingSpaces: String {
        var s = Substring(self)
        while let last = s.last, last == " " || last == "\0" { s = s.dropLast() }
        return String(s)
    }
}

// MARK: - TCG2 crypto-agile event log (spec §4.3)

/// One event of the CC event log.
public struct CCEvent: Sendable, Equatable {
    /// Position in the log (0 = the Spec ID header event).
    public let index: Int
    /// The CC measurement register index: 0 MRTD, 1…4 RTMR0…3 (spec §4.2; not a PCR number).
    public let mrIndex: UInt32
    public let eventType: UInt32
    /// Digests by TCG algorithm ID (0x000C = SHA-384).
    public let digests: [UInt16: [UInt8]]
    public let data: [UInt8]
    /// Absolute offset of the event in the log area.
    public let offset: Int

    /// The SHA-384 digest, if present.
    public var sha384: [UInt8]? { digests[EventLog.sha384AlgorithmID] }
    /// The event type's TCG name (`EV_…`), or hex.
    public var typeName: String { EventLog.typeNames[eventType] ?? "0x" + String(eventType, radix: 16) }
    /// The RTMR this event extends (0…3), or `nil` for MRTD / EV_NO_ACTION / out-of-range indexes.
    public var rtmrIndex: Int? {
        guard eventType != EventLog.evNoAction, (1...4).contains(mrIndex) else { return nil }
        return Int(mrIndex) - 1
    }

    /// A readable rendering of standard event data: ASCII text for actions/IPL/config flags, the variable name for
    /// UEFI variable events, `nil` otherwise.
    public var decodedData: String? {
        switch eventType {
        case 0x0000_0005, 0x8000_0007, 0x0000_000d, 0x0000_000a, 0x0000_0001, 0x8000_000b, 0x8000_000a:
            // EV_EFI_ACTION, EV_EFI_ACTION(0x80000007), EV_IPL, EV_PLATFORM_CONFIG_FLAGS, EV_POST_CODE, *_BLOB2, *_TABLES2
            var bytes = data
            if eventType == 0x8000_000a || eventType == 0x8000_000b {
                // UEFI_PLATFORM_FIRMWARE_BLOB2 / HANDOFF_TABLES2: u8 description size, then the description.
                // A size of 0 is legal and gives an empty description; the size byte plus `size` bytes must exist.
                guard let size = bytes.first, bytes.count > Int(size) else { return nil }
                bytes = Array(bytes[1..<(1 + Int(size))])
            }
            while bytes.last == 0 { bytes.removeLast() }
            guard !bytes.isEmpty, bytes.allSatisfy({ (0x20..<0x7f).contains($0) || $0 == 0x0a }) else {
                return utf16Text(bytes)
            }
            return String(decoding: bytes, as: UTF8.self)
        case 0x8000_0001, 0x8000_0002, 0x8000_00e0:
            // UEFI_VARIABLE_DATA: GUID[16], u64 name length (chars), u64 data length, UTF-16LE name, data.
            var reader = ByteReader(data, errorCode: .malformedEventLog)
            guard (try? reader.skip(16, "guid")) != nil, let nameLength = try? reader.u64("nameLength"), nameLength < 1024,
                (try? reader.u64("dataLength")) != nil, let name = try? reader.read(Int(nameLength) * 2, "name")
            else { return nil }
            return utf16Text(name)
        default:
            return nil
        }
    }

    private func utf16Text(_ bytes: [UInt8]) -> String? {
        guard bytes.count % 2 == 0, !bytes.isEmpty else { return nil }
        var units: [UInt16] = []
        for i in stride(from: 0, to: bytes.count, by: 2) { units.append(UInt16(bytes[i]) | UInt16(bytes[i + 1]) << 8) }
        while units.last == 0 { units.removeLast() }
        guard !units.isEmpty, units.allSatisfy({ (0x20..<0x7f).contains($0) }) else { return nil }
        return String(decoding: units, as: UTF16.self)
    }
}

/// A TDX CC event log: TCG PC Client crypto-agile format with SHA-384 digests (spec §4.3), and its RTMR replay.
public struct EventLog: Sendable, Equatable {
    public static let sha384AlgorithmID: UInt16 = 0x000C
    public static let evNoAction: UInt32 = 0x3
    public static let evEFIBootServicesApplication: UInt32 = 0x8000_0003
    /// Maximum number of events accepted.
    public static let maximumEvents = 65_536

    /// Digest sizes by algorithm ID, from the Spec ID event.
    public let algorithms: [UInt16: Int]
    /// All events, the Spec ID header event first.
    public let events: [CCEvent]
    /// Bytes used by the log (the rest of the area is 0x00/0xFF filler).
    public let length: Int

    /// Parses the log area.
    /// - Throws: ``TDXError/Code/malformedEventLog`` naming the field and offset.
    public init(parsing bytes: [UInt8]) throws(TDXError) {
        var reader = ByteReader(bytes, errorCode: .malformedEventLog)
        // Event 0: TCG_PCR_EVENT (SHA-1 format) carrying TCG_EfiSpecIDEvent.
        let headerIndex = try reader.u32("event0.mrIndex")
        let headerType = try reader.u32("event0.eventType")
        let headerDigest = try reader.read(20, "event0.digest")
        let headerSize = Int(try reader.u32("event0.eventSize"))
        let headerOffset = reader.offset
        let headerData = try reader.read(headerSize, "event0.event")
        guard headerType == Self.evNoAction else {
            throw TDXError(.malformedEventLog, "first event is not EV_NO_ACTION", field: "event0.eventType", offset: 4)
        }
        var spec = ByteReader(headerData, errorCode: .malformedEventLog)
        guard (try spec.read(16, "specId.signature")) == Array("Spec ID Event03\0".utf8) else {
            throw TDXError(.malformedEventLog, "first event is not a Spec ID Event03", field: "specId.signature", offset: headerOffset)
        }
        try spec.skip(8, "specId.platformClass+versions")
        let algorithmCount = try spec.u32("specId.numberOfAlgorithms")
        guard (1...16).contains(algorithmCount) else {
            throw TDXError(
                .malformedEventLog, "\(algorithmCount) algorithms", field: "specId.numberOfAlgorithms", offset: headerOffset + 24)
        }
        var algorithms: [UInt16: Int] = [:]
        for _ in 0..<algorithmCount {
            let id = try spec.u16("specId.algorithmId")
            let size = Int(try spec.u16("specId.digestSize"))
            guard size > 0, size <= 64 else { throw spec.fail("specId.digestSize", "digest size \(size)") }
            algorithms[id] = size
        }
        guard algorithms[Self.sha384AlgorithmID] == 48 else {
            throw TDXError(.malformedEventLog, "the log has no SHA-384 bank", field: "specId.algorithms", offset: headerOffset + 28)
        }
        self.algorithms = algorithms
        var events = [
            CCEvent(index: 0, mrIndex: headerIndex, eventType: headerType, digests: [0x0004: headerDigest], data: headerData, offset: 0)
        ]
        // Events 1…: TCG_PCR_EVENT2. The log ends at MR index 0xFFFFFFFF, an all-zero header, or the end of the area.
        while reader.remaining >= 8 {
            let offset = reader.offset
            let peek = Array(bytes[offset..<(offset + 8)])
            if peek.allSatisfy({ $0 == 0 }) || peek[0..<4].allSatisfy({ $0 == 0xff }) { break }
            let mrIndex = try reader.u32("event.mrIndex")
            let eventType = try reader.u32("event.eventType")
            let count = try reader.u32("event.digestCount")
            guard count >= 1, count <= algorithmCount else {
                throw TDXError(.malformedEventLog, "event has \(count) digests", field: "event.digestCount", offset: offset + 8)
            }
            var digests: [UInt16: [UInt8]] = [:]
            for _ in 0..<count {
                let idOffset = reader.offset
                let id = try reader.u16("event.algorithmId")
                guard let size = algorithms[id] else {
                    throw TDXError(
                        .malformedEventLog, "algorithm 0x\(String(id, radix: 16)) not in the Spec ID event", field: "event.algorithmId",
                        offset: idOffset)
                }
                digests[id] = try reader.read(size, "event.digest")
            }
            let size = Int(try reader.u32("event.eventSize"))
            let data = try reader.read(size, "event.event")
            events.append(
                CCEvent(index: events.count, mrIndex: mrIndex, eventType: eventType, digests: digests, data: data, offset: offset))
            guard events.count <= Self.maximumEvents else {
                throw TDXError(.malformedEventLog, "more than \(Self.maximumEvents) events", offset: offset)
            }
        }
        self.events = events
        length = reader.offset
    }

    /// Replays the log: RTMR[i] = SHA-384(RTMR[i] ‖ digest) from 48 zero bytes, for every event except EV_NO_ACTION
    /// whose MR index is 1…4 (spec §4.2, §4.3).
    /// - Returns: RTMR0…RTMR3.
    public func replay() throws(TDXError) -> [[UInt8]] {
        var rtmrs = [[UInt8]](repeating: [UInt8](repeating: 0, count: 48), count: 4)
        for event in events {
            guard let index = event.rtmrIndex else { continue }
            guard let digest = event.sha384 else {
                throw TDXError(.malformedEventLog, "event \(event.index) has no SHA-384 digest", offset: event.offset)
            }
            rtmrs[index] = Digest.sha384(rtmrs[index] + digest)
        }
        return rtmrs
    }

    /// The SHA-384 digests of EV_EFI_BOOT_SERVICES_APPLICATION events (Authenticode hashes of loaded PE images, e.g.
    /// the booted UKI; spec §4.5), in log order.
    public var bootServicesApplicationDigests: [[UInt8]] {
        events.filter { $0.eventType == Self.evEFIBootServicesApplication }.compactMap(\.sha384)
    }

    /// TCG event type names (TCG PC Client PFP spec §10.4.1).
    public static let typeNames: [UInt32: String] = [
        0x0: "EV_PREBOOT_CERT", 0x1: "EV_POST_CODE", 0x2: "EV_UNUSED", 0x3: "EV_NO_ACTION", 0x4: "EV_SEPARATOR", 0x5: "EV_ACTION",
        0x6: "EV_EVENT_TAG", 0x7: "EV_S_CRTM_CONTENTS", 0x8: "EV_S_CRTM_VERSION", 0x9: "EV_CPU_MICROCODE", 0xa: "EV_PLATFORM_CONFIG_FLAGS",
        0xb: "EV_TABLE_OF_DEVICES", 0xc: "EV_COMPACT_HASH", 0xd: "EV_IPL", 0xe: "EV_IPL_PARTITION_DATA", 0xf: "EV_NONHOST_CODE",
        0x10: "EV_NONHOST_CONFIG", 0x11: "EV_NONHOST_INFO", 0x12: "EV_OMIT_BOOT_DEVICE_EVENTS",
        0x8000_0001: "EV_EFI_VARIABLE_DRIVER_CONFIG", 0x8000_0002: "EV_EFI_VARIABLE_BOOT", 0x8000_0003: "EV_EFI_BOOT_SERVICES_APPLICATION",
        0x8000_0004: "EV_EFI_BOOT_SERVICES_DRIVER", 0x8000_0005: "EV_EFI_RUNTIME_SERVICES_DRIVER", 0x8000_0006: "EV_EFI_GPT_EVENT",
        0x8000_0007: "EV_EFI_ACTION", 0x8000_0008: "EV_EFI_PLATFORM_FIRMWARE_BLOB", 0x8000_0009: "EV_EFI_HANDOFF_TABLES",
        0x8000_000a: "EV_EFI_PLATFORM_FIRMWARE_BLOB2", 0x8000_000b: "EV_EFI_HANDOFF_TABLES2", 0x8000_000c: "EV_EFI_VARIABLE_BOOT2",
        0x8000_0010: "EV_EFI_HCRTM_EVENT", 0x8000_00e0: "EV_EFI_VARIABLE_AUTHORITY", 0x8000_00e1: "EV_EFI_SPDM_FIRMWARE_BLOB",
        0x8000_00e2: "EV_EFI_SPDM_FIRMWARE_CONFIG",
    ]
}
