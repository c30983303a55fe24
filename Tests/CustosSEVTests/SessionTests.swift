import CustosCrypto
import CustosSEV
import CustosTestSupport
import Testing

@Suite("Launch session (GODH, KDF, TEK/TIK wrap)")
struct SessionTests {
    @Test("K1: virtee key.rs derive")
    func kdfVector() {
        let master = SEVKDF.derive(
            key: [UInt8](repeating: 0, count: 16), label: "sev-master-secret", context: [UInt8](repeating: 0, count: 16), length: 16)
        #expect(Hex.encode(master) == "ab4d269fcc62bedb4511d56c386ce706")
    }

    @Test("K2: virtee session() with Z = 16 zero bytes, all inputs zero (sev.md §2.7)")
    func virteeSession() throws {
        let keys = SessionKeys(sharedSecret: [UInt8](repeating: 0, count: 16), nonce: [UInt8](repeating: 0, count: 16))
        #expect(Hex.encode(keys.master.unsafeCopy()) == "ab4d269fcc62bedb4511d56c386ce706")
        #expect(Hex.encode(keys.kek.unsafeCopy()) == "b6abfbfb75ea1ea74ed8750b8afdb973")
        #expect(Hex.encode(keys.kik.unsafeCopy()) == "53b524bf5669a363f365c864acba8572")
        let zero = SecretBytes([UInt8](repeating: 0, count: 16))
        let tk = try TransportKeys(tek: zero, tik: zero)
        let blob = try SessionBlob(
            keys: keys, transportKeys: tk, nonce: [UInt8](repeating: 0, count: 16), wrapIV: [UInt8](repeating: 0, count: 16),
            policy: GuestPolicy(rawValue: 0))
        #expect(Hex.encode(blob.wrappedKeys) == "2137bc7f9bb8bd7c3e55a576a15d3454b3856b8ba27afadf46dcfee9f02c02c4")
        #expect(Hex.encode(blob.wrapMAC) == "3176c0752738bd9d5e86689534020f528c088f16238826b000b327dee6aeed7d")
        #expect(Hex.encode(blob.policyMAC) == "aa7855e13839dd767cd5da7c1ff5036540c9264b7a803029315e55375287b4af")
        #expect(blob.bytes.count == 128)
        #expect(try SessionBlob(bytes: blob.bytes) == blob)
        // The platform side unwraps what we wrapped, and refuses another policy.
        #expect(try blob.unwrap(keys: keys, policy: GuestPolicy(rawValue: 0)) == tk)
        #expect((#expect(throws: SEVError.self) { try blob.unwrap(keys: keys, policy: GuestPolicy(rawValue: 3)) })?.offset == 0x60)
    }

    /// d_GO = SHA-384("sev-crosscheck-godh") mod n (sev.md §2.7).
    static let godhScalar = "157134384c625f42d59cc09c2ac16e24c38b46a2745ffd084b9523b13f33a568a401b57700d32314507bd01a0a4e9a11"

    @Test(
        "real Rome PDH: Z, MASTER/KEK/KIK, GODH cert and session blob (sev.md §2.7)",
        Requirement.testData)
    func romeVector() throws {
        let pdh = try SEVCertificate(bytes: try sev("platform-chains/rome/pdh.cert"))
        let godhKey = try ECPrivateKey(curve: .p384, rawScalar: hex(Self.godhScalar))
        let z = try godhKey.sharedSecret(with: pdh.publicKey)
        #expect(
            Hex.encode(z.unsafeCopy()) == "46997468cd476f32502aceecca86af1aaadc94c2b290536d306857853357ec7f9b53808ae461d64a3c2a3d4f6aa71c88"
        )
        let keys = SessionKeys(sharedSecret: z.unsafeCopy(), nonce: sequence(from: 0x40, count: 16))
        #expect(Hex.encode(keys.master.unsafeCopy()) == "b67dd34edad0c7f383e60c12c7754c0d")
        #expect(Hex.encode(keys.kek.unsafeCopy()) == "8968c8a1522e5c10aabb4525d433fd5a")
        #expect(Hex.encode(keys.kik.unsafeCopy()) == "242fd3e7c359bf7c7f026bed1e1983fa")
        let tk = try TransportKeys(tek: SecretBytes(sequence(from: 0x10, count: 16)), tik: SecretBytes(sequence(from: 0, count: 16)))
        let session = try LaunchSession.make(
            pdh: pdh, policy: GuestPolicy(rawValue: 3), godhKey: godhKey, nonce: sequence(from: 0x40, count: 16),
            wrapIV: sequence(from: 0x50, count: 16), transportKeys: tk)
        #expect(
            session.sessionBase64
                == "QEFCQ0RFRkdISUpLTE1OT6x6y3Iyt48rpUtkCuz7a8Yf2d2xmC3LYOHtT6rSG3aEUFFSU1RVVldYWVpbXF1eXxzYLs7f9bk5dfIQdjwHncoG8flflKOaQNJnA+td4zF9G9o7YkN6iD8PO0Oi7ztCkqNj3vQiQI4P0o5iO97xQlw="
        )
        #expect(session.godh.bytes == (try sev("crosscheck/godh-crosscheck.cert")))
        #expect(Hex.encode(Digest.sha256(session.godh.bytes)) == "fd0d11fadb374f7b76347d2b162df1ce7c4e61ceffb14f0af71b88ed1480f202")
        #expect(session.dhCertBase64 == Base64.encode(try sev("crosscheck/godh-crosscheck.cert")))
        let emptySlots = session.godh.signatures.filter { $0.isEmpty }.count
        #expect(emptySlots == 2)
    }

    @Test(
        "fresh sessions differ; a PEK is refused as ECDH peer; reserved policy bits are refused",
        Requirement.testData)
    func freshness() throws {
        let p = try platform("naples")
        let a = try LaunchSession.make(pdh: p.pdh, policy: GuestPolicy(rawValue: 7))
        let b = try LaunchSession.make(pdh: p.pdh, policy: GuestPolicy(rawValue: 7))
        #expect(a.blob.nonce != b.blob.nonce)
        #expect(a.transportKeys != b.transportKeys)
        #expect(a.godh.bytes != b.godh.bytes)
        #expect(Base64.decodeOrEmpty(a.sessionBase64).count == 128)
        #expect(Base64.decodeOrEmpty(a.dhCertBase64).count == 2084)
        #expect(
            (#expect(throws: SEVError.self) { try LaunchSession.make(pdh: p.pek, policy: GuestPolicy(rawValue: 3)) })?.code
                == .chainMismatch)
        #expect(
            (#expect(throws: SEVError.self) { try LaunchSession.make(pdh: p.pdh, policy: GuestPolicy(rawValue: 0x40)) })?.code
                == .invalidParameter)
    }

    @Test("session blob truncation sweep")
    func blobTruncation() {
        let bytes = sequence(from: 0, count: 128)
        for length in 0..<128 {
            #expect((#expect(throws: SEVError.self) { try SessionBlob(bytes: Array(bytes[0..<length])) })?.code == .truncated)
        }
        #expect((#expect(throws: SEVError.self) { try SessionBlob(bytes: bytes + [1]) })?.code == .trailingBytes)
    }
}

extension Base64 {
    static func decodeOrEmpty(_ text: String) -> [UInt8] { (try? decode(text)) ?? [] }
}
