import CustosCrypto
import Foundation
import Testing

@Suite struct PKCS7Tests {
    @Test func detachedSignatureVerifiesAndNamesTheSigner() throws {
        let h = try TestHierarchy.make()
        let content = Array("the image digest would be here".utf8)
        let signed = try PKCS7SignedData.sign(content: content, certificate: h.leaf, key: h.leafKey, detached: true)
        #expect(signed.contentType == "1.2.840.113549.1.7.1")  // id-data
        #expect(signed.content == nil)
        #expect(signed.certificates == [h.leaf])
        #expect(signed.signers.count == 1)
        #expect(signed.signers[0].serialNumber == [0x10, 0x01])
        #expect(signed.signers[0].issuer == "O=Custos,CN=Custos Test Root")
        #expect(signed.signers[0].digestAlgorithm == .sha256)

        let signer = try signed.verifySignature(signedBytes: content)
        #expect(signer == h.leaf)
        let chain = try ChainVerifier.verify(signer, trustAnchors: [h.root], options: .init(time: Date()))
        #expect(chain.certificates == [h.leaf, h.root])

        var tampered = content
        tampered[0] ^= 0x20
        let error = #expect(throws: CryptoError.self) { try signed.verifySignature(signedBytes: tampered) }
        #expect(error?.code == .digestMismatch)
    }

    @Test func flippedSignatureByteFails() throws {
        let h = try TestHierarchy.make()
        let content = Array("payload".utf8)
        let signed = try PKCS7SignedData.sign(content: content, certificate: h.leaf, key: h.leafKey, detached: true)
        // The signature OCTET STRING is the last element of the structure: flip a byte near the end.
        var der = signed.der
        der[der.count - 5] ^= 0x01
        let bad = try PKCS7SignedData(derEncoded: der)
        #expect(throws: CryptoError.self) { try bad.verifySignature(signedBytes: content) }
    }

    @Test func embeddedContentIsExposed() throws {
        let h = try TestHierarchy.make()
        let content = Array("embedded".utf8)
        let signed = try PKCS7SignedData.sign(content: content, certificate: h.leaf, key: h.leafKey, detached: false)
        // eContent for id-data is an OCTET STRING holding the bytes.
        var writer = DERWriter()
        writer.octetString(content)
        #expect(signed.content == writer.bytes)
    }

    @Test func authenticodeRejectsOtherContentAndDigestMismatch() throws {
        let h = try TestHierarchy.make()
        let signed = try PKCS7SignedData.sign(content: [1, 2, 3], certificate: h.leaf, key: h.leafKey, detached: true)
        let error = #expect(throws: CryptoError.self) { try AuthenticodeSignature(derEncoded: signed.der) }
        #expect(error?.code == .malformedInput)
    }
}
