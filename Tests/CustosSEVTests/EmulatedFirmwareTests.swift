import CustosCrypto
import CustosSEV
import CustosTestSupport
import Testing

/// One emulated platform shared by the round trips (key generation is the slow part).
let sharedFirmware: EmulatedSEVFirmware? = try? EmulatedSEVFirmware()

/// The guest owner's whole flow against the emulated firmware:
/// verify chain → session → (host launches) → measure → check → secret → the guest reads it.
@Suite("Emulated SEV firmware: end-to-end launches")
struct EmulatedFirmwareTests {
    /// A small AmdSev-like image: pattern bytes, then an OVMF footer with SEV-ES reset, hashes and secret areas.
    static let firmwareImage: [UInt8] = {
        var image = (0..<8192).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
        func guid(_ s: String) -> [UInt8] { (try? EFIGUID(s).bytes) ?? [] }
        func le32(_ v: UInt32) -> [UInt8] { [UInt8(v & 0xff), UInt8(v >> 8 & 0xff), UInt8(v >> 16 & 0xff), UInt8(v >> 24)] }
        func entry(_ data: [UInt8], _ g: String) -> [UInt8] { data + [UInt8(data.count + 18), 0] + guid(g) }
        let entries =
            entry(le32(0x810000) + le32(0xC00), "4c2eb361-7d9b-4cc3-8081-127c90d3d294")
            + entry(le32(0x810C00) + le32(0x400), "7255371f-3a3b-4b04-927b-1da6efa8d454")
            + entry(le32(0x0080_B004), "00f771de-1a7e-4fcb-890e-68c77e2fb44e")
        let table = entries + [UInt8(entries.count + 18), 0] + guid("96b582de-1fb2-45f7-baea-a366c55a082d")
        let start = image.count - 32 - table.count
        image.replaceSubrange(start..<(start + table.count), with: table)
        return image
    }()

    struct Launch {
        var firmware: [UInt8] = firmwareImage
        var kernel: [UInt8]? = Array("KERNEL".utf8)
        var initrd: [UInt8]? = Array("INITRD".utf8)
        var cmdline: String? = "root=/dev/vda quiet"
        var policy: UInt32 = 7
        var vcpus = 2
        var cpu = (25, 1, 1)

        func inputs() throws -> LaunchInputs {
            LaunchInputs(
                firmware: firmware, kernel: kernel, initrd: initrd, cmdline: cmdline, policy: GuestPolicy(rawValue: policy), vcpus: vcpus,
                cpuSignature: try CPUSignature(family: cpu.0, model: cpu.1, stepping: cpu.2))
        }
    }

    /// The host's part: LAUNCH_START with the owner's blobs, then QEMU's LAUNCH_UPDATE_* for what it really boots.
    func hostLaunch(_ fw: EmulatedSEVFirmware, session: LaunchSession, booted: Launch, hostPolicy: UInt32? = nil) throws -> (
        handle: UInt32, measurement: String
    ) {
        let handle = try fw.launchStart(
            policy: hostPolicy ?? booted.policy, godhCertificate: try Base64.decode(session.dhCertBase64),
            session: try Base64.decode(session.sessionBase64))
        let digest = try LaunchDigest(try booted.inputs())
        try fw.launch(
            handle: handle, firmware: booted.firmware, kernelHashesTable: digest.kernelHashesTable,
            vmsas: Self.allVMSAs(digest, vcpus: booted.vcpus, policy: booted.policy))
        return (handle, Base64.encode(try fw.launchMeasure(handle: handle)))
    }

    static func allVMSAs(_ digest: LaunchDigest, vcpus: Int, policy: UInt32) -> [[UInt8]] {
        guard policy & 4 != 0, let bsp = digest.vmsas.first else { return [] }
        return [bsp] + Array(repeating: digest.vmsas.count > 1 ? digest.vmsas[1] : bsp, count: vcpus - 1)
    }

    /// The owner's verification and secret; returns the packet or the rejection.
    func ownerCheck(_ fw: EmulatedSEVFirmware, session: LaunchSession, expected: Launch, measurement: String) throws
        -> MeasurementCheckResult
    {
        MeasurementChecker.check(
            sevMeasurement: measurement, tik: session.transportKeys.tik, version: fw.version,
            policy: GuestPolicy(rawValue: expected.policy),
            launchDigest: try LaunchDigest(try expected.inputs()).digest)
    }

    func verifiedSession(_ fw: EmulatedSEVFirmware, policy: UInt32) throws -> LaunchSession {
        let info = fw.nodeSEVInfo
        let platform = try PlatformCertificates(libvirtPDH: info.pdh, certChain: info.certChain)
        guard case .verified(let chain) = SEVChainVerifier.verify(platform, roots: [fw.roots]) else {
            throw SEVError(.signatureInvalid, "emulated chain did not verify")
        }
        #expect(chain.productLine == EmulatedSEVFirmware.productLine)
        return try LaunchSession.make(for: chain, policy: GuestPolicy(rawValue: policy))
    }

    static let secret = Array("correct horse battery staple".utf8)

    func secretPacket(_ session: LaunchSession, _ verified: VerifiedMeasurement) throws -> SecretPacket {
        try SecretPacket(
            table: try SecretTable(entries: [SecretEntry(guid: SecretEntry.luksKeyGUID, data: SecretBytes(Self.secret))]),
            keys: session.transportKeys, measurement: verified, firmwareSecretArea: try OVMFFooter(firmware: Self.firmwareImage).secretArea)
    }

    @Test("SEV and SEV-ES: the guest reads the secret", arguments: [(3, 1), (7, 1), (7, 4)])
    func roundTrip(_ config: (UInt32, Int)) throws {
        let fw = try #require(sharedFirmware)
        var launch = Launch()
        launch.policy = config.0
        launch.vcpus = config.1
        let session = try verifiedSession(fw, policy: launch.policy)
        let (handle, measurement) = try hostLaunch(fw, session: session, booted: launch)
        guard case .verified(let verified) = try ownerCheck(fw, session: session, expected: launch, measurement: measurement) else {
            Issue.record("honest launch rejected")
            return
        }
        let packet = try secretPacket(session, verified)
        try fw.launchSecret(handle: handle, header: try Base64.decode(packet.headerBase64), payload: try Base64.decode(packet.secretBase64))
        try fw.launchFinish(handle: handle)
        let secrets = try fw.guestSecrets(handle: handle)
        #expect(secrets.count == 1)
        #expect(secrets.first?.guid.description == "736869e5-84f0-4973-92ec-06879ce3da0b")
        #expect(secrets.first?.data == Self.secret)
    }

    @Test("the emulated chain is a real AMD-format chain: links verify one by one, a foreign root does not")
    func emulatedChain() throws {
        let fw = try #require(sharedFirmware)
        try fw.roots.verify()
        try fw.platform.cek.verifySignature(by: fw.roots.ask)
        try fw.platform.pek.verifySignature(by: fw.platform.oca)
        try fw.platform.pek.verifySignature(by: fw.platform.cek)
        try fw.platform.pdh.verifySignature(by: fw.platform.pek)
        let other = try EmulatedSEVFirmware()
        guard case .rejected(let failure) = SEVChainVerifier.verify(fw.platform, roots: [other.roots]) else {
            Issue.record("accepted under another platform's roots")
            return
        }
        #expect(failure.link == .cekByASK)
        // Certificates round-trip through their byte form.
        #expect(try SEVCertificate(bytes: fw.platform.pek.bytes) == fw.platform.pek)
        #expect(try AMDCertificate(bytes: fw.roots.ask.bytes) == fw.roots.ask)
    }

    /// Tampering caught on the owner's side: the measurement differs from what the owner expects.
    @Test(
        "tampered launches are rejected by the owner",
        arguments: ["wrong TIK", "edited firmware", "one more vCPU", "different cmdline", "other CPU", "no kernel hashes", "init2 VMSA"])
    func ownerDetects(_ tamper: String) throws {
        let fw = try #require(sharedFirmware)
        let expected = Launch()
        var booted = expected
        var session = try verifiedSession(fw, policy: expected.policy)
        let honestSession = session
        switch tamper {
        case "wrong TIK": session = try verifiedSession(fw, policy: expected.policy)  // owner checks with another launch's TIK
        case "edited firmware": booted.firmware[100] ^= 1
        case "one more vCPU": booted.vcpus += 1
        case "different cmdline": booted.cmdline = "root=/dev/vda init=/bin/sh"
        case "other CPU": booted.cpu = (23, 49, 0)
        case "no kernel hashes": booted.kernel = nil; booted.initrd = nil; booted.cmdline = nil
        default: break
        }
        var (_, measurement) = try hostLaunch(fw, session: honestSession, booted: booted)
        if tamper == "init2 VMSA" {
            // The host's KVM used INIT2 while the owner expects legacy.
            let handle = try fw.launchStart(policy: 7, godhCertificate: honestSession.godh.bytes, session: honestSession.blob.bytes)
            var inputs = try booted.inputs()
            inputs.vmsaVariant = .init2
            let digest = try LaunchDigest(inputs)
            try fw.launch(
                handle: handle, firmware: booted.firmware, kernelHashesTable: digest.kernelHashesTable,
                vmsas: Self.allVMSAs(digest, vcpus: booted.vcpus, policy: 7))
            measurement = Base64.encode(try fw.launchMeasure(handle: handle))
        }
        guard case .rejected(let error) = try ownerCheck(fw, session: session, expected: expected, measurement: measurement) else {
            Issue.record("\(tamper): accepted")
            return
        }
        #expect(error.code == .signatureInvalid)
    }

    /// Tampering caught by the firmware: the host changes the policy, or replays/forges session or secret.
    @Test("the firmware refuses a changed policy, a forged session and a replayed secret packet")
    func firmwareDetects() throws {
        let fw = try #require(sharedFirmware)
        let launch = Launch()
        let session = try verifiedSession(fw, policy: 7)
        // The host passes policy 3 (SEV, debuggable) instead of the owner's 7: POLICY_MAC fails.
        let policy = #expect(throws: SEVFirmwareError.self) {
            try fw.launchStart(policy: 3, godhCertificate: session.godh.bytes, session: session.blob.bytes)
        }
        #expect(policy?.status == SEVFirmwareError.policyFailure)
        // A flipped bit in WRAP_TK: WRAP_MAC fails.
        var forged = session.blob.bytes
        forged[0x10] ^= 1
        let wrap = #expect(throws: SEVFirmwareError.self) {
            try fw.launchStart(policy: 7, godhCertificate: session.godh.bytes, session: forged)
        }
        #expect(wrap?.status == SEVFirmwareError.badSignature)
        // A GODH from another session: different Z, WRAP_MAC fails.
        let other = try verifiedSession(fw, policy: 7)
        #expect(throws: SEVFirmwareError.self) {
            try fw.launchStart(policy: 7, godhCertificate: other.godh.bytes, session: session.blob.bytes)
        }

        // Launch A completes; its packet is replayed into launch B (same owner inputs, fresh TEK/TIK): refused.
        let (handleA, measurementA) = try hostLaunch(fw, session: session, booted: launch)
        guard case .verified(let verifiedA) = try ownerCheck(fw, session: session, expected: launch, measurement: measurementA) else {
            Issue.record("launch A rejected")
            return
        }
        let packetA = try secretPacket(session, verifiedA)
        let (handleB, _) = try hostLaunch(fw, session: other, booted: launch)
        let replay = #expect(throws: SEVFirmwareError.self) {
            try fw.launchSecret(handle: handleB, header: packetA.header, payload: packetA.ciphertext)
        }
        #expect(replay?.status == SEVFirmwareError.badMeasurement)
        // A flipped ciphertext bit in A's own packet: refused too; the genuine packet is accepted.
        var flipped = packetA.ciphertext
        flipped[0] ^= 1
        #expect(throws: SEVFirmwareError.self) { try fw.launchSecret(handle: handleA, header: packetA.header, payload: flipped) }
        try fw.launchSecret(handle: handleA, header: packetA.header, payload: packetA.ciphertext)
        #expect(try fw.guestSecrets(handle: handleA).first?.data == Self.secret)
        // Commands out of order.
        #expect(throws: SEVFirmwareError.self) { try fw.launchUpdateData(handle: handleA, [1]) }
        #expect(throws: SEVFirmwareError.self) { try fw.launchMeasure(handle: 999_999) }
    }

    @Test("a second measurement of the same launch inputs uses a fresh mnonce")
    func freshMnonce() throws {
        let fw = try #require(sharedFirmware)
        let launch = Launch()
        let session = try verifiedSession(fw, policy: 7)
        let (_, first) = try hostLaunch(fw, session: session, booted: launch)
        let (_, second) = try hostLaunch(fw, session: session, booted: launch)
        #expect(first != second)
        for m in [first, second] {
            if case .verified = try ownerCheck(fw, session: session, expected: launch, measurement: m) {} else { Issue.record("rejected") }
        }
    }

    /// The launch session is specified on P-384 (the GODH is made on the PDH's curve): a PDH on P-256, however well
    /// signed, is refused at the usage checks.
    @Test func aPDHOnP256IsRefused() throws {
        let fw = try EmulatedSEVFirmware(pdhCurve: .p256)
        guard case .rejected(let failure) = SEVChainVerifier.verify(fw.platform, roots: [fw.roots]) else {
            Issue.record("a P-256 PDH was accepted")
            return
        }
        #expect(failure.link == .usage)
        #expect(failure.error.reason.contains("P-384"), "\(failure.error)")
    }

    @Test("RSA-4096 emulated roots (Rome-style PSS SHA-384) verify too")
    func rsa4096() throws {
        let fw = try EmulatedSEVFirmware(rsaBits: 4096)
        #expect(fw.roots.ark.modulusBits == 4096)
        #expect(fw.platform.cek.signatures[0].algorithm == .rsaSHA384)
        guard case .verified = SEVChainVerifier.verify(fw.platform, roots: [fw.roots]) else {
            Issue.record("4096-bit emulated chain rejected")
            return
        }
    }
}
