import CustosCrypto
import CustosSEV
import CustosTestSupport
import Testing

@Suite("Launch digest and measurement", Requirement.testData)
struct MeasurementTests {
    static let rhelFirmware = "sevctl-kat/OVMF.amdsev.fd_trimmed_edk2-ovmf-20220126gitbb1bba3d77-4.el9"

    @Test("K3: virtee verify() (empty launch, API 0.18 build 15)")
    func k3() throws {
        let measure = try LaunchMeasurement.compute(
            tik: SecretBytes(hex("66320db73158a35a255d051758e95ed4")), version: FirmwareVersion(apiMajor: 0, apiMinor: 0x12, buildID: 0x0f),
            policy: GuestPolicy(rawValue: 0), launchDigest: Digest.sha256([UInt8]()), mnonce: hex("4fbe0bedbad6c86ae8f68971d103e554"))
        #expect(Hex.encode(measure) == "6faab2daae389bcd3405a05d6cafe33c0414f7bedd0bae19ba5f38b7fd1664ea")
    }

    /// sevctl `measurementbuild.rs` #1–#4 (K4–K7): the expected value is base64 MEASURE ‖ MNONCE.
    func sevctlMeasure(_ inputs: LaunchInputs?, digest: [UInt8]? = nil, version: FirmwareVersion, nonce: [UInt8]) throws -> String {
        let ld = try digest ?? LaunchDigest(#require(inputs)).digest
        let policy = inputs?.policy ?? GuestPolicy(rawValue: 3)
        let measure = try LaunchMeasurement.compute(
            tik: SecretBytes(try sev("sevctl-kat/measurement/tik1.bin")), version: version, policy: policy, launchDigest: ld, mnonce: nonce)
        return Base64.encode(measure + nonce)
    }

    @Test("K4–K6: sevctl measurement build (SEV)")
    func sevctlSEV() throws {
        let version = FirmwareVersion(apiMajor: 1, apiMinor: 40, buildID: 40)
        let nonce = b64("wxP6tRHCFrFQWxsuqZA8QA==")
        #expect(
            try sevctlMeasure(nil, digest: b64("xkvRAfyaSizgonxAjZIAkR8TmolUabBKQKb6KJCDDSM="), version: version, nonce: nonce)
                == "lswbxWxI9gckya16JQvdFtpYmNO4b+3inAPpqsgoBI7DE/q1EcIWsVBbGy6pkDxA")
        let firmware = try sev(Self.rhelFirmware)
        #expect(
            try sevctlMeasure(LaunchInputs(firmware: firmware, policy: GuestPolicy(rawValue: 3)), version: version, nonce: nonce)
                == "oMDewIouJSpbpNRHj7Mk3p08H2dPZQdsZMU14qIymBnDE/q1EcIWsVBbGy6pkDxA")
        let k6 = LaunchInputs(
            firmware: firmware, kernel: try sev("sevctl-kat/measurement/vmlinuz-fake"),
            initrd: try sev("sevctl-kat/measurement/initrd-fake"),
            cmdline: "foo bar baz fake kernel=cmdline", policy: GuestPolicy(rawValue: 3))
        #expect(try sevctlMeasure(k6, version: version, nonce: nonce) == "h3auYbWQnVW7EGLWN4Hf9SN0oEYMPU2sK4bLnefWPwvDE/q1EcIWsVBbGy6pkDxA")
    }

    @Test("K7: sevctl SEV-ES, 4 vCPUs, legacy VMSAs")
    func sevctlSEVES() throws {
        let expected = "/o0nzDKE5XgtVnUZWPhUea/WZYrTKLExR7KCwuMdbActvpWfXTFk21KMZIAAhQny"
        let nonce = Array(b64(expected).suffix(16))
        let inputs = LaunchInputs(
            firmware: try sev(Self.rhelFirmware), policy: GuestPolicy(rawValue: 5), vcpus: 4,
            cpuSignature: try CPUSignature(family: 25, model: 1, stepping: 1))
        #expect(try sevctlMeasure(inputs, version: FirmwareVersion(apiMajor: 1, apiMinor: 49, buildID: 6), nonce: nonce) == expected)
    }

    @Test("K10: VMSAs for 25/1/1 equal sevctl's vmsa0.bin/vmsa1.bin (legacy) and sev-snp-measure's (INIT2)")
    func vmsaBytes() throws {
        let footer = try OVMFFooter(firmware: try sev(Self.rhelFirmware))
        let reset = try #require(footer.sevESResetAddress)
        #expect(reset == 0x0080_B004)
        let sig = try CPUSignature(family: 25, model: 1, stepping: 1)
        let bsp = VMSA.page(isBSP: true, apResetAddress: reset, signature: sig, variant: .legacy)
        let ap = VMSA.page(isBSP: false, apResetAddress: reset, signature: sig, variant: .legacy)
        #expect(bsp == (try sev("sevctl-kat/vmsa0.bin")))
        #expect(ap == (try sev("sevctl-kat/vmsa1.bin")))
        #expect(Hex.encode(Digest.sha256(bsp)) == "f8b52f775502472e5797d2674d9de21f6abc05dc05e9bc49cbb7b6a13688d5e7")
        #expect(Hex.encode(Digest.sha256(ap)) == "bcee5cb289f72882da17abd8dca5e8a7e9f8e2033e7ad96b4db0ab1a383a6487")
        let init2 = VMSA.page(isBSP: true, apResetAddress: reset, signature: sig, variant: .init2)
        #expect(init2 == (try sev("crosscheck/vmsa-ssm/vmsa0.bin")))
        #expect(
            Hex.encode(Digest.sha256(VMSA.page(isBSP: false, apResetAddress: reset, signature: sig, variant: .init2)))
                == "a14b28cfdc8d4d0e2884708ff279ca1204b7e45d45970c38c32fcd3374ba9f4f")
        // Rome legacy (sev.md §9).
        let rome = try CPUSignature(family: 23, model: 49, stepping: 0)
        #expect(
            Hex.encode(Digest.sha256(VMSA.page(isBSP: true, apResetAddress: reset, signature: rome, variant: .legacy)))
                == "c0ad5dc8305470b14945bf19c79b6b25ef0aeb1cbbda8318902f731078e2641b")
        #expect(
            Hex.encode(Digest.sha256(VMSA.page(isBSP: false, apResetAddress: reset, signature: rome, variant: .legacy)))
                == "e66281015adf6958a619ec00d5b96ce5cbbca43b48d76b0778467bff07dd0118")
    }

    @Test("CPU signatures (sev.md §4.4 table)")
    func cpuSignatures() throws {
        #expect(try CPUSignature(family: 23, model: 1, stepping: 2).value == 0x0080_0F12)
        #expect(try CPUSignature(family: 23, model: 49, stepping: 0).value == 0x0083_0F10)
        #expect(try CPUSignature(family: 25, model: 1, stepping: 1).value == 0x00A0_0F11)
        #expect(try CPUSignature(family: 25, model: 17, stepping: 0).value == 0x00A1_0F10)
        #expect(throws: SEVError.self) { try CPUSignature(family: 25, model: 1, stepping: 16) }
    }

    @Test("K11–K15: sev-snp-measure launch digests")
    func sevSnpMeasure() throws {
        let amdsev = try sev("ovmf-tails/ovmf_AmdSev_suffix.bin")
        let ovmfx64 = try sev("ovmf-tails/ovmf_OvmfX64_suffix.bin")
        func ld(_ inputs: LaunchInputs) throws -> String { Hex.encode(try LaunchDigest(inputs).digest) }
        #expect(
            try ld(
                LaunchInputs(
                    firmware: amdsev, kernel: [], initrd: [], cmdline: "console=ttyS0 loglevel=7", policy: GuestPolicy(rawValue: 3)))
                == "82a3ee5d537c3620628270c292ae30cb40c3c878666a7890ee7ef2a08fb535ff")
        #expect(
            try ld(LaunchInputs(firmware: amdsev, kernel: [], policy: GuestPolicy(rawValue: 3)))
                == "77f613d7bbcdf12a73782ea9e88b0172aeda50d1a54201cb903594ff52846898")
        #expect(
            try ld(LaunchInputs(firmware: ovmfx64, policy: GuestPolicy(rawValue: 3)))
                == "b4c021e085fb83ceffe6571a3d357b4a98773c83c474e47f76c876708fe316da")
        let epycV4 = try CPUSignature(family: 23, model: 1, stepping: 2)
        #expect(
            try ld(
                LaunchInputs(
                    firmware: amdsev, kernel: [], initrd: [], cmdline: "", policy: GuestPolicy(rawValue: 7), vcpus: 1, cpuSignature: epycV4,
                    vmsaVariant: .init2))
                == "13810ae661ea11e2bb205621f582fee268f0367c8f97bc297b7fadef3e12002c")
        #expect(
            try ld(
                LaunchInputs(
                    firmware: amdsev, kernel: [], initrd: [], cmdline: "", policy: GuestPolicy(rawValue: 7), vcpus: 4, cpuSignature: epycV4,
                    vmsaVariant: .init2))
                == "0dccbcaba8e90b261bd0d2e1863a2f9da714768b7b2a19363cd6ae35aa90de91")
        // Plain OvmfPkgX64 has no hashes area: kernel hashes are refused.
        let error = #expect(throws: SEVError.self) {
            try LaunchDigest(LaunchInputs(firmware: ovmfx64, kernel: [], policy: GuestPolicy(rawValue: 3)))
        }
        #expect(error?.code == .kernelHashesUnsupported)
    }

    /// Cross-check scenarios V1–V7 (sev.md §9): virt-qemu-sev-validate 11.3.0 accepted every one.
    struct Scenario: Sendable, CustomStringConvertible {
        let id: String
        let kernel: Bool
        let initrd: Bool
        let cmdline: Bool
        let policy: UInt32
        let vcpus: Int
        let cpu: (Int, Int, Int)?
        let variant: VMSAVariant
        let ld: String
        let measure: String
        let sevMeasurement: String
        var description: String { id }
    }

    static let scenarios: [Scenario] = [
        Scenario(
            id: "V1", kernel: false, initrd: false, cmdline: false, policy: 3, vcpus: 1, cpu: nil, variant: .legacy,
            ld: "5421f1b1d66808c1e1e6c317d207ed4926a839117e4c065442ee7870127e81d8",
            measure: "f849ca93cc659cb6b1b35731a0b9dad4c6cdba69a46082ac64f6f2c0067265b6",
            sevMeasurement: "+EnKk8xlnLaxs1cxoLna1MbNummkYIKsZPbywAZyZbagoaKjpKWmp6ipqqusra6v"),
        Scenario(
            id: "V2", kernel: true, initrd: true, cmdline: true, policy: 3, vcpus: 1, cpu: nil, variant: .legacy,
            ld: "084c794ba802aa78c5768fe99198dd42b9c3caaadb434e9e81c73cea21126a41",
            measure: "76f0da85fb5fac490e8f6c4ca4e33ff29c87f9b88ea068c0b7656052c8468cde",
            sevMeasurement: "dvDahftfrEkOj2xMpOM/8pyH+biOoGjAt2VgUshGjN6goaKjpKWmp6ipqqusra6v"),
        Scenario(
            id: "V3", kernel: true, initrd: false, cmdline: false, policy: 3, vcpus: 1, cpu: nil, variant: .legacy,
            ld: "304e0d67c0dd44a4f711d25422955fb580cb15bd9dd971a10686c141310ac055",
            measure: "73050281115727f232c6573069617f4b82ebabe22a0c6c28b1210093c3607cdf",
            sevMeasurement: "cwUCgRFXJ/IyxlcwaWF/S4Lrq+IqDGwosSEAk8NgfN+goaKjpKWmp6ipqqusra6v"),
        Scenario(
            id: "V4", kernel: false, initrd: false, cmdline: false, policy: 7, vcpus: 1, cpu: (25, 1, 1), variant: .legacy,
            ld: "030d552344484a8fb25635d1aa86d8b75df22ab5874937e9bea68b0b309a396c",
            measure: "c26da98162ff5597d7285bed5ac585ca73f6576083767ce6da7b8cfafffa59ef",
            sevMeasurement: "wm2pgWL/VZfXKFvtWsWFynP2V2CDdnzm2nuM+v/6We+goaKjpKWmp6ipqqusra6v"),
        Scenario(
            id: "V5", kernel: true, initrd: true, cmdline: true, policy: 7, vcpus: 4, cpu: (25, 1, 1), variant: .legacy,
            ld: "54da450ffd1be77f0c8d65e0f2b0f55cc9135f06e4d12b25c46a957a2b1aa4bd",
            measure: "4c0cf5d1fe4061831e1f7b4fe2bf50244ad60ec32ce03a60fbaaac43bc02575c",
            sevMeasurement: "TAz10f5AYYMeH3tP4r9QJErWDsMs4Dpg+6qsQ7wCV1ygoaKjpKWmp6ipqqusra6v"),
        Scenario(
            id: "V6", kernel: true, initrd: true, cmdline: true, policy: 7, vcpus: 4, cpu: (25, 1, 1), variant: .init2,
            ld: "74253f11420ff6652422a37ee12458bad40273b06ca3a503032e6eeb8d81610a",
            measure: "b82b2f4d0faf519b9ee51898cfd1d896e28e22634399b86262db59a4a4d77378",
            sevMeasurement: "uCsvTQ+vUZue5RiYz9HYluKOImNDmbhiYttZpKTXc3igoaKjpKWmp6ipqqusra6v"),
        Scenario(
            id: "V7", kernel: false, initrd: false, cmdline: false, policy: 7, vcpus: 2, cpu: (23, 49, 0), variant: .legacy,
            ld: "844d6a6eb6f9823a5a5bc7b3044cf938c11c20941c5e99a2f661f176d073c716",
            measure: "945a3d1ea595aa7bafd55f654aa862fed8b2d4c2b3f423a3821792fb6eb1cd9f",
            sevMeasurement: "lFo9HqWVqnuv1V9lSqhi/tiy1MKz9COjgheS+26xzZ+goaKjpKWmp6ipqqusra6v"),
    ]

    static let crosscheckVersion = FirmwareVersion(apiMajor: 1, apiMinor: 51, buildID: 3)
    static let crosscheckNonce = sequence(from: 0xA0, count: 16)

    static func inputs(_ s: Scenario) throws -> LaunchInputs {
        LaunchInputs(
            firmware: try sev("crosscheck/synthetic-ovmf.fd"),
            kernel: s.kernel ? try sev("crosscheck/synthetic-vmlinuz") : nil,
            initrd: s.initrd ? try sev("crosscheck/synthetic-initrd") : nil,
            cmdline: s.cmdline ? "console=ttyS0 root=/dev/vda1 quiet" : nil,
            policy: GuestPolicy(rawValue: s.policy), vcpus: s.vcpus,
            cpuSignature: try s.cpu.map { try CPUSignature(family: $0.0, model: $0.1, stepping: $0.2) }, vmsaVariant: s.variant)
    }

    @Test("V1–V7: virt-qemu-sev-validate cross-check vectors", arguments: scenarios)
    func crosscheck(_ s: Scenario) throws {
        let digest = try LaunchDigest(try Self.inputs(s))
        #expect(Hex.encode(digest.digest) == s.ld)
        let tik = SecretBytes(try sev("crosscheck/tik.bin"))
        let measure = try LaunchMeasurement.compute(
            tik: tik, version: Self.crosscheckVersion, policy: GuestPolicy(rawValue: s.policy), launchDigest: digest.digest,
            mnonce: Self.crosscheckNonce)
        #expect(Hex.encode(measure) == s.measure)
        #expect(Base64.encode(measure + Self.crosscheckNonce) == s.sevMeasurement)
        // libvirt's sev-measurement is accepted …
        let result = MeasurementChecker.check(
            sevMeasurement: s.sevMeasurement, tik: tik, version: Self.crosscheckVersion, policy: GuestPolicy(rawValue: s.policy),
            launchDigest: digest.digest)
        guard case .verified(let verified) = result else { Issue.record("\(s.id): \(result)"); return }
        #expect(verified.measure == measure)
        // … and refused with a wrong API version, policy or launch digest.
        for (version, policy, ld) in [
            (FirmwareVersion(apiMajor: 1, apiMinor: 52, buildID: 3), s.policy, digest.digest),
            (Self.crosscheckVersion, s.policy ^ 1, digest.digest),
            (Self.crosscheckVersion, s.policy, Digest.sha256(digest.digest)),
        ] {
            let wrong = MeasurementChecker.check(
                sevMeasurement: s.sevMeasurement, tik: tik, version: version, policy: GuestPolicy(rawValue: policy), launchDigest: ld)
            #expect(wrong != result)
            if case .rejected(let error) = wrong {
                #expect(error.code == .signatureInvalid)
            } else {
                Issue.record("accepted a wrong input")
            }
        }
    }

    @Test("sev-snp-measure INIT2 digests for V4/V7 differ from libvirt's legacy ones")
    func init2Variants() throws {
        var v4 = try Self.inputs(Self.scenarios[3])
        v4.vmsaVariant = .init2
        #expect(Hex.encode(try LaunchDigest(v4).digest) == "6af18c83b48cde1b1b3071313e6031892cf8b00339ae6c03d604d8759d1fd108")
        var v7 = try Self.inputs(Self.scenarios[6])
        v7.vmsaVariant = .init2
        #expect(Hex.encode(try LaunchDigest(v7).digest) == "3bc14f2215dddbaf4907f7fe961b2e1909e798ecac3c07dd12995ef99c4067ea")
    }

    @Test("V1 measured message and V2 kernel table match the intermediate values printed by virt-qemu-sev-validate")
    func intermediates() throws {
        let msg = LaunchMeasurement.message(
            version: Self.crosscheckVersion, policy: GuestPolicy(rawValue: 3),
            launchDigest: hex("5421f1b1d66808c1e1e6c317d207ed4926a839117e4c065442ee7870127e81d8"), mnonce: Self.crosscheckNonce)
        #expect(msg.count == 56)
        #expect(Hex.encode(msg.prefix(8)) == "0401330303000000")
        let table = try #require(try LaunchDigest(try Self.inputs(Self.scenarios[1])).kernelHashesTable)
        #expect(table.count == 176)
        #expect(Hex.encode(table[0..<18]) == "06d63894224fc94cb479a793d411fd21a800")
        #expect(Hex.encode(table[18..<36]) == "d82dd09720bd944caa78e7714d36ab2a3200")
        #expect(Hex.encode(table[36..<68]) == "1d39b01c85b471e82afa0a6df7b469cbecefdf5950c4378e0c257f8c2852d321")
        #expect(Hex.encode(table[68..<86]) == "31f7ba442f3ad74b9af141e29169781d3200")
        #expect(Hex.encode(table[86..<118]) == "785b0751fc2c53dc14a4ce3d800e69ef9ce1009eb327ccf458afe09c242c26c9")
        #expect(Hex.encode(table[118..<136]) == "3794e74dd2ab7f42b835d5b172d2045b3200")
        #expect(Hex.encode(table[136..<168]) == "0c87e99eff74ea08fd443e5bef3ab01b401ef9612fcafd682f9dd32c2c079633")
        #expect(Hex.encode(table[168...]) == "0000000000000000")
        // Missing cmdline hashes "\0".
        let noCmdline = KernelHashesTable.table(kernel: [], initrd: nil, cmdline: nil)
        #expect(Hex.encode(noCmdline[36..<68]) == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d")
        #expect(Hex.encode(noCmdline[86..<118]) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    }

    @Test("OVMF footer tables: synthetic and RHEL builds")
    func footers() throws {
        let synthetic = try OVMFFooter(firmware: try sev("crosscheck/synthetic-ovmf.fd"))
        #expect(synthetic.sevESResetAddress == 0x0080_B004)
        #expect(synthetic.hashesArea == OVMFFooter.Area(base: 0x810C00, size: 0x400))
        #expect(synthetic.secretArea == OVMFFooter.Area(base: 0x810000, size: 0xC00))
        let rhel = try OVMFFooter(firmware: try sev(Self.rhelFirmware))
        #expect(rhel.secretArea == OVMFFooter.Area(base: 0x80C000, size: 0xC00))
        #expect(rhel.hashesArea == OVMFFooter.Area(base: 0x80CC00, size: 0x400))
        let x64 = try OVMFFooter(firmware: try sev("ovmf-tails/ovmf_OvmfX64_suffix.bin"))
        #expect(x64.hashesArea == nil)
        #expect(x64.secretArea == nil)
    }

    @Test("firmware without a footer, and corrupt footers, are typed errors")
    func badFooters() throws {
        let plain = [UInt8](repeating: 0x90, count: 4096)
        #expect((#expect(throws: SEVError.self) { try OVMFFooter(firmware: plain) })?.code == .firmwareFooterMissing)
        #expect(
            (#expect(throws: SEVError.self) {
                try LaunchDigest(
                    LaunchInputs(
                        firmware: plain, policy: GuestPolicy(rawValue: 7), cpuSignature: try CPUSignature(family: 25, model: 1, stepping: 1)
                    ))
            })?.code == .firmwareFooterMissing)
        #expect(
            (#expect(throws: SEVError.self) {
                try LaunchDigest(LaunchInputs(firmware: plain, kernel: [1], policy: GuestPolicy(rawValue: 3)))
            })?.code == .firmwareFooterMissing)
        // SEV without a kernel does not need the footer.
        #expect(try LaunchDigest(LaunchInputs(firmware: plain, policy: GuestPolicy(rawValue: 3))).digest == Digest.sha256(plain))
        let good = try sev("crosscheck/synthetic-ovmf.fd")
        var bad = good
        bad[good.count - 50] = 0xFF
        bad[good.count - 49] = 0xFF
        #expect((#expect(throws: SEVError.self) { try OVMFFooter(firmware: bad) })?.code == .lengthOverflow)
        // Corrupt every byte of the table region in turn: never a crash.
        for offset in (good.count - 160)..<(good.count - 32) {
            var flipped = good
            flipped[offset] ^= 0xFF
            _ = try? OVMFFooter(firmware: flipped)
        }
        // Every tail of the image shorter than its footer table: typed errors only.
        let tableEnd = 32 + (Int(good[good.count - 50]) | Int(good[good.count - 49]) << 8)
        for length in 0..<tableEnd {
            #expect(throws: SEVError.self) { try OVMFFooter(firmware: Array(good.suffix(length))) }
        }
        // SEV-ES needs a CPU signature and a sane vCPU count.
        #expect(
            (#expect(throws: SEVError.self) { try LaunchDigest(LaunchInputs(firmware: good, policy: GuestPolicy(rawValue: 7))) })?.code
                == .invalidParameter)
        #expect(
            (#expect(throws: SEVError.self) {
                try LaunchDigest(
                    LaunchInputs(
                        firmware: good, policy: GuestPolicy(rawValue: 7), vcpus: 0,
                        cpuSignature: try CPUSignature(family: 25, model: 1, stepping: 1)))
            })?.code == .invalidParameter)
    }

    @Test("sev-measurement decoding: wrong lengths and non-base64 are typed errors")
    func decoding() {
        #expect(
            (#expect(throws: SEVError.self) {
                try MeasurementChecker.decode(sevMeasurement: Base64.encode([UInt8](repeating: 0, count: 47)))
            })?.code == .truncated)
        #expect(
            (#expect(throws: SEVError.self) {
                try MeasurementChecker.decode(sevMeasurement: Base64.encode([UInt8](repeating: 0, count: 49)))
            })?.code == .trailingBytes)
        #expect((#expect(throws: SEVError.self) { try MeasurementChecker.decode(sevMeasurement: "**") })?.code == .invalidValue)
    }

    @Test("V1–V7 with the firmware as raw bytes (the CLI's mapped file) give the same digests", arguments: scenarios)
    func rawFirmware(_ s: Scenario) throws {
        var inputs = try Self.inputs(s)
        let firmware = inputs.firmware
        inputs.firmware = []
        let digest = try firmware.withUnsafeBytes { try LaunchDigest(inputs, firmware: $0) }
        #expect(Hex.encode(digest.digest) == s.ld)
        let footer = try firmware.withUnsafeBytes { try OVMFFooter(firmware: $0) }
        #expect(footer == (try OVMFFooter(firmware: firmware)))
        // The firmware in both places is refused rather than hashed twice or one silently ignored.
        inputs.firmware = firmware
        let error = firmware.withUnsafeBytes { raw in #expect(throws: SEVError.self) { try LaunchDigest(inputs, firmware: raw) } }
        #expect(error?.code == .invalidParameter)
    }

    @Test("raw firmware bytes without a footer, or too short, are typed errors (offsets as for arrays)")
    func rawFirmwareErrors() throws {
        let image = [UInt8](repeating: 0xFF, count: 4096)
        let array = #expect(throws: SEVError.self) { try OVMFFooter(firmware: image) }
        let raw = image.withUnsafeBytes { raw in #expect(throws: SEVError.self) { try OVMFFooter(firmware: raw) } }
        #expect(array?.code == .firmwareFooterMissing)
        #expect(raw?.code == .firmwareFooterMissing)
        #expect(raw?.offset == array?.offset)
        let short = [UInt8](repeating: 0, count: 10)
        #expect(
            (short.withUnsafeBytes { raw in #expect(throws: SEVError.self) { try OVMFFooter(firmware: raw) } })?.code
                == .firmwareFooterMissing)
        let es = LaunchInputs(
            firmware: [], policy: GuestPolicy(rawValue: 7), vcpus: 1, cpuSignature: try CPUSignature(family: 25, model: 1, stepping: 1))
        #expect(
            (image.withUnsafeBytes { raw in #expect(throws: SEVError.self) { try LaunchDigest(es, firmware: raw) } })?.code
                == .firmwareFooterMissing)
    }
}
