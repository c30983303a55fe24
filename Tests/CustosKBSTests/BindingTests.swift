import CustosCrypto
import CustosKBS
import Testing

/// The REPORTDATA binding against service.md §4.3's verified vector.
@Suite struct BindingTests {
    static let nonce = "q5b2o1l1+0aXz6yHk0Jm2cYc1R0JH4m2aN7Vq8xQy8E="
    static let teePubkey: JSONValue = [
        "kty": "EC", "crv": "P-256", "alg": "ECDH-ES+A256KW", "x": "gI0GAILBdu7T53akrFmMyGcsF3n5dO7MmwNBHKW5SV0",
        "y": "SLW_xSffzlPWrHEVI30DHM_4egVwt3NQqeUD7nMFpps",
    ]
    static let canonicalText =
        "{\"additional-evidence\":\"\",\"nonce\":\"q5b2o1l1+0aXz6yHk0Jm2cYc1R0JH4m2aN7Vq8xQy8E=\",\"tee-pubkey\":{\"alg\":\"ECDH-ES+A256KW\","
        + "\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"gI0GAILBdu7T53akrFmMyGcsF3n5dO7MmwNBHKW5SV0\",\"y\":\"SLW_xSffzlPWrHEVI30DHM_4egVwt3NQqeUD7nMFpps\"}}"
    static let sha384 = "79c6a216b6eb71df5620ff807a276e46ebf9e38e2a7be71c9c3035fcef5eb4b76c0d5e211a55f76be0c408c6043e08e3"

    @Test func serviceSpecVector() throws {
        let document = KBSBinding.runtimeDataDocument(nonce: Self.nonce, teePubkey: Self.teePubkey, additionalEvidence: "")
        #expect(CanonicalJSON.string(document) == Self.canonicalText)
        let reportData = KBSBinding.reportData(nonce: Self.nonce, teePubkey: Self.teePubkey, additionalEvidence: "")
        #expect(reportData.hexString == Self.sha384 + String(repeating: "0", count: 32))
    }

    @Test func bindingFromAnAttestationBody() throws {
        // The body as a client sends it, with whitespace and another member order: the binding hashes the JCS form.
        let body = """
            {"tee-evidence": {"primary_evidence": {"quote": "AAEC", "cc_eventlog": null}, "additional_evidence": ""},
             "runtime-data": {"tee-pubkey": {"y": "SLW_xSffzlPWrHEVI30DHM_4egVwt3NQqeUD7nMFpps", "x": "gI0GAILBdu7T53akrFmMyGcsF3n5dO7MmwNBHKW5SV0",
                              "kty": "EC", "crv": "P-256", "alg": "ECDH-ES+A256KW"},
                              "nonce": "q5b2o1l1+0aXz6yHk0Jm2cYc1R0JH4m2aN7Vq8xQy8E="}}
            """
        let attestation = try KBSAttestation(jsonBytes: Array(body.utf8))
        let expected = try Hex.decode(Self.sha384) + [UInt8](repeating: 0, count: 16)
        #expect(KBSBinding.reportData(for: attestation) == expected)
        try KBSBinding.check(reportData: expected, against: attestation)

        // Another nonce, another hash, a changed byte: refused.
        var wrong = expected
        wrong[0] ^= 1
        #expect(throws: KBSError(.attestationError, "")) { try KBSBinding.check(reportData: wrong, against: attestation) }
        #expect(throws: KBSError(.attestationError, "")) { try KBSBinding.check(reportData: expected, against: attestation, hash: .sha512) }
        let other = KBSBinding.reportData(nonce: "AAAA", teePubkey: Self.teePubkey, additionalEvidence: "")
        #expect(other != expected)
    }

    @Test func selectedHashesPadOrFill() {
        let sha256 = KBSBinding.reportData(nonce: Self.nonce, teePubkey: Self.teePubkey, additionalEvidence: "", hash: .sha256)
        #expect(sha256.count == 64)
        #expect(sha256[32...].allSatisfy { $0 == 0 })
        #expect(sha256[..<32] == Digest.sha256(Array(Self.canonicalText.utf8))[...])
        let sha512 = KBSBinding.reportData(nonce: Self.nonce, teePubkey: Self.teePubkey, additionalEvidence: "", hash: .sha512)
        #expect(sha512 == Digest.sha512(Array(Self.canonicalText.utf8)))
        // A device without additional-evidence hashes a document without that key.
        let withoutKey = KBSBinding.runtimeDataDocument(nonce: Self.nonce, teePubkey: Self.teePubkey, additionalEvidence: nil)
        #expect(withoutKey["additional-evidence"] == nil)
    }
}
