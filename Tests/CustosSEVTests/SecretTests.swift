import CustosCrypto
import CustosSEV
import CustosTestSupport
import Foundation
import Testing

@Suite("Secret packet (LAUNCH_SECRET)", Requirement.testData)
struct SecretTests {
    func sevctlKeys() throws -> TransportKeys {
        try TransportKeys(tek: SecretBytes(try sev("sevctl-kat/secret/tek1.bin")), tik: SecretBytes(try sev("sevctl-kat/secret/tik1.bin")))
    }

    static let sevctlMeasure = Array(b64("TLeA7607lZQntLjRY1/i+sbtdSZ+75zxpz4Px9hzpBLwItF5Q2o4prA++3ZZv9ZS").prefix(32))
    static let sevctlIV = b64("rFR07U3TLH2YnsUj2SVZ7A==")

    @Test("K8: sevctl secret build, one luks entry (table 58 → 64)")
    func k8() throws {
        let table = try SecretTable(entries: [
            SecretEntry(
                guid: try SecretEntry.guid(named: "736869e5-84f0-4973-92ec-06879ce3da0b"),
                data: SecretBytes(try sev("sevctl-kat/secret/secret1.txt")))
        ])
        #expect(table.length == 58)
        let packet = try SecretPacket(
            table: table, keys: try sevctlKeys(), measure: Self.sevctlMeasure, padding: .minimal, iv: Self.sevctlIV)
        #expect(packet.headerBase64 == "AAAAAKxUdO1N0yx9mJ7FI9klWey8FSzeYQ4X8K71VzNKLU/KQsIsQxLjtbhaPUewqshX5Q==")
        #expect(packet.secretBase64 == "0U3e5PcXv0UW+H4tSBFKOdCYfKE1+j38Bc2fuO16mYiyI+sWx7INfn+lgYj56GL12yyinDa+lVfCCwD/2w5cPA==")
    }

    @Test("K9: sevctl secret build, two entries (table 95 → 96)")
    func k9() throws {
        let table = try SecretTable(entries: [
            SecretEntry(guid: SecretEntry.luksKeyGUID, data: SecretBytes(try sev("sevctl-kat/secret/secret1.txt"))),
            SecretEntry(
                guid: try EFIGUID("736869e5-aaaa-4973-92ec-06879ce3da0b"), data: SecretBytes(try sev("sevctl-kat/secret/secret2.txt"))),
        ])
        #expect(table.length == 95)
        let packet = try SecretPacket(
            table: table, keys: try sevctlKeys(), measure: Self.sevctlMeasure, padding: .minimal, iv: Self.sevctlIV)
        #expect(packet.headerBase64 == "AAAAAKxUdO1N0yx9mJ7FI9klWeyZ3r0dOEKHUOhIRqzGYYvTJgdMtBPL1nK6GD9aGET7Ng==")
        #expect(
            packet.secretBase64
                == "0U3e5PcXv0UW+H4tSBFKObWYfKE1+j38Bc2fuO16mYiyI+sWx7INfn+lgYj56GL12yyinDa+lVfCC+WWs332lpLNUX1ZI3YK7vYgtys4X+uGxEIlkIQ90v8/w8ZFmQMe"
        )
    }

    func crosscheckKeys() throws -> TransportKeys {
        try TransportKeys(tek: SecretBytes(try sev("crosscheck/tek.bin")), tik: SecretBytes(try sev("crosscheck/tik.bin")))
    }

    /// V1's verified measurement (sev.md §9), via the checker, as the CLI gets it.
    func v1Measurement() throws -> VerifiedMeasurement {
        let result = MeasurementChecker.check(
            sevMeasurement: "+EnKk8xlnLaxs1cxoLna1MbNummkYIKsZPbywAZyZbagoaKjpKWmp6ipqqusra6v",
            tik: SecretBytes(try sev("crosscheck/tik.bin")),
            version: FirmwareVersion(apiMajor: 1, apiMinor: 51, buildID: 3), policy: GuestPolicy(rawValue: 3),
            launchDigest: hex("5421f1b1d66808c1e1e6c317d207ed4926a839117e4c065442ee7870127e81d8"))
        guard case .verified(let verified) = result else { throw SEVError(.signatureInvalid, "V1 did not verify") }
        return verified
    }

    @Test("S1: virt-qemu-sev-validate packet, luks-key, IV pinned through the random source")
    func s1() throws {
        let table = try SecretTable(entries: [
            SecretEntry(guid: try SecretEntry.guid(named: "luks-key"), data: SecretBytes(try sev("crosscheck/secret-luks.txt")))
        ])
        #expect(table.length == 68)
        let plain = try table.encoded(padding: .libvirt)
        #expect(plain.count == 80)
        #expect(Hex.encode(plain.prefix(40)) == "42f5741edd71664d963eef4287ff173b44000000e5696873f084734992ec06879ce3da0b30000000")
        let area = try OVMFFooter(firmware: try sev("crosscheck/synthetic-ovmf.fd")).secretArea
        let packet = try SecretPacket(
            table: table, keys: try crosscheckKeys(), measurement: try v1Measurement(), firmwareSecretArea: area,
            random: FixedRandom(sequence(from: 0xF0, count: 16)))
        let header = try TestData.text("sev/crosscheck/hdr-S1.b64").trimmingCharacters(in: .whitespacesAndNewlines)
        let payload = try TestData.text("sev/crosscheck/payload-S1.b64").trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(packet.headerBase64 == header)
        #expect(packet.secretBase64 == payload)
        #expect(header == "AAAAAPDx8vP09fb3+Pn6+/z9/v+wJzA7+qBFIaMgYAwEGjZAqqkTJGySJ26IvPXpmyQdwg==")
        // sevctl padding gives the identical packet for this table (68 is not aligned).
        let minimal = try SecretPacket(
            table: table, keys: try crosscheckKeys(), measure: try v1Measurement().measure, padding: .minimal,
            iv: sequence(from: 0xF0, count: 16))
        #expect(minimal == packet)
    }

    @Test("S2: an aligned table: libvirt pads 48 → 64, sevctl keeps 48")
    func s2() throws {
        let table = try SecretTable(entries: [
            SecretEntry(guid: SecretEntry.luksKeyGUID, data: SecretBytes(try sev("crosscheck/secret-aligned.bin")))
        ])
        #expect(table.length == 48)
        let measure = try v1Measurement().measure
        let iv = sequence(from: 0xF0, count: 16)
        let libvirt = try SecretPacket(table: table, keys: try crosscheckKeys(), measure: measure, padding: .libvirt, iv: iv)
        #expect(libvirt.ciphertext.count == 64)
        #expect(libvirt.headerBase64 == (try TestData.text("sev/crosscheck/hdr-S2.b64").trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(
            libvirt.secretBase64 == (try TestData.text("sev/crosscheck/payload-S2.b64").trimmingCharacters(in: .whitespacesAndNewlines)))
        let sevctl = try SecretPacket(table: table, keys: try crosscheckKeys(), measure: measure, padding: .minimal, iv: iv)
        #expect(sevctl.headerBase64 == "AAAAAPDx8vP09fb3+Pn6+/z9/v/IF/RlmH//4YzcNVeIU3wmUi/PA+IGRMQOOxa3D0mK9w==")
        #expect(sevctl.secretBase64 == "VkagKia+pT64PmlPYs6XGw/FHPG9YdoI0xHt4JQPJAmu6kaEP7wZLBUt0btzekY5")
    }

    @Test("oversized tables: 16 KiB secrets do not fit a 3 KiB OVMF secret area")
    func oversized() throws {
        let area = try OVMFFooter(firmware: try sev("crosscheck/synthetic-ovmf.fd")).secretArea
        for file in ["secret3.txt", "secret4.txt"] {
            let table = try SecretTable(entries: [
                SecretEntry(guid: SecretEntry.luksKeyGUID, data: SecretBytes(try sev("sevctl-kat/secret/" + file)))
            ])
            let error = #expect(throws: SEVError.self) {
                try SecretPacket(
                    table: table, keys: try crosscheckKeys(), measure: [UInt8](repeating: 0, count: 32), firmwareSecretArea: area,
                    iv: [UInt8](repeating: 0, count: 16))
            }
            #expect(error?.code == .secretTooLarge)
        }
        // sevctl's tool-only cases: secret4 gives exactly 16384 with minimal padding, 16400 with libvirt's.
        let table4 = try SecretTable(entries: [
            SecretEntry(guid: SecretEntry.luksKeyGUID, data: SecretBytes(try sev("sevctl-kat/secret/secret4.txt")))
        ])
        #expect(try table4.encoded(padding: .minimal).count == 16384)
        #expect(try table4.encoded(padding: .libvirt).count == 16400)
        #expect(
            try SecretTable(entries: [
                SecretEntry(guid: SecretEntry.luksKeyGUID, data: SecretBytes(try sev("sevctl-kat/secret/secret3.txt")))
            ]).encoded(padding: .minimal).count == 16384)
        // Too many entries, duplicate GUIDs.
        let many = try (0..<65).map { i in
            SecretEntry(guid: try EFIGUID(bytes: [UInt8](repeating: UInt8(i), count: 16)), data: SecretBytes([1]))
        }
        #expect(throws: SEVError.self) { try SecretTable(entries: many) }
        #expect(throws: SEVError.self) { try SecretTable(entries: [many[1], many[1]]) }
    }

    @Test("secret table parsing follows Linux efi_secret")
    func parsing() throws {
        let table = try SecretTable(entries: [
            SecretEntry(guid: SecretEntry.luksKeyGUID, data: SecretBytes(Array("pass".utf8))),
            SecretEntry(guid: try EFIGUID("00000000-0000-0000-0000-000000000000"), data: SecretBytes([9])),
        ])
        let parsed = try SecretTable.parse(try table.encoded(padding: .libvirt))
        #expect(parsed.count == 1)  // the all-zero GUID (deleted) is skipped
        #expect(parsed.first?.guid == SecretEntry.luksKeyGUID)
        #expect(parsed.first?.data == Array("pass".utf8))
        var corrupt = try table.encoded(padding: .libvirt)
        corrupt[36] = 19  // entry len < 20
        #expect((#expect(throws: SEVError.self) { try SecretTable.parse(corrupt) })?.offset == 36)
        let bytes = try table.encoded(padding: .minimal)
        for length in 0..<20 {
            #expect((#expect(throws: SEVError.self) { try SecretTable.parse(Array(bytes.prefix(length))) })?.code == .truncated)
        }
        #expect(EFIGUID(constantForTests: "736869e5-84f0-4973-92ec-06879ce3da0b").description == "736869e5-84f0-4973-92ec-06879ce3da0b")
        #expect(throws: SEVError.self) { try SecretEntry.guid(named: "luks") }
    }
}

extension EFIGUID {
    init(constantForTests text: String) { self = (try? EFIGUID(text)) ?? SecretEntry.luksKeyGUID }
}
