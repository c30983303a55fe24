/// The OVMF GUIDed footer table that QEMU, virt-qemu-sev-validate, sevctl and sev-snp-measure parse (sev.md §4.4).
///
/// Layout, from the end of the image:
///
/// | where | content |
/// |---|---|
/// | `[-32, end)` | 32 bytes (reset vector area) |
/// | `[-48, -32)` | GUID `96b582de-1fb2-45f7-baea-a366c55a082d` |
/// | `[-50, -48)` | u16 LE total table length L, including this 18-byte header |
/// | `[-(32+L), -50)` | entries, walked backwards: each is `data ‖ u16 LE (data length + 18) ‖ GUID` |
public struct OVMFFooter: Sendable, Equatable {
    static let tableGUID = EFIGUID(constant: "96b582de-1fb2-45f7-baea-a366c55a082d")
    /// SEV-ES reset block: data = u32 AP reset address.
    public static let sevESResetBlockGUID = EFIGUID(constant: "00f771de-1a7e-4fcb-890e-68c77e2fb44e")
    /// SEV secret area: {u32 base, u32 size}.
    public static let secretAreaGUID = EFIGUID(constant: "4c2eb361-7d9b-4cc3-8081-127c90d3d294")
    /// SEV kernel hashes area: {u32 base, u32 size}.
    public static let hashesAreaGUID = EFIGUID(constant: "7255371f-3a3b-4b04-927b-1da6efa8d454")
    /// Cap on entries (a real table has about six).
    static let maxEntries = 64

    /// One entry.
    public struct Entry: Sendable, Equatable {
        public let guid: EFIGUID
        public let data: [UInt8]
    }

    /// The entries, in the order they were walked (from the end of the image backwards).
    public let entries: [Entry]

    /// A guest-physical area {base, size}.
    public struct Area: Sendable, Equatable, Codable {
        public let base: UInt32
        public let size: UInt32
        public init(base: UInt32, size: UInt32) {
            self.base = base
            self.size = size
        }
    }

    /// Parses the footer of a firmware image.
    /// - Throws: `.firmwareFooterMissing` when the image has no footer GUID; `.invalidValue`/`.lengthOverflow`
    ///   with the offset when the table is malformed.
    public init(firmware: [UInt8]) throws(SEVError) { try self.init(image: firmware) }

    /// Parses the footer of an image given as raw bytes (a mapped file): nothing is copied but the entries' data.
    /// - Throws: as ``init(firmware:)``.
    public init(firmware: UnsafeRawBufferPointer) throws(SEVError) { try self.init(image: firmware) }

    init<Image: RandomAccessCollection<UInt8>>(image firmware: Image) throws(SEVError) where Image.Index == Int {
        // Both callers' collections are indexed from 0.
        guard firmware.startIndex == 0 else { throw SEVError(.invalidParameter, "firmware image must be indexed from 0") }
        let count = firmware.count
        guard count >= 50 else { throw SEVError(.firmwareFooterMissing, "image of \(count) bytes is too short for an OVMF footer table") }
        guard Array(firmware[(count - 48)..<(count - 32)]) == Self.tableGUID.bytes else {
            throw SEVError(.firmwareFooterMissing, "no OVMF footer table GUID at 48 bytes from the end", offset: count - 48)
        }
        let total = Int(firmware[count - 50]) | Int(firmware[count - 49]) << 8
        guard total >= 18, total + 32 <= count else {
            throw SEVError(.lengthOverflow, "footer table length \(total) does not fit the image", offset: count - 50)
        }
        let start = count - 32 - total
        var end = count - 50  // exclusive end of the next entry
        var entries: [Entry] = []
        while end > start {
            guard end - start >= 18 else {
                throw SEVError(.invalidValue, "\(end - start) stray bytes in the footer table", offset: start)
            }
            guard entries.count < Self.maxEntries else {
                throw SEVError(.lengthOverflow, "more than \(Self.maxEntries) footer entries", offset: end)
            }
            let guid = Array(firmware[(end - 16)..<end])
            let length = Int(firmware[end - 18]) | Int(firmware[end - 17]) << 8
            guard length >= 18, length <= end - start else {
                throw SEVError(.invalidValue, "footer entry length \(length) is out of range", offset: end - 18)
            }
            let data = Array(firmware[(end - length)..<(end - 18)])
            entries.append(Entry(guid: try EFIGUID(bytes: guid), data: data))
            end -= length
        }
        self.entries = entries
    }

    /// The data of the first entry with `guid`.
    public func data(for guid: EFIGUID) -> [UInt8]? { entries.first { $0.guid == guid }?.data }

    /// The SEV-ES AP reset address (nil when the firmware has no SEV-ES reset block).
    public var sevESResetAddress: UInt32? {
        guard let data = data(for: Self.sevESResetBlockGUID), data.count >= 4 else { return nil }
        return littleEndianUInt32(data[0..<4])
    }

    /// The LAUNCH_SECRET area, when present and non-zero.
    public var secretArea: Area? { area(Self.secretAreaGUID) }
    /// The kernel hashes area, when present and non-zero (AmdSev builds; plain OvmfPkgX64 has zeros).
    public var hashesArea: Area? { area(Self.hashesAreaGUID) }

    private func area(_ guid: EFIGUID) -> Area? {
        guard let data = data(for: guid), data.count >= 8 else { return nil }
        let area = Area(base: littleEndianUInt32(data[0..<4]), size: littleEndianUInt32(data[4..<8]))
        return area.base == 0 || area.size == 0 ? nil : area
    }
}
