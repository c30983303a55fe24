import CustosCrypto
import CustosTestSupport
import CustosUKI
import Foundation
import Testing

@Suite(Requirement.skipOrFail(unless: UKIFixtures.canBuild, UKIFixtures.skipReason))
struct BootMatchTests {
    /// An event log as TDVF + systemd-stub would leave it: RTMR1 gets the UKI's Authenticode SHA-384 (taken here from
    /// osslsigncode), RTMR2 the stub's section events (hashed from sections extracted by objcopy in the recipe).
    static func eventLog(_ variant: UKIFixtures.Variant, applicationDigest: [UInt8]) throws -> [ReplayedEvent] {
        var events = [
            ReplayedEvent(register: .rtmr(0), eventType: 0x8000_0001, digest: Digest.sha384(Array("config".utf8))),
            ReplayedEvent(
                register: .rtmr(1), eventType: 0x0000_0007, digest: Digest.sha384(Array("Calling EFI Application from Boot Option".utf8))),
            ReplayedEvent(register: .rtmr(1), eventType: ReplayedEvent.efiBootServicesApplication, digest: applicationDigest),
        ]
        for name in ["linux", "osrel", "cmdline", "initrd", "uname", "sbat"] {
            let url = variant.url("sec/\(name)")
            guard let data = try? Data(contentsOf: url), !data.isEmpty else { continue }
            events.append(ReplayedEvent(register: .rtmr(2), eventType: ReplayedEvent.ipl, digest: Digest.sha384(Array(".\(name)\0".utf8))))
            events.append(ReplayedEvent(register: .rtmr(2), eventType: ReplayedEvent.ipl, digest: Digest.sha384([UInt8](data))))
        }
        return events
    }

    @Test("the signed UKI is found in RTMR1 and its sections in RTMR2")
    func signedUKIBooted() throws {
        let variant = try UKIFixtures.variant("ukify-254")
        let peer = try #require(variant.peers.osslsigncode["uki-signed-sha384.efi"]?.calculated)
        let events = try Self.eventLog(variant, applicationDigest: try Hex.decode(peer))
        let uki = try UnifiedKernelImage(bytes: variant.bytes("uki-signed.efi"))
        #expect(uki.rtmr1EventDigest().hexString == peer)
        guard case .booted(let evidence) = uki.bootVerdict(events: events) else {
            Issue.record("expected booted, got \(uki.bootVerdict(events: events))")
            return
        }
        #expect(evidence.applicationEventIndex == 2)
        #expect(evidence.sections == .matched(count: 6))
        // The same file unsigned hashes the same (ukify output is aligned), so it matches too.
        #expect(try UnifiedKernelImage(bytes: variant.bytes("uki-unsigned.efi")).bootVerdict(events: events).booted)
    }

    @Test("a different UKI, a tampered one, or the digest in the wrong register is not booted")
    func otherUKINotBooted() throws {
        let variant = try UKIFixtures.variant("ukify-254")
        let peer = try Hex.decode(try #require(variant.peers.osslsigncode["uki-signed-sha384.efi"]?.calculated))
        let events = try Self.eventLog(variant, applicationDigest: peer)
        #expect(!(try UnifiedKernelImage(bytes: variant.bytes("uki-tampered.efi")).bootVerdict(events: events).booted))
        let other = try UKIFixtures.variant("objcopy-252")
        #expect(!(try UnifiedKernelImage(bytes: other.bytes("uki-signed.efi")).bootVerdict(events: events).booted))
        // Moved to RTMR2: not an application launch.
        let moved = events.map { $0.digest == peer ? ReplayedEvent(register: .rtmr(2), digest: $0.digest) : $0 }
        #expect(!(try UnifiedKernelImage(bytes: variant.bytes("uki-signed.efi")).bootVerdict(events: moved).booted))
    }

    @Test("RTMR2 section events that contradict the UKI make it not booted; no stub events is reported as such")
    func sectionEvents() throws {
        let variant = try UKIFixtures.variant("ukify-254")
        let peer = try Hex.decode(try #require(variant.peers.osslsigncode["uki-signed-sha384.efi"]?.calculated))
        var events = try Self.eventLog(variant, applicationDigest: peer)
        let uki = try UnifiedKernelImage(bytes: variant.bytes("uki-signed.efi"))
        events[events.count - 1] = ReplayedEvent(register: .rtmr(2), eventType: ReplayedEvent.ipl, digest: Digest.sha384([1, 2, 3]))
        #expect(!uki.bootVerdict(events: events).booted)
        let withoutStub = events.filter { $0.register != .rtmr(2) }
        guard case .booted(let evidence) = uki.bootVerdict(events: withoutStub) else {
            Issue.record("expected booted")
            return
        }
        #expect(evidence.sections == .notMeasured)
    }

    @Test func pcrToRTMRMapping() {
        #expect(MeasurementRegister.forTPMPCR(4) == .rtmr(1))
        #expect(MeasurementRegister.forTPMPCR(11) == .rtmr(2))
        #expect(MeasurementRegister.forTPMPCR(7) == .rtmr(0))
        #expect(MeasurementRegister.rtmr(1).ccMRIndex == 2)
        #expect(MeasurementRegister.forTPMPCR(16) == nil)
    }
}

@Suite struct UKIUnitTests {
    @Test func stubInfoParsing() throws {
        let stub = try #require(StubInfo(sdmagic: "#### LoaderInfo: systemd-stub 252.39-1~deb12u2 ####\0"))
        #expect(stub.name == "systemd-stub" && stub.majorVersion == 252 && stub.fullVersion == "252.39-1~deb12u2")
        #expect(StubInfo(sdmagic: "garbage") == nil)
        #expect(StubInfo(sdmagic: "#### LoaderInfo:  ####") == nil)
        #expect(try StubMeasurementRules.rules(for: stub) == .v252)
        #expect(throws: UKIError(.unsupportedStub, "")) {
            try StubMeasurementRules.rules(for: StubInfo(sdmagic: "#### LoaderInfo: systemd-stub 257.1 ####"))
        }
        #expect(throws: UKIError(.unsupportedStub, "")) { try StubMeasurementRules.rules(for: nil) }
    }

    @Test func osReleaseParsing() {
        let fields = OSRelease.parse("ID=debian\nNAME=\"Debian GNU/Linux\"\n# comment\nPRETTY_NAME='It''s'\nX=\"a\\\"b\"\nbad line\n")
        #expect(fields["ID"] == "debian")
        #expect(fields["NAME"] == "Debian GNU/Linux")
        #expect(fields["PRETTY_NAME"] == "Its")
        #expect(fields["X"] == "a\"b")
        #expect(fields.count == 4)
    }

    @Test("non-PE input gives typed errors with offsets")
    func notPE() {
        #expect(throws: PEParseError(.truncated, at: 0, "")) { try PEImage(bytes: []) }
        #expect(throws: PEParseError(.invalidValue, at: 0, "")) { try PEImage(bytes: Array(repeating: 0x41, count: 4096)) }
        var mz = [UInt8](repeating: 0, count: 0x100)
        mz[0] = 0x4D
        mz[1] = 0x5A
        mz[0x3C] = 0xF0
        do {
            _ = try PEImage(bytes: mz)
            Issue.record("expected an error")
        } catch {
            #expect(error.status == .invalidValue && error.offset == 0xF0)
        }
        mz[0x3C] = 0xFF
        mz[0x3F] = 0x7F  // e_lfanew far beyond the file
        #expect(throws: PEParseError(.truncated, at: 0, "")) { try PEImage(bytes: mz) }
    }
}
