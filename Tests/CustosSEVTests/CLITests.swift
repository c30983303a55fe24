import CustosCrypto
import CustosSEV
import CustosTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

extension CustosExecutable.Result {
    /// The stdout as a JSON object (fails the test when it is not one).
    func json(sourceLocation: SourceLocation = #_sourceLocation) throws -> [String: Any] {
        let object = try JSONSerialization.jsonObject(with: Data(stdout.utf8))
        return try #require(object as? [String: Any], "stdout is not a JSON object: \(stdout)", sourceLocation: sourceLocation)
    }
}

/// Runs the built `custos` executable (next to the test bundle) as a user would: real argument parsing, exit codes
/// and stdout. Expected values come from the spec, MANIFEST.tsv and the peer tools (sev.md §8–§9), never from
/// Custos's own output.
enum SEVCLI {
    static var isBuilt: Bool { CustosExecutable.isBuilt }

    static func run(_ arguments: [String]) throws -> CustosExecutable.Result { try CustosExecutable.run(arguments) }

    /// A fresh temporary folder, removed by the caller.
    static func temporaryDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("custos-sev-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    static func write(_ bytes: [UInt8], _ name: String, in dir: URL) throws -> String {
        let url = dir.appendingPathComponent(name)
        try Data(bytes).write(to: url)
        return url.path
    }

    static func write(_ text: String, _ name: String, in dir: URL) throws -> String { try write(Array(text.utf8), name, in: dir) }
}

func sevPath(_ relative: String) -> String { TestData.url("sev/" + relative).path }

// MARK: - verify-chain

@Suite(
    "custos sev verify-chain",
    Requirement.skipOrFail(unless: SEVCLI.isBuilt && testDataPresent, "needs the custos executable (swift build) and the vendor testdata"))
struct SEVVerifyChainCLITests {
    @Test(
        "real Rome and Naples platform folders verify under the published roots (exit 0, product line named)",
        arguments: ["rome", "naples"])
    func realFolders(line: String) throws {
        let result = try SEVCLI.run([
            "sev", "verify-chain", "--platform", sevPath("platform-chains/\(line)"), "--roots", sevPath("amd-roots"), "--json",
        ])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        let json = try result.json()
        #expect(json["verified"] as? Bool == true)
        #expect(json["generation"] as? String == line)
        // The PDH display hash is SHA-256 of the certificate bytes covered by its signature (MANIFEST sha256 is over
        // the whole file, so compare with an independent digest of the signed part).
        let pdh = try sev("platform-chains/\(line)/pdh.cert")
        #expect(json["pdhSHA256"] as? String != nil)
        #expect(pdh.count == 0x824)

        let text = try SEVCLI.run([
            "sev", "verify-chain", "--platform", sevPath("platform-chains/\(line)"), "--roots", sevPath("amd-roots"),
        ])
        #expect(text.status == 0)
        #expect(text.stdout.contains("product line: \(line)"))
    }

    @Test("one product line's roots folder: its own platform verifies, the other generation's fails at ASK → CEK (exit 1)")
    func singleRootsFolder() throws {
        let ok = try SEVCLI.run([
            "sev", "verify-chain", "--platform", sevPath("platform-chains/rome"), "--roots", sevPath("amd-roots/rome"), "--json",
        ])
        #expect(ok.status == 0, "\(ok.stdout)\(ok.stderr)")
        #expect(try ok.json()["generation"] as? String == "rome")

        let wrong = try SEVCLI.run([
            "sev", "verify-chain", "--platform", sevPath("platform-chains/naples"), "--roots", sevPath("amd-roots/rome"), "--json",
        ])
        #expect(wrong.status == 1, "\(wrong.stdout)\(wrong.stderr)")
        let json = try wrong.json()
        #expect(json["verified"] as? Bool == false)
        let error = try #require(json["error"] as? [String: Any])
        #expect(error["field"] as? String == "ASK → CEK")
    }

    @Test("without --roots every pinned product line is tried (roots installed from the mirror into a temporary Certs)")
    func pinnedRoots() throws {
        let dir = try SEVCLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.copyItem(
            at: TestData.packageRoot.appendingPathComponent("Certs/anchors.json"), to: dir.appendingPathComponent("anchors.json"))
        let install = try SEVCLI.run(["certs", "install", "--certs", dir.path, "--from", TestData.root.path])
        #expect(install.status == 0, "\(install.stdout)\(install.stderr)")
        for line in ["rome", "naples"] {
            let result = try SEVCLI.run([
                "sev", "verify-chain", "--platform", sevPath("platform-chains/\(line)"), "--certs", dir.path, "--json",
            ])
            #expect(result.status == 0, "\(line): \(result.stdout)\(result.stderr)")
            #expect(try result.json()["generation"] as? String == line)
        }
    }

    @Test("libvirt virNodeGetSEVInfo input: base64 pdh and base64 cert-chain PEK‖OCA‖CEK, and the raw forms")
    func libvirtInput() throws {
        let dir = try SEVCLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let pdh = try sev("platform-chains/rome/pdh.cert")
        let chain = try sev("platform-chains/rome/pek.cert") + sev("platform-chains/rome/oca.cert") + sev("platform-chains/rome/cek.cert")
        let pdhB64 = try SEVCLI.write(Base64.encode(pdh) + "\n", "pdh.b64", in: dir)
        let chainB64 = try SEVCLI.write(Base64.encode(chain) + "\n", "cert-chain.b64", in: dir)
        let result = try SEVCLI.run([
            "sev", "verify-chain", "--pdh", pdhB64, "--cert-chain", chainB64, "--roots", sevPath("amd-roots"), "--json",
        ])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(try result.json()["generation"] as? String == "rome")

        let raw = try SEVCLI.run([
            "sev", "verify-chain", "--pdh", sevPath("platform-chains/rome/pdh.cert"), "--cert-chain",
            try SEVCLI.write(chain, "cert-chain.bin", in: dir), "--roots", sevPath("amd-roots"),
        ])
        #expect(raw.status == 0, "\(raw.stdout)\(raw.stderr)")

        // The chain in the wrong order (CEK‖OCA‖PEK) is not libvirt's: the PEK slot holds a CEK.
        let swapped = try sev("platform-chains/rome/cek.cert") + sev("platform-chains/rome/oca.cert") + sev("platform-chains/rome/pek.cert")
        let bad = try SEVCLI.run([
            "sev", "verify-chain", "--pdh", pdhB64, "--cert-chain", try SEVCLI.write(Base64.encode(swapped), "swapped.b64", in: dir),
            "--roots", sevPath("amd-roots"), "--json",
        ])
        #expect(bad.status != 0)
    }

    /// A broken link: the first failing link is named in the JSON error and on stdout.
    @Test(
        "broken chains exit 1 and name the failing link",
        arguments: [
            // PDH from Naples with the Rome PEK: the PEK's signature on this PDH does not verify.
            ("naples-pdh", "PEK → PDH"),
            // A flipped byte in the PDH's signature.
            ("pdh-signature-bit", "PEK → PDH"),
            // A flipped signed byte of the PEK (API minor): both its OCA and CEK signatures break; OCA is checked first.
            ("pek-signed-byte", "OCA → PEK"),
            // The Naples OCA (self-signed, but it did not sign the Rome PEK).
            ("naples-oca", "OCA → PEK"),
        ])
    func brokenChain(variant: String, link: String) throws {
        let dir = try SEVCLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        var certs: [String: [UInt8]] = [:]
        for name in ["pdh", "pek", "oca", "cek"] { certs[name] = try sev("platform-chains/rome/\(name).cert") }
        switch variant {
        case "naples-pdh": certs["pdh"] = try sev("platform-chains/naples/pdh.cert")
        case "naples-oca": certs["oca"] = try sev("platform-chains/naples/oca.cert")
        case "pdh-signature-bit": certs["pdh"]?[0x41C + 5] ^= 0x01  // SIG1 R, little-endian
        case "pek-signed-byte": certs["pek"]?[0x05] ^= 0x01  // API_MINOR
        default: Issue.record("unknown variant \(variant)")
        }
        for (name, bytes) in certs { _ = try SEVCLI.write(bytes, "\(name).cert", in: dir) }
        let result = try SEVCLI.run(["sev", "verify-chain", "--platform", dir.path, "--roots", sevPath("amd-roots"), "--json"])
        #expect(result.status == 1, "\(variant): \(result.stdout)\(result.stderr)")
        let json = try result.json()
        #expect(json["verified"] as? Bool == false)
        #expect(json["generation"] == nil || json["generation"] is NSNull)
        let error = try #require(json["error"] as? [String: Any])
        #expect(error["field"] as? String == link, "\(variant): \(error)")
        #expect((error["code"] as? String)?.isEmpty == false)

        let text = try SEVCLI.run(["sev", "verify-chain", "--platform", dir.path, "--roots", sevPath("amd-roots")])
        #expect(text.status == 1)
        #expect(text.stdout.contains("NOT verified: \(link)"), "\(text.stdout)")
    }

    @Test("missing files exit 2; garbage base64, truncated, off-curve or RSA-keyed certificates and a short cert-chain exit 1")
    func badInput() throws {
        let dir = try SEVCLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let roots = sevPath("amd-roots")
        #expect(try SEVCLI.run(["sev", "verify-chain", "--platform", "/nonexistent", "--roots", roots]).status == 2)

        for name in ["pdh", "pek", "oca", "cek"] {
            var bytes = try sev("platform-chains/rome/\(name).cert")
            if name == "pek" { bytes.removeLast(100) }
            _ = try SEVCLI.write(bytes, "\(name).cert", in: dir)
        }
        let truncated = try SEVCLI.run(["sev", "verify-chain", "--platform", dir.path, "--roots", roots])
        #expect(truncated.status == 1, "\(truncated.stdout)\(truncated.stderr)")
        #expect(truncated.stderr.contains("pek.cert"))

        let garbage = try SEVCLI.write("this is not base64 !!", "pdh.b64", in: dir)
        let chain = try SEVCLI.write(Base64.encode([UInt8](repeating: 0, count: 100)), "chain.b64", in: dir)
        // A PDH that is neither raw nor base64 was read and is not a certificate: malformed evidence, as a short one.
        #expect(try SEVCLI.run(["sev", "verify-chain", "--pdh", garbage, "--cert-chain", chain, "--roots", roots]).status == 1)
        let pdh = sevPath("platform-chains/rome/pdh.cert")
        let shortChain = try SEVCLI.run(["sev", "verify-chain", "--pdh", pdh, "--cert-chain", chain, "--roots", roots])
        #expect(shortChain.status == 1, "\(shortChain.stdout)\(shortChain.stderr)")
        // A PEK whose public key is not a P-384 point is malformed evidence (exit 1), not a broken signature.
        var offCurve = try sev("platform-chains/rome/pek.cert")
        offCurve[0x14 + 8] ^= 0x01  // QX
        _ = try SEVCLI.write(offCurve, "pek.cert", in: dir)
        let notOnCurve = try SEVCLI.run(["sev", "verify-chain", "--platform", dir.path, "--roots", roots])
        #expect(notOnCurve.status == 1, "\(notOnCurve.stdout)\(notOnCurve.stderr)")
        #expect(notOnCurve.stderr.contains("pek.cert"))
        // An RSA-keyed PEK: a typed unsupportedAlgorithm error naming the file.
        var rsa = try sev("platform-chains/rome/pek.cert")
        rsa[0x0C] = 0x01  // PUBKEY_ALGO = RSA_SHA256
        _ = try SEVCLI.write(rsa, "pek.cert", in: dir)
        let rsaKey = try SEVCLI.run(["sev", "verify-chain", "--platform", dir.path, "--roots", roots])
        #expect(rsaKey.status == 1, "\(rsaKey.stdout)\(rsaKey.stderr)")
        #expect(rsaKey.stderr.contains("pek.cert") && rsaKey.stderr.contains("unsupportedAlgorithm"), "\(rsaKey.stderr)")
        // A roots folder without ark.cert/ask.cert.
        #expect(try SEVCLI.run(["sev", "verify-chain", "--platform", sevPath("platform-chains/rome"), "--roots", dir.path]).status == 2)
        // Usage errors never exit 0.
        #expect(try SEVCLI.run(["sev", "verify-chain", "--roots", roots]).status == 2)
        #expect(try SEVCLI.run(["sev", "verify-chain", "--pdh", pdh, "--roots", roots]).status != 0)
    }
}

// MARK: - measure / check-measurement

/// One cross-check or known-answer launch with its expected values from sev.md §8–§9.
struct CLIMeasureVector: Sendable, CustomTestStringConvertible {
    let id: String
    let arguments: [String]
    let launchDigest: String
    /// base64 MEASURE ‖ MNONCE, when the vector has one.
    let sevMeasurement: String?
    let tik: String?
    let nonce: String?
    let version: (String, String, String)?
    var testDescription: String { id }

    static let crosscheckVersion = ("1", "51", "3")
    static let crosscheckNonce = "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf"
    static var fw: String { sevPath("crosscheck/synthetic-ovmf.fd") }
    static var kernel: [String] {
        [
            "--kernel", sevPath("crosscheck/synthetic-vmlinuz"), "--initrd", sevPath("crosscheck/synthetic-initrd"), "--cmdline",
            "console=ttyS0 root=/dev/vda1 quiet",
        ]
    }

    static func v(_ id: String, _ args: [String], ld: String, b64: String) -> CLIMeasureVector {
        CLIMeasureVector(
            id: id, arguments: ["--firmware", fw] + args, launchDigest: ld, sevMeasurement: b64, tik: sevPath("crosscheck/tik.bin"),
            nonce: crosscheckNonce, version: crosscheckVersion)
    }

    /// sev.md §9 V1–V7 (virt-qemu-sev-validate 11.3.0 printed "OK: Looks good to me" for each), with V6's INIT2
    /// VMSAs from sev-snp-measure reproduced by `--vmsa-variant init2`.
    static var crosscheck: [CLIMeasureVector] {
        let es = ["--policy", "7", "--cpu-family", "25", "--cpu-model", "1", "--cpu-stepping", "1"]
        return [
            v(
                "V1", ["--policy", "3"], ld: "5421f1b1d66808c1e1e6c317d207ed4926a839117e4c065442ee7870127e81d8",
                b64: "+EnKk8xlnLaxs1cxoLna1MbNummkYIKsZPbywAZyZbagoaKjpKWmp6ipqqusra6v"),
            v(
                "V2", kernel + ["--policy", "3"], ld: "084c794ba802aa78c5768fe99198dd42b9c3caaadb434e9e81c73cea21126a41",
                b64: "dvDahftfrEkOj2xMpOM/8pyH+biOoGjAt2VgUshGjN6goaKjpKWmp6ipqqusra6v"),
            v(
                "V3", ["--kernel", sevPath("crosscheck/synthetic-vmlinuz"), "--policy", "3"],
                ld: "304e0d67c0dd44a4f711d25422955fb580cb15bd9dd971a10686c141310ac055",
                b64: "cwUCgRFXJ/IyxlcwaWF/S4Lrq+IqDGwosSEAk8NgfN+goaKjpKWmp6ipqqusra6v"),
            v(
                "V4", es + ["--vcpus", "1"], ld: "030d552344484a8fb25635d1aa86d8b75df22ab5874937e9bea68b0b309a396c",
                b64: "wm2pgWL/VZfXKFvtWsWFynP2V2CDdnzm2nuM+v/6We+goaKjpKWmp6ipqqusra6v"),
            v(
                "V5", kernel + es + ["--vcpus", "4"], ld: "54da450ffd1be77f0c8d65e0f2b0f55cc9135f06e4d12b25c46a957a2b1aa4bd",
                b64: "TAz10f5AYYMeH3tP4r9QJErWDsMs4Dpg+6qsQ7wCV1ygoaKjpKWmp6ipqqusra6v"),
            v(
                "V6", kernel + es + ["--vcpus", "4", "--vmsa-variant", "init2"],
                ld: "74253f11420ff6652422a37ee12458bad40273b06ca3a503032e6eeb8d81610a",
                b64: "uCsvTQ+vUZue5RiYz9HYluKOImNDmbhiYttZpKTXc3igoaKjpKWmp6ipqqusra6v"),
            v(
                "V7", ["--policy", "7", "--vcpus", "2", "--cpu-family", "23", "--cpu-model", "49", "--cpu-stepping", "0"],
                ld: "844d6a6eb6f9823a5a5bc7b3044cf938c11c20941c5e99a2f661f176d073c716",
                b64: "lFo9HqWVqnuv1V9lSqhi/tiy1MKz9COjgheS+26xzZ+goaKjpKWmp6ipqqusra6v"),
        ]
    }

    /// sevctl `measurementbuild.rs` #2–#4 (K5–K7): the expected sev-measurement; the nonce is its last 16 bytes.
    static var sevctl: [CLIMeasureVector] {
        let firmware = sevPath("sevctl-kat/OVMF.amdsev.fd_trimmed_edk2-ovmf-20220126gitbb1bba3d77-4.el9")
        let tik = sevPath("sevctl-kat/measurement/tik1.bin")
        let nonce = "c313fab511c216b1505b1b2ea9903c40"  // base64 wxP6tRHCFrFQWxsuqZA8QA==
        // K7's nonce is the last 16 bytes of its expected value (sev.md §8).
        func k(_ id: String, _ args: [String], _ b64: String, _ version: (String, String, String)) -> CLIMeasureVector {
            CLIMeasureVector(
                id: id, arguments: ["--firmware", firmware] + args, launchDigest: "", sevMeasurement: b64, tik: tik,
                nonce: id == "K7" ? Hex.encode(Array(CustosSEVTests.b64(b64).suffix(16))) : nonce, version: version)
        }
        let kernel = [
            "--kernel", sevPath("sevctl-kat/measurement/vmlinuz-fake"), "--initrd", sevPath("sevctl-kat/measurement/initrd-fake"),
            "--cmdline", "foo bar baz fake kernel=cmdline",
        ]
        return [
            k("K5", ["--policy", "3"], "oMDewIouJSpbpNRHj7Mk3p08H2dPZQdsZMU14qIymBnDE/q1EcIWsVBbGy6pkDxA", ("1", "40", "40")),
            k("K6", kernel + ["--policy", "3"], "h3auYbWQnVW7EGLWN4Hf9SN0oEYMPU2sK4bLnefWPwvDE/q1EcIWsVBbGy6pkDxA", ("1", "40", "40")),
            k(
                "K7", ["--policy", "5", "--vcpus", "4", "--cpu-family", "25", "--cpu-model", "1", "--cpu-stepping", "1"],
                "/o0nzDKE5XgtVnUZWPhUea/WZYrTKLExR7KCwuMdbActvpWfXTFk21KMZIAAhQny", ("1", "49", "6")),
        ]
    }

    /// sev-snp-measure launch digests (K11–K15; K14/K15 are INIT2 VMSAs on EPYC-v4 23/1/2).
    static var sevSnpMeasure: [CLIMeasureVector] {
        let amdsev = sevPath("ovmf-tails/ovmf_AmdSev_suffix.bin")
        func ld(_ id: String, _ args: [String], _ digest: String) -> CLIMeasureVector {
            CLIMeasureVector(id: id, arguments: args, launchDigest: digest, sevMeasurement: nil, tik: nil, nonce: nil, version: nil)
        }
        let epycV4 = ["--policy", "7", "--cpu-family", "23", "--cpu-model", "1", "--cpu-stepping", "2", "--vmsa-variant", "init2"]
        let null = ["--kernel", "/dev/null", "--initrd", "/dev/null"]
        return [
            ld(
                "K11", ["--firmware", amdsev, "--policy", "3"] + null + ["--cmdline", "console=ttyS0 loglevel=7"],
                "82a3ee5d537c3620628270c292ae30cb40c3c878666a7890ee7ef2a08fb535ff"),
            ld(
                "K12", ["--firmware", amdsev, "--policy", "3", "--kernel", "/dev/null"],
                "77f613d7bbcdf12a73782ea9e88b0172aeda50d1a54201cb903594ff52846898"),
            ld(
                "K13", ["--firmware", sevPath("ovmf-tails/ovmf_OvmfX64_suffix.bin"), "--policy", "3"],
                "b4c021e085fb83ceffe6571a3d357b4a98773c83c474e47f76c876708fe316da"),
            ld(
                "K14", ["--firmware", amdsev] + null + ["--cmdline", ""] + epycV4 + ["--vcpus", "1"],
                "13810ae661ea11e2bb205621f582fee268f0367c8f97bc297b7fadef3e12002c"),
            ld(
                "K15", ["--firmware", amdsev] + null + ["--cmdline", ""] + epycV4 + ["--vcpus", "4"],
                "0dccbcaba8e90b261bd0d2e1863a2f9da714768b7b2a19363cd6ae35aa90de91"),
        ]
    }

    var versionArguments: [String] {
        guard let version else { return [] }
        return ["--api-major", version.0, "--api-minor", version.1, "--build-id", version.2]
    }
}

@Suite(
    "custos sev measure and check-measurement",
    Requirement.skipOrFail(unless: SEVCLI.isBuilt && testDataPresent, "needs the custos executable (swift build) and the vendor testdata"))
struct SEVMeasureCLITests {
    @Test(
        "measure --json reproduces the peers' launch digests and sev-measurements",
        arguments: CLIMeasureVector.crosscheck + CLIMeasureVector.sevctl + CLIMeasureVector.sevSnpMeasure)
    func measure(_ vector: CLIMeasureVector) throws {
        var args = ["sev", "measure"] + vector.arguments + vector.versionArguments + ["--json"]
        if let tik = vector.tik, let nonce = vector.nonce { args += ["--tik", tik, "--nonce", nonce] }
        let result = try SEVCLI.run(args)
        #expect(result.status == 0, "\(vector.id): \(result.stdout)\(result.stderr)")
        let json = try result.json()
        if !vector.launchDigest.isEmpty { #expect(json["launchDigest"] as? String == vector.launchDigest, "\(vector.id)") }
        if let expected = vector.sevMeasurement {
            #expect(json["sevMeasurement"] as? String == expected, "\(vector.id)")
            #expect(json["measurement"] as? String == Hex.encode(Array(b64(expected).prefix(32))), "\(vector.id)")
        } else {
            #expect(json["measurement"] == nil || json["measurement"] is NSNull)
        }
    }

    @Test(
        "check-measurement accepts each peer's sev-measurement (exit 0, verified JSON)",
        arguments: CLIMeasureVector.crosscheck + CLIMeasureVector.sevctl)
    func checkAccepts(_ vector: CLIMeasureVector) throws {
        let sevMeasurement = try #require(vector.sevMeasurement)
        let tik = try #require(vector.tik)
        let result = try SEVCLI.run(
            ["sev", "check-measurement", "--sev-measurement", sevMeasurement, "--tik", tik] + vector.arguments + vector.versionArguments
                + ["--json"])
        #expect(result.status == 0, "\(vector.id): \(result.stdout)\(result.stderr)")
        let json = try result.json()
        #expect(json["verified"] as? Bool == true)
        if !vector.launchDigest.isEmpty { #expect(json["launchDigest"] as? String == vector.launchDigest) }
    }

    /// Each change to the launch a host could make (or a wrong owner input) is refused with exit 1.
    @Test(
        "check-measurement rejects V5's measurement for any other launch (exit 1)",
        arguments: [
            ["--vcpus", "5"],  // one more vCPU
            ["--vcpus", "3"],
            ["--cmdline", "console=ttyS0 root=/dev/vda2 quiet"],  // different cmdline
            ["--cpu-model", "17"],  // another guest CPU signature
            ["--vmsa-variant", "init2"],  // INIT2 VMSAs
            ["--api-minor", "52"],  // another firmware version
            ["--policy", "0x17"],  // policy changed by the host
            ["--tik", "tek"],  // the wrong key
            ["--initrd", "vmlinuz"],  // initrd swapped
        ])
    func checkRejects(_ change: [String]) throws {
        let v5 = try #require(CLIMeasureVector.crosscheck.first { $0.id == "V5" })
        var options: [String: String] = [:]
        var order: [String] = []
        let base = v5.arguments + v5.versionArguments + ["--tik", sevPath("crosscheck/tik.bin")]
        for index in stride(from: 0, to: base.count, by: 2) {
            options[base[index]] = base[index + 1]
            order.append(base[index])
        }
        var value = change[1]
        if value == "tek" { value = sevPath("crosscheck/tek.bin") }
        if value == "vmlinuz" { value = sevPath("crosscheck/synthetic-vmlinuz") }
        if options[change[0]] == nil { order.append(change[0]) }
        options[change[0]] = value
        let args = order.flatMap { [$0, options[$0] ?? ""] }
        let sevMeasurement = try #require(v5.sevMeasurement)
        let result = try SEVCLI.run(["sev", "check-measurement", "--sev-measurement", sevMeasurement] + args + ["--json"])
        #expect(result.status == 1, "\(change): \(result.stdout)\(result.stderr)")
        let json = try result.json()
        #expect(json["verified"] as? Bool == false)
        let error = try #require(json["error"] as? [String: Any])
        #expect((error["message"] as? String)?.isEmpty == false)
    }

    @Test("a tampered sev-measurement (one flipped bit of MEASURE or of MNONCE) exits 1; a short one exits 1 with a typed error")
    func tamperedMeasurement() throws {
        let v1 = try #require(CLIMeasureVector.crosscheck.first { $0.id == "V1" })
        let good = b64(try #require(v1.sevMeasurement))
        for position in [0, 31, 32, 47] {
            var bad = good
            bad[position] ^= 0x80
            let result = try SEVCLI.run(
                ["sev", "check-measurement", "--sev-measurement", Base64.encode(bad), "--tik", sevPath("crosscheck/tik.bin")] + v1.arguments
                    + v1.versionArguments)
            #expect(result.status == 1, "byte \(position): \(result.stdout)\(result.stderr)")
            #expect(result.stdout.contains("NOT verified"))
        }
        let short = try SEVCLI.run(
            [
                "sev", "check-measurement", "--sev-measurement", Base64.encode(Array(good.prefix(40))), "--tik",
                sevPath("crosscheck/tik.bin"),
            ]
                + v1.arguments + v1.versionArguments + ["--json"])
        #expect(short.status == 1)
        let error = try #require(try short.json()["error"] as? [String: Any])
        #expect(error["code"] as? String == "truncated")
    }

    @Test("bad launch inputs exit 2 or a usage error, never 0")
    func badInputs() throws {
        let fw = CLIMeasureVector.fw
        // Kernel hashes need the AmdSev hashes area: OvmfX64 has none (typed error, exit 2).
        let noHashes = try SEVCLI.run([
            "sev", "measure", "--firmware", sevPath("ovmf-tails/ovmf_OvmfX64_suffix.bin"), "--kernel", "/dev/null", "--policy", "3",
        ])
        #expect(noHashes.status == 2, "\(noHashes.stdout)\(noHashes.stderr)")
        #expect(noHashes.stderr.contains("hashes"))
        // SEV-ES with a firmware that has no footer at all.
        let dir = try SEVCLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let plain = try SEVCLI.write([UInt8](repeating: 0xFF, count: 8192), "plain.fd", in: dir)
        let noFooter = try SEVCLI.run([
            "sev", "measure", "--firmware", plain, "--policy", "7", "--cpu-family", "25", "--cpu-model", "1", "--cpu-stepping", "1",
        ])
        #expect(noFooter.status == 2, "\(noFooter.stdout)\(noFooter.stderr)")
        // A missing firmware file.
        #expect(try SEVCLI.run(["sev", "measure", "--firmware", "/nonexistent", "--policy", "3"]).status == 2)
        // A TIK of the wrong size.
        let measureWithBadTIK = try SEVCLI.run([
            "sev", "measure", "--firmware", fw, "--policy", "3", "--tik", sevPath("crosscheck/tk.bin"), "--nonce",
            CLIMeasureVector.crosscheckNonce, "--api-major", "1", "--api-minor", "51", "--build-id", "3",
        ])
        #expect(measureWithBadTIK.status == 2)
        // Usage errors: SEV-ES without a CPU signature, a short nonce, a TIK without the firmware version, 0 vCPUs.
        for args in [
            ["--policy", "7"],
            [
                "--policy", "3", "--tik", sevPath("crosscheck/tik.bin"), "--nonce", "a0a1", "--api-major", "1", "--api-minor", "1",
                "--build-id", "1",
            ],
            ["--policy", "3", "--tik", sevPath("crosscheck/tik.bin"), "--nonce", CLIMeasureVector.crosscheckNonce],
            ["--policy", "7", "--vcpus", "0", "--cpu-family", "25", "--cpu-model", "1", "--cpu-stepping", "1"],
            ["--policy", "banana"],
            ["--policy", "3", "--initrd", sevPath("crosscheck/synthetic-initrd")],
        ] {
            let result = try SEVCLI.run(["sev", "measure", "--firmware", fw] + args)
            #expect(result.status != 0, "\(args)")
            #expect(result.stdout.isEmpty, "\(args): \(result.stdout)")
        }
    }
}

// MARK: - a firmware file that shrinks while it is hashed

@Suite(
    "custos sev measure with a shrinking firmware file",
    Requirement.skipOrFail(unless: SEVCLI.isBuilt && testDataPresent, "needs the custos executable (swift build) and the vendor testdata"))
struct SEVShrinkingFirmwareTests {
    /// The firmware is hashed from a mapping; truncating the file under it makes the next access fault (SIGBUS). Whatever
    /// the moment of the truncation — before the file is opened, while it is mapped, or mid-hash — the command must end
    /// with exit status 2 and an error line, never be killed by a signal. A 256 MiB image (0xFF padding in front of the
    /// real AmdSev tail, footer at the end) makes the hashing window long enough for the truncation to land in it.
    @Test("truncation while measuring is an error (exit 2), not a crash")
    func truncatedWhileHashing() throws {
        let dir = try SEVCLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let tail = try TestData.bytes("sev/ovmf-tails/ovmf_AmdSev_suffix.bin")
        let url = dir.appendingPathComponent("big.fd")
        FileManager.default.createFile(atPath: url.path, contents: nil)
        let handle = try FileHandle(forWritingTo: url)
        let padding = Data(repeating: 0xff, count: 1 << 20)
        for _ in 0..<(256 - 1) { handle.write(padding) }
        handle.write(Data(repeating: 0xff, count: (1 << 20) - tail.count))
        handle.write(Data(tail))
        try handle.close()

        let process = Process()
        process.executableURL = CustosExecutable.url
        process.arguments = [
            "sev", "measure", "--firmware", url.path, "--policy", "7", "--vcpus", "1", "--cpu-family", "25", "--cpu-model", "1",
            "--cpu-stepping", "1",
        ]
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        // Truncate as soon as the file is mapped (it shows in /proc/PID/maps), so that hashing 256 MiB is under way.
        let maps = "/proc/\(process.processIdentifier)/maps"
        var mapped = false
        for _ in 0..<5000 where !mapped {
            mapped = (try? String(contentsOfFile: maps, encoding: .utf8))?.contains(url.path) == true
            if !mapped { usleep(1000) }
        }
        #expect(truncate(url.path, 0) == 0)
        let stderr = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(mapped, "the firmware was never seen mapped")
        #expect(process.terminationReason == .exit, "killed by signal \(process.terminationStatus)")
        #expect(process.terminationStatus == 2, "\(stderr)")
        #expect(stderr.contains("the firmware file shrank while it was being hashed"), "\(stderr)")
    }
}

// MARK: - session

@Suite(
    "custos sev session",
    Requirement.skipOrFail(unless: SEVCLI.isBuilt && testDataPresent, "needs the custos executable (swift build) and the vendor testdata"))
struct SEVSessionCLITests {
    func mode(_ path: String) throws -> Int {
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        return try #require(attributes[.posixPermissions] as? Int)
    }

    @Test("session against the real Rome PDH (chain verified first): godh/session base64 and 0600 TEK/TIK")
    func realPDH() throws {
        let dir = try SEVCLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let chain = try sev("platform-chains/rome/pek.cert") + sev("platform-chains/rome/oca.cert") + sev("platform-chains/rome/cek.cert")
        let chainFile = try SEVCLI.write(Base64.encode(chain), "cert-chain.b64", in: dir)
        let out = dir.appendingPathComponent("out").path
        let result = try SEVCLI.run([
            "sev", "session", "--pdh", sevPath("platform-chains/rome/pdh.cert"), "--cert-chain", chainFile, "--roots",
            sevPath("amd-roots"), "--policy", "0x7", "--out", out, "--json",
        ])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        let json = try result.json()
        #expect(json["generation"] as? String == "rome")

        let godhText = try String(contentsOfFile: "\(out)/godh.b64", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let sessionText = try String(contentsOfFile: "\(out)/session.b64", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(json["godh"] as? String == godhText)
        #expect(json["session"] as? String == sessionText)
        // sev.md §2: GODH = a 2084-byte SEV certificate, version 1, usage 0x1003, algo 0x3, curve 2; session = 128 bytes.
        let godh = try Base64.decode(godhText)
        #expect(godh.count == 2084)
        #expect(Array(godh[0..<4]) == [1, 0, 0, 0])
        #expect(Array(godh[8..<16]) == [0x03, 0x10, 0, 0, 0x03, 0, 0, 0])
        #expect(Array(godh[0x10..<0x14]) == [2, 0, 0, 0])
        #expect(try Base64.decode(sessionText).count == 128)

        for key in ["tek.bin", "tik.bin"] {
            let path = "\(out)/\(key)"
            #expect(try mode(path) == 0o600, "\(key)")
            #expect(try Data(contentsOf: URL(fileURLWithPath: path)).count == 16)
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: "\(out)/tek.bin")) != Data(contentsOf: URL(fileURLWithPath: "\(out)/tik.bin")))

        // A second session gets a fresh GODH and fresh TEK/TIK (sev.md §2 step 4), overwriting the old files.
        let again = try SEVCLI.run(["sev", "session", "--pdh", sevPath("platform-chains/rome/pdh.cert"), "--policy", "7", "--out", out])
        #expect(again.status == 0, "\(again.stdout)\(again.stderr)")
        let godh2 = try String(contentsOfFile: "\(out)/godh.b64", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(godh2 != godhText)
        #expect(try mode("\(out)/tik.bin") == 0o600)
    }

    @Test("session refuses a chain that does not verify (exit 1) and a PDH that is not a PDH (exit 2)")
    func refusals() throws {
        let dir = try SEVCLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let romeChain =
            try sev("platform-chains/rome/pek.cert") + sev("platform-chains/rome/oca.cert") + sev("platform-chains/rome/cek.cert")
        let chainFile = try SEVCLI.write(romeChain, "cert-chain.bin", in: dir)
        let out = dir.appendingPathComponent("out").path
        let wrongPDH = try SEVCLI.run([
            "sev", "session", "--pdh", sevPath("platform-chains/naples/pdh.cert"), "--cert-chain", chainFile, "--roots",
            sevPath("amd-roots"), "--policy", "7", "--out", out,
        ])
        #expect(wrongPDH.status == 1, "\(wrongPDH.stdout)\(wrongPDH.stderr)")
        #expect(wrongPDH.stderr.contains("PEK → PDH"))
        #expect(!FileManager.default.fileExists(atPath: "\(out)/tik.bin"))

        // The PEK is a signing key, not an ECDH key.
        let notPDH = try SEVCLI.run(["sev", "session", "--pdh", sevPath("platform-chains/rome/pek.cert"), "--policy", "7", "--out", out])
        #expect(notPDH.status == 2, "\(notPDH.stdout)\(notPDH.stderr)")
        #expect(!FileManager.default.fileExists(atPath: "\(out)/tik.bin"))
        let garbage = try SEVCLI.write("garbage", "pdh.b64", in: dir)
        // "garbage" decodes as base64 to a few bytes: a malformed PDH is rejected evidence (exit 1, as in verify-chain).
        #expect(try SEVCLI.run(["sev", "session", "--pdh", garbage, "--policy", "7", "--out", out]).status == 1)
    }
}

// MARK: - secret, and the whole flow through the CLI against the emulated firmware

@Suite(
    "custos sev secret and the CLI guest-owner flow",
    Requirement.skipOrFail(unless: SEVCLI.isBuilt && testDataPresent, "needs the custos executable (swift build) and the vendor testdata"))
struct SEVSecretCLITests {
    /// The secret table S1 of sev.md §9 (68 bytes + 12 bytes libvirt padding), written out from the spec.
    static let s1Table = hex(
        "42f5741edd71664d963eef4287ff173b" + "44000000" + "e5696873f084734992ec06879ce3da0b" + "30000000"
            + Hex.encode(Array("correct horse battery staple".utf8)) + String(repeating: "00", count: 12))

    /// HDR_MAC per sev.md §5.2, spelled out here (not Custos's `SecretPacket.macInput`).
    static func headerMAC(tik: [UInt8], iv: [UInt8], ciphertext: [UInt8], measure: [UInt8]) -> [UInt8] {
        func le32(_ v: Int) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v >> 16 & 0xFF), UInt8(v >> 24 & 0xFF)] }
        let input = [0x01] + le32(0) + iv + le32(ciphertext.count) + le32(ciphertext.count) + ciphertext + measure
        return HMAC.authenticationCode(.sha256, key: tik, data: input)
    }

    @Test("secret with the cross-check keys and V1's measurement: the packet decrypts to the spec's S1 table and its MAC verifies")
    func s1() throws {
        let dir = try SEVCLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let v1 = "+EnKk8xlnLaxs1cxoLna1MbNummkYIKsZPbywAZyZbagoaKjpKWmp6ipqqusra6v"
        var packets: [(String, String)] = []
        for _ in 0..<2 {
            let result = try SEVCLI.run([
                "sev", "secret", "--tek", sevPath("crosscheck/tek.bin"), "--tik", sevPath("crosscheck/tik.bin"), "--measurement", v1,
                "--secret", "luks-key:" + sevPath("crosscheck/secret-luks.txt"), "--firmware", sevPath("crosscheck/synthetic-ovmf.fd"),
                "--json",
            ])
            #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
            let json = try result.json()
            packets.append((try #require(json["header"] as? String), try #require(json["secret"] as? String)))
        }
        for (headerText, secretText) in packets {
            let header = try Base64.decode(headerText)
            let ciphertext = try Base64.decode(secretText)
            #expect(header.count == 52)
            #expect(Array(header[0..<4]) == [0, 0, 0, 0])
            let iv = Array(header[4..<20])
            let plain = try AES.CTR.apply(key: try sev("crosscheck/tek.bin"), iv: iv, data: ciphertext)
            #expect(Hex.encode(plain) == Hex.encode(Self.s1Table))
            let measure = Array(b64(v1).prefix(32))
            #expect(
                Array(header[20..<52])
                    == Self.headerMAC(tik: try sev("crosscheck/tik.bin"), iv: iv, ciphertext: ciphertext, measure: measure))
        }
        // A fresh IV per packet.
        #expect(packets[0].0.prefix(30) != packets[1].0.prefix(30))
    }

    @Test("secret refuses a table too big for the firmware's secret area, a bad GUID and a bad measurement")
    func refusals() throws {
        let base = ["sev", "secret", "--tek", sevPath("crosscheck/tek.bin"), "--tik", sevPath("crosscheck/tik.bin")]
        let v1 = "+EnKk8xlnLaxs1cxoLna1MbNummkYIKsZPbywAZyZbagoaKjpKWmp6ipqqusra6v"
        // secret3.txt: 16343 bytes, far more than the 3 KiB OVMF secret area (sev.md §5.1, trap 11).
        let tooBig = try SEVCLI.run(
            base + [
                "--measurement", v1, "--secret", "luks-key:" + sevPath("sevctl-kat/secret/secret3.txt"), "--firmware",
                sevPath("crosscheck/synthetic-ovmf.fd"),
            ])
        #expect(tooBig.status == 2, "\(tooBig.stdout)\(tooBig.stderr)")
        #expect(tooBig.stdout.isEmpty)
        let badGUID = try SEVCLI.run(base + ["--measurement", v1, "--secret", "not-a-guid:" + sevPath("crosscheck/secret-luks.txt")])
        #expect(badGUID.status != 0)
        #expect(badGUID.stdout.isEmpty)
        let badMeasurement = try SEVCLI.run(
            base + ["--measurement", "AAAA", "--secret", "luks-key:" + sevPath("crosscheck/secret-luks.txt")])
        #expect(badMeasurement.status != 0)
        let noArea = try SEVCLI.run(
            base + [
                "--measurement", v1, "--secret", "luks-key:" + sevPath("crosscheck/secret-luks.txt"), "--firmware",
                sevPath("ovmf-tails/ovmf_OvmfX64_suffix.bin"),
            ])
        #expect(noArea.status == 2, "\(noArea.stdout)\(noArea.stderr)")
    }

    /// The owner's whole flow through the CLI, the platform side in the emulated firmware:
    /// verify-chain → session → (host launch) → check-measurement → secret → the guest reads the secret.
    @Test("verify-chain → session → check-measurement → secret, accepted by the emulated firmware", .timeLimit(.minutes(10)))
    func wholeFlow() throws {
        let fw = try #require(sharedFirmware)
        let dir = try SEVCLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let roots = dir.appendingPathComponent("roots/emulated")
        try FileManager.default.createDirectory(at: roots, withIntermediateDirectories: true)
        _ = try SEVCLI.write(fw.roots.ark.bytes, "ark.cert", in: roots)
        _ = try SEVCLI.write(fw.roots.ask.bytes, "ask.cert", in: roots)
        let info = fw.nodeSEVInfo
        let pdh = try SEVCLI.write(info.pdh, "pdh.b64", in: dir)
        let chain = try SEVCLI.write(info.certChain, "cert-chain.b64", in: dir)

        let verify = try SEVCLI.run(["sev", "verify-chain", "--pdh", pdh, "--cert-chain", chain, "--roots", roots.path, "--json"])
        #expect(verify.status == 0, "\(verify.stdout)\(verify.stderr)")
        #expect(try verify.json()["generation"] as? String == "emulated")
        // The emulated platform does not verify under AMD's real roots.
        let real = try SEVCLI.run(["sev", "verify-chain", "--pdh", pdh, "--cert-chain", chain, "--roots", sevPath("amd-roots")])
        #expect(real.status == 1)

        let out = dir.appendingPathComponent("session").path
        let session = try SEVCLI.run([
            "sev", "session", "--pdh", pdh, "--cert-chain", chain, "--roots", roots.path, "--policy", "0x7", "--out", out, "--json",
        ])
        #expect(session.status == 0, "\(session.stdout)\(session.stderr)")
        let godh = try Base64.decode(
            try String(contentsOfFile: "\(out)/godh.b64", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines))
        let blob = try Base64.decode(
            try String(contentsOfFile: "\(out)/session.b64", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines))

        // The host: LAUNCH_START with the owner's blobs (the firmware unwraps TEK/TIK and checks the policy MAC),
        // then QEMU's updates for the synthetic firmware, kernel table and 2 VMSAs.
        #expect(throws: SEVFirmwareError.self) { try fw.launchStart(policy: 0x3, godhCertificate: godh, session: blob) }
        let handle = try fw.launchStart(policy: 0x7, godhCertificate: godh, session: blob)
        let firmware = try sev("crosscheck/synthetic-ovmf.fd")
        let inputs = LaunchInputs(
            firmware: firmware, kernel: try sev("crosscheck/synthetic-vmlinuz"), initrd: try sev("crosscheck/synthetic-initrd"),
            cmdline: "console=ttyS0 root=/dev/vda1 quiet", policy: GuestPolicy(rawValue: 7), vcpus: 2,
            cpuSignature: try CPUSignature(family: 25, model: 1, stepping: 1))
        let digest = try LaunchDigest(inputs)
        try fw.launch(
            handle: handle, firmware: firmware, kernelHashesTable: digest.kernelHashesTable, vmsas: [digest.vmsas[0], digest.vmsas[1]])
        let measurement = Base64.encode(try fw.launchMeasure(handle: handle))

        let launch =
            ["--firmware", sevPath("crosscheck/synthetic-ovmf.fd")] + CLIMeasureVector.kernel + [
                "--policy", "7", "--cpu-family", "25", "--cpu-model", "1", "--cpu-stepping", "1", "--api-major", "\(fw.version.apiMajor)",
                "--api-minor", "\(fw.version.apiMinor)", "--build-id", "\(fw.version.buildID)", "--tik", "\(out)/tik.bin",
            ]
        let wrongCount = try SEVCLI.run(["sev", "check-measurement", "--sev-measurement", measurement] + launch + ["--vcpus", "3"])
        #expect(wrongCount.status == 1)
        let check = try SEVCLI.run(["sev", "check-measurement", "--sev-measurement", measurement] + launch + ["--vcpus", "2", "--json"])
        #expect(check.status == 0, "\(check.stdout)\(check.stderr)")
        #expect(try check.json()["verified"] as? Bool == true)

        let secretFile = try SEVCLI.write("correct horse battery staple", "passphrase", in: dir)
        let other = try SEVCLI.write([0, 1, 2, 3], "other", in: dir)
        let secret = try SEVCLI.run([
            "sev", "secret", "--tek", "\(out)/tek.bin", "--tik", "\(out)/tik.bin", "--measurement", measurement, "--secret",
            "luks-key:\(secretFile)", "--secret", "4c2eb361-7d9b-4cc3-8081-127c90d3d295:\(other)", "--firmware",
            sevPath("crosscheck/synthetic-ovmf.fd"), "--json",
        ])
        #expect(secret.status == 0, "\(secret.stdout)\(secret.stderr)")
        let json = try secret.json()
        let header = try Base64.decode(try #require(json["header"] as? String))
        let payload = try Base64.decode(try #require(json["secret"] as? String))

        // A packet MACed for another measurement (a replay from another launch) is refused by the firmware.
        var otherMeasure = b64(measurement)
        otherMeasure[3] ^= 1
        let replay = try SEVCLI.run([
            "sev", "secret", "--tek", "\(out)/tek.bin", "--tik", "\(out)/tik.bin", "--measurement", Base64.encode(otherMeasure),
            "--secret", "luks-key:\(secretFile)", "--json",
        ])
        #expect(replay.status == 0)
        let replayJSON = try replay.json()
        #expect(throws: SEVFirmwareError.self) {
            try fw.launchSecret(
                handle: handle, header: try Base64.decode(replayJSON["header"] as? String ?? ""),
                payload: try Base64.decode(replayJSON["secret"] as? String ?? ""))
        }

        try fw.launchSecret(handle: handle, header: header, payload: payload)
        try fw.launchFinish(handle: handle)
        let seen = try fw.guestSecrets(handle: handle)
        #expect(seen.count == 2)
        #expect(seen.first?.guid == SecretEntry.luksKeyGUID)
        #expect(seen.first?.data == Array("correct horse battery staple".utf8))
        #expect(seen.last?.data == [0, 1, 2, 3])
    }
}
