import CustosTDX
import Testing

/// Inputs that once crashed a parser (found by review or by the libFuzzer harnesses in Fuzz/), as byte literals.
/// Each must now give a typed error or a value, never a trap.
@Suite struct FuzzRegressionTests {
    /// A minimal CC event log written out by hand (TCG PC Client PFP §10.4.5.1 Spec ID event, §10.2.2 TCG_PCR_EVENT2):
    /// the SHA-1-format Spec ID header with one SHA-384 bank, then one event of `type` in RTMR0 with `data`.
    static func log(type: UInt32, data: [UInt8]) -> [UInt8] {
        func u32(_ v: UInt32) -> [UInt8] { [UInt8(v & 0xff), UInt8(v >> 8 & 0xff), UInt8(v >> 16 & 0xff), UInt8(v >> 24)] }
        let specID: [UInt8] =
            Array("Spec ID Event03\0".utf8)
            + [0, 0, 0, 0, 0, 2, 0, 2]  // platformClass u32, specVersionMinor 0, Major 2, errata 0, uintnSize 2
            + [1, 0, 0, 0]  // numberOfAlgorithms = 1
            + [0x0c, 0x00, 48, 0]  // SHA-384 (0x000C), digest size 48
            + [0]  // vendorInfoSize
        let header = u32(0) + u32(3) + [UInt8](repeating: 0, count: 20) + u32(UInt32(specID.count)) + specID
        let event = u32(1) + u32(type) + u32(1) + [0x0c, 0x00] + [UInt8](repeating: 0xab, count: 48) + u32(UInt32(data.count)) + data
        return header + event + [UInt8](repeating: 0, count: 8)
    }

    @Test(
        "EV_EFI_PLATFORM_FIRMWARE_BLOB2 / HANDOFF_TABLES2 descriptions of any size byte decode without trapping",
        arguments: [UInt32(0x8000_000a), 0x8000_000b])
    func blob2DescriptionSize(type: UInt32) throws {
        // Size 0 (once `bytes[1...0]`: a trap), size = remaining, size > remaining, and a one-byte event.
        let cases: [([UInt8], String?)] = [
            ([0x00], nil),
            ([0x00, 0x41, 0x42], nil),
            ([0x02, 0x41, 0x42], "AB"),
            ([0x03, 0x41, 0x42], nil),
            ([0xff], nil),
        ]
        for (data, expected) in cases {
            let parsed = try EventLog(parsing: Self.log(type: type, data: data))
            #expect(parsed.events.count == 2)
            #expect(parsed.events[1].data == data)
            #expect(parsed.events[1].decodedData == expected, "\(data)")
        }
    }
}
