public import CustosCrypto

// MARK: - Randomness

/// Where the launch session and secret packets get their random bytes; injectable so tests can pin an IV.
public protocol SEVRandomSource: Sendable {
    /// `count` fresh random bytes.
    func bytes(_ count: Int) throws(SEVError) -> [UInt8]
}

/// OpenSSL's DRBG (the default everywhere outside tests).
public struct SystemRandomSource: SEVRandomSource {
    public init() {}
    public func bytes(_ count: Int) throws(SEVError) -> [UInt8] {
        do { return try SecureRandom.bytes(count) } catch { throw SEVError(.cryptoFailure, "random bytes: \(error)") }
    }
}

// MARK: - Guest policy

/// The guest policy passed to LAUNCH_START (sev.md §3); little-endian u32 in every MAC.
public struct GuestPolicy: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let noDebug = GuestPolicy(rawValue: 1 << 0)
    public static let noKeySharing = GuestPolicy(rawValue: 1 << 1)
    /// SEV-ES required: QEMU and libvirt pick SEV-ES from this bit.
    public static let encryptedState = GuestPolicy(rawValue: 1 << 2)
    public static let noSend = GuestPolicy(rawValue: 1 << 3)
    public static let domain = GuestPolicy(rawValue: 1 << 4)
    public static let sev = GuestPolicy(rawValue: 1 << 5)

    /// Whether the ES bit selects SEV-ES.
    public var isEncryptedState: Bool { rawValue & Self.encryptedState.rawValue != 0 }
    /// Bits 6–15 are reserved and must be zero.
    public var hasReservedBits: Bool { rawValue & 0xFFC0 != 0 }
    /// Minimum firmware API (bits 16–23 major, 24–31 minor).
    public var minimumAPI: (major: UInt8, minor: UInt8) { (UInt8(rawValue >> 16 & 0xff), UInt8(rawValue >> 24 & 0xff)) }
    public var description: String { "0x" + String(rawValue, radix: 16) }

    /// The 4 bytes that go into the MACs.
    public var littleEndianBytes: [UInt8] {
        var out: [UInt8] = []
        out.appendLE(rawValue)
        return out
    }
}

// MARK: - KDF

/// The SEV key derivation (NIST SP 800-108 counter mode, PRF HMAC-SHA256) as sev-tool `kdf()` and virtee
/// `Key::derive` implement it: `K(i) = HMAC(key, u32le(i) ‖ label ‖ 0x00 ‖ context ‖ u32le(L_bits))`.
///
/// The counter and L are **little-endian**, unlike most SP 800-108 libraries (sev.md §2 step 3, §11 trap 1).
public enum SEVKDF {
    /// Derives `length` bytes.
    public static func derive(key: [UInt8], label: String, context: [UInt8], length: Int) -> [UInt8] {
        var output: [UInt8] = []
        var counter: UInt32 = 1
        let bits = UInt32(truncatingIfNeeded: length * 8)
        while output.count < length {
            var message: [UInt8] = []
            message.appendLE(counter)
            message += Array(label.utf8)
            message.append(0)
            message += context
            message.appendLE(bits)
            output += HMAC.authenticationCode(.sha256, key: key, data: message)
            counter += 1
        }
        return Array(output.prefix(length))
    }
}

/// MASTER, KEK and KIK of one launch, derived from the ECDH secret Z and the session nonce (sev.md §2 step 3).
public struct SessionKeys: Sendable {
    public let master: SecretBytes
    /// Wraps TEK ‖ TIK (AES-128-CTR).
    public let kek: SecretBytes
    /// MACs the wrapped keys (HMAC-SHA256).
    public let kik: SecretBytes

    /// - Parameters:
    ///   - sharedSecret: Z, the ECDH x coordinate exactly as OpenSSL derives it (big-endian, not reversed).
    ///   - nonce: the session blob's 16-byte NONCE.
    public init(sharedSecret: [UInt8], nonce: [UInt8]) {
        var master = SEVKDF.derive(key: sharedSecret, label: "sev-master-secret", context: nonce, length: 16)
        kek = SecretBytes(SEVKDF.derive(key: master, label: "sev-kek", context: [], length: 16))
        kik = SecretBytes(SEVKDF.derive(key: master, label: "sev-kik", context: [], length: 16))
        self.master = SecretBytes(master)
        secureZero(&master)
    }
}

// MARK: - TEK / TIK

/// The transport encryption and integrity keys of one launch: 16 random bytes each, fresh per launch.
///
/// Reusing them lets the host forge measurements (virt-qemu-sev-validate caveat). Zeroed when dropped.
public struct TransportKeys: Sendable, Equatable {
    public let tek: SecretBytes
    public let tik: SecretBytes

    /// - Throws: `.invalidParameter` unless both are 16 bytes.
    public init(tek: SecretBytes, tik: SecretBytes) throws(SEVError) {
        guard tek.count == 16, tik.count == 16 else {
            throw SEVError(.invalidParameter, "TEK and TIK must be 16 bytes each, got \(tek.count) and \(tik.count)")
        }
        self.tek = tek
        self.tik = tik
    }

    /// Fresh keys from `random`.
    public static func generate(using random: some SEVRandomSource = SystemRandomSource()) throws(SEVError) -> TransportKeys {
        try TransportKeys(tek: SecretBytes(try random.bytes(16)), tik: SecretBytes(try random.bytes(16)))
    }

    /// From libvirt's `--tk` file layout: TEK ‖ TIK (32 bytes, TEK first).
    public init(concatenated bytes: SecretBytes) throws(SEVError) {
        guard bytes.count == 32 else { throw SEVError(.invalidParameter, "TEK ‖ TIK must be 32 bytes, got \(bytes.count)") }
        let copy = bytes.unsafeCopy()
        try self.init(tek: SecretBytes(Array(copy[0..<16])), tik: SecretBytes(Array(copy[16..<32])))
    }
}

// MARK: - Session blob

/// The 128-byte LAUNCH_START session buffer (sev.md §2 step 6):
///
/// | off | size | field |
/// |---|---|---|
/// | 0x00 | 16 | NONCE |
/// | 0x10 | 32 | WRAP_TK = AES-128-CTR(KEK, WRAP_IV, TEK ‖ TIK) |
/// | 0x30 | 16 | WRAP_IV |
/// | 0x40 | 32 | WRAP_MAC = HMAC-SHA256(KIK, WRAP_TK) |
/// | 0x60 | 32 | POLICY_MAC = HMAC-SHA256(TIK, u32le(POLICY)) |
public struct SessionBlob: Sendable, Equatable {
    public static let size = 128
    public let nonce: [UInt8]
    public let wrappedKeys: [UInt8]
    public let wrapIV: [UInt8]
    public let wrapMAC: [UInt8]
    public let policyMAC: [UInt8]

    /// Parses the 128 bytes.
    public init(bytes: [UInt8]) throws(SEVError) {
        var reader = ByteReader(bytes)
        nonce = try reader.readBytes(16, field: "NONCE")
        wrappedKeys = try reader.readBytes(32, field: "WRAP_TK")
        wrapIV = try reader.readBytes(16, field: "WRAP_IV")
        wrapMAC = try reader.readBytes(32, field: "WRAP_MAC")
        policyMAC = try reader.readBytes(32, field: "POLICY_MAC")
        try reader.expectEnd("session blob")
    }

    /// Builds the blob: wraps TEK ‖ TIK under KEK and computes both MACs.
    public init(keys: SessionKeys, transportKeys: TransportKeys, nonce: [UInt8], wrapIV: [UInt8], policy: GuestPolicy) throws(SEVError) {
        guard nonce.count == 16, wrapIV.count == 16 else { throw SEVError(.invalidParameter, "NONCE and WRAP_IV must be 16 bytes") }
        var plain = transportKeys.tek.unsafeCopy() + transportKeys.tik.unsafeCopy()
        defer { secureZero(&plain) }
        let wrapped: [UInt8]
        do { wrapped = try keys.kek.withBytes { kek throws(CryptoError) in try AES.CTR.apply(key: kek, iv: wrapIV, data: plain) } } catch {
            throw SEVError(.cryptoFailure, "AES-CTR wrap: \(error)")
        }
        self.nonce = nonce
        self.wrappedKeys = wrapped
        self.wrapIV = wrapIV
        self.wrapMAC = keys.kik.withBytes { HMAC.authenticationCode(.sha256, key: $0, data: wrapped) }
        self.policyMAC = transportKeys.tik.withBytes { HMAC.authenticationCode(.sha256, key: $0, data: policy.littleEndianBytes) }
    }

    /// The 128 bytes.
    public var bytes: [UInt8] { nonce + wrappedKeys + wrapIV + wrapMAC + policyMAC }
    /// As libvirt's `<session>` takes it.
    public var base64: String { Base64.encode(bytes) }

    /// The platform's side (LAUNCH_START): checks WRAP_MAC, unwraps TEK/TIK, checks POLICY_MAC.
    /// - Throws: `.signatureInvalid` naming the MAC that failed.
    public func unwrap(keys: SessionKeys, policy: GuestPolicy) throws(SEVError) -> TransportKeys {
        guard keys.kik.withBytes({ HMAC.isValid(wrapMAC, .sha256, key: $0, data: wrappedKeys) }) else {
            throw SEVError(.signatureInvalid, "WRAP_MAC does not verify", offset: 0x40)
        }
        var plain: [UInt8]
        do {
            plain = try keys.kek.withBytes { kek throws(CryptoError) in try AES.CTR.apply(key: kek, iv: wrapIV, data: wrappedKeys) }
        } catch {
            throw SEVError(.cryptoFailure, "AES-CTR unwrap: \(error)")
        }
        defer { secureZero(&plain) }
        let transport = try TransportKeys(tek: SecretBytes(Array(plain[0..<16])), tik: SecretBytes(Array(plain[16..<32])))
        guard transport.tik.withBytes({ HMAC.isValid(policyMAC, .sha256, key: $0, data: policy.littleEndianBytes) }) else {
            throw SEVError(.signatureInvalid, "POLICY_MAC does not verify for policy \(policy)", offset: 0x60)
        }
        return transport
    }
}

// MARK: - Launch session

/// Everything the guest owner makes for LAUNCH_START: the GODH certificate, the session blob and the TEK/TIK
/// it keeps to check the measurement and build the secret (sev.md §2).
public struct LaunchSession: Sendable {
    /// The guest owner's Diffie-Hellman certificate (usage PDH, ECDH_SHA256, P-384, empty signature slots).
    public let godh: SEVCertificate
    public let blob: SessionBlob
    public let policy: GuestPolicy
    public let transportKeys: TransportKeys

    /// libvirt `<dhCert>`: base64 of the 2084-byte GODH certificate.
    public var dhCertBase64: String { Base64.encode(godh.bytes) }
    /// libvirt `<session>`: base64 of the 128-byte blob.
    public var sessionBase64: String { blob.base64 }

    /// Makes a fresh session with a verified platform's PDH: new GODH key, nonce, IV, TEK and TIK.
    /// - Parameters:
    ///   - chain: the verified platform chain (its PDH is the ECDH peer).
    ///   - policy: the guest policy the host must pass to LAUNCH_START.
    ///   - random: the random source (tests pin it).
    public static func make(for chain: ValidatedPlatformChain, policy: GuestPolicy, random: some SEVRandomSource = SystemRandomSource())
        throws(SEVError) -> LaunchSession
    {
        try make(pdh: chain.pdh, policy: policy, random: random)
    }

    /// As ``make(for:policy:random:)`` with a PDH whose chain the caller has verified (or deliberately not).
    public static func make(pdh: SEVCertificate, policy: GuestPolicy, random: some SEVRandomSource = SystemRandomSource()) throws(SEVError)
        -> LaunchSession
    {
        let godhKey: ECPrivateKey
        do { godhKey = try ECPrivateKey(generating: pdh.publicKey.curve) } catch {
            throw SEVError(.cryptoFailure, "GODH key generation: \(error)")
        }
        return try make(
            pdh: pdh, policy: policy, godhKey: godhKey, nonce: try random.bytes(16), wrapIV: try random.bytes(16),
            transportKeys: try TransportKeys.generate(using: random))
    }

    /// The deterministic core (for known-answer tests): every input given.
    public static func make(
        pdh: SEVCertificate, policy: GuestPolicy, godhKey: ECPrivateKey, nonce: [UInt8], wrapIV: [UInt8], transportKeys: TransportKeys
    ) throws(SEVError) -> LaunchSession {
        guard pdh.usage == .pdh, pdh.algorithm.isECDH else {
            throw SEVError(.chainMismatch, "the ECDH peer must be a PDH certificate (got \(pdh.usage), \(pdh.algorithm))")
        }
        guard !policy.hasReservedBits else { throw SEVError(.invalidParameter, "policy \(policy) sets reserved bits 6–15") }
        let z: SecretBytes
        do { z = try godhKey.sharedSecret(with: pdh.publicKey) } catch { throw SEVError(.cryptoFailure, "ECDH with the PDH: \(error)") }
        let keys = z.withBytes { SessionKeys(sharedSecret: $0, nonce: nonce) }
        let blob = try SessionBlob(keys: keys, transportKeys: transportKeys, nonce: nonce, wrapIV: wrapIV, policy: policy)
        let godh = try SEVCertificate(usage: .pdh, algorithm: .ecdhSHA256, publicKey: godhKey.publicKey)
        return LaunchSession(godh: godh, blob: blob, policy: policy, transportKeys: transportKeys)
    }
}
