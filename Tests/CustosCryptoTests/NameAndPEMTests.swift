import CustosCrypto
import Foundation
import Testing

/// X.509 name comparisons (RFC 5280 §7.1 via OpenSSL's canonical form), the common name lookup and the byte-level PEM
/// splitter. Expected values are written from the inputs the tests build, not from the code under test.
@Suite struct NameAndPEMTests {
    static let now = Date(timeIntervalSince1970: 1_750_000_000)

    static func certificate(
        subject: [(String, String)], issuer: Certificate? = nil, issuerKey: ECPrivateKey? = nil, serial: [UInt8] = [1]
    ) throws -> (Certificate, ECPrivateKey) {
        let key = try ECPrivateKey(generating: .p256)
        let certificate = try CertificateBuilder(
            subject: subject, serialNumber: serial, notBefore: now - 3600, notAfter: now + 3600, isCA: true, keyUsage: 0x06
        ).sign(subjectKey: .ec(key.publicKey), issuer: issuer, issuerKey: .ec(issuerKey ?? key))
        return (certificate, key)
    }

    @Test("self-issued, issuer/subject and CRL issuer comparisons")
    func names() throws {
        let (root, rootKey) = try Self.certificate(subject: [("CN", "Test Root"), ("O", "Custos")])
        let (leaf, _) = try Self.certificate(
            subject: [("CN", "Test Leaf"), ("O", "Custos")], issuer: root, issuerKey: rootKey, serial: [2])
        #expect(root.isSelfIssued)
        #expect(!leaf.isSelfIssued)
        #expect(root.isSubject(ofIssuerOf: leaf))
        #expect(root.isSubject(ofIssuerOf: root))
        #expect(!leaf.isSubject(ofIssuerOf: leaf))
        let crl = try CRLBuilder(thisUpdate: Self.now - 60, nextUpdate: Self.now + 60).sign(issuer: root, issuerKey: .ec(rootKey))
        #expect(crl.isIssued(bySubjectOf: root))
        #expect(!crl.isIssued(bySubjectOf: leaf))
        #expect(crl.isIssued(byIssuerOf: leaf))
        // A different O under the same CN is a different name.
        let (other, _) = try Self.certificate(subject: [("CN", "Test Root"), ("O", "Someone else")])
        #expect(!other.isSubject(ofIssuerOf: leaf))
        #expect(!crl.isIssued(bySubjectOf: other))
    }

    @Test("commonName is the last CN; absent CN is nil")
    func commonName() throws {
        let (two, _) = try Self.certificate(subject: [("CN", "first"), ("O", "Custos"), ("CN", "second é")])
        #expect(two.commonName == "second é")
        let (none, _) = try Self.certificate(subject: [("O", "Custos only")])
        #expect(none.commonName == nil)
    }

    @Test("PEM blocks are found inside binary junk; armour errors are typed")
    func pemScanning() throws {
        let (a, _) = try Self.certificate(subject: [("CN", "A")])
        let (b, _) = try Self.certificate(subject: [("CN", "B")])
        let text = "junk\u{1}\u{2}" + a.pemRepresentation + "between\r\n" + b.pemRepresentation + "\u{0}tail"
        #expect(try Certificate.parsePEMChain(text) == [a, b])
        #expect(try Certificate.parsePEMChain(pemBytes: Array(text.utf8), reusing: []) == [a, b])
        // Reuse returns the known instance for equal DER and parses the rest.
        #expect(try Certificate.parsePEMChain(pemBytes: Array(text.utf8), reusing: [b]) == [a, b])
        let begin = "-----BEGIN CERTIFICATE-----\n"
        let end = "-----END CERTIFICATE-----\n"
        for bad in [
            begin + "AAAA\n",  // not terminated
            begin + "AAAA\n" + begin + "AAAA\n" + end,  // armour inside a block
            "AAAA\n" + end,  // END without BEGIN
            begin + "AA*A\n" + end,  // not base64
            "",  // nothing
        ] {
            #expect(throws: CryptoError(.malformedInput, ""), "\(bad.debugDescription)") { try Certificate.parsePEMChain(bad) }
            #expect(throws: CryptoError(.malformedInput, "")) { try Certificate.parsePEMChain(pemBytes: Array(bad.utf8), reusing: []) }
        }
        // A truncated last block never crashes: every prefix parses or throws a typed error.
        let bytes = Array(text.utf8)
        for length in stride(from: 0, through: bytes.count, by: 7) {
            _ = try? Certificate.parsePEMChain(pemBytes: Array(bytes.prefix(length)), reusing: [])
        }
        #expect(try Certificate.parsePEMChain(pemBytes: Array(bytes.prefix(bytes.count - 6)), reusing: []) == [a, b])
    }

    /// PEM is the standard base64 alphabet (RFC 7468 §3): a body with a URL-safe `-` or `_` is refused, as dcap-qvl and
    /// OpenSSL refuse it (a `-` used to decode as 62, so a quote whose PCK chain carried one verified in Custos only).
    @Test("a PEM body in the URL-safe alphabet is refused")
    func pemIsTheStandardAlphabet() throws {
        let (a, _) = try Self.certificate(subject: [("CN", "A")])
        let pem = a.pemRepresentation
        let lines = pem.split(separator: "\n").map(String.init)
        let body = lines.dropFirst().dropLast().joined()
        let index = try #require(body.firstIndex { $0 == "+" || $0 == "/" } ?? body.indices.first)
        for swap: Character in ["-", "_"] {
            var changed = body
            changed.replaceSubrange(index...index, with: String(swap))
            let text = lines[0] + "\n" + changed + "\n" + lines[lines.count - 1] + "\n"
            #expect(throws: CryptoError(.malformedInput, ""), "\(swap)") { try Certificate.parsePEMChain(text) }
            #expect(throws: CryptoError(.malformedInput, "")) { try Certificate.parsePEMChain(pemBytes: Array(text.utf8), reusing: []) }
        }
        // The same body in one line, unchanged, parses.
        #expect(try Certificate.parsePEMChain(lines[0] + "\n" + body + "\n" + lines[lines.count - 1] + "\n") == [a])
        // The general decoder still reads both alphabets (JOSE, KBS use it); the standard one does not.
        #expect(try Base64.decode("-_8") == [0xFB, 0xFF])
        #expect(throws: CryptoError.self) { try Base64.decodeStandard(utf8: Array("-_8".utf8)) }
        #expect(try Base64.decodeStandard(utf8: Array("+/8=".utf8)) == [0xFB, 0xFF])
    }
}
