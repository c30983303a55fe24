import CustosTestSupport
import CustosVirt
import Foundation
import Testing

/// The strict XML reader behind ``DomainCapabilities``: well-formed XML only, never a crash.
@Suite struct XMLReaderTests {
    static func parse(_ text: String) throws(VirtError) -> DomainCapabilities { try DomainCapabilities(xml: text) }

    static let minimal =
        "<domainCapabilities><path>/usr/bin/qemu</path><domain>kvm</domain><machine>pc-q35-10.0</machine><arch>x86_64</arch></domainCapabilities>"

    @Test("well-formed variants parse: declaration, comments, CDATA, entities, character references, both quote styles")
    func accepted() throws {
        let text = """
            \u{FEFF}<?xml version="1.0" encoding="UTF-8"?>
            <!-- libvirt -->
            <domainCapabilities>
              <path><![CDATA[/usr/bin/qemu-<x>]]></path>
              <domain>kvm</domain>
              <machine>pc&#45;q35&#x2D;10.0</machine>
              <arch>x86&#95;64</arch>
              <features><sev supported="yes"><cbitpos> 51 </cbitpos><reducedPhysBits>1</reducedPhysBits><cpu0Id>a&amp;b&lt;&gt;&apos;&quot;</cpu0Id></sev>
              <launchSecurity supported='yes'><enum name='sectype'><value>sev</value></enum></launchSecurity></features>
            </domainCapabilities>
            <?trailing pi?>
            """
        let caps = try Self.parse(text)
        #expect(caps.emulator == "/usr/bin/qemu-<x>")
        #expect(caps.machine == "pc-q35-10.0")
        #expect(caps.arch == "x86_64")
        #expect(caps.sev?.cbitpos == 51)
        #expect(caps.sev?.cpu0Id == "a&b<>'\"")
        #expect(caps.launchSecurityTypes == ["sev"])
    }

    @Test(
        "malformed XML is refused with the byte offset",
        arguments: [
            "", " ", "<", "<domainCapabilities>", "<domainCapabilities></domaincapabilities>", "<a><b></a></b>",
            "<domainCapabilities a='1' a='2'/>", "<domainCapabilities a=1/>", "<domainCapabilities a='<'/>", "<d>&unknown;</d>",
            "<d>&#1;</d>", "<d>&#xD800;</d>", "<d>&#x110000;</d>", "<d>&amp</d>", "<d>\u{1}</d>", "<d/><e/>", "text<d/>", "<d/>text",
            "<!DOCTYPE d><d/>", "<!DOCTYPE d [<!ENTITY e 'x'>]><d>&e;</d>", "<d><!-- a -- b --></d>", "<d><![CDATA[x</d>", "<d>]]></d>",
            "<1d/>", "<d a='1'b='2'/>", "<d></d >x", "<?xml version='1.0'?",
        ])
    func refused(_ text: String) {
        let error = #expect(throws: VirtError.self) { try Self.parse(text) }
        #expect(error?.code == .malformedCapabilities)
    }

    @Test("nesting deeper than 64 is refused")
    func depth() {
        let deep = String(repeating: "<a>", count: 100) + String(repeating: "</a>", count: 100)
        #expect(throws: VirtError.self) { try Self.parse(deep) }
    }

    @Test("invalid UTF-8 is refused")
    func utf8() {
        let bytes: [UInt8] = Array("<domainCapabilities><arch>".utf8) + [0xC3, 0x28] + Array("</arch></domainCapabilities>".utf8)
        let text = String(decoding: bytes, as: UTF8.self)  // U+FFFD replaces the bad byte: still parses as text
        #expect(throws: VirtError.self) { try Self.parse(text) }  // no machine/domain: refused either way
    }

    @Test("seeded random mutations of a real capture never crash: each parses or throws a typed error", Requirement.testData)
    func mutations() throws {
        var random = SeededRandom("XMLReaderTests.mutations")
        let original = Array(try Captures.text(Captures.aarch64Host).utf8)
        let alphabet: [UInt8] = Array("<>/='\"&;#x![]-? \n\tabc0".utf8) + [0x00, 0xFF, 0xC3]
        var parsed = 0
        var thrown = 0
        for _ in 0..<2000 {
            var bytes = original
            for _ in 0..<Int.random(in: 1...8, using: &random) {
                let position = Int.random(in: 0..<bytes.count, using: &random)
                switch Int.random(in: 0..<3, using: &random) {
                case 0: bytes[position] = alphabet[Int.random(in: 0..<alphabet.count, using: &random)]
                case 1: bytes.remove(at: position)
                default: bytes.insert(alphabet[Int.random(in: 0..<alphabet.count, using: &random)], at: position)
                }
            }
            do {
                _ = try DomainCapabilities(xml: String(decoding: bytes, as: UTF8.self))
                parsed += 1
            } catch {
                #expect(error.code == .malformedCapabilities, "seed \(random.seed)")
                thrown += 1
            }
        }
        #expect(parsed + thrown == 2000)
        #expect(thrown > 0, "seed \(random.seed)")
    }

    @Test("the writer's output reads back to the same tree (seeded values)")
    func writerRoundTrip() throws {
        var random = SeededRandom("XMLReaderTests.writerRoundTrip")
        let alphabet = Array("abcXYZ019<>&'\";]]>-!?é€😀/=")
        for _ in 0..<300 {
            let value = String(
                (0..<Int.random(in: 1...30, using: &random)).map { _ in alphabet[Int.random(in: 0..<alphabet.count, using: &random)] })
            let tree = XMLTree(
                root: .init(
                    "domainCapabilities", [("note", value)],
                    [
                        .element(.init("domain", text: "kvm")), .element(.init("machine", text: value)),
                        .element(.init("arch", text: "x86_64")),
                    ]))
            let caps = try DomainCapabilities(xml: try tree.serialize())
            #expect(caps.machine == value.trimmingCharacters(in: .whitespacesAndNewlines), "seed \(random.seed)")
        }
    }
}
