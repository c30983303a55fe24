import CustosCrypto
import CustosTestSupport
import CustosUKI
import Foundation
import Testing

/// The real thing: OVMF with Secure Boot enforcing our db boots or refuses each UKI under QEMU (TCG), and Custos's
/// verdict must equal the firmware's. Needs root (QEMU/OVMF are installed on demand); set CUSTOS_UKI_BOOT=0 to skip.
/// Each boot has a hard timeout inside the script; the whole run is capped here too.
@Suite(
    .serialized,
    Requirement.skipOrFail(
        unless: UKIFixtures.canBuild && geteuid() == 0 && ProcessInfo.processInfo.environment["CUSTOS_UKI_BOOT"] != "0",
        "needs root, the recipe fixtures, and CUSTOS_UKI_BOOT != 0"))
struct BootTests {
    @Test("OVMF Secure Boot verdicts equal custos's on signed, unsigned, wrong-key and tampered UKIs", .timeLimit(.minutes(10)))
    func firmwareAgrees() throws {
        let variant = try UKIFixtures.variant("ukify-254")
        let result = try UKIFixtures.run(UKIFixtures.scriptsDirectory.appendingPathComponent("boot-test.sh").path, arguments: [])
        var firmware: [String: (result: String, evidence: String)] = [:]
        for line in result.stdout.split(separator: "\n") where line.hasPrefix("BOOT ") {
            let fields = line.split(separator: " ", maxSplits: 4).map(String.init)
            guard fields.count == 5 else { continue }
            firmware[fields[1]] = (fields[2], fields[4])
        }
        #expect(result.status == 0, "boot-test.sh: \(result.stdout)\n\(result.stderr)")
        let anchors = try Certificate.parsePEMChain(String(contentsOf: variant.dbCertificate, encoding: .utf8))
        let verifier = AuthenticodeVerifier(trustAnchors: anchors)
        for name in ["signed", "unsigned", "wrongkey", "tampered"] {
            let boot = try #require(firmware[name], "no boot result for \(name): \(result.stdout)")
            #expect(boot.result == (name == "signed" ? "booted" : "refused"), "\(name): \(boot)")
            if name == "signed" {
                #expect(boot.evidence.contains("Secure boot enabled") && boot.evidence.contains("initrd reached"))
            } else {
                #expect(boot.evidence.contains("Access Denied"))
            }
            let ours = verifier.verify(try PEImage(bytes: variant.bytes("uki-\(name).efi"))).isVerified
            #expect(ours == (boot.result == "booted"), "\(name): firmware \(boot.result), custos verified=\(ours)")
        }
    }
}
