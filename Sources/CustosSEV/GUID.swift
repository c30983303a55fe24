public import CustosCrypto

/// A UEFI GUID, stored in its on-disk mixed-endian form (Python `uuid.UUID(s).bytes_le`):
/// the first three groups little-endian, the last two as written.
public struct EFIGUID: Hashable, Sendable, CustomStringConvertible, Codable {
    /// The 16 bytes as they appear in firmware tables and secret tables.
    public let bytes: [UInt8]

    /// From the 16 on-disk bytes.
    public init(bytes: [UInt8]) throws(SEVError) {
        guard bytes.count == 16 else { throw SEVError(.invalidValue, "a GUID has 16 bytes, got \(bytes.count)") }
        self.bytes = bytes
    }

    /// From the canonical text form `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (either case).
    public init(_ text: String) throws(SEVError) {
        let groups = text.split(separator: "-", omittingEmptySubsequences: false)
        guard groups.count == 5, groups.map(\.count) == [8, 4, 4, 4, 12] else {
            throw SEVError(.invalidValue, "not a GUID: \(text)")
        }
        var out: [UInt8] = []
        do {
            out += try Hex.decode(groups[0]).reversed()
            out += try Hex.decode(groups[1]).reversed()
            out += try Hex.decode(groups[2]).reversed()
            out += try Hex.decode(groups[3])
            out += try Hex.decode(groups[4])
        } catch {
            throw SEVError(.invalidValue, "not a GUID: \(text)")
        }
        self.bytes = out
    }

    /// For GUIDs written in this module's source; they are known to be well formed.
    init(constant text: String) {
        self.bytes = (try? EFIGUID(text).bytes) ?? [UInt8](repeating: 0, count: 16)
    }

    /// The canonical lowercase text form.
    public var description: String {
        let b = bytes
        return Hex.encode(b[0..<4].reversed()) + "-" + Hex.encode(b[4..<6].reversed()) + "-" + Hex.encode(b[6..<8].reversed())
            + "-" + Hex.encode(b[8..<10]) + "-" + Hex.encode(b[10..<16])
    }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        self = try EFIGUID(text)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
