import CustosTestSupport
import CustosVirt
import Foundation
import Testing

/// libvirt's own domain-capabilities captures parse with the values testdata/libvirt/MANIFEST.tsv describes.
@Suite(Requirement.testData)
struct DomainCapabilitiesTests {
    /// The MANIFEST's description of each capture (machine, TEE values), written out by hand.
    struct Expected: Sendable, CustomStringConvertible {
        let file: String
        let arch: String
        let machine: String
        let sev: DomainCapabilities.SEV?
        let tdx: Bool
        let sectypes: [String]
        var description: String { file }
    }

    static let manifestSEV = DomainCapabilities.SEV(cbitpos: 51, reducedPhysBits: 1, maxGuests: 59, maxESGuests: 450)
    static let expectations: [Expected] = [
        Expected(
            file: "qemu_10.0.0-q35.x86_64+amdsev.xml", arch: "x86_64", machine: "pc-q35-10.0", sev: manifestSEV, tdx: false,
            sectypes: ["sev", "sev-snp"]),
        Expected(
            file: "qemu_10.0.0.x86_64+amdsev.xml", arch: "x86_64", machine: "pc-i440fx-10.0", sev: manifestSEV, tdx: false,
            sectypes: ["sev", "sev-snp"]),
        Expected(
            file: "qemu_9.2.0-q35.x86_64+amdsev.xml", arch: "x86_64", machine: "pc-q35-9.2", sev: manifestSEV, tdx: false,
            sectypes: ["sev", "sev-snp"]),
        Expected(
            file: "qemu_10.1.0-q35.x86_64+inteltdx.xml", arch: "x86_64", machine: "pc-q35-10.1", sev: nil, tdx: true, sectypes: ["tdx"]),
        Expected(file: "qemu_10.0.0-q35.x86_64.xml", arch: "x86_64", machine: "pc-q35-10.0", sev: nil, tdx: false, sectypes: []),
        Expected(file: "qemu_8.2.0-virt.aarch64.xml", arch: "aarch64", machine: "virt-8.2", sev: nil, tdx: false, sectypes: []),
    ]

    @Test("every capture parses with the MANIFEST's values", arguments: expectations)
    func capture(_ expected: Expected) throws {
        let caps = try DomainCapabilities(xml: try Captures.text(expected.file))
        #expect(caps.arch == expected.arch)
        #expect(caps.machine == expected.machine)
        #expect(caps.virtType == "kvm")
        #expect(caps.tdxSupported == expected.tdx)
        #expect(caps.hasTDX == expected.tdx)
        #expect(caps.launchSecurityTypes == expected.sectypes)
        #expect(caps.supportsNativeTDX == expected.sectypes.contains("tdx"))
        if let sev = expected.sev {
            let parsed = try #require(caps.sev)
            #expect(parsed.cbitpos == sev.cbitpos)
            #expect(parsed.reducedPhysBits == sev.reducedPhysBits)
            #expect(parsed.maxGuests == sev.maxGuests)
            #expect(parsed.maxESGuests == sev.maxESGuests)
            #expect(parsed.cpu0Id?.isEmpty == false, "MANIFEST: cpu0Id present")
            #expect(caps.hasSEVES)
        } else {
            #expect(caps.sev == nil)
            #expect(!caps.hasSEVES)
        }
        #expect(!caps.firmwareKinds.isEmpty)
    }

    @Test("the SEV capture lists firmware kinds and loader images")
    func loaders() throws {
        let caps = try DomainCapabilities(xml: try Captures.text("qemu_10.0.0-q35.x86_64+amdsev.xml"))
        #expect(caps.firmwareKinds == ["bios", "efi"])
        #expect(caps.loaderPaths == ["/obviously/fake/firmware1.fd", "/obviously/fake/firmware2.fd"])
        #expect(caps.emulator == "/usr/bin/qemu-system-x86_64")
    }

    @Test("malformed capabilities are refused with a typed error")
    func malformed() throws {
        let cases: [(String, String?)] = [
            ("", nil),
            ("<capabilities/>", "domainCapabilities"),
            ("<domainCapabilities><machine>m</machine><domain>kvm</domain></domainCapabilities>", "arch"),
            (
                "<domainCapabilities><arch>x86_64</arch><machine>m</machine><domain>kvm</domain><features><sev supported='yes'><cbitpos>x</cbitpos><reducedPhysBits>1</reducedPhysBits></sev></features></domainCapabilities>",
                "features.sev.cbitpos"
            ),
            (
                "<domainCapabilities><arch>x86_64</arch><machine>m</machine><domain>kvm</domain><features><sev supported='yes'/></features></domainCapabilities>",
                "features.sev"
            ),
            ("<!DOCTYPE d [<!ENTITY e SYSTEM 'file:///etc/passwd'>]><domainCapabilities><arch>&e;</arch></domainCapabilities>", nil),
            ("<domainCapabilities><arch>x86_64</arch>", nil),
        ]
        for (xml, field) in cases {
            let error = #expect(throws: VirtError.self) { try DomainCapabilities(xml: xml) }
            #expect(error?.code == .malformedCapabilities, "\(xml)")
            if let field { #expect(error?.field == field, "\(xml)") }
        }
    }

    @Test("prefixes of a real capture never crash: each throws or parses")
    func truncation() throws {
        let text = try Captures.text("qemu_8.2.0-virt.aarch64.xml")
        let bytes = Array(text.utf8)
        // A prefix is complete only once the root's end tag is whole.
        let closing = try #require(text.range(of: "</domainCapabilities>", options: .backwards))
        let complete = text.utf8.distance(from: text.utf8.startIndex, to: closing.upperBound)
        var thrown = 0
        // Every 37th prefix (a full sweep re-parses 8 KB 8,000 times), plus the last 64 before completion.
        let cuts = Array(stride(from: 0, to: complete, by: 37)) + Array(max(0, complete - 64)..<complete)
        for cut in cuts {
            do {
                _ = try DomainCapabilities(xml: String(decoding: bytes[..<cut], as: UTF8.self))
            } catch {
                #expect(error.code == .malformedCapabilities)
                thrown += 1
            }
        }
        #expect(thrown == cuts.count, "every strict prefix is unbalanced XML")
    }
}
