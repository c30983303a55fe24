import CustosCrypto
import CustosTestSupport
import CustosUKI
import Foundation
import Testing

/// Untrusted input: every truncation and random byte flips must give typed errors or verdicts, never a crash.
@Suite(Requirement.skipOrFail(unless: UKIFixtures.canBuild, UKIFixtures.skipReason))
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
        var rng = SeededRandom("UKI FuzzTests.headerFlips")
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

    /// The byte ranges of `bytes` (a file) that hold `part`, found by search (the DER of a part occurs once).
    static func range(of part: [UInt8], in bytes: [UInt8], from start: Int) -> Range<Int>? {
        guard !part.isEmpty, bytes.count - start >= part.count else { return nil }
        for offset in start...(bytes.count - part.count)
        where bytes[offset] == part[0] && Array(bytes[offset..<offset + part.count]) == part {
            return offset..<offset + part.count
        }
        return nil
    }

    @Test("every random flip in the signed bytes of the certificate table is rejected; none is accepted")
    func certificateTableFlips() throws {
        let (bytes, anchors) = try Self.signedStub()
        let image = try PEImage(bytes: bytes)
        let start = try #require(image.certificateTableOffset)
        let entry = try #require(image.certificates.first)
        let signature = try AuthenticodeSignature(derEncoded: entry.certificate)
        // Signed: the WIN_CERTIFICATE header, and the SpcIndirectDataContent (the messageDigest covers it, and it
        // holds the image digest). Flips elsewhere in the DER (unsigned attributes, the certificate bag's order) may
        // legitimately leave the signature valid; they are checked for typed outcomes below.
        let content = try #require(signature.signedData.content)
        let contentRange = try #require(Self.range(of: content, in: bytes, from: start))
        let signedRanges = [start..<start + 8, contentRange]
        var rng = SeededRandom("UKI FuzzTests.certificateTableFlips")
        var accepted: [Int] = []
        for _ in 0..<1500 {
            let range = signedRanges[Int.random(in: 0..<signedRanges.count, using: &rng)]
            var copy = bytes
            let offset = Int.random(in: range, using: &rng)
            copy[offset] ^= UInt8.random(in: 1...255, using: &rng)
            if Self.exercise(copy, anchors: anchors) == true { accepted.append(offset) }
        }
        #expect(accepted.isEmpty, "flips in signed bytes that still verified: \(accepted)")
        // Anywhere else in the table: parsing gives a typed error or a verdict; a verified copy still verifies
        // with the original's digest and content (nothing signed changed).
        for _ in 0..<500 {
            var copy = bytes
            let offset = Int.random(in: start..<bytes.count, using: &rng)
            copy[offset] ^= UInt8.random(in: 1...255, using: &rng)
            guard Self.exercise(copy, anchors: anchors) == true else { continue }
            let parsed = try PEImage(bytes: copy)
            let entryCopy = try #require(parsed.certificates.first)
            let signatureCopy = try AuthenticodeSignature(derEncoded: entryCopy.certificate)
            #expect(signatureCopy.signedData.content == content, "flip at \(offset) changed the signed content and verified")
            #expect(signatureCopy.imageDigest == signature.imageDigest)
        }
    }

    @Test("random flips anywhere in a small signed image, several bytes at once, never verify when a hashed byte changed")
    func multiFlips() throws {
        let (bytes, anchors) = try Self.signedStub()
        let image = try PEImage(bytes: bytes)
        // What Authenticode leaves out of the hash: the CheckSum, the certificate-table directory entry, the table.
        let checksum = image.optionalHeader.offset + 64
        let directory = image.optionalHeader.offset + (image.optionalHeader.format == .pe32Plus ? 112 : 96) + 4 * 8
        let table = try #require(image.certificateTableOffset)
        func hashed(_ offset: Int) -> Bool {
            !(checksum..<checksum + 4).contains(offset) && !(directory..<directory + 8).contains(offset) && offset < table
        }
        var rng = SeededRandom("UKI FuzzTests.multiFlips")
        var rejected = 0
        for _ in 0..<300 {
            var copy = bytes
            for _ in 0..<Int.random(in: 2...8, using: &rng) {
                copy[Int.random(in: 0..<copy.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            }
            let changed = copy.indices.filter { copy[$0] != bytes[$0] }
            let verdict = Self.exercise(copy, anchors: anchors)
            if changed.contains(where: hashed) {
                #expect(verdict != true, "changes at \(changed) verified")
            }
            if verdict != true { rejected += 1 }
        }
        #expect(rejected > 0)
    }
}
