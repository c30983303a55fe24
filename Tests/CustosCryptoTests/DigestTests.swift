import CustosCrypto
import Testing

/// Known answers: FIPS 180-2 Appendix B/C/D examples ("abc", the 448-bit message, one million "a"),
/// and RFC 4231 §4.2/§4.3 for HMAC.
@Suite struct DigestTests {
    static let abc = Array("abc".utf8)

    @Test func sha256KnownAnswers() throws {
        #expect(Digest.sha256(Self.abc).hexString == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(Digest.sha256([UInt8]()).hexString == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        let twoBlocks = Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)
        #expect(Digest.sha256(twoBlocks).hexString == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    }

    @Test func sha384AndSha512AndSha1KnownAnswers() {
        #expect(
            Digest.sha384(Self.abc).hexString
                == "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7")
        #expect(
            Digest.sha512(Self.abc).hexString
                == "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
        )
        #expect(Digest.hash(.sha1, Self.abc).hexString == "a9993e364706816aba3e25717850c26c9cd0d89d")
    }

    @Test func streamingMillionA() {
        var hasher = StreamingDigest(.sha256)
        let chunk = [UInt8](repeating: UInt8(ascii: "a"), count: 1000)
        for _ in 0..<1000 { hasher.update(chunk) }
        #expect(hasher.finalize().hexString == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    @Test func streamingForksOnCopyAndFinalizeIsRepeatable() {
        var prefix = StreamingDigest(.sha384)
        prefix.update(Array("ab".utf8))
        var fork = prefix
        fork.update(Array("c".utf8))
        #expect(fork.finalize() == Digest.sha384(Self.abc))
        #expect(fork.finalize() == Digest.sha384(Self.abc))
        #expect(prefix.finalize() == Digest.sha384(Array("ab".utf8)))
    }

    @Test(arguments: [DigestAlgorithm.sha256, .sha384, .sha512, .sha1])
    func oidRoundTrip(algorithm: DigestAlgorithm) {
        #expect(DigestAlgorithm(oid: algorithm.oid) == algorithm)
        #expect(Digest.hash(algorithm, Self.abc).count == algorithm.byteCount)
    }

    // RFC 4231 test case 1 and 2.
    @Test func hmacRFC4231() throws {
        let key1 = [UInt8](repeating: 0x0b, count: 20)
        let data1 = Array("Hi There".utf8)
        #expect(
            HMAC.authenticationCode(.sha256, key: key1, data: data1).hexString
                == "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
        #expect(
            HMAC.authenticationCode(.sha384, key: key1, data: data1).hexString
                == "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59cfaea9ea9076ede7f4af152e8b2fa9cb6")
        let key2 = Array("Jefe".utf8)
        let data2 = Array("what do ya want for nothing?".utf8)
        #expect(
            HMAC.authenticationCode(.sha256, key: key2, data: data2).hexString
                == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        #expect(
            HMAC.authenticationCode(.sha384, key: key2, data: data2).hexString
                == "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649")
        let mac = try Hex.decode("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        #expect(HMAC.isValid(mac, .sha256, key: key2, data: data2))
        #expect(!HMAC.isValid(mac, .sha256, key: key2, data: data1))
    }

    @Test func constantTimeCompare() {
        #expect(constantTimeEqual([1, 2, 3] as [UInt8], [1, 2, 3] as [UInt8]))
        #expect(!constantTimeEqual([1, 2, 3] as [UInt8], [1, 2, 4] as [UInt8]))
        #expect(!constantTimeEqual([1, 2, 3] as [UInt8], [1, 2] as [UInt8]))
    }

    @Test func secretsCompareAndZero() throws {
        let a = SecretBytes([1, 2, 3])
        #expect(a == SecretBytes([1, 2, 3]))
        #expect(a != SecretBytes([1, 2, 4]))
        var plain: [UInt8] = [9, 9, 9]
        secureZero(&plain)
        #expect(plain == [0, 0, 0])
        let random = try SecureRandom.bytes(32)
        #expect(random.count == 32)
        #expect(try SecureRandom.bytes(32) != random)
    }
}
