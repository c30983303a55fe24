import CustosCrypto
import CustosTestSupport
import CustosUKI
import Foundation
import Testing

/// Every expected value here comes from a peer tool run on the fixture by `scripts/uki/build-fixtures.sh`
/// (osslsigncode, pesign, sbverify, systemd-measure 254), never from Custos itself.
@Suite(Requirement.skipOrFail(unless: UKIFixtures.canBuild, UKIFixtures.skipReason))
struct FixtureTests {
    static let files = [
        "uki-signed.efi", "uki-signed-sha384.efi", "uki-unsigned.efi", "uki-wrongkey.efi", "uki-tampered.efi",
        "uki-multi-wrongfirst.efi", "uki-multi-wrongonly.efi", "uki-stub-signed.efi", "uki-stub-unsigned.efi",
    ]

    static func load(_ variant: UKIFixtures.Variant, _ file: String) throws -> UnifiedKernelImage {
        try UnifiedKernelImage(bytes: variant.bytes(file))
    }

    static func anchors(_ variant: UKIFixtures.Variant) throws -> [Certificate] {
        try Certificate.parsePEMChain(String(contentsOf: variant.dbCertificate, encoding: .utf8))
    }

    @Test("Authenticode SHA-256 equals pesign -h", arguments: UKIFixtures.variantNames)
    func sha256EqualsPesign(variantName: String) throws {
        let variant = try UKIFixtures.variant(variantName)
        for file in Self.files {
            let expected = try #require(variant.peers.pesign[file], "pesign said nothing about \(file)")
            let uki = try Self.load(variant, file)
            #expect(uki.authenticodeDigest(.sha256).hexString == expected, "\(variantName)/\(file)")
        }
    }

    @Test("Authenticode digest equals osslsigncode's Calculated message digest", arguments: UKIFixtures.variantNames)
    func digestEqualsOsslsigncode(variantName: String) throws {
        let variant = try UKIFixtures.variant(variantName)
        var checked = 0
        for file in Self.files {
            guard let peer = variant.peers.osslsigncode[file] else { continue }
            let algorithm = try #require(DigestAlgorithm(rawValue: peer.algorithm))
            let uki = try Self.load(variant, file)
            #expect(uki.authenticodeDigest(algorithm).hexString == peer.calculated, "\(variantName)/\(file) \(algorithm)")
            checked += 1
        }
        #expect(checked >= 5)
        // SHA-384 of the SHA-256-signed file equals the SHA-384 osslsigncode computed for the SHA-384-signed copy of the
        // same unsigned image (the certificate table is not hashed).
        let sha384 = try #require(variant.peers.osslsigncode["uki-signed-sha384.efi"])
        #expect(try Self.load(variant, "uki-signed.efi").authenticodeDigest(.sha384).hexString == sha384.calculated)
    }

    @Test("8-byte padding rule: the unsigned image padded as signers pad hashes like its signed copy", arguments: UKIFixtures.variantNames)
    func paddingRule(variantName: String) throws {
        let variant = try UKIFixtures.variant(variantName)
        let unsigned = try Self.load(variant, "uki-unsigned.efi")
        let padded = try #require(variant.peers.pesignPaddedUnsigned)
        #expect(unsigned.authenticodeDigest(.sha256, padding: .signingAlignment).hexString == padded)
        #expect(
            unsigned.rtmr1EventDigest(padding: .signingAlignment).hexString
                == variant.peers.osslsigncode["uki-signed-sha384.efi"]?.calculated)
        if variantName.hasPrefix("objcopy-252") {
            // The stub-252 objcopy build has trailing data and an unaligned size: the two digests differ.
            #expect(unsigned.image.bytes.count % 8 != 0)
            #expect(unsigned.authenticodeDigest(.sha256) != unsigned.authenticodeDigest(.sha256, padding: .signingAlignment))
        }
    }

    @Test("verdicts equal osslsigncode and sbverify", arguments: UKIFixtures.variantNames)
    func verdictsEqualPeers(variantName: String) throws {
        let variant = try UKIFixtures.variant(variantName)
        let verifier = AuthenticodeVerifier(trustAnchors: try Self.anchors(variant))
        for file in Self.files {
            let verdict = verifier.verify(try Self.load(variant, file).image)
            let peers = try #require(variant.peers.verdicts[file])
            // osslsigncode reads only the first WIN_CERTIFICATE; sbverify only knows SHA-256.
            if !file.contains("multi"), let oss = peers["osslsigncode"] {
                #expect(verdict.isVerified == oss, "\(variantName)/\(file): osslsigncode says \(oss), we say \(verdict)")
            }
            if file != "uki-signed-sha384.efi", let sb = peers["sbverify"] {
                #expect(verdict.isVerified == sb, "\(variantName)/\(file): sbverify says \(sb), we say \(verdict)")
            }
        }
    }

    @Test("rejections carry the right code", arguments: UKIFixtures.variantNames)
    func rejectionCodes(variantName: String) throws {
        let variant = try UKIFixtures.variant(variantName)
        let verifier = AuthenticodeVerifier(trustAnchors: try Self.anchors(variant))
        func codes(_ file: String) throws -> [UKIError.Code] {
            guard case .rejected(let failures) = verifier.verify(try Self.load(variant, file).image) else { return [] }
            return failures.map(\.error.code)
        }
        #expect(try codes("uki-unsigned.efi") == [.unsigned])
        #expect(try codes("uki-wrongkey.efi") == [.untrustedSigner])
        #expect(try codes("uki-tampered.efi") == [.digestMismatch])
        #expect(try codes("uki-multi-wrongonly.efi") == [.untrustedSigner, .untrustedSigner])
        guard case .verified(let good) = verifier.verify(try Self.load(variant, "uki-multi-wrongfirst.efi").image) else {
            Issue.record("multi-wrongfirst should verify through its second signature")
            return
        }
        #expect(good.signatureIndex == 1)
        #expect(good.signer?.subject.contains("Attest Test db") == true)
        // The wrong key's own certificate as anchor makes the wrong-key image verify, and the good one fail.
        let wrong = AuthenticodeVerifier(
            trustAnchors: try Certificate.parsePEMChain(String(contentsOf: variant.wrongCertificate, encoding: .utf8)))
        #expect(wrong.verify(try Self.load(variant, "uki-wrongkey.efi").image).isVerified)
        #expect(!wrong.verify(try Self.load(variant, "uki-signed.efi").image).isVerified)
    }

    @Test("PCR 11 equals systemd-measure calculate, with the stub version read from .sdmagic", arguments: UKIFixtures.variantNames)
    func pcr11EqualsSystemdMeasure(variantName: String) throws {
        let variant = try UKIFixtures.variant(variantName)
        let uki = try Self.load(variant, "uki-signed.efi")
        let stub = try #require(uki.stub)
        #expect(stub.name == "systemd-stub")
        #expect(stub.fullVersion == variant.peers.stubPackageVersion)
        for bank in ["sha256", "sha384"] {
            let expected = try #require(variant.peers.pcr11[bank])
            let algorithm = try #require(DigestAlgorithm(rawValue: bank))
            #expect(try uki.predictPCR11(algorithm).hexString == expected, "\(variantName) \(bank)")
        }
        // The other stub's rules give a different value whenever .uname or .sbat is present.
        let other: StubMeasurementRules = stub.majorVersion == 252 ? .v254 : .v252
        if uki.image.section(named: ".sbat") != nil || uki.image.section(named: ".uname") != nil {
            #expect(try uki.predictPCR11(.sha256, rules: other).hexString != variant.peers.pcr11["sha256"])
        }
    }

    @Test("UKI view: sections, cmdline, os-release, uname from the recipe's inputs")
    func ukiView() throws {
        let variant = try UKIFixtures.variant("ukify-254")
        let uki = try Self.load(variant, "uki-signed.efi")
        let cmdline = try String(contentsOf: variant.url("cmdline.txt"), encoding: .utf8)
        #expect(uki.cmdline == cmdline)
        #expect(uki.osRelease?["ID"] == "attest-test")
        #expect(uki.osRelease?["PRETTY_NAME"] == "Attestation Test UKI 1")
        let kernel = try FileManager.default.contentsOfDirectory(atPath: variant.url("x/boot").path).first { $0.hasPrefix("vmlinuz-") }
        #expect(uki.uname.map { "vmlinuz-" + $0 } == kernel)
        #expect(uki.ukiSections.map(\.name).sorted() == [".cmdline", ".initrd", ".linux", ".osrel", ".sbat", ".uname"])
        // .linux is the kernel file byte for byte; .initrd the recipe's initrd.
        let linux = try #require(uki.image.section(named: ".linux"))
        #expect(Array(uki.image.mappedData(of: linux, limit: .max)) == (try variant.bytes("x/boot/\(try #require(kernel))")))
        let initrd = try #require(uki.image.section(named: ".initrd"))
        #expect(Array(uki.image.mappedData(of: initrd, limit: .max)) == (try variant.bytes("initrd.cpio.gz")))
    }

    @Test("signatures expose algorithm, signer subject, issuer and serial as openssl prints them")
    func signatureInfo() throws {
        let variant = try UKIFixtures.variant("ukify-254")
        let signatures = try Self.load(variant, "uki-signed-sha384.efi").image.embeddedSignatures()
        #expect(signatures.count == 1)
        let signature = try signatures[0].get()
        #expect(signature.digestAlgorithm == .sha384)
        let certificate = try #require(signature.signerCertificate)
        let db = try #require(try Self.anchors(variant).first)
        #expect(certificate == db)
        // Peer: openssl x509 -serial.
        let serial = try UKIFixtures.run("/usr/bin/openssl", arguments: ["x509", "-noout", "-serial", "-in", variant.dbCertificate.path])
        #expect(
            serial.stdout.trimmingCharacters(in: .whitespacesAndNewlines).lowercased() == "serial=" + certificate.serialNumber.hexString)
    }
}
