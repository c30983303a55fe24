import CustosCrypto
import Testing

@Suite struct CipherTests {
    // RFC 3686 §6, test vectors #1, #2 (AES-128) and #7 (AES-256).
    @Test(arguments: [
        (
            "ae6852f8121067cc4bf7a5765577f39e", "00000030000000000000000000000001", "53696e676c6520626c6f636b206d7367",
            "e4095d4fb7a7b3792d6175a3261311b8"
        ),
        (
            "7e24067817fae0d743d6ce1f32539163", "006cb6dbc0543b59da48d90b00000001",
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
            "5104a106168a72d9790d41ee8edad388eb2e1efc46da57c8fce630df9141be28"
        ),
        (
            "776beff2851db06f4c8a0542c8696f6c6a81af1eec96b4d37fc1d689e6c1c104", "00000060db5672c97aa8f0b200000001",
            "53696e676c6520626c6f636b206d7367", "145ad01dbf824ec7560863dc71e3e0c0"
        ),
    ])
    func aesCTRRFC3686(key: String, iv: String, plaintext: String, ciphertext: String) throws {
        let out = try AES.CTR.apply(key: Hex.decode(key), iv: Hex.decode(iv), data: Hex.decode(plaintext))
        #expect(out.hexString == ciphertext)
        let back = try AES.CTR.apply(key: Hex.decode(key), iv: Hex.decode(iv), data: out)
        #expect(back.hexString == plaintext)
    }

    @Test func aesCTRRejectsBadLengths() {
        #expect(throws: CryptoError(.invalidParameter, "")) {
            try AES.CTR.apply(key: [UInt8](repeating: 0, count: 15), iv: [UInt8](repeating: 0, count: 16), data: [1])
        }
        #expect(throws: CryptoError(.invalidParameter, "")) {
            try AES.CTR.apply(key: [UInt8](repeating: 0, count: 16), iv: [UInt8](repeating: 0, count: 12), data: [1])
        }
    }

    // The GCM specification (McGrew & Viega), test cases 2, 14 and 16.
    @Test func aesGCMKnownAnswers() throws {
        let zeros16 = [UInt8](repeating: 0, count: 16)
        let box2 = try AES.GCM.seal(key: zeros16, nonce: [UInt8](repeating: 0, count: 12), plaintext: zeros16)
        #expect(box2.ciphertext.hexString == "0388dace60b6a392f328c2b971b2fe78")
        #expect(box2.tag.hexString == "ab6e47d42cec13bdf53a67b21257bddf")

        let box14 = try AES.GCM.seal(key: [UInt8](repeating: 0, count: 32), nonce: [UInt8](repeating: 0, count: 12), plaintext: zeros16)
        #expect(box14.ciphertext.hexString == "cea7403d4d606b6e074ec5d3baf39d18")
        #expect(box14.tag.hexString == "d0d1c8a799996bf0265b98b5d48ab919")

        let key = try Hex.decode("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308")
        let nonce = try Hex.decode("cafebabefacedbaddecaf888")
        let plaintext = try Hex.decode(
            "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39")
        let aad = try Hex.decode("feedfacedeadbeeffeedfacedeadbeefabaddad2")
        let box16 = try AES.GCM.seal(key: key, nonce: nonce, plaintext: plaintext, aad: aad)
        #expect(
            box16.ciphertext.hexString
                == "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"
        )
        #expect(box16.tag.hexString == "76fc6ece0f4e1768cddf8853bb2d551b")
        #expect(try AES.GCM.open(key: key, box: box16, aad: aad) == plaintext)
    }

    @Test func aesGCMDetectsTampering() throws {
        let key = try SecureRandom.bytes(32)
        let box = try AES.GCM.seal(key: key, plaintext: Array("secret".utf8), aad: [1, 2])
        var flipped = box.ciphertext
        flipped[0] ^= 1
        #expect(throws: CryptoError(.authenticationFailure, "")) {
            try AES.GCM.open(key: key, box: .init(nonce: box.nonce, ciphertext: flipped, tag: box.tag), aad: [1, 2])
        }
        #expect(throws: CryptoError(.authenticationFailure, "")) { try AES.GCM.open(key: key, box: box, aad: [1, 3]) }
        #expect(throws: CryptoError(.invalidParameter, "")) {
            try AES.GCM.open(key: key, box: .init(nonce: box.nonce, ciphertext: box.ciphertext, tag: [1]))
        }
        #expect(try AES.GCM.open(key: key, box: box, aad: [1, 2]) == Array("secret".utf8))
    }
}
