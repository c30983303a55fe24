public import CustosCrypto
public import CustosSEV
import Synchronization

/// A status the emulated firmware returns, with the SEV API's error numbers where the spec has one (sev.md §7).
public struct SEVFirmwareError: Error, Hashable, Sendable, CustomStringConvertible {
    public let status: UInt32
    public let reason: String
    public init(_ status: UInt32, _ reason: String) {
        self.status = status
        self.reason = reason
    }
    /// 0x02 INVALID_GUEST_STATE: commands out of order.
    public static let invalidGuestState: UInt32 = 0x02
    public static let invalidLength: UInt32 = 0x04
    public static let invalidCertificate: UInt32 = 0x06
    public static let policyFailure: UInt32 = 0x07
    public static let invalidParameter: UInt32 = 0x16
    public static let badSignature: UInt32 = 0x0A
    public static let badMeasurement: UInt32 = 0x0B
    public static let invalidGuest: UInt32 = 0x10

    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.status == rhs.status }
    public func hash(into hasher: inout Hasher) { hasher.combine(status) }
    public var description: String { "SEV firmware status 0x\(String(status, radix: 16)): \(reason)" }
}

/// The platform side of SEV/SEV-ES launch (AMD SEV API 55766 §6: LAUNCH_START, LAUNCH_UPDATE_DATA,
/// LAUNCH_UPDATE_VMSA, LAUNCH_MEASURE, LAUNCH_SECRET, LAUNCH_FINISH; PDH_CERT_EXPORT), for tests.
///
/// It owns a freshly generated test hierarchy in AMD formats — ARK/ASK (RSA, AMD certificate format, PSS),
/// CEK/OCA/PEK/PDH (P-384, 0x824 SEV certificates, ECDSA-SHA256) — and runs the published protocol: it derives
/// the session keys from its PDH private key and the GODH, checks WRAP_MAC and POLICY_MAC, accumulates the launch
/// digest, MACs the measurement with a fresh mnonce, and checks, decrypts and exposes the secret as the guest
/// (Linux `efi_secret`) would see it. Nothing is canned: every answer is computed from the inputs.
public final class EmulatedSEVFirmware: Sendable {
    /// The product line name the test hierarchy is published under.
    public static let productLine = ProductLine("emulated")

    public let version: FirmwareVersion
    public let roots: AMDRoots
    public let platform: PlatformCertificates
    private let pdhKey: ECPrivateKey
    private let guests = Mutex<[UInt32: GuestContext]>([:])
    private let nextHandle = Mutex<UInt32>(1)

    /// Generates a new platform.
    /// - Parameters:
    ///   - version: the API version and build it reports and MACs.
    ///   - rsaBits: the ARK/ASK size: 2048 (Naples style, PSS SHA-256) or 4096 (Rome on, PSS SHA-384).
    ///   - pdhCurve: the PDH's curve (P-384 on every AMD firmware; P-256 to test that the owner refuses it).
    public init(
        version: FirmwareVersion = FirmwareVersion(apiMajor: 1, apiMinor: 55, buildID: 21), rsaBits: Int = 2048, pdhCurve: ECCurve = .p384
    ) throws {
        self.version = version
        let arkKey = try RSAPrivateKey(generatingBits: rsaBits)
        let askKey = try RSAPrivateKey(generatingBits: rsaBits)
        let arkID = try SecureRandom.bytes(16)
        let askID = try SecureRandom.bytes(16)
        let ark = try Self.amdCertificate(
            key: arkKey.publicKey, keyID: arkID, certifyingID: arkID, usage: 0x00, signer: arkKey, bits: rsaBits)
        let ask = try Self.amdCertificate(
            key: askKey.publicKey, keyID: askID, certifyingID: arkID, usage: 0x13, signer: arkKey, bits: rsaBits)
        roots = AMDRoots(productLine: Self.productLine, ark: ark, ask: ask)

        let cekKey = try ECPrivateKey(generating: .p384)
        let ocaKey = try ECPrivateKey(generating: .p384)
        let pekKey = try ECPrivateKey(generating: .p384)
        pdhKey = try ECPrivateKey(generating: pdhCurve)
        let digest: DigestAlgorithm = rsaBits == 2048 ? .sha256 : .sha384
        let askPadding = RSAPadding.pss(mgf1: digest, saltLength: digest.byteCount)
        let cekBody = SEVCertificate.unsignedBody(
            usage: .cek, algorithm: .ecdsaSHA256, publicKey: cekKey.publicKey, apiMajor: version.apiMajor, apiMinor: version.apiMinor)
        let cek = try SEVCertificate(
            usage: .cek, algorithm: .ecdsaSHA256, publicKey: cekKey.publicKey, apiMajor: version.apiMajor, apiMinor: version.apiMinor,
            signatures: [
                .rsa(
                    usage: .ask, algorithm: rsaBits == 2048 ? .rsaSHA256 : .rsaSHA384,
                    bigEndianSignature: try askKey.signature(for: cekBody, digest: digest, padding: askPadding))
            ])
        let oca = try Self.sevCertificate(.oca, .ecdsaSHA256, ocaKey.publicKey, version, signers: [(.oca, ocaKey)])
        let pek = try Self.sevCertificate(.pek, .ecdsaSHA256, pekKey.publicKey, version, signers: [(.oca, ocaKey), (.cek, cekKey)])
        let pdh = try Self.sevCertificate(.pdh, .ecdhSHA256, pdhKey.publicKey, version, signers: [(.pek, pekKey)])
        platform = PlatformCertificates(pdh: pdh, pek: pek, oca: oca, cek: cek)
    }

    private static func amdCertificate(
        key: RSAPublicKey, keyID: [UInt8], certifyingID: [UInt8], usage: UInt32, signer: RSAPrivateKey, bits: Int
    ) throws -> AMDCertificate {
        let size = bits / 8
        var body: [UInt8] = []
        func le32(_ v: UInt32) -> [UInt8] { [UInt8(v & 0xff), UInt8(v >> 8 & 0xff), UInt8(v >> 16 & 0xff), UInt8(v >> 24)] }
        body += le32(1) + keyID + certifyingID + le32(usage) + [UInt8](repeating: 0, count: 16) + le32(UInt32(bits)) + le32(UInt32(bits))
        body += key.exponent.reversed() + [UInt8](repeating: 0, count: size - key.exponent.count)
        body += key.modulus.reversed() + [UInt8](repeating: 0, count: size - key.modulus.count)
        let digest: DigestAlgorithm = bits == 2048 ? .sha256 : .sha384
        let signature = try signer.signature(for: body, digest: digest, padding: .pss(mgf1: digest, saltLength: digest.byteCount))
        return try AMDCertificate(bytes: body + signature.reversed() + [UInt8](repeating: 0, count: size - signature.count))
    }

    private static func sevCertificate(
        _ usage: SEVCertificate.Usage, _ algorithm: SEVCertificate.Algorithm, _ key: ECPublicKey, _ version: FirmwareVersion,
        signers: [(SEVCertificate.Usage, ECPrivateKey)]
    ) throws -> SEVCertificate {
        let body = SEVCertificate.unsignedBody(
            usage: usage, algorithm: algorithm, publicKey: key, apiMajor: version.apiMajor, apiMinor: version.apiMinor)
        let slots = try signers.map { signer in
            try SEVCertificate.SignatureSlot.ecdsa(usage: signer.0, signature: try signer.1.signature(for: body, digest: .sha256))
        }
        return try SEVCertificate(
            usage: usage, algorithm: algorithm, publicKey: key, apiMajor: version.apiMajor, apiMinor: version.apiMinor, signatures: slots)
    }

    // MARK: PDH_CERT_EXPORT

    /// What libvirt's `virNodeGetSEVInfo` reports: base64 `pdh` and `cert-chain` (PEK ‖ OCA ‖ CEK).
    public var nodeSEVInfo: (pdh: String, certChain: String) {
        (Base64.encode(platform.pdh.bytes), Base64.encode(platform.certChain))
    }

    // MARK: Guest launch

    enum State { case launchUpdate, launchSecret, running }

    struct GuestContext {
        var state: State
        let policy: GuestPolicy
        let keys: TransportKeys
        var digest: StreamingDigest
        var measure: [UInt8]?
        var secretArea: [UInt8]?
    }

    /// LAUNCH_START: checks the GODH, derives MASTER/KEK/KIK with the PDH private key, checks WRAP_MAC, unwraps
    /// TEK/TIK and checks POLICY_MAC against the policy the host passes.
    /// - Returns: the guest handle.
    public func launchStart(policy: UInt32, godhCertificate: [UInt8], session: [UInt8]) throws(SEVFirmwareError) -> UInt32 {
        let godh: SEVCertificate
        do { godh = try SEVCertificate(bytes: godhCertificate) } catch {
            throw SEVFirmwareError(SEVFirmwareError.invalidCertificate, "GODH: \(error)")
        }
        guard godh.algorithm.isECDH, godh.publicKey.curve == .p384 else {
            throw SEVFirmwareError(SEVFirmwareError.invalidCertificate, "GODH must be an ECDH P-384 key")
        }
        let blob: SessionBlob
        do { blob = try SessionBlob(bytes: session) } catch { throw SEVFirmwareError(SEVFirmwareError.invalidLength, "session: \(error)") }
        let z: SecretBytes
        do { z = try pdhKey.sharedSecret(with: godh.publicKey) } catch {
            throw SEVFirmwareError(SEVFirmwareError.invalidCertificate, "ECDH: \(error)")
        }
        let keys = z.withBytes { SessionKeys(sharedSecret: $0, nonce: blob.nonce) }
        let guestPolicy = GuestPolicy(rawValue: policy)
        let transport: TransportKeys
        do throws(SEVError) { transport = try blob.unwrap(keys: keys, policy: guestPolicy) } catch {
            throw SEVFirmwareError(error.offset == 0x60 ? SEVFirmwareError.policyFailure : SEVFirmwareError.badSignature, error.reason)
        }
        let handle = nextHandle.withLock { next in
            defer { next += 1 }
            return next
        }
        guests.withLock {
            $0[handle] = GuestContext(state: .launchUpdate, policy: guestPolicy, keys: transport, digest: StreamingDigest(.sha256))
        }
        return handle
    }

    private func withGuest<R>(_ handle: UInt32, _ body: (inout GuestContext) throws(SEVFirmwareError) -> R) throws(SEVFirmwareError) -> R {
        let result: Result<R, SEVFirmwareError> = guests.withLock { guests in
            guard var guest = guests[handle] else { return .failure(SEVFirmwareError(SEVFirmwareError.invalidGuest, "no guest \(handle)")) }
            do throws(SEVFirmwareError) {
                let value = try body(&guest)
                guests[handle] = guest
                return .success(value)
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    /// LAUNCH_UPDATE_DATA: the plaintext is measured (and would be encrypted in place).
    public func launchUpdateData(handle: UInt32, _ data: [UInt8]) throws(SEVFirmwareError) {
        try withGuest(handle) { (guest: inout GuestContext) throws(SEVFirmwareError) in
            guard guest.state == .launchUpdate else {
                throw SEVFirmwareError(SEVFirmwareError.invalidGuestState, "LAUNCH_UPDATE_DATA after LAUNCH_MEASURE")
            }
            guest.digest.update(data)
        }
    }

    /// LAUNCH_UPDATE_VMSA: SEV-ES guests only; the 4096-byte VMSA is measured.
    public func launchUpdateVMSA(handle: UInt32, _ vmsa: [UInt8]) throws(SEVFirmwareError) {
        try withGuest(handle) { (guest: inout GuestContext) throws(SEVFirmwareError) in
            guard guest.state == .launchUpdate else {
                throw SEVFirmwareError(SEVFirmwareError.invalidGuestState, "LAUNCH_UPDATE_VMSA after LAUNCH_MEASURE")
            }
            guard guest.policy.isEncryptedState else {
                throw SEVFirmwareError(SEVFirmwareError.policyFailure, "VMSA update for a non-ES guest")
            }
            guard vmsa.count == VMSA.size else { throw SEVFirmwareError(SEVFirmwareError.invalidLength, "VMSA must be 4096 bytes") }
            guest.digest.update(vmsa)
        }
    }

    /// LAUNCH_MEASURE: MEASURE(32) ‖ MNONCE(16), with a fresh mnonce chosen here.
    public func launchMeasure(handle: UInt32) throws(SEVFirmwareError) -> [UInt8] {
        let mnonce: [UInt8]
        do { mnonce = try SecureRandom.bytes(16) } catch { throw SEVFirmwareError(0xFF, "RNG") }
        return try withGuest(handle) { (guest: inout GuestContext) throws(SEVFirmwareError) -> [UInt8] in
            guard guest.state == .launchUpdate else { throw SEVFirmwareError(SEVFirmwareError.invalidGuestState, "LAUNCH_MEASURE twice") }
            let measure: [UInt8]
            do {
                measure = try LaunchMeasurement.compute(
                    tik: guest.keys.tik, version: version, policy: guest.policy, launchDigest: guest.digest.finalize(), mnonce: mnonce)
            } catch {
                throw SEVFirmwareError(0xFF, "\(error)")
            }
            guest.measure = measure
            guest.state = .launchSecret
            return measure + mnonce
        }
    }

    /// LAUNCH_SECRET: checks the header MAC (over the 32-byte measure, context 0x01) and decrypts the payload into
    /// the guest's secret area.
    public func launchSecret(handle: UInt32, header: [UInt8], payload: [UInt8]) throws(SEVFirmwareError) {
        try withGuest(handle) { (guest: inout GuestContext) throws(SEVFirmwareError) in
            guard guest.state == .launchSecret, let measure = guest.measure else {
                throw SEVFirmwareError(SEVFirmwareError.invalidGuestState, "LAUNCH_SECRET outside the LAUNCH_SECRET state")
            }
            guard header.count == 52 else { throw SEVFirmwareError(SEVFirmwareError.invalidLength, "header must be 52 bytes") }
            guard header[0..<4].allSatisfy({ $0 == 0 }) else {
                throw SEVFirmwareError(SEVFirmwareError.invalidParameter, "FLAGS must be 0")
            }
            guard !payload.isEmpty, payload.count % 16 == 0, payload.count <= 0xC00 else {
                throw SEVFirmwareError(SEVFirmwareError.invalidLength, "payload of \(payload.count) bytes")
            }
            let iv = Array(header[4..<20])
            let mac = Array(header[20..<52])
            let input = SecretPacket.macInput(flags: 0, iv: iv, guestLength: UInt32(payload.count), ciphertext: payload, measure: measure)
            guard guest.keys.tik.withBytes({ HMAC.isValid(mac, .sha256, key: $0, data: input) }) else {
                throw SEVFirmwareError(SEVFirmwareError.badMeasurement, "secret header MAC does not verify")
            }
            do {
                guest.secretArea = try guest.keys.tek.withBytes { tek throws(CryptoError) in
                    try AES.CTR.apply(key: tek, iv: iv, data: payload)
                }
            } catch {
                throw SEVFirmwareError(0xFF, "\(error)")
            }
        }
    }

    /// LAUNCH_FINISH: the guest runs.
    public func launchFinish(handle: UInt32) throws(SEVFirmwareError) {
        try withGuest(handle) { (guest: inout GuestContext) throws(SEVFirmwareError) in
            guard guest.state != .running else { throw SEVFirmwareError(SEVFirmwareError.invalidGuestState, "LAUNCH_FINISH twice") }
            guest.state = .running
        }
    }

    /// What the running guest sees in `/sys/kernel/security/secrets/coco/` (parsed as Linux `efi_secret` does).
    public func guestSecrets(handle: UInt32) throws -> [(guid: EFIGUID, data: [UInt8])] {
        let area = try withGuest(handle) { (guest: inout GuestContext) throws(SEVFirmwareError) -> [UInt8]? in guest.secretArea }
        guard let area else { return [] }
        return try SecretTable.parse(area)
    }

    // MARK: QEMU's part

    /// What QEMU/KVM feed the firmware for a launch: the firmware image, the kernel hashes table, one VMSA per vCPU.
    public func launch(handle: UInt32, firmware: [UInt8], kernelHashesTable: [UInt8]?, vmsas: [[UInt8]]) throws(SEVFirmwareError) {
        try launchUpdateData(handle: handle, firmware)
        if let kernelHashesTable { try launchUpdateData(handle: handle, kernelHashesTable) }
        for vmsa in vmsas { try launchUpdateVMSA(handle: handle, vmsa) }
    }
}
