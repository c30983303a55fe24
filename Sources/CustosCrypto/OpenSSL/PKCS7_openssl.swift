internal import COpenSSL
public import Foundation

/// A CMS/PKCS #7 `SignedData` (RFC 2315 §9, RFC 5652 §5).
///
/// The framing (content type, encapsulated content, certificates, signer infos) is read with ``DERReader``; the
/// signature check is OpenSSL's `PKCS7_verify` with the caller's bytes as the signed content.
public struct PKCS7SignedData: Sendable {
    public struct SignerInfo: Sendable, Equatable {
        /// The issuer DN of the signer certificate (RFC 2253).
        public let issuer: String
        /// The signer certificate's serial number, big-endian.
        public let serialNumber: [UInt8]
        /// The dotted OID of the digest algorithm.
        public let digestAlgorithmOID: String
        /// The digest algorithm, when it is one we know.
        public var digestAlgorithm: DigestAlgorithm? { DigestAlgorithm(oid: digestAlgorithmOID) }
    }

    /// The whole ContentInfo DER.
    public let der: [UInt8]
    /// The encapsulated content type (dotted OID).
    public let contentType: String
    /// The DER element inside `eContent [0] EXPLICIT`, or nil when the content is detached.
    public let content: [UInt8]?
    /// The certificates the message carries.
    public let certificates: [Certificate]
    public let signers: [SignerInfo]

    static let signedDataOID = "1.2.840.113549.1.7.2"

    /// Parses a DER `ContentInfo` holding `SignedData`.
    public init(derEncoded der: [UInt8]) throws(CryptoError) {
        guard der.count <= 16 << 20 else { throw CryptoError(.malformedInput, "PKCS #7 larger than 16 MiB") }
        // ContentInfo ::= SEQUENCE { contentType OID, content [0] EXPLICIT ANY }
        let root = try DERReader.parseSingle(der).expecting(DERNode.Tag.sequence).children()
        guard root.count == 2, try root[0].objectIdentifier() == Self.signedDataOID else {
            throw CryptoError(.malformedInput, "PKCS #7 ContentInfo does not hold SignedData")
        }
        let explicit = try root[1].expecting(DERNode.Tag.context(0)).children()
        guard explicit.count == 1 else { throw CryptoError(.malformedInput, "PKCS #7 content [0] must hold one element") }
        // SignedData ::= SEQUENCE { version, digestAlgorithms SET, encapContentInfo, [0] certificates OPTIONAL,
        //                           [1] crls OPTIONAL, signerInfos SET }
        var reader = DERReader(try explicit[0].expecting(DERNode.Tag.sequence).content, baseOffset: explicit[0].offset)
        _ = try reader.read(DERNode.Tag.integer)
        _ = try reader.read(DERNode.Tag.set)
        let encap = try reader.read(DERNode.Tag.sequence).children()
        guard let typeNode = encap.first else { throw CryptoError(.malformedInput, "PKCS #7 encapContentInfo is empty") }
        contentType = try typeNode.objectIdentifier()
        if encap.count > 1 {
            let inner = try encap[1].expecting(DERNode.Tag.context(0)).children()
            guard inner.count == 1 else { throw CryptoError(.malformedInput, "PKCS #7 eContent must hold one element") }
            content = Array(inner[0].encoded)
        } else {
            content = nil
        }
        var certificates: [Certificate] = []
        if let certs = try reader.readIfPresent(DERNode.Tag.context(0)) {
            for node in try certs.children() where node.tag == DERNode.Tag.sequence {
                certificates.append(try Certificate(derEncoded: Array(node.encoded)))
                guard certificates.count <= 64 else { throw CryptoError(.malformedInput, "PKCS #7 carries too many certificates") }
            }
        }
        _ = try reader.readIfPresent(DERNode.Tag.context(1))
        var signers: [SignerInfo] = []
        for signer in try reader.read(DERNode.Tag.set).children() {
            // SignerInfo ::= SEQUENCE { version, issuerAndSerialNumber SEQUENCE { issuer Name, serial INTEGER },
            //                           digestAlgorithm AlgorithmIdentifier, ... }
            let fields = try signer.expecting(DERNode.Tag.sequence).children()
            guard fields.count >= 5 else { throw CryptoError(.malformedInput, "PKCS #7 SignerInfo has \(fields.count) fields") }
            let sid = try fields[1].expecting(DERNode.Tag.sequence).children()
            guard sid.count == 2 else {
                throw CryptoError(.malformedInput, "PKCS #7 signer uses a subjectKeyIdentifier; only issuerAndSerialNumber is supported")
            }
            let serial = try sid[1].expecting(DERNode.Tag.integer).content
            let digestOID = try fields[2].expecting(DERNode.Tag.sequence).children().first?.objectIdentifier() ?? ""
            signers.append(
                SignerInfo(
                    issuer: Self.nameText(Array(sid[0].encoded)), serialNumber: minimalBigEndian(serial), digestAlgorithmOID: digestOID))
        }
        guard !signers.isEmpty else { throw CryptoError(.malformedInput, "PKCS #7 SignedData has no signer") }
        self.der = der
        self.certificates = certificates
        self.signers = signers
    }

    private static func nameText(_ der: [UInt8]) -> String {
        var parsed: OpaquePointer? = nil
        der.withNonNilBytes { buffer in
            var cursor: UnsafePointer<UInt8>? = buffer.baseAddress?.assumingMemoryBound(to: UInt8.self)
            parsed = d2i_X509_NAME(nil, &cursor, buffer.count)
        }
        guard let parsed else { return "" }
        defer { X509_NAME_free(parsed) }
        return nameString(parsed)
    }

    /// Verifies the signer's signature over `signedBytes` (and the messageDigest attribute when signed attributes
    /// are present). The signer's certificate chain is *not* checked here: pass the returned certificate to
    /// ``ChainVerifier``.
    /// - Parameter signedBytes: the bytes the signature covers: the detached content, or for Authenticode the
    ///   value octets of `SpcIndirectDataContent`.
    /// - Returns: the signer certificate.
    public func verifySignature(signedBytes: [UInt8]) throws(CryptoError) -> Certificate {
        var parsed: UnsafeMutablePointer<PKCS7>? = nil
        der.withNonNilBytes { buffer in
            var cursor: UnsafePointer<UInt8>? = buffer.baseAddress?.assumingMemoryBound(to: UInt8.self)
            parsed = d2i_PKCS7(nil, &cursor, buffer.count)
        }
        guard let p7 = parsed else { throw .openSSL(.malformedInput, "OpenSSL cannot parse the PKCS #7 structure") }
        defer { PKCS7_free(p7) }
        let flags = Int32(PKCS7_NOVERIFY | PKCS7_BINARY | PKCS7_NOCHAIN)
        let verified = try withReadBIO(signedBytes) { bio throws(CryptoError) in
            PKCS7_verify(p7, nil, nil, bio, nil, flags) == 1
        }
        guard verified else {
            let errors = drainOpenSSLErrors()
            let digestFailure = errors.contains { $0.contains("digest failure") }
            throw CryptoError(
                digestFailure ? .digestMismatch : .signatureInvalid,
                digestFailure
                    ? "the signed content's digest does not match the signed attributes" : "the PKCS #7 signature does not verify",
                openSSLErrors: errors)
        }
        guard let signers = PKCS7_get0_signers(p7, nil, 0) else {
            throw .openSSL(.signatureInvalid, "no signer certificate in the message")
        }
        defer { COpenSSL_sk_X509_free(signers) }
        guard COpenSSL_sk_X509_num(signers) >= 1, let x509 = COpenSSL_sk_X509_value(signers, 0) else {
            throw CryptoError(.signatureInvalid, "no signer certificate in the message")
        }
        var out: UnsafeMutablePointer<UInt8>? = nil
        let length = i2d_X509(x509, &out)
        guard length > 0, let out else { throw .openSSL(.internalFailure, "i2d_X509 failed") }
        defer { COpenSSL_free(out) }
        return try Certificate(derEncoded: Array(UnsafeBufferPointer(start: out, count: Int(length))))
    }

    /// Signs `content` as `certificate`/`key` (content type id-data, signed attributes included). Test and fixture
    /// builders only (`package`): nothing in the product signs CMS.
    package static func sign(
        content: [UInt8], certificate: Certificate, key: SigningKey, detached: Bool
    ) throws(CryptoError) -> PKCS7SignedData {
        let der = try withReadBIO(content) { bio throws(CryptoError) in
            var flags = Int32(PKCS7_BINARY)
            if detached { flags |= Int32(PKCS7_DETACHED) }
            guard let p7 = PKCS7_sign(certificate.box.pointer, key.box.pointer, nil, bio, flags) else {
                throw .openSSL(.internalFailure, "PKCS7_sign failed")
            }
            defer { PKCS7_free(p7) }
            var out: UnsafeMutablePointer<UInt8>? = nil
            let length = i2d_PKCS7(p7, &out)
            guard length > 0, let out else { throw .openSSL(.internalFailure, "i2d_PKCS7 failed") }
            defer { COpenSSL_free(out) }
            return Array(UnsafeBufferPointer(start: out, count: Int(length)))
        }
        return try PKCS7SignedData(derEncoded: der)
    }
}

/// An Authenticode signature (a PE's `WIN_CERTIFICATE` payload): `SignedData` over `SpcIndirectDataContent`.
public struct AuthenticodeSignature: Sendable {
    public static let spcIndirectDataOID = "1.3.6.1.4.1.311.2.1.4"

    public let signedData: PKCS7SignedData
    /// The hash algorithm of the image digest the signer committed to.
    public let digestAlgorithm: DigestAlgorithm
    /// The image digest the signer committed to (`SpcIndirectDataContent.messageDigest.digest`).
    public let imageDigest: [UInt8]
    /// The value octets of `SpcIndirectDataContent`: what the messageDigest attribute covers (Authenticode §"signedData").
    let signedBytes: [UInt8]

    /// Parses the PKCS #7 DER of an Authenticode signature.
    public init(derEncoded der: [UInt8]) throws(CryptoError) {
        let signedData = try PKCS7SignedData(derEncoded: der)
        guard signedData.contentType == Self.spcIndirectDataOID, let content = signedData.content else {
            throw CryptoError(.malformedInput, "not Authenticode: content type is \(signedData.contentType)")
        }
        // SpcIndirectDataContent ::= SEQUENCE { data SpcAttributeTypeAndOptionalValue, messageDigest DigestInfo }
        // DigestInfo ::= SEQUENCE { digestAlgorithm AlgorithmIdentifier, digest OCTET STRING }
        let node = try DERReader.parseSingle(content).expecting(DERNode.Tag.sequence)
        let fields = try node.children()
        guard fields.count == 2 else { throw CryptoError(.malformedInput, "SpcIndirectDataContent must have two fields") }
        let digestInfo = try fields[1].expecting(DERNode.Tag.sequence).children()
        guard digestInfo.count == 2,
            let oid = try digestInfo[0].expecting(DERNode.Tag.sequence).children().first?.objectIdentifier()
        else { throw CryptoError(.malformedInput, "Authenticode DigestInfo is malformed") }
        guard let algorithm = DigestAlgorithm(oid: oid) else {
            throw CryptoError(.unsupportedAlgorithm, "Authenticode digest algorithm \(oid) is not supported")
        }
        let digest = Array(try digestInfo[1].expecting(DERNode.Tag.octetString).content)
        guard digest.count == algorithm.byteCount else {
            throw CryptoError(
                .malformedInput, "Authenticode digest is \(digest.count) bytes, \(algorithm.rawValue) needs \(algorithm.byteCount)")
        }
        self.signedData = signedData
        self.digestAlgorithm = algorithm
        self.imageDigest = digest
        self.signedBytes = Array(node.content)
    }

    /// Verifies the signature for an image whose Authenticode digest (computed by the caller with
    /// ``digestAlgorithm``) is `computedDigest`, then the signer's chain to `trustAnchors`.
    /// - Parameters:
    ///   - computedDigest: the caller's Authenticode hash of the PE image.
    ///   - trustAnchors: certificates trusted as issuers *or* as the signer itself (a UEFI `db`).
    ///   - time: when non-nil, validity periods are checked at that time (UEFI ignores them; pass nil to match).
    /// - Returns: the validated chain, signer first.
    public func verify(computedDigest: [UInt8], trustAnchors: [Certificate], time: Date? = nil) throws(CryptoError) -> ValidatedChain {
        guard constantTimeEqual(computedDigest, imageDigest) else {
            throw CryptoError(.digestMismatch, "the image's Authenticode \(digestAlgorithm.rawValue) digest differs from the signed one")
        }
        let signer = try signedData.verifySignature(signedBytes: signedBytes)
        return try ChainVerifier.verify(
            signer, intermediates: signedData.certificates, trustAnchors: trustAnchors,
            options: .init(time: time, allowPartialChain: true))
    }
}
