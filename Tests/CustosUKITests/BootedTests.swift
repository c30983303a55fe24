import ArgumentParser
import CustosCrypto
import CustosTDX
import CustosTestSupport
import CustosUKI
import Foundation
import Testing

@testable import CustosCLI

/// The TDX event log (CustosTDX) and the UKI (CustosUKI) joined: did this UKI boot?
@Suite(Requirement.skipOrFail(unless: UKIFixtures.canBuild && TestData.isAvailable, UKIFixtures.skipReason))
struct UKIBootedTests {
    /// The real go-tdx-guest CCEL log cut to its events, plus one EV_EFI_BOOT_SERVICES_APPLICATION event in RTMR1
    /// (CC MR index 2) carrying `digest`, in TCG2 crypto-agile form (TCG PC Client PFP §10.2.2 TCG_PCR_EVENT2).
    static func logWithApplication(digest: [UInt8]) throws -> [UInt8] {
        let original = try TestData.bytes("tdx/eventlog/gotdx_ccel_data.dat")
        let parsed = try EventLog(parsing: original)
        func le32(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
        let event = le32(2) + le32(0x8000_0003) + le32(1) + [0x0c, 0x00] + digest + le32(0)
        return Array(original[..<parsed.length]) + event
    }

    static func write(_ bytes: [UInt8]) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("custos-ccel-\(UUID().uuidString).dat")
        try Data(bytes).write(to: url)
        return url
    }

    static func exitCode(_ arguments: [String]) throws -> Int32 { CustosCommand.exitStatus(running: arguments) }

    @Test func aLogWithTheUKIsDigestInRTMR1SaysItBooted() throws {
        let variant = try UKIFixtures.variant("ukify-254")
        // The digest osslsigncode calculated for the signed UKI (a peer, not our code).
        let peer = try #require(variant.peers.osslsigncode["uki-signed-sha384.efi"])
        #expect(peer.algorithm.lowercased().contains("384"))
        let logURL = try Self.write(Self.logWithApplication(digest: Hex.decode(peer.calculated)))

        let uki = try UnifiedKernelImage(bytes: variant.bytes("uki-signed-sha384.efi"))
        let parsed = try EventLog(parsing: [UInt8](Data(contentsOf: logURL)))
        #expect(uki.bootVerdict(events: parsed.replayedEvents).booted)
        // The appended event really extends RTMR1: it differs from the original log's RTMR1.
        let original = try EventLog(parsing: TestData.bytes("tdx/eventlog/gotdx_ccel_data.dat")).replay()
        #expect(try parsed.replay()[1] != original[1])
        #expect(try parsed.replay()[0] == original[0])

        #expect(try Self.exitCode(["uki", "booted", variant.url("uki-signed-sha384.efi").path, "--log", logURL.path, "--json"]) == 0)
        // Another UKI (the tampered one) did not boot from that log; nor did ours from the original COS log.
        #expect(try Self.exitCode(["uki", "booted", variant.url("uki-tampered.efi").path, "--log", logURL.path]) == 1)
        let cosLog = TestData.url("tdx/eventlog/gotdx_ccel_data.dat").path
        #expect(try Self.exitCode(["uki", "booted", variant.url("uki-signed-sha384.efi").path, "--log", cosLog]) == 1)
    }

    @Test func malformedLogOrImageIsReported() throws {
        let variant = try UKIFixtures.variant("ukify-254")
        let garbage = try Self.write([0x01, 0x02, 0x03])
        #expect(try Self.exitCode(["uki", "booted", variant.url("uki-signed.efi").path, "--log", garbage.path]) == 1)
        let cosLog = TestData.url("tdx/eventlog/gotdx_ccel_data.dat").path
        #expect(try Self.exitCode(["uki", "booted", variant.url("cmdline.txt").path, "--log", cosLog]) == 1)
        #expect(try Self.exitCode(["uki", "booted", "/nonexistent", "--log", cosLog]) == 2)
    }
}
