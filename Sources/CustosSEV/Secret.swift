public import CustosCrypto

/// One entry of the EFI secret table.
public struct SecretEntry: Sendable, Equatable {
    /// `luks-key`: the disk passphrase GUID GRUB's `efisecret` and cryptodisk read.
    public static let luksKeyGUID = EFIGUID(constant: "736869e5-84f0-4973-92ec-06879ce3da0b")

    public let guid: EFIGUID
    /// The data, used verbatim (no NUL or newline added). Zeroed when dropped.
    public let data: SecretBytes

    public init(guid: EFIGUID, data: SecretBytes) {
        self.guid = guid
        self.data = data
    }

    /// Parses libvirt's `GUID|alias` naming (`luks-key` or a GUID).
    public static func guid(named name: String) throws(SEVError) -> EFIGUID {
        if name == "luks-key" { return luksKeyGUID }
        return try EFIGUID(name)
    }
}

/// How the encrypted table is padded to a multiple of 16 (sev.md §5.2; the table's length field ignores padding).
public enum SecretTablePadding: String, Sendable, Codable {
    /// virt-qemu-sev-validate: `16 - len % 16`, so an aligned table gets 16 more zero bytes.
    case libvirt
    /// sevctl: up to the next multiple of 16, nothing when aligned.
    case minimal
}

/// The EFI secret table OVMF exposes and Linux `efi_secret` reads (sev.md §5.1):
///
/// | off | size | content |
/// |---|---|---|
/// | 0 | 16 | GUID `1e74f542-71dd-4d66-963e-ef4287ff173b` |
/// | 16 | 4 | u32 LE total length (header + entries, without padding) |
/// | 20 | 16 | entry GUID |
/// | 36 | 4 | u32 LE entry length = 20 + data length |
/// | 40 | n | data |
/// | … | | further entries, then zero padding to a multiple of 16 |
public struct SecretTable: Sendable, Equatable {
    public static let headerGUID = EFIGUID(constant: "1e74f542-71dd-4d66-963e-ef4287ff173b")
    /// Linux exposes at most 64 entries.
    public static let maxEntries = 64
    /// Hard cap on a table (the largest OVMF secret area seen is 3 KiB; sevctl tests go to 16 KiB).
    public static let maxSize = 64 * 1024
    /// The OVMF secret area of the AmdSev builds (footer GUID `4c2eb361-…`: 0xC00 bytes; sev.md §5.1, trap 11). A
    /// packet for a firmware image that is not at hand (the service's launch API) must fit it.
    public static let ovmfSecretAreaSize = 0xC00

    public let entries: [SecretEntry]

    public init(entries: [SecretEntry]) throws(SEVError) {
        guard !entries.isEmpty, entries.count <= Self.maxEntries else {
            throw SEVError(.invalidParameter, "a secret table holds 1…\(Self.maxEntries) entries, got \(entries.count)")
        }
        guard Set(entries.map(\.guid)).count == entries.count else { throw SEVError(.invalidParameter, "secret GUIDs must be distinct") }
        self.entries = entries
    }

    /// The table length written in the header (without padding).
    public var length: Int { 20 + entries.reduce(0) { $0 + 20 + $1.data.count } }

    /// The padded plaintext table. The caller should `secureZero` it after use.
    public func encoded(padding: SecretTablePadding) throws(SEVError) -> [UInt8] {
        let length = self.length
        guard length <= Self.maxSize else { throw SEVError(.secretTooLarge, "secret table of \(length) bytes exceeds \(Self.maxSize)") }
        var out: [UInt8] = []
        // One allocation of the final size: growing the array would free buffers holding secret bytes unzeroed.
        out.reserveCapacity(length + 16)
        out += Self.headerGUID.bytes
        out.appendLE(UInt32(length))
        for entry in entries {
            out += entry.guid.bytes
            out.appendLE(UInt32(20 + entry.data.count))
            entry.data.withBytes { out += $0 }
        }
        let pad: Int
        switch padding {
        case .libvirt: pad = 16 - length % 16
        case .minimal: pad = (16 - length % 16) % 16
        }
        out += [UInt8](repeating: 0, count: pad)
        return out
    }

    /// Parses a decrypted table as Linux `efi_secret` does: header GUID, `20 ≤ len ≤ area`, entries while at least
    /// 20 bytes remain, an entry with `len < 20` or `len > remaining` is corruption, all-zero GUIDs are skipped.
    public static func parse(_ bytes: [UInt8]) throws(SEVError) -> [(guid: EFIGUID, data: [UInt8])] {
        var reader = ByteReader(bytes)
        let guid = try reader.readBytes(16, field: "secret table GUID")
        guard guid == headerGUID.bytes else { throw SEVError(.invalidValue, "not a secret table (header GUID)", offset: 0) }
        let total = Int(try reader.readUInt32LE(field: "secret table length"))
        guard total >= 20, total <= bytes.count else {
            throw SEVError(.lengthOverflow, "secret table length \(total) out of range", offset: 16)
        }
        var entries: [(EFIGUID, [UInt8])] = []
        var offset = 20
        while total - offset >= 20 {
            let entryGUID = Array(bytes[offset..<offset + 16])
            let length = Int(littleEndianUInt32(bytes[offset + 16..<offset + 20]))
            guard length >= 20, length <= total - offset else {
                throw SEVError(.invalidValue, "secret entry length \(length) is corrupt", offset: offset + 16)
            }
            if entryGUID.contains(where: { $0 != 0 }), entries.count < maxEntries {
                entries.append((try EFIGUID(bytes: entryGUID), Array(bytes[offset + 20..<offset + length])))
            }
            offset += length
        }
        return entries
    }
}

/// A LAUNCH_SECRET packet (sev.md §5.2):
///
/// ```
/// HEADER = u32le(FLAGS=0) ‖ IV(16) ‖ HDR_MAC(32)
/// HDR_MAC = HMAC-SHA256(TIK, 0x01 ‖ u32le(FLAGS) ‖ IV ‖ u32le(GUEST_LEN) ‖ u32le(TRANS_LEN) ‖ CIPHERTEXT ‖ MEASURE(32))
/// CIPHERTEXT = AES-128-CTR(TEK, IV, padded table)
/// ```
public struct SecretPacket: Sendable, Equatable {
    /// The 52-byte header (libvirt `sev-secret-header`).
    public let header: [UInt8]
    /// The encrypted table (libvirt `sev-secret`).
    public let ciphertext: [UInt8]

    public var headerBase64: String { Base64.encode(header) }
    public var secretBase64: String { Base64.encode(ciphertext) }

    /// Builds the packet for a verified measurement.
    /// - Parameters:
    ///   - table: the secrets.
    ///   - keys: the launch's TEK and TIK.
    ///   - measurement: the verified measurement (its 32-byte MEASURE is MACed, not the mnonce).
    ///   - firmwareSecretArea: the OVMF secret area; the padded table must fit it.
    ///   - padding: libvirt (default) or sevctl style.
    ///   - random: the IV source.
    public init(
        table: SecretTable, keys: TransportKeys, measurement: VerifiedMeasurement, firmwareSecretArea: OVMFFooter.Area? = nil,
        padding: SecretTablePadding = .libvirt, random: some SEVRandomSource = SystemRandomSource()
    ) throws(SEVError) {
        try self.init(
            table: table, keys: keys, measure: measurement.measure, firmwareSecretArea: firmwareSecretArea, padding: padding,
            iv: try random.bytes(16))
    }

    /// The deterministic core: an explicit 32-byte MEASURE (or the 48-byte MEASURE ‖ MNONCE) and IV.
    public init(
        table: SecretTable, keys: TransportKeys, measure: [UInt8], firmwareSecretArea: OVMFFooter.Area? = nil,
        padding: SecretTablePadding = .libvirt, iv: [UInt8]
    ) throws(SEVError) {
        guard measure.count == 32 || measure.count == 48 else {
            throw SEVError(.invalidParameter, "measurement must be 32 bytes (or 48 with the mnonce), got \(measure.count)")
        }
        guard iv.count == 16 else { throw SEVError(.invalidParameter, "IV must be 16 bytes") }
        var plain = try table.encoded(padding: padding)
        defer { secureZero(&plain) }
        if let area = firmwareSecretArea, plain.count > Int(area.size) {
            throw SEVError(
                .secretTooLarge, "padded secret table of \(plain.count) bytes does not fit the firmware's \(area.size)-byte secret area")
        }
        let ciphertext: [UInt8]
        do { ciphertext = try keys.tek.withBytes { tek throws(CryptoError) in try AES.CTR.apply(key: tek, iv: iv, data: plain) } } catch {
            throw SEVError(.cryptoFailure, "AES-CTR: \(error)")
        }
        let flags: UInt32 = 0
        let mac = keys.tik.withBytes {
            HMAC.authenticationCode(
                .sha256, key: $0,
                data: Self.macInput(
                    flags: flags, iv: iv, guestLength: UInt32(plain.count), ciphertext: ciphertext, measure: Array(measure.prefix(32))))
        }
        var header: [UInt8] = []
        header.appendLE(flags)
        header += iv + mac
        self.header = header
        self.ciphertext = ciphertext
    }

    /// The bytes HDR_MAC covers (context byte 0x01; trap 10).
    public static func macInput(
        flags: UInt32, iv: [UInt8], guestLength: UInt32, transLength: UInt32? = nil, ciphertext: [UInt8], measure: [UInt8]
    ) -> [UInt8] {
        var out: [UInt8] = [0x01]
        out.appendLE(flags)
        out += iv
        out.appendLE(guestLength)
        out.appendLE(transLength ?? guestLength)
        return out + ciphertext + measure
    }
}
