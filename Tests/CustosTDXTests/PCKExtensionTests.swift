import CustosCrypto
import CustosTDX
import CustosTestSupport
import Testing

/// The SGX extension parser looks entries up by their OIDs' bytes; these tests pin that it still reads every field,
/// and still refuses malformed, non-minimal or duplicate OIDs and missing fields.
@Suite struct PCKExtensionTests {
    static let fmspc: [UInt8] = [0x00, 0x90, 0x6e, 0xa1, 0x00, 0x00]
    static let components = [7, 7, 2, 2, 3, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0]
    static let good = TDXTestHierarchy.sgxExtension(fmspc: fmspc, pceID: [0, 1], components: components, pceSVN: 300, sgxType: 1)

    /// The content octets of `1.2.840.113741.1.13.1`.
    static let prefix: [UInt8] = {
        var writer = DERWriter()
        writer.objectIdentifier(PCKExtension.oid)
        return Array(writer.bytes.dropFirst(2))
    }()

    /// Rebuilds the extension with the top-level entry for arc `arc` replaced by `replacement` (nil drops it).
    static func replacing(arc: UInt8, with replacement: ((inout DERWriter) -> Void)?, extra: ((inout DERWriter) -> Void)? = nil) throws
        -> [UInt8]
    {
        let entries = try DERReader.parseSingle(good).children()
        var writer = DERWriter()
        writer.sequence { w in
            for entry in entries {
                let oid = (try? entry.children().first?.content).map { Array($0 ?? []) }
                if oid == prefix + [arc] {
                    if let replacement { w.sequence { replacement(&$0) } }
                } else {
                    w.raw(entry.encoded)
                }
            }
            if let extra { w.sequence { extra(&$0) } }
        }
        return writer.bytes
    }

    @Test("every field is read from the generated extension")
    func fields() throws {
        let parsed = try PCKExtension(der: Self.good)
        #expect(parsed.fmspc == Self.fmspc)
        #expect(parsed.pceID == [0, 1])
        #expect(parsed.tcbComponents == Self.components)
        #expect(parsed.pceSVN == 300)
        #expect(parsed.cpuSVN == Self.components.map { UInt8($0) })
        #expect(parsed.sgxType == 1)
        #expect(parsed.ppid == [UInt8](repeating: 0x11, count: 16))
        #expect(parsed.platformInstanceID == nil)
    }

    @Test("malformed, non-minimal and duplicate OIDs and missing fields are invalidPCKCertificate")
    func malformed() throws {
        /// An entry `SEQUENCE { <oidTag> oidContent, OCTET STRING value }`.
        func entry(_ oidContent: [UInt8], _ value: [UInt8] = Self.fmspc, oidTag: UInt8 = DERNode.Tag.objectIdentifier)
            -> (inout DERWriter) -> Void
        {
            { writer in
                writer.element(oidTag, oidContent)
                writer.octetString(value)
            }
        }
        let cases: [(String, [UInt8])] = [
            ("FMSPC missing", try Self.replacing(arc: 4, with: nil)),
            ("non-minimal arc", try Self.replacing(arc: 4, with: entry(Self.prefix + [0x80, 0x04]))),
            ("truncated OID", try Self.replacing(arc: 4, with: entry(Self.prefix + [0x84]))),
            ("not an OID", try Self.replacing(arc: 4, with: entry(Self.prefix + [4], oidTag: DERNode.Tag.octetString))),
            ("duplicate FMSPC", try Self.replacing(arc: 99, with: nil, extra: entry(Self.prefix + [4]))),
            ("FMSPC of 5 bytes", try Self.replacing(arc: 4, with: entry(Self.prefix + [4], Array(Self.fmspc.prefix(5))))),
        ]
        for (name, der) in cases {
            #expect(throws: TDXError(.invalidPCKCertificate, ""), "\(name)") { try PCKExtension(der: der) }
        }
        // Unknown entries are ignored, as Intel adds fields over time.
        let extended = try Self.replacing(arc: 99, with: nil, extra: entry(Self.prefix + [42], [1, 2, 3]))
        #expect(try PCKExtension(der: extended).fmspc == Self.fmspc)
    }
}
