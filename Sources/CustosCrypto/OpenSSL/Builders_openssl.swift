internal import COpenSSL
package import Foundation

/// A private key that can sign certificates, CRLs and CMS messages.
package enum SigningKey: Sendable {
    case ec(ECPrivateKey)
    case rsa(RSAPrivateKey)

    var box: PKeyBox {
        switch self {
        case .ec(let key): key.box
        case .rsa(let key): key.box
        }
    }

    /// The public half as a ``PublicKey``.
    package var publicKey: PublicKey {
        switch self {
        case .ec(let key): .ec(key.publicKey)
        case .rsa(let key): .rsa(key.publicKey)
        }
    }
}

extension PublicKey {
    var box: PKeyBox? {
        switch self {
        case .ec(let key): try? key.pkey()
        case .rsa(let key): key.box
        case .other: nil
        }
    }
}

private func asn1Time(_ date: Date) throws(CryptoError) -> UnsafeMutablePointer<ASN1_TIME> {
    guard let time = ASN1_TIME_set(nil, time_t(date.timeIntervalSince1970.rounded(.down))) else {
        throw .openSSL(.invalidParameter, "date \(date) cannot be encoded")
    }
    return time
}

private func asn1Integer(_ bigEndian: [UInt8]) throws(CryptoError) -> UnsafeMutablePointer<ASN1_INTEGER> {
    let bn = try BigNum(bigEndian: bigEndian)
    guard let integer = BN_to_ASN1_INTEGER(bn.pointer, nil) else { throw .openSSL(.internalFailure, "BN_to_ASN1_INTEGER failed") }
    return integer
}

/// Makes X.509 v3 certificates: Custos's own token-signing certificates and the private test hierarchies
/// (a TDX PCK chain, a UKI signing key) that tests and the emulators need.
package struct CertificateBuilder: Sendable {
    /// Subject attributes in order, e.g. `[("CN", "Custos test PCK"), ("O", "Custos")]`.
    package var subject: [(String, String)]
    package var serialNumber: [UInt8]
    package var notBefore: Date
    package var notAfter: Date
    /// Adds a critical basicConstraints extension when set: `true` marks a CA.
    package var isCA: Bool?
    /// Key usage bits: `digitalSignature` = 0x80, `keyCertSign` = 0x04, `cRLSign` = 0x02 (first byte of the BIT STRING).
    package var keyUsage: UInt8?
    /// Further extensions (DER values), appended in order.
    package var extensions: [Certificate.Extension]
    package var digest: DigestAlgorithm

    package init(
        subject: [(String, String)], serialNumber: [UInt8] = [1], notBefore: Date, notAfter: Date, isCA: Bool? = nil,
        keyUsage: UInt8? = nil, extensions: [Certificate.Extension] = [], digest: DigestAlgorithm = .sha256
    ) {
        self.subject = subject
        self.serialNumber = serialNumber
        self.notBefore = notBefore
        self.notAfter = notAfter
        self.isCA = isCA
        self.keyUsage = keyUsage
        self.extensions = extensions
        self.digest = digest
    }

    /// A custom extension value.
    package static func extensionValue(oid: String, critical: Bool, value: [UInt8]) -> Certificate.Extension {
        Certificate.Extension(oid: oid, critical: critical, value: value)
    }

    /// Signs a certificate for `subjectKey`; `issuer` nil makes it self-signed with `issuerKey`.
    package func sign(subjectKey: PublicKey, issuer: Certificate?, issuerKey: SigningKey) throws(CryptoError) -> Certificate {
        guard let subjectBox = subjectKey.box else { throw CryptoError(.unsupportedAlgorithm, "subject key type not supported") }
        guard let x509 = X509_new() else { throw .openSSL(.internalFailure, "X509_new failed") }
        let owned = X509Box(takingOwnership: x509)
        guard X509_set_version(x509, 2) == 1 else { throw .openSSL(.internalFailure, "X509_set_version failed") }
        let serial = try asn1Integer(serialNumber)
        defer { ASN1_INTEGER_free(serial) }
        guard X509_set_serialNumber(x509, serial) == 1 else { throw .openSSL(.internalFailure, "X509_set_serialNumber failed") }

        guard let name = X509_NAME_new() else { throw .openSSL(.internalFailure, "X509_NAME_new failed") }
        defer { X509_NAME_free(name) }
        for (key, value) in subject {
            let bytes = Array(value.utf8)
            guard X509_NAME_add_entry_by_txt(name, key, COpenSSL_MBSTRING_UTF8, bytes, Int32(bytes.count), -1, 0) == 1 else {
                throw .openSSL(.invalidParameter, "invalid subject attribute \(key)")
            }
        }
        guard X509_set_subject_name(x509, name) == 1 else { throw .openSSL(.internalFailure, "X509_set_subject_name failed") }
        let issuerName = issuer.map { X509_get_subject_name($0.box.pointer) } ?? name
        guard X509_set_issuer_name(x509, issuerName) == 1 else { throw .openSSL(.internalFailure, "X509_set_issuer_name failed") }

        let start = try asn1Time(notBefore)
        defer { ASN1_TIME_free(start) }
        let end = try asn1Time(notAfter)
        defer { ASN1_TIME_free(end) }
        guard X509_set1_notBefore(x509, start) == 1, X509_set1_notAfter(x509, end) == 1 else {
            throw .openSSL(.internalFailure, "setting validity failed")
        }
        guard X509_set_pubkey(x509, subjectBox.pointer) == 1 else { throw .openSSL(.internalFailure, "X509_set_pubkey failed") }

        var all: [Certificate.Extension] = []
        if let isCA {
            var writer = DERWriter()
            writer.sequence { if isCA { $0.boolean(true) } }
            all.append(.init(oid: "2.5.29.19", critical: true, value: writer.bytes))
        }
        if let keyUsage {
            var writer = DERWriter()
            let unused = UInt8(keyUsage.trailingZeroBitCount)
            writer.bitString([keyUsage], unusedBits: min(unused, 7))
            all.append(.init(oid: "2.5.29.15", critical: true, value: writer.bytes))
        }
        all += extensions
        for ext in all {
            try withExtension(ext) { made throws(CryptoError) in
                guard X509_add_ext(x509, made, -1) == 1 else { throw .openSSL(.internalFailure, "X509_add_ext failed") }
            }
        }
        guard X509_sign(x509, issuerKey.box.pointer, digest.evpMD) > 0 else { throw .openSSL(.internalFailure, "X509_sign failed") }
        var out: UnsafeMutablePointer<UInt8>? = nil
        let length = i2d_X509(owned.pointer, &out)
        guard length > 0, let out else { throw .openSSL(.internalFailure, "i2d_X509 failed") }
        defer { COpenSSL_free(out) }
        return try Certificate(derEncoded: Array(UnsafeBufferPointer(start: out, count: Int(length))))
    }
}

/// Lends a new `X509_EXTENSION` made from `ext` to `body`, freeing it afterwards.
private func withExtension(_ ext: Certificate.Extension, _ body: (OpaquePointer) throws(CryptoError) -> Void) throws(CryptoError) {
    guard let object = OBJ_txt2obj(ext.oid, 1) else { throw .openSSL(.invalidParameter, "invalid extension OID \(ext.oid)") }
    defer { ASN1_OBJECT_free(object) }
    guard let value = ASN1_OCTET_STRING_new() else { throw .openSSL(.internalFailure, "ASN1_OCTET_STRING_new failed") }
    defer { ASN1_OCTET_STRING_free(value) }
    guard ASN1_OCTET_STRING_set(value, ext.value, Int32(ext.value.count)) == 1,
        let made = X509_EXTENSION_create_by_OBJ(nil, object, ext.critical ? 1 : 0, value)
    else { throw .openSSL(.invalidParameter, "invalid extension \(ext.oid)") }
    defer { X509_EXTENSION_free(made) }
    try body(made)
}

/// Makes X.509 v2 CRLs for test hierarchies.
package struct CRLBuilder: Sendable {
    package var thisUpdate: Date
    package var nextUpdate: Date
    /// Serial numbers (big-endian) to list, each with its revocation date.
    package var revoked: [(serialNumber: [UInt8], date: Date)]
    package var digest: DigestAlgorithm
    /// The cRLNumber extension's value (big-endian); `nil` omits it. RFC 5280 §5.2.3 requires it, and so do Intel
    /// QVL (CRL_INVALID_EXTENSIONS) and webpki-based verifiers.
    package var crlNumber: [UInt8]?
    /// Whether to add an authorityKeyIdentifier (SHA-1 of the issuer's public key, RFC 5280 §4.2.1.2 method 1).
    package var authorityKeyIdentifier: Bool

    package init(
        thisUpdate: Date, nextUpdate: Date, revoked: [(serialNumber: [UInt8], date: Date)] = [], digest: DigestAlgorithm = .sha256,
        crlNumber: [UInt8]? = [1], authorityKeyIdentifier: Bool = true
    ) {
        self.thisUpdate = thisUpdate
        self.nextUpdate = nextUpdate
        self.revoked = revoked
        self.digest = digest
        self.crlNumber = crlNumber
        self.authorityKeyIdentifier = authorityKeyIdentifier
    }

    /// Signs the CRL as `issuer`.
    package func sign(issuer: Certificate, issuerKey: SigningKey) throws(CryptoError) -> CertificateRevocationList {
        guard let crl = X509_CRL_new() else { throw .openSSL(.internalFailure, "X509_CRL_new failed") }
        let owned = CRLBox(takingOwnership: crl)
        guard X509_CRL_set_version(crl, 1) == 1, X509_CRL_set_issuer_name(crl, X509_get_subject_name(issuer.box.pointer)) == 1 else {
            throw .openSSL(.internalFailure, "CRL header failed")
        }
        let start = try asn1Time(thisUpdate)
        defer { ASN1_TIME_free(start) }
        let end = try asn1Time(nextUpdate)
        defer { ASN1_TIME_free(end) }
        guard X509_CRL_set1_lastUpdate(crl, start) == 1, X509_CRL_set1_nextUpdate(crl, end) == 1 else {
            throw .openSSL(.internalFailure, "CRL dates failed")
        }
        for entry in revoked {
            guard let item = X509_REVOKED_new() else { throw .openSSL(.internalFailure, "X509_REVOKED_new failed") }
            let serial = try asn1Integer(entry.serialNumber)
            defer { ASN1_INTEGER_free(serial) }
            let date = try asn1Time(entry.date)
            defer { ASN1_TIME_free(date) }
            guard X509_REVOKED_set_serialNumber(item, serial) == 1, X509_REVOKED_set_revocationDate(item, date) == 1,
                X509_CRL_add0_revoked(crl, item) == 1
            else {
                X509_REVOKED_free(item)
                throw .openSSL(.internalFailure, "adding a revoked entry failed")
            }
        }
        var extensions: [Certificate.Extension] = []
        if let crlNumber {
            // INTEGER, non-negative: a leading zero when the high bit is set.
            var magnitude = Array(crlNumber.drop { $0 == 0 })
            if magnitude.isEmpty || magnitude[0] & 0x80 != 0 { magnitude.insert(0, at: 0) }
            guard magnitude.count < 128 else { throw CryptoError(.invalidParameter, "cRLNumber too long") }
            extensions.append(.init(oid: "2.5.29.20", critical: false, value: [0x02, UInt8(magnitude.count)] + magnitude))
        }
        if authorityKeyIdentifier {
            var keyID = [UInt8](repeating: 0, count: 20)
            var length: UInt32 = 0
            guard let sha1 = EVP_sha1(), X509_pubkey_digest(issuer.box.pointer, sha1, &keyID, &length) == 1, length == 20 else {
                throw .openSSL(.internalFailure, "X509_pubkey_digest failed")
            }
            // AuthorityKeyIdentifier ::= SEQUENCE { keyIdentifier [0] IMPLICIT OCTET STRING }
            extensions.append(.init(oid: "2.5.29.35", critical: false, value: [0x30, 0x16, 0x80, 0x14] + keyID))
        }
        for ext in extensions {
            try withExtension(ext) { made throws(CryptoError) in
                guard X509_CRL_add_ext(crl, made, -1) == 1 else { throw .openSSL(.internalFailure, "X509_CRL_add_ext failed") }
            }
        }
        _ = X509_CRL_sort(crl)
        guard X509_CRL_sign(crl, issuerKey.box.pointer, digest.evpMD) > 0 else { throw .openSSL(.internalFailure, "X509_CRL_sign failed") }
        var out: UnsafeMutablePointer<UInt8>? = nil
        let length = i2d_X509_CRL(owned.pointer, &out)
        guard length > 0, let out else { throw .openSSL(.internalFailure, "i2d_X509_CRL failed") }
        defer { COpenSSL_free(out) }
        return try CertificateRevocationList(derEncoded: Array(UnsafeBufferPointer(start: out, count: Int(length))))
    }
}
