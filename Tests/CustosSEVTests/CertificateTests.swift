import CustosCrypto
import CustosSEV
import CustosTestSupport
import Testing

@Suite("AMD ARK/ASK certificates", Requirement.testData)
struct AMDCertificateTests {
    /// sev.md §1.1 table (KEY_IDs and the display hashes `sevctl verify` prints; Rome = libvirt kbase K16).
    static let expected: [(String, arkID: String, askID: String, arkHash: String, askHash: String, bits: Int)] = [
        (
            "naples", "1bb987c359494606b174945601c9ea5b", "e139970cfc464377ae61b289e2f9e96e",
            "8efddcaaf84990cf6354d93637be270220cf15797332b3d918c3b8cc77349f31",
            "5dff2a2a4dd59dc095d73a26af28be523192ade830bdd35bacdd81ee75584c45", 2048
        ),
        (
            "rome", "e6002122fb58419399d15fee7b131351", "c6cbcf145b3146f498e40ecb4ad4fded",
            "3d2c1157c29ef7bd4207fc0c8b08db080e579ceba267f8c93bec8dce73f5a5e2e60d959ac37ea82176c1a0c61ae203ed",
            "d8cd9d1798c311c96e009a91552f17b4ddc4886a064ec933697734965b9ab29db803c79604e2725658f0861bfaf09ad4", 4096
        ),
        (
            "milan", "94c38e4177d0479292a7ae671d083fb6", "73478c05cc174bfeb06e718fa75dc3c8",
            "569da618dfe64015c343db6d975e77b72fdeacd16edd02d9d09b889b8f0f1d91ffa5dfbd86f7ac574a1a7883b7a1e737",
            "95cba79ba3c77daea79f741bade8156a50b1c59f6d6fda104d16dd264729f5ee8989522f3711fc7c84719921ceb31bc0", 4096
        ),
        (
            "genoa", "9f9d4a8fe761456599f6946c4c010f3a", "acbb4ad21acc436fb3e932f812cd01b0",
            "b66e16ff0ebeed57f0c4dffa154872c4156f2e5b1c2f4e66e58fc37f1d2a60d31a342ecb6430a9b2510a970c75c37926",
            "9fa6db577758411b576cfcdc3c2f0851e60f0c69ffdcb6301ad2f7864f91e829f62925888464d9d285612eb03b3fc63d", 4096
        ),
        (
            "turin", "d05c3a8bde484904b49552422ceb3942", "15051693f7304d65a527b4a7f3f7cb77",
            "712a28007da1097e8c4fd3a2e8655012b27e04042323a0a30e111fc0cf698961040c6fc3ff2053abe70432cfef411a0e",
            "9ae10c44573f0c0dee8044a89ee1ba5acd8f3909651fd3c96bfec3d4419c1bd60d7d9a35d42509c3a71e307b0f60c1d1", 4096
        ),
    ]

    @Test("each published ARK self-verifies and signs its own ASK", arguments: expected)
    func rootsVerify(_ row: (String, arkID: String, askID: String, arkHash: String, askHash: String, bits: Int)) throws {
        let roots = try AMDRoots(
            productLine: ProductLine(row.0), ark: try sev("amd-roots/\(row.0)/ark.cert"), ask: try sev("amd-roots/\(row.0)/ask.cert"))
        try roots.verify()
        #expect(roots.ark.keyUsage == .ark)
        #expect(roots.ask.keyUsage == .ask)
        #expect(Hex.encode(roots.ark.keyID) == row.arkID)
        #expect(Hex.encode(roots.ask.keyID) == row.askID)
        #expect(Hex.encode(roots.ask.certifyingID) == row.arkID)
        #expect(Hex.encode(roots.ark.displayHash) == row.arkHash)
        #expect(Hex.encode(roots.ask.displayHash) == row.askHash)
        #expect(roots.ark.modulusBits == row.bits)
        // The reverse link fails: the ASK key does not verify the ARK.
        #expect(throws: SEVError.self) { try roots.ark.verifySignature(by: roots.ask) }
    }

    static let crossPairs: [(String, String)] = {
        let lines = ["naples", "rome", "milan", "genoa", "turin"]
        return lines.flatMap { a in lines.filter { $0 != a }.map { (a, $0) } }
    }()

    @Test("all 20 cross-generation ARK→ASK pairings fail", arguments: crossPairs)
    func crossGeneration(_ pair: (String, String)) throws {
        let ark = try AMDCertificate(bytes: try sev("amd-roots/\(pair.0)/ark.cert"))
        let ask = try AMDCertificate(bytes: try sev("amd-roots/\(pair.1)/ask.cert"))
        #expect(Self.crossPairs.count == 20)
        #expect(throws: SEVError.self) { try ask.verifySignature(by: ark) }
        let error = #expect(throws: ChainFailure.self) { try AMDRoots(productLine: ProductLine(pair.0), ark: ark, ask: ask).verifyLinks() }
        #expect(error?.link == .askByARK)
    }

    @Test("Naples ARK quirk: 576-byte body, accepted only as the pinned body")
    func naplesQuirk() throws {
        let bad = try sev("platform-chains/naples/ark.cert.bad")
        let sig = try sev("platform-chains/naples/ark.cert.sig")
        let builtin = try sev("amd-roots/naples/ark.cert")
        let body = try AMDCertificate(bytes: bad)
        #expect(body.signatureLittleEndian == nil)
        #expect(body.body == Array(builtin[0..<576]))
        let error = #expect(throws: SEVError.self) { try body.verifySignature(by: body) }
        #expect(error?.code == .signatureMissing)
        // Completed with the published signature it is the builtin file and self-verifies.
        let completed = try body.attaching(signatureLittleEndian: sig)
        #expect(completed.bytes == builtin)
        try completed.verifySignature(by: completed)
        // As a trust anchor, the body-only ARK is accepted for Naples (pinned body hash) …
        let ask = try AMDCertificate(bytes: try sev("amd-roots/naples/ask.cert"))
        try AMDRoots(productLine: .naples, ark: body, ask: ask).verify()
        // … and the full chain verifies through it.
        let result = SEVChainVerifier.verify(try platform("naples"), roots: [AMDRoots(productLine: .naples, ark: body, ask: ask)])
        guard case .verified(let chain) = result else { Issue.record("naples chain via body-only ARK: \(result)"); return }
        #expect(chain.productLine == .naples)
        // … but not under another product line's name, and a body-only Rome ARK is never accepted.
        #expect(throws: ChainFailure.self) { try AMDRoots(productLine: .rome, ark: body, ask: ask).verifyLinks() }
        let rome = try sev("amd-roots/rome/ark.cert")
        let romeBody = try AMDCertificate(bytes: Array(rome[0..<1088]))
        let romeASK = try AMDCertificate(bytes: try sev("amd-roots/rome/ask.cert"))
        let failure = #expect(throws: ChainFailure.self) { try AMDRoots(productLine: .rome, ark: romeBody, ask: romeASK).verifyLinks() }
        #expect(failure?.error.code == .signatureMissing)
        #expect(failure?.link == .arkSelfSignature)
    }

    @Test("ASK ‖ ARK download splits")
    func askArkSplit() throws {
        for line in ["naples", "milan"] {
            let ask = try sev("amd-roots/\(line)/ask.cert")
            let ark = try sev("amd-roots/\(line)/ark.cert")
            let roots = try AMDRoots(productLine: ProductLine(line), askArk: ask + ark)
            #expect(roots.ask.bytes == ask)
            #expect(roots.ark.bytes == ark)
        }
    }

    @Test("every truncation of an ARK/ASK throws .truncated; only body lengths parse", arguments: ["naples/ask.cert", "rome/ark.cert"])
    func truncationSweep(_ file: String) throws {
        let bytes = try sev("amd-roots/" + file)
        let bodyLength = bytes.count == 832 ? 576 : 1088
        for length in 0..<bytes.count {
            let prefix = Array(bytes[0..<length])
            if length == bodyLength {
                #expect((try? AMDCertificate(bytes: prefix))?.signatureLittleEndian == nil)
                continue
            }
            let error = #expect(throws: SEVError.self) { try AMDCertificate(bytes: prefix) }
            #expect(error?.code == .truncated, "length \(length)")
        }
        let error = #expect(throws: SEVError.self) { try AMDCertificate(bytes: bytes + [0]) }
        #expect(error?.code == .trailingBytes)
    }

    @Test("flipping any byte of the Rome ASK breaks ARK → ASK")
    func byteFlips() throws {
        let ark = try AMDCertificate(bytes: try sev("amd-roots/rome/ark.cert"))
        let bytes = try sev("amd-roots/rome/ask.cert")
        for offset in stride(from: 0, to: bytes.count, by: 1) {
            var flipped = bytes
            flipped[offset] ^= 0x01
            guard let cert = try? AMDCertificate(bytes: flipped) else { continue }
            #expect(throws: SEVError.self, "offset \(offset)") { try cert.verifySignature(by: ark) }
        }
    }

    @Test("header fields are validated with offsets")
    func headerValidation() throws {
        var bytes = try sev("amd-roots/milan/ark.cert")
        bytes[0] = 2
        #expect((#expect(throws: SEVError.self) { try AMDCertificate(bytes: bytes) })?.code == .unsupportedVersion)
        bytes[0] = 1
        bytes[0x24] = 0x42
        let usage = #expect(throws: SEVError.self) { try AMDCertificate(bytes: bytes) }
        #expect(usage?.code == .invalidValue)
        #expect(usage?.offset == 0x24)
        bytes[0x24] = 0
        bytes[0x3D] = 0x20  // MODULUS_SIZE 8192
        #expect((#expect(throws: SEVError.self) { try AMDCertificate(bytes: bytes) })?.code == .invalidValue)
    }
}

@Suite("SEV platform certificates and chains", Requirement.testData)
struct PlatformChainTests {
    @Test("real Naples and Rome chains verify and name their product line", arguments: ["naples", "rome"])
    func realChains(_ line: String) throws {
        var log: [ChainDiagnostic] = []
        let result = SEVChainVerifier.verify(try platform(line), roots: try publishedRoots()) { log.append($0) }
        guard case .verified(let chain) = result else { Issue.record("\(line): \(result)"); return }
        #expect(chain.productLine == ProductLine(line))
        #expect(log.contains(.linkVerified(.pdhByPEK)))
        #expect(log.contains(.cekTried(ProductLine(line), verified: true)))
        // Exactly one ASK verified the CEK.
        #expect(log.filter { if case .cekTried(_, true) = $0 { true } else { false } }.count == 1)
    }

    @Test("usages, algorithms and slots match MANIFEST", arguments: ["naples", "rome"])
    func fields(_ line: String) throws {
        let p = try platform(line)
        #expect(p.cek.usage == .cek && p.cek.algorithm == .ecdsaSHA256)
        #expect(p.cek.signatures[0].usage == .ask)
        #expect(p.cek.signatures[0].algorithm == (line == "naples" ? .rsaSHA256 : .rsaSHA384))
        #expect(p.cek.signatures[1].isEmpty)
        #expect(p.oca.usage == .oca && p.oca.signatures[0].usage == .oca && p.oca.signatures[1].isEmpty)
        #expect(p.pek.usage == .pek && p.pek.signatures[0].usage == .oca && p.pek.signatures[1].usage == .cek)
        #expect(p.pdh.usage == .pdh && p.pdh.algorithm == .ecdhSHA256 && p.pdh.signatures[0].usage == .pek)
        #expect(p.pdh.publicKey.curve == .p384)
        #expect(p.cek.apiMajor == 0 && p.cek.apiMinor == 14)
    }

    static let cekPairs: [(String, String)] = ["naples", "rome"].flatMap { cek in
        ["naples", "rome", "milan", "genoa", "turin"].filter { $0 != cek }.map { (cek, $0) }
    }

    @Test("a CEK fails under every other generation's ASK", arguments: cekPairs)
    func cekCrossGeneration(_ pair: (String, String)) throws {
        let cek = try SEVCertificate(bytes: try sev("platform-chains/\(pair.0)/cek.cert"))
        let ask = try AMDCertificate(bytes: try sev("amd-roots/\(pair.1)/ask.cert"))
        #expect(throws: SEVError.self) { try cek.verifySignature(by: ask) }
        // With only that product line's roots, the chain is rejected at ASK → CEK.
        let roots = try AMDRoots(
            productLine: ProductLine(pair.1), ark: try sev("amd-roots/\(pair.1)/ark.cert"), ask: try sev("amd-roots/\(pair.1)/ask.cert"))
        guard case .rejected(let failure) = SEVChainVerifier.verify(try platform(pair.0), roots: [roots]) else {
            Issue.record("accepted under the wrong product line")
            return
        }
        #expect(failure.link == .cekByASK)
    }

    @Test("negative links: PDH cannot sign PEK, PEK cannot sign CEK or OCA", arguments: ["naples", "rome"])
    func negatives(_ line: String) throws {
        let p = try platform(line)
        #expect(throws: SEVError.self) { try p.pek.verifySignature(by: p.pdh) }
        #expect(throws: SEVError.self) { try p.cek.verifySignature(by: p.pek) }
        #expect(throws: SEVError.self) { try p.oca.verifySignature(by: p.pek) }
        try p.pek.verifySignature(by: p.oca)
        try p.pek.verifySignature(by: p.cek)
        try p.pdh.verifySignature(by: p.pek)
        try p.oca.verifySignature(by: p.oca)
    }

    @Test("mixing two platforms' certificates breaks the chain at the right link")
    func mixedChains() throws {
        let naples = try platform("naples")
        let rome = try platform("rome")
        let roots = try publishedRoots()
        func link(_ p: PlatformCertificates) -> ChainLink? {
            if case .rejected(let failure) = SEVChainVerifier.verify(p, roots: roots) { return failure.link }
            return nil
        }
        #expect(link(PlatformCertificates(pdh: naples.pdh, pek: rome.pek, oca: rome.oca, cek: rome.cek)) == .pdhByPEK)
        #expect(link(PlatformCertificates(pdh: rome.pdh, pek: rome.pek, oca: rome.oca, cek: naples.cek)) == .pekByCEK)
        #expect(link(PlatformCertificates(pdh: rome.pdh, pek: rome.pek, oca: naples.oca, cek: rome.cek)) == .pekByOCA)
        #expect(link(PlatformCertificates(pdh: rome.pek, pek: rome.pdh, oca: rome.oca, cek: rome.cek)) == .usage)
        // A pinned OCA that is not the platform's is refused.
        guard case .rejected(let failure) = SEVChainVerifier.verify(rome, roots: roots, pinnedOCA: naples.oca) else {
            Issue.record("foreign pinned OCA accepted")
            return
        }
        #expect(failure.link == .ocaPinned)
        #expect(failure.error.code == .untrustedOCA)
        if case .verified = SEVChainVerifier.verify(rome, roots: roots, pinnedOCA: rome.oca) {} else { Issue.record("pinned OCA rejected") }
        // No roots at all.
        guard case .rejected(let none) = SEVChainVerifier.verify(rome, roots: []) else { Issue.record("no roots accepted"); return }
        #expect(none.error.code == .unknownProductLine)
    }

    @Test("libvirt virNodeGetSEVInfo input: base64 pdh + base64 PEK‖OCA‖CEK")
    func libvirtInput() throws {
        let rome = try platform("rome")
        let fromLibvirt = try PlatformCertificates(libvirtPDH: Base64.encode(rome.pdh.bytes), certChain: Base64.encode(rome.certChain))
        #expect(fromLibvirt == rome)
        #expect(rome.certChain.count == 6252)
        guard case .verified(let chain) = SEVChainVerifier.verify(fromLibvirt, roots: try publishedRoots()) else {
            Issue.record("libvirt input rejected")
            return
        }
        #expect(chain.productLine == .rome)
        let short = #expect(throws: SEVError.self) {
            try PlatformCertificates(pdh: rome.pdh.bytes, certChain: Array(rome.certChain.dropLast()))
        }
        #expect(short?.code == .truncated)
        let long = #expect(throws: SEVError.self) { try PlatformCertificates(pdh: rome.pdh.bytes, certChain: rome.certChain + [0]) }
        #expect(long?.code == .trailingBytes)
        #expect(throws: SEVError.self) { try PlatformCertificates(libvirtPDH: "not base64!", certChain: "") }
    }

    @Test("every truncation of a SEV certificate throws .truncated", arguments: ["rome/cek.cert", "naples/pdh.cert"])
    func truncationSweep(_ file: String) throws {
        let bytes = try sev("platform-chains/" + file)
        #expect(bytes.count == 0x824)
        for length in 0..<bytes.count {
            let error = #expect(throws: SEVError.self) { try SEVCertificate(bytes: Array(bytes[0..<length])) }
            #expect(error?.code == .truncated, "length \(length)")
        }
        #expect((#expect(throws: SEVError.self) { try SEVCertificate(bytes: bytes + [0]) })?.code == .trailingBytes)
    }

    @Test("flipping any signed byte or signature byte of a PEK breaks it", arguments: ["rome"])
    func byteFlips(_ line: String) throws {
        let p = try platform(line)
        let bytes = p.pek.bytes
        // Signed bytes [0, 0x414), SIG1 usage/algo/R/S [0x414, 0x4AC), SIG2 usage/algo/R/S [0x61C, 0x6B4).
        let offsets = Array(0..<0x4AC) + Array(0x61C..<0x6B4)
        for offset in offsets {
            var flipped = bytes
            flipped[offset] ^= 0x80
            guard let cert = try? SEVCertificate(bytes: flipped) else { continue }
            let broken = (try? cert.verifySignature(by: p.oca)) == nil || (try? cert.verifySignature(by: p.cek)) == nil
            #expect(broken, "offset 0x\(String(offset, radix: 16)) still verifies")
        }
    }

    @Test("malformed fields are typed errors with offsets")
    func malformed() throws {
        let good = try sev("platform-chains/rome/pdh.cert")
        var bytes = good
        bytes[0x08] = 0x05  // usage 0x1005
        #expect((#expect(throws: SEVError.self) { try SEVCertificate(bytes: bytes) })?.offset == 0x08)
        bytes = good
        bytes[0x0C] = 0x01  // RSA_SHA256
        #expect((#expect(throws: SEVError.self) { try SEVCertificate(bytes: bytes) })?.code == .unsupportedAlgorithm)
        bytes = good
        bytes[0x10] = 3  // curve
        #expect((#expect(throws: SEVError.self) { try SEVCertificate(bytes: bytes) })?.offset == 0x10)
        bytes = good
        bytes[0x14 + 50] = 1  // QX padding
        #expect((#expect(throws: SEVError.self) { try SEVCertificate(bytes: bytes) })?.offset == 0x14 + 50)
        bytes = good
        bytes[0x14] ^= 0x01  // point off the curve
        #expect((#expect(throws: SEVError.self) { try SEVCertificate(bytes: bytes) })?.code == .invalidValue)
        bytes = good
        bytes[0x500] = 0x00
        bytes[0x418] = 0x77  // unknown SIG1_ALGO
        #expect((#expect(throws: SEVError.self) { try SEVCertificate(bytes: bytes) })?.offset == 0x418)
    }

    @Test("random bytes give typed parse errors, and nothing random verifies under a real signer")
    func randomBytes() throws {
        var generator = SeededRandom("SEV CertificateTests.randomBytes")
        let rome = try platform("rome")
        let arkRome = try AMDCertificate(bytes: try sev("amd-roots/rome/ark.cert"))
        let parseCodes: Set<SEVError.Code> = [
            .truncated, .invalidValue, .unsupportedVersion, .lengthOverflow, .trailingBytes, .unsupportedAlgorithm,
        ]
        for _ in 0..<300 {
            let length = [0x824, 832, 1600, 576, Int.random(in: 0..<3000, using: &generator)].randomElement(using: &generator) ?? 0
            var bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            if length >= 4 { bytes[0] = 1; bytes[1] = 0; bytes[2] = 0; bytes[3] = 0 }
            do {
                let certificate = try SEVCertificate(bytes: bytes)
                #expect(throws: SEVError.self) { try certificate.verifySignature(by: rome.cek) }
                #expect(throws: SEVError.self) { try certificate.verifySignature(by: rome.oca) }
            } catch {
                #expect(parseCodes.contains(error.code), "\(error)")
            }
            do {
                let certificate = try AMDCertificate(bytes: bytes)
                #expect(throws: SEVError.self) { try certificate.verifySignature(by: arkRome) }
            } catch {
                #expect(parseCodes.contains(error.code), "\(error)")
            }
            do {
                _ = try PlatformCertificates(pdh: bytes, certChain: bytes + bytes + bytes)
                Issue.record("random bytes parsed as a whole platform chain")
            } catch {
                #expect(parseCodes.contains(error.code) || error.code == .chainMismatch, "\(error)")
            }
        }
    }

    /// The SEV API defines RSA platform keys; real platforms use P-384 and Custos refuses RSA with its own code.
    @Test(
        "RSA-keyed platform certificates are a typed .unsupportedAlgorithm error at PUBKEY_ALGO",
        arguments: ["pdh", "pek", "oca", "cek"], [UInt32(0x1), 0x101])
    func rsaPlatformKeys(_ name: String, _ algorithm: UInt32) throws {
        var bytes = try sev("platform-chains/rome/\(name).cert")
        bytes.replaceSubrange(0x0C..<0x10, with: [UInt8(algorithm & 0xFF), UInt8(algorithm >> 8 & 0xFF), 0, 0])
        let error = #expect(throws: SEVError.self) { try SEVCertificate(bytes: bytes) }
        #expect(error?.code == .unsupportedAlgorithm)
        #expect(error?.offset == 0x0C)
        let rome = try platform("rome")
        let chain = rome.pek.bytes + rome.oca.bytes + rome.cek.bytes
        if name == "pdh" {
            #expect(
                (#expect(throws: SEVError.self) { try PlatformCertificates(pdh: bytes, certChain: chain) })?.code == .unsupportedAlgorithm)
        }
    }

    @Test("a PEK whose OCA slot claims an RSA signature is rejected at OCA → PEK (an EC OCA cannot make one)")
    func rsaSignatureSlot() throws {
        let rome = try platform("rome")
        var pek = rome.pek.bytes
        #expect(Array(pek[0x414..<0x41C]) == [0x01, 0x10, 0, 0, 0x02, 0, 0, 0])  // SIG1 = (OCA, ECDSA_SHA256), MANIFEST
        pek[0x418] = 0x01  // RSA_SHA256
        let platform = PlatformCertificates(pdh: rome.pdh, pek: try SEVCertificate(bytes: pek), oca: rome.oca, cek: rome.cek)
        guard case .rejected(let failure) = SEVChainVerifier.verify(platform, roots: try publishedRoots()) else {
            Issue.record("a PEK with an RSA OCA slot verified")
            return
        }
        #expect(failure.link == .pekByOCA)
        #expect(failure.error.code == .chainMismatch)
    }
}
