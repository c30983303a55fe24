import CustosCrypto
import CustosTestSupport
import Foundation
import Testing

/// Chain and CRL verification with Intel's real PCK, TCB-signing and root certificates and CRLs.
/// Dates below were read with the `openssl x509/crl` command line (an independent oracle), not with our code.
@Suite(Requirement.testData)
struct X509Tests {
    static func date(_ text: String) -> Date { ISO8601DateFormatter().date(from: text)! }

    /// The PEM certificates embedded in a quote's certification data (PCK leaf, Platform CA, Root CA).
    static func pckChain(quote: String) throws -> [Certificate] {
        let text = String(decoding: try TestData.bytes("tdx/quotes/\(quote)").map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self)
        return try Certificate.parsePEMChain(text)
    }

    static func root() throws -> Certificate { try Certificate(derEncoded: TestData.bytes("tdx/root/intel_sgx_root_ca.der")) }

    static func crls(_ collateral: String) throws -> [CertificateRevocationList] {
        [
            try CertificateRevocationList(derEncoded: TestData.bytes("tdx/collateral/\(collateral)/root_ca_crl.der")),
            try CertificateRevocationList(derEncoded: TestData.bytes("tdx/collateral/\(collateral)/pck_crl.der")),
        ]
    }

    @Test func parsesIntelRootCA() throws {
        let root = try Self.root()
        // `openssl x509 -nameopt RFC2253` prints the same (RFC 2253 lists the last RDN first).
        #expect(root.subject == "C=US,ST=CA,L=Santa Clara,O=Intel Corporation,CN=Intel SGX Root CA")
        #expect(root.commonName == "Intel SGX Root CA")
        #expect(root.isSelfSigned)
        #expect(root.isCA)
        #expect(root.fingerprintSHA256.hexString == "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3")
        #expect(root.notBefore == Self.date("2018-05-21T10:45:10Z"))
        #expect(root.notAfter == Self.date("2049-12-31T23:59:59Z"))
        #expect(root.signatureAlgorithmOID == "1.2.840.10045.4.3.2")  // ecdsa-with-SHA256
        guard case .ec(let key) = root.publicKey else {
            Issue.record("Intel root key is not EC")
            return
        }
        #expect(key.curve == .p256)
        // The PEM and DER forms are the same certificate.
        #expect(try Certificate(pemEncoded: TestData.text("tdx/root/intel_sgx_root_ca.pem")) == root)
        // TBS + signature verify with the raw API, as the DCAP verifier will use it.
        #expect(key.isValidSignature(try ECDSASignature(derEncoded: root.signature), for: root.tbsCertificate, digest: .sha256))
    }

    @Test func pckLeafCarriesTheSGXExtension() throws {
        let chain = try Self.pckChain(quote: "q09_trustee_tdx_quote_4_v4.bin")
        #expect(chain.count == 3)
        #expect(chain[0].commonName == "Intel SGX PCK Certificate")
        #expect(chain[0].notAfter == Self.date("2030-02-07T08:02:55Z"))
        let sgx = try #require(chain[0].extension(oid: "1.2.840.113741.1.13.1"))
        #expect(!sgx.critical)
        // SEQUENCE OF SEQUENCE { OID, value }: the first entry is the PPID (1.2.840.113741.1.13.1.1, 16 bytes).
        let entries = try DERReader.parseSingle(sgx.value).children()
        let first = try entries[0].children()
        #expect(try first[0].objectIdentifier() == "1.2.840.113741.1.13.1.1")
        #expect(first[1].content.count == 16)
        #expect(chain[0].isSigned(by: chain[1]))
        #expect(!chain[1].isSigned(by: chain[0]))
    }

    @Test func pckChainVerifiesWithCRLsInsideTheWindow() throws {
        let chain = try Self.pckChain(quote: "q01_dcapqvl_tdx_v4.bin")
        let validated = try ChainVerifier.verify(
            chain[0], intermediates: [chain[1]], trustAnchors: [Self.root()],
            options: .init(time: Self.date("2025-06-25T00:00:00Z"), crls: Self.crls("c1_dcapqvl_2025-06_B0C06F"), revocation: .all))
        #expect(
            validated.certificates.map(\.commonName) == ["Intel SGX PCK Certificate", "Intel SGX PCK Platform CA", "Intel SGX Root CA"])
        // The same chain with the 2023 collateral (q09/c4) inside its own window.
        let old = try Self.pckChain(quote: "q09_trustee_tdx_quote_4_v4.bin")
        _ = try ChainVerifier.verify(
            old[0], intermediates: [old[1]], trustAnchors: [Self.root()],
            options: .init(time: Self.date("2023-06-20T00:00:00Z"), crls: Self.crls("c4_gotdx_2023-06_50806F"), revocation: .all))
    }

    @Test func rejectedOneDayAfterThePCKCRLNextUpdate() throws {
        let chain = try Self.pckChain(quote: "q01_dcapqvl_tdx_v4.bin")
        // pck_crl.der of c1: nextUpdate 2025-07-19 10:00:35Z.
        let error = #expect(throws: CryptoError.self) {
            try ChainVerifier.verify(
                chain[0], intermediates: [chain[1]], trustAnchors: [Self.root()],
                options: .init(time: Self.date("2025-07-20T10:00:35Z"), crls: Self.crls("c1_dcapqvl_2025-06_B0C06F"), revocation: .all))
        }
        #expect(error?.code == .crlExpired)
        #expect(error?.certificate?.contains("PCK Certificate") == true)
    }

    @Test func rejectedOneDayAfterNotAfter() throws {
        // c4's TCB Signing certificate is valid 2018-05-21 … 2025-05-21 (MANIFEST); c1's root CRL covers 2025-03-20 … 2026-04-03.
        let chain = try Certificate.parsePEMChain(TestData.text("tdx/collateral/c4_gotdx_2023-06_50806F/tcb_info_issuer_chain.pem"))
        let rootCRL = try CertificateRevocationList(derEncoded: TestData.bytes("tdx/collateral/c1_dcapqvl_2025-06_B0C06F/root_ca_crl.der"))
        let options = { (time: String) in
            ChainVerifier.Options(time: Self.date(time), crls: [rootCRL], revocation: .all)
        }
        _ = try ChainVerifier.verify(chain[0], trustAnchors: [Self.root()], options: options("2025-05-20T00:00:00Z"))
        let error = #expect(throws: CryptoError.self) {
            try ChainVerifier.verify(chain[0], trustAnchors: [Self.root()], options: options("2025-05-22T12:00:00Z"))
        }
        #expect(error?.code == .certificateExpired)
        #expect(error?.certificate?.contains("TCB Signing") == true)
    }

    @Test func missingCRLAndUntrustedRootAreNamed() throws {
        let chain = try Self.pckChain(quote: "q01_dcapqvl_tdx_v4.bin")
        let time = Self.date("2025-06-25T00:00:00Z")
        let noCRL = #expect(throws: CryptoError.self) {
            try ChainVerifier.verify(
                chain[0], intermediates: [chain[1]], trustAnchors: [Self.root()], options: .init(time: time, revocation: .all))
        }
        #expect(noCRL?.code == .crlMissing)
        // Without the Platform CA the leaf has no issuer; anchored at another root it is untrusted.
        let orphan = #expect(throws: CryptoError.self) {
            try ChainVerifier.verify(chain[0], trustAnchors: [Self.root()], options: .init(time: time))
        }
        #expect(orphan?.code == .untrustedChain)
        let otherRoot = try TestHierarchy.make().root
        let wrong = #expect(throws: CryptoError.self) {
            try ChainVerifier.verify(chain[0], intermediates: [chain[1]], trustAnchors: [otherRoot], options: .init(time: time))
        }
        #expect(wrong?.code == .untrustedChain)
    }

    @Test func flippedBytesAreRejected() throws {
        let chain = try Self.pckChain(quote: "q01_dcapqvl_tdx_v4.bin")
        let time = Self.date("2025-06-25T00:00:00Z")
        // A flipped byte in the leaf's signature value (the last byte of the DER).
        var leafDER = chain[0].der
        leafDER[leafDER.count - 1] ^= 0x01
        let tampered = try Certificate(derEncoded: leafDER)
        let error = #expect(throws: CryptoError.self) {
            try ChainVerifier.verify(
                tampered, intermediates: [chain[1]], trustAnchors: [Self.root()],
                options: .init(time: time, crls: Self.crls("c1_dcapqvl_2025-06_B0C06F"), revocation: .all))
        }
        #expect(error?.code == .certificateSignatureInvalid)
        // A flipped byte inside the signed part of the PCK CRL (its thisUpdate time digits) breaks the CRL's signature.
        var crlDER = try TestData.bytes("tdx/collateral/c1_dcapqvl_2025-06_B0C06F/pck_crl.der")
        let index = try #require(Self.firstTimeDigit(in: crlDER))
        crlDER[index] ^= 0x01
        let badCRL = try CertificateRevocationList(derEncoded: crlDER)
        let rootCRL = try CertificateRevocationList(derEncoded: TestData.bytes("tdx/collateral/c1_dcapqvl_2025-06_B0C06F/root_ca_crl.der"))
        let crlError = #expect(throws: CryptoError.self) {
            try ChainVerifier.verify(
                chain[0], intermediates: [chain[1]], trustAnchors: [Self.root()],
                options: .init(time: time, crls: [rootCRL, badCRL], revocation: .all))
        }
        #expect(crlError?.code == .crlSignatureInvalid)
    }

    /// Offset of the last digit of the first UTCTime (tag 0x17) in a DER blob.
    static func firstTimeDigit(in der: [UInt8]) -> Int? {
        for index in 0..<(der.count - 15) where der[index] == 0x17 && der[index + 1] == 0x0d {
            return index + 2 + 11
        }
        return nil
    }

    @Test func crlFieldsAndSignature() throws {
        let crl = try CertificateRevocationList(derEncoded: TestData.bytes("tdx/collateral/c4_gotdx_2023-06_50806F/pck_crl.der"))
        #expect(crl.thisUpdate == Self.date("2023-06-08T07:27:52Z"))
        #expect(crl.nextUpdate == Self.date("2023-07-08T07:27:52Z"))
        #expect(crl.issuer.contains("CN=Intel SGX PCK Platform CA"))
        let platform = try Self.pckChain(quote: "q09_trustee_tdx_quote_4_v4.bin")[1]
        #expect(crl.isSigned(by: platform))
        #expect(!crl.isSigned(by: try Self.root()))
        // PCS may serve a CRL as hex text: the same CRL.
        let hex = Array(crl.der.hexString.utf8)
        #expect(try CertificateRevocationList(anyEncoding: hex) == crl)
    }
}

/// A private CA → leaf hierarchy made with ``CertificateBuilder``, for revocation and PKCS #7 tests.
struct TestHierarchy {
    let rootKey: SigningKey
    let root: Certificate
    let leafKey: SigningKey
    let leaf: Certificate

    static func make(now: Date = Date()) throws -> TestHierarchy {
        let rootKey = SigningKey.ec(try ECPrivateKey(generating: .p256))
        let root = try CertificateBuilder(
            subject: [("CN", "Custos Test Root"), ("O", "Custos")], serialNumber: [1], notBefore: now - 86400,
            notAfter: now + 86400 * 365, isCA: true, keyUsage: 0x06
        ).sign(subjectKey: rootKey.publicKey, issuer: nil, issuerKey: rootKey)
        let leafKey = SigningKey.ec(try ECPrivateKey(generating: .p256))
        let leaf = try CertificateBuilder(
            subject: [("CN", "Custos Test Leaf")], serialNumber: [0x10, 0x01], notBefore: now - 3600, notAfter: now + 86400 * 30,
            isCA: false, keyUsage: 0x80,
            extensions: [CertificateBuilder.extensionValue(oid: "1.2.840.113741.1.13.1", critical: false, value: [0x30, 0x00])]
        ).sign(subjectKey: leafKey.publicKey, issuer: root, issuerKey: rootKey)
        return TestHierarchy(rootKey: rootKey, root: root, leafKey: leafKey, leaf: leaf)
    }
}

@Suite struct BuiltHierarchyTests {
    @Test func revokedLeafIsRejectedAndNamed() throws {
        let now = Date()
        let h = try TestHierarchy.make(now: now)
        #expect(h.leaf.extension(oid: "1.2.840.113741.1.13.1")?.value == [0x30, 0x00])
        #expect(h.leaf.serialNumber == [0x10, 0x01])
        #expect(h.leaf.isSigned(by: h.root))
        let clean = try CRLBuilder(thisUpdate: now - 60, nextUpdate: now + 3600).sign(issuer: h.root, issuerKey: h.rootKey)
        let revoking = try CRLBuilder(thisUpdate: now - 60, nextUpdate: now + 3600, revoked: [([0x10, 0x01], now - 120)])
            .sign(issuer: h.root, issuerKey: h.rootKey)
        #expect(revoking.revokedSerialNumbers == [[0x10, 0x01]])
        #expect(revoking.lists(h.leaf))
        #expect(!clean.lists(h.leaf))
        _ = try ChainVerifier.verify(h.leaf, trustAnchors: [h.root], options: .init(time: now, crls: [clean], revocation: .all))
        let error = #expect(throws: CryptoError.self) {
            try ChainVerifier.verify(h.leaf, trustAnchors: [h.root], options: .init(time: now, crls: [revoking], revocation: .leaf))
        }
        #expect(error?.code == .certificateRevoked)
        #expect(error?.certificate == "CN=Custos Test Leaf")
        // Before notBefore.
        let early = #expect(throws: CryptoError.self) {
            try ChainVerifier.verify(h.leaf, trustAnchors: [h.root], options: .init(time: now - 7200))
        }
        #expect(early?.code == .certificateNotYetValid)
    }
}
