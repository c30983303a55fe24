import ArgumentParser
import CustosCrypto
import CustosTestSupport
import CustosUKI
import Foundation
import Testing

@testable import CustosCLI

@Suite(Requirement.skipOrFail(unless: UKIFixtures.canBuild, UKIFixtures.skipReason))
struct UKICLITests {
    static func exitCode(_ arguments: [String]) throws -> Int32 { CustosCommand.exitStatus(running: arguments) }

    @Test("uki verify exits 0 only when verified; the report matches sbverify")
    func verifyExitCodes() throws {
        let variant = try UKIFixtures.variant("ukify-254")
        let db = variant.dbCertificate.path
        for (file, expected) in [
            ("uki-signed.efi", 0), ("uki-signed-sha384.efi", 0), ("uki-unsigned.efi", 1), ("uki-wrongkey.efi", 1), ("uki-tampered.efi", 1),
        ] {
            #expect(try Self.exitCode(["uki", "verify", variant.url(file).path, "--cert", db, "--json"]) == Int32(expected), "\(file)")
        }
        #expect(try Self.exitCode(["uki", "verify", variant.url("uki-wrongkey.efi").path, "--cert", variant.wrongCertificate.path]) == 0)
        #expect(try Self.exitCode(["uki", "verify", variant.url("cmdline.txt").path, "--cert", db]) == 1)
        #expect(try Self.exitCode(["uki", "verify", variant.url("uki-signed.efi").path, "--cert", variant.url("cmdline.txt").path]) == 2)
        #expect(throws: (any Error).self) { try CustosCommand.parseAsRoot(["uki", "verify", variant.url("uki-signed.efi").path]) }

        let tampered = try UKIVerifyCommand.verify(
            file: variant.url("uki-tampered.efi").path,
            anchors: try Certificate.parsePEMChain(String(contentsOf: variant.dbCertificate, encoding: .utf8)))
        #expect(!tampered.verified && tampered.error?.code == "digestMismatch")
        // sbverify's "expecting" digest for the tampered file is the recomputed one, which osslsigncode also prints.
        #expect(tampered.error?.message.contains(variant.peers.osslsigncode["uki-tampered.efi"]?.calculated ?? "-") == true)
    }

    @Test("uki inspect JSON carries the peers' digests and PCR 11")
    func inspectJSON() throws {
        let variant = try UKIFixtures.variant("objcopy-252")
        let uki = try UnifiedKernelImage(bytes: variant.bytes("uki-signed.efi"))
        let report = UKIInspectReport(file: "f", uki: uki)
        let json = try JSONSerialization.jsonObject(with: try Output.encoder().encode(report)) as? [String: Any]
        let authenticode = json?["authenticode"] as? [String: String]
        #expect(authenticode?["sha256"] == variant.peers.osslsigncode["uki-signed.efi"]?.calculated)
        #expect(authenticode?["sha384"] == variant.peers.osslsigncode["uki-signed-sha384.efi"]?.calculated)
        #expect((json?["pcr11"] as? [String: String])?["sha256"] == variant.peers.pcr11["sha256"])
        #expect((json?["stub"] as? [String: String])?["version"] == "252")
        let signatures = json?["signatures"] as? [[String: Any]]
        #expect(signatures?.first?["digestAlgorithm"] as? String == "sha256")
        #expect((signatures?.first?["subject"] as? String)?.contains("Attest Test db") == true)
        #expect(try Self.exitCode(["uki", "inspect", variant.url("uki-unsigned.efi").path, "--json"]) == 0)
        // Not a PE image: rejected (1); not there: unusable input (2).
        #expect(try Self.exitCode(["uki", "inspect", variant.url("os-release").path]) == 1)
        #expect(try Self.exitCode(["uki", "inspect", "/nonexistent.efi"]) == 2)
    }
}
