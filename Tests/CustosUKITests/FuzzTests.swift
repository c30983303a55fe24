import CustosCrypto
import CustosTestSupport
import CustosUKI
import Foundation
import Testing

/// A deterministic PRNG so that a failing flip can be reproduced.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Untrusted input: every truncation and random byte flips must give typed errors or verdicts, never a crash.
@Suite(.enabled(if: UKIFixtures.canBuild, Comment(rawValue: UKIFixtures.skipReason)))
struct FuzzTests {
    /// The bare systemd-stub signed with sbsign: a real signed PE small enough to sweep exhaustively.
    static func signedStub(_ variant: String = "ukify-254") throws -> (bytes: [UInt8], anchors: [Certificate]) {
        let v = try UKIFixtures.variant(variant)
        return (try v.bytes("uki-stub-signed.efi"), try Certificate.parsePEMChain(String(contentsOf: v.dbCertificate, encoding: .utf8)))
    }

    /// Runs everything that reads the image; returns whether the verifier accepted it.
    static func exercise(_ bytes: [UInt8], anchors: [Certificate]) -> Bool? {
        guard let uki = try? UnifiedKernelImage(bytes: bytes) else { return nil }
        _ = uki.authenticodeDigest(.sha256)
        _ = try? uki.predictPCR11(.sha256, rules: .v254)
        _ = (uki.stub, uki.cmdline, uki.osRelease, uki.uname, uki.sbat)
        _ = uki.image.embeddedSignatures()
        return AuthenticodeVerifier(trustAnchors: anchors).verify(uki.image).isVerified
    }

    @Test("the signed stub verifies (baseline for the sweeps)", arguments: ["ukify-254", "ukify-252"])
    func baseline(variant: String) throws {
        let (bytes, anchors) = try Self.signedStub(variant)
        #expect(Self.exercise(bytes, anchors: anchors) == true)
    }

    @Test("every truncation length throws .truncated", arguments: ["ukify-254", "ukify-252"])
    func everyTruncation(variant: String) throws {
        let (bytes, _) = try Self.signedStub(variant)
        var wrong: [Int] = []
        for length in 0..<bytes.count {
            do {
                _ = try PEImage(bytes: Array(bytes[0..<length]))
                wrong.append(length)
            } catch {
                if error.status != .truncated { wrong.append(length) }
            }
        }
        #expect(wrong.isEmpty, "lengths not rejected as truncated: \(wrong.prefix(20))")
    }

    @Test("truncating a big signed UKI inside its certificate table and headers throws .truncated")
    func truncateBigUKI() throws {
        let variant = try UKIFixtures.variant("ukify-254")
        let bytes = try variant.bytes("uki-signed.efi")
        let image = try PEImage(bytes: bytes)
        let certStart = try #require(image.certificateTableOffset)
        // A sample across the whole file plus every length in the last 64 bytes of the certificate table.
        let lengths =
            Array(stride(from: 0, to: bytes.count, by: bytes.count / 97)) + Array(bytes.count - 64..<bytes.count) + [
                certStart, certStart + 1,
            ]
        for length in lengths {
            #expect(throws: PEParseError(.truncated, at: 0, "")) { try PEImage(bytes: Array(bytes[0..<length])) }
        }
    }

    @Test("random byte flips in the headers never verify (except CheckSum), never crash")
    func headerFlips() throws {
        let (bytes, anchors) = try Self.signedStub()
        let image = try PEImage(bytes: bytes)
        let checksum = image.optionalHeader.offset + 64
        var rng = SplitMix64(state: 0x5EED_0001)
        var parsed = 0
        for _ in 0..<1500 {
            var copy = bytes
            let offset = Int.random(in: 0..<image.optionalHeader.sizeOfHeaders, using: &rng)
            copy[offset] ^= UInt8.random(in: 1...255, using: &rng)
            guard let verified = Self.exercise(copy, anchors: anchors) else { continue }
            parsed += 1
            if !(checksum..<checksum + 4).contains(offset) {
                #expect(!verified, "a flip at header offset \(offset) still verified")
            }
        }
        #expect(parsed > 100)
    }

    @Test("random byte flips in the certificate table give typed errors or rejections, never a crash")
    func certificateTableFlips() throws {
        let (bytes, anchors) = try Self.signedStub()
        let image = try PEImage(bytes: bytes)
        let start = try #require(image.certificateTableOffset)
        let payloadEnd = start + 8 + (image.certificates.first?.certificate.count ?? 0)
        var rng = SplitMix64(state: 0x5EED_0002)
        var verifiedFlips: [Int] = []
        for _ in 0..<1500 {
            var copy = bytes
            let offset = Int.random(in: start..<bytes.count, using: &rng)
            copy[offset] ^= UInt8.random(in: 1...255, using: &rng)
            if Self.exercise(copy, anchors: anchors) == true, offset < payloadEnd { verifiedFlips.append(offset) }
        }
        // A flip in the DER may land in a part no check covers; print them so a reviewer can judge, but none in the
        // WIN_CERTIFICATE header or the signer's signature value may verify.
        let header = start..<start + 8
        #expect(!verifiedFlips.contains { header.contains($0) })
        #expect(verifiedFlips.count < 15, "flips that still verified: \(verifiedFlips)")
    }

    @Test("random flips anywhere in a small signed image, several bytes at once")
    func multiFlips() throws {
        let (bytes, anchors) = try Self.signedStub()
        var rng = SplitMix64(state: 0x5EED_0003)
        for _ in 0..<300 {
            var copy = bytes
            for _ in 0..<Int.random(in: 2...8, using: &rng) {
                copy[Int.random(in: 0..<copy.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            }
            _ = Self.exercise(copy, anchors: anchors)
        }
    }
}
