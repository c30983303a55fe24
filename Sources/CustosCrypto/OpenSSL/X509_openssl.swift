internal import COpenSSL
public import Foundation

// MARK: - Owned X509 handles

/// Owns an `X509`. Immutable after parsing (we never call a setter on it), hence `@unchecked Sendable`.
final class X509Box: @unchecked Sendable {
    let pointer: OpaquePointer
    init(takingOwnership pointer: OpaquePointer) { self.pointer = pointer }
    deinit { X509_free(pointer) }
}

/// Owns an `X509_CRL`. Immutable after parsing, hence `@unchecked Sendable`.
final class CRLBox: @unchecked Sendable {
    let pointer: OpaquePointer
    init(takingOwnership pointer: OpaquePointer) { self.pointer = pointer }
    deinit { X509_CRL_free(pointer) }
}

func nameString(_ name: OpaquePointer?) -> String {
    guard let name else { return "" }
    let bytes = try? withWriteBIO { bio throws(CryptoError) in
        // RFC 2253 order and escaping, but UTF-8 kept readable.
        let flags = UInt(COpenSSL_XN_FLAG_RFC2253) & ~UInt(ASN1_STRFLGS_ESC_MSB)
        _ = X509_NAME_print_ex(bio, name, 0, flags)
    }
    return String(decoding: bytes ?? [], as: UTF8.self)
}

func nameEntries(_ name: OpaquePointer?) -> [(String, String)] {
    guard let name else { return [] }
    var out: [(String, String)] = []
    for index in 0..<X509_NAME_entry_count(name) {
        guard let entry = X509_NAME_get_entry(name, index), let object = X509_NAME_ENTRY_get_object(entry),
            let data = X509_NAME_ENTRY_get_data(entry)
        else { continue }
        let key = shortName(nid: OBJ_obj2nid(object)) ?? objectText(object)
        var utf8: UnsafeMutablePointer<UInt8>? = nil
        let length = ASN1_STRING_to_UTF8(&utf8, data)
        guard length >= 0, let utf8 else { continue }
        defer { COpenSSL_free(utf8) }
        out.append((key, String(decoding: UnsafeBufferPointer(start: utf8, count: Int(length)), as: UTF8.self)))
    }
    return out
}

/// OpenSSL's short name for a NID, or nil for NID_undef and unknown values (OBJ_nid2sn returns NULL for those).
func shortName(nid: Int32) -> String? {
    guard nid > 0, let name = OBJ_nid2sn(nid) else { return nil }
    return String(cString: name)
}

func objectText(_ object: OpaquePointer?) -> String {
    guard let object else { return "" }
    var buffer = [CChar](repeating: 0, count: 128)
    let length = OBJ_obj2txt(&buffer, Int32(buffer.count), object, 1)
    guard length > 0 else { return "" }
    return String(decoding: buffer.prefix(Int(min(length, 127))).map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

func asn1TimeToDate(_ time: UnsafePointer<ASN1_TIME>?) -> Date? {
    guard let time else { return nil }
    var value = tm()
    guard ASN1_TIME_to_tm(time, &value) == 1 else { return nil }
    return Date(timeIntervalSince1970: TimeInterval(timegm(&value)))
}

func stringBytes(_ string: UnsafePointer<ASN1_STRING>?) -> [UInt8] {
    guard let string, let data = ASN1_STRING_get0_data(string) else { return [] }
    return Array(UnsafeBufferPointer(start: data, count: Int(ASN1_STRING_length(string))))
}

/// Splits PEM text into the DER of each block with the given label. Text around and between blocks is ignored
/// (PEM chains often arrive inside binary quotes or HTTP headers).
func pemBlocks(_ text: String, label: String) throws(CryptoError) -> [[UInt8]] {
    let bytes = Array(text.utf8)
    return try bytes.withUnsafeBufferPointer { buffer throws(CryptoError) in try pemBlocks(buffer, label: label) }
}

/// ``pemBlocks(_:label:)`` over UTF-8 bytes: a plain byte scan (Foundation's string search made PEM splitting a
/// tenth of a cold TDX verification).
func pemBlocks(_ bytes: UnsafeBufferPointer<UInt8>, label: String) throws(CryptoError) -> [[UInt8]] {
    let begin = Array("-----BEGIN \(label)-----".utf8)
    let end = Array("-----END \(label)-----".utf8)
    let dashes = Array("-----".utf8)
    var blocks: [[UInt8]] = []
    var cursor = 0
    while let open = firstIndex(of: begin, in: bytes, from: cursor) {
        let bodyStart = open + begin.count
        guard let close = firstIndex(of: end, in: bytes, from: bodyStart) else {
            throw CryptoError(.malformedInput, "PEM block for \(label) is not terminated")
        }
        let body = UnsafeBufferPointer(rebasing: bytes[bodyStart..<close])
        guard firstIndex(of: dashes, in: body, from: 0) == nil else {
            throw CryptoError(.malformedInput, "PEM block for \(label) contains another armour line")
        }
        blocks.append(try Base64.decodeStandard(utf8: body))
        guard blocks.count <= 64 else { throw CryptoError(.malformedInput, "too many PEM blocks") }
        cursor = close + end.count
    }
    if blocks.isEmpty, firstIndex(of: end, in: bytes, from: 0) != nil {
        throw CryptoError(.malformedInput, "PEM END without BEGIN for \(label)")
    }
    return blocks
}

/// The first index at or after `start` where `needle` occurs in `haystack`.
private func firstIndex(of needle: [UInt8], in haystack: UnsafeBufferPointer<UInt8>, from start: Int) -> Int? {
    guard let first = needle.first, haystack.count >= needle.count else { return nil }
    var index = start
    let last = haystack.count - needle.count
    while index <= last {
        if haystack[index] == first {
            var matched = 1
            while matched < needle.count, haystack[index + matched] == needle[matched] { matched += 1 }
            if matched == needle.count { return index }
        }
        index += 1
    }
    return nil
}

// MARK: - Certificate

/// An X.509 certificate, parsed by OpenSSL.
public struct Certificate: Sendable, Hashable, CustomStringConvertible {
    /// The certificate's DER, exactly as given.
    public let der: [UInt8]
    let box: X509Box

    public static func == (lhs: Certificate, rhs: Certificate) -> Bool { lhs.der == rhs.der }
    public func hash(into hasher: inout Hasher) { hasher.combine(der) }

    /// Parses DER; trailing bytes are rejected.
    public init(derEncoded der: [UInt8]) throws(CryptoError) {
        guard !der.isEmpty, der.count <= 1 << 20 else {
            throw CryptoError(.malformedInput, "certificate DER is empty or larger than 1 MiB")
        }
        var parsed: OpaquePointer? = nil
        var consumed = 0
        der.withNonNilBytes { buffer in
            guard let base = buffer.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return }
            var cursor: UnsafePointer<UInt8>? = base
            parsed = d2i_X509(nil, &cursor, buffer.count)
            if let cursor { consumed = cursor - base }
        }
        guard let parsed else { throw .openSSL(.malformedInput, "not a DER X.509 certificate") }
        let box = X509Box(takingOwnership: parsed)
        guard consumed == der.count else {
            throw CryptoError(.malformedInput, "\(der.count - consumed) trailing bytes after the certificate")
        }
        self.der = der
        self.box = box
    }

    /// Shares an `X509` that OpenSSL handed out (taking a reference of our own), with its DER re-encoded.
    init(sharing pointer: OpaquePointer) throws(CryptoError) {
        var out: UnsafeMutablePointer<UInt8>? = nil
        let length = i2d_X509(pointer, &out)
        guard length > 0, let out else { throw .openSSL(.internalFailure, "i2d_X509 failed") }
        defer { COpenSSL_free(out) }
        guard X509_up_ref(pointer) == 1 else { throw .openSSL(.internalFailure, "X509_up_ref failed") }
        self.der = Array(UnsafeBufferPointer(start: out, count: Int(length)))
        self.box = X509Box(takingOwnership: pointer)
    }

    /// Parses every `CERTIFICATE` block of a PEM text, in order.
    /// - Throws: when there is no certificate or one fails to parse.
    public static func parsePEMChain(_ pem: String) throws(CryptoError) -> [Certificate] {
        try parsePEMChain(pem, reusing: [])
    }

    /// Parses every `CERTIFICATE` block of a PEM text, in order; a block whose DER equals one of `known` yields that
    /// already-parsed certificate instead of a new parse (certificates are immutable and compared by DER, so the
    /// result is the same — only OpenSSL's costly key decoding is skipped).
    /// - Throws: when there is no certificate or one fails to parse.
    public static func parsePEMChain(_ pem: String, reusing known: [Certificate]) throws(CryptoError) -> [Certificate] {
        try certificates(pemBlocks(pem, label: "CERTIFICATE"), reusing: known)
    }

    /// ``parsePEMChain(_:reusing:)`` over the PEM text's bytes (no String round trip, for PEM found in binary data).
    public static func parsePEMChain(pemBytes: [UInt8], reusing known: [Certificate]) throws(CryptoError) -> [Certificate] {
        let blocks = try pemBytes.withUnsafeBufferPointer { bytes throws(CryptoError) in try pemBlocks(bytes, label: "CERTIFICATE") }
        return try certificates(blocks, reusing: known)
    }

    private static func certificates(_ blocks: [[UInt8]], reusing known: [Certificate]) throws(CryptoError) -> [Certificate] {
        guard !blocks.isEmpty else { throw CryptoError(.malformedInput, "no PEM CERTIFICATE block found") }
        var out: [Certificate] = []
        for block in blocks {
            if let same = known.first(where: { $0.der == block }) {
                out.append(same)
            } else {
                out.append(try Certificate(derEncoded: block))
            }
        }
        return out
    }

    /// Parses a PEM text holding exactly one certificate.
    public init(pemEncoded pem: String) throws(CryptoError) {
        let chain = try Self.parsePEMChain(pem)
        guard chain.count == 1 else { throw CryptoError(.malformedInput, "expected one PEM certificate, found \(chain.count)") }
        self = chain[0]
    }

    /// Parses DER, or PEM when the bytes look like text with a BEGIN line.
    public init(derOrPEM bytes: [UInt8]) throws(CryptoError) {
        if bytes.starts(with: Array("-----BEGIN".utf8))
            || String(decoding: bytes.prefix(4096), as: UTF8.self).contains("-----BEGIN CERTIFICATE")
        {
            try self.init(pemEncoded: String(decoding: bytes, as: UTF8.self))
        } else {
            try self.init(derEncoded: bytes)
        }
    }

    /// The subject DN in RFC 2253 form.
    public var subject: String { nameString(X509_get_subject_name(box.pointer)) }
    /// The issuer DN in RFC 2253 form.
    public var issuer: String { nameString(X509_get_issuer_name(box.pointer)) }
    /// The subject's attributes in order, short names (`CN`, `O`, …).
    public var subjectAttributes: [(String, String)] { nameEntries(X509_get_subject_name(box.pointer)) }
    /// The subject's common name (the last CN attribute), when present.
    public var commonName: String? {
        let name = X509_get_subject_name(box.pointer)
        var found: Int32 = -1
        var index: Int32 = -1
        while true {
            index = X509_NAME_get_index_by_NID(name, NID_commonName, index)
            guard index >= 0 else { break }
            found = index
        }
        guard found >= 0, let entry = X509_NAME_get_entry(name, found), let data = X509_NAME_ENTRY_get_data(entry) else { return nil }
        var utf8: UnsafeMutablePointer<UInt8>? = nil
        let length = ASN1_STRING_to_UTF8(&utf8, data)
        guard length >= 0, let utf8 else { return nil }
        defer { COpenSSL_free(utf8) }
        return String(decoding: UnsafeBufferPointer(start: utf8, count: Int(length)), as: UTF8.self)
    }
    /// Whether subject and issuer are the same name (X.509 name comparison, not a rendering of it).
    public var isSelfIssued: Bool { X509_NAME_cmp(X509_get_subject_name(box.pointer), X509_get_issuer_name(box.pointer)) == 0 }
    /// Whether `other`'s issuer is this certificate's subject.
    public func isSubject(ofIssuerOf other: Certificate) -> Bool {
        X509_NAME_cmp(X509_get_subject_name(box.pointer), X509_get_issuer_name(other.box.pointer)) == 0
    }
    /// The serial number, big-endian magnitude.
    public var serialNumber: [UInt8] {
        guard let integer = X509_get0_serialNumber(box.pointer), let bn = ASN1_INTEGER_to_BN(integer, nil) else { return [] }
        return (try? BigNum(takingOwnership: bn).bytes()) ?? []
    }
    /// The X.509 version (1, 2 or 3).
    public var version: Int { Int(X509_get_version(box.pointer)) + 1 }
    /// Start of validity.
    public var notBefore: Date { asn1TimeToDate(X509_get0_notBefore(box.pointer)) ?? .distantFuture }
    /// End of validity.
    public var notAfter: Date { asn1TimeToDate(X509_get0_notAfter(box.pointer)) ?? .distantPast }
    /// Whether `date` is inside [notBefore, notAfter].
    public func isValid(at date: Date) -> Bool { notBefore <= date && date <= notAfter }

    /// An extension as found in the certificate.
    public struct Extension: Sendable, Equatable {
        /// Dotted OID.
        public let oid: String
        public let critical: Bool
        /// The extnValue OCTET STRING's content (the extension's own DER).
        public let value: [UInt8]
    }

    /// All extensions, in order.
    public var extensions: [Extension] {
        var out: [Extension] = []
        for index in 0..<X509_get_ext_count(box.pointer) {
            guard let ext = X509_get_ext(box.pointer, index) else { continue }
            out.append(
                Extension(
                    oid: objectText(X509_EXTENSION_get_object(ext)), critical: X509_EXTENSION_get_critical(ext) == 1,
                    value: stringBytes(X509_EXTENSION_get_data(ext))))
        }
        return out
    }

    /// The extension with `oid`, if present.
    public func `extension`(oid: String) -> Extension? { extensions.first { $0.oid == oid } }

    /// Whether basic constraints mark this certificate as a CA.
    public var isCA: Bool { X509_check_ca(box.pointer) > 0 }

    /// Whether the certificate's issuer and subject are equal and its own key verifies its signature.
    public var isSelfSigned: Bool { X509_check_issued(box.pointer, box.pointer) == X509_V_OK && isSigned(by: self) }

    /// The DER `TBSCertificate` (the signed bytes).
    public var tbsCertificate: [UInt8] {
        var out: UnsafeMutablePointer<UInt8>? = nil
        let length = i2d_re_X509_tbs(box.pointer, &out)
        guard length > 0, let out else { return [] }
        defer { COpenSSL_free(out) }
        return Array(UnsafeBufferPointer(start: out, count: Int(length)))
    }

    /// The signature algorithm's dotted OID.
    public var signatureAlgorithmOID: String {
        var signature: UnsafePointer<ASN1_BIT_STRING>? = nil
        var algorithm: UnsafePointer<X509_ALGOR>? = nil
        X509_get0_signature(&signature, &algorithm, box.pointer)
        var object: OpaquePointer? = nil
        X509_ALGOR_get0(&object, nil, nil, algorithm)
        return objectText(object)
    }

    /// The signature bits.
    public var signature: [UInt8] {
        var signature: UnsafePointer<ASN1_BIT_STRING>? = nil
        var algorithm: UnsafePointer<X509_ALGOR>? = nil
        X509_get0_signature(&signature, &algorithm, box.pointer)
        guard let signature else { return [] }
        return stringBytes(signature)
    }

    /// The subject public key.
    public var publicKey: PublicKey {
        guard let key = X509_get_pubkey(box.pointer) else { return .other("missing") }
        let pkey = PKeyBox(takingOwnership: key)
        if let ec = try? ECPublicKey(box: pkey) { return .ec(ec) }
        if let rsa = try? RSAPublicKey(box: pkey) { return .rsa(rsa) }
        _ = drainOpenSSLErrors()
        return .other(shortName(nid: pkey.baseID) ?? "unknown")
    }

    /// Whether `issuer`'s public key verifies this certificate's signature.
    public func isSigned(by issuer: Certificate) -> Bool {
        guard let key = X509_get0_pubkey(issuer.box.pointer) else { return false }
        let ok = X509_verify(box.pointer, key) == 1
        _ = drainOpenSSLErrors()
        return ok
    }

    /// SHA-256 of the DER.
    public var fingerprintSHA256: [UInt8] { Digest.sha256(der) }

    /// PEM armour of the DER.
    public var pemRepresentation: String { pemArmor(der, label: "CERTIFICATE") }

    public var description: String { "Certificate(\(subject))" }
}

/// A certificate's public key.
public enum PublicKey: Sendable, Equatable {
    case ec(ECPublicKey)
    case rsa(RSAPublicKey)
    /// Another algorithm, by its OpenSSL short name.
    case other(String)
}

// MARK: - CRL

/// An X.509 certificate revocation list.
public struct CertificateRevocationList: Sendable, Hashable {
    public let der: [UInt8]
    let box: CRLBox

    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.der == rhs.der }
    public func hash(into hasher: inout Hasher) { hasher.combine(der) }

    /// Parses DER; trailing bytes are rejected.
    public init(derEncoded der: [UInt8]) throws(CryptoError) {
        guard !der.isEmpty, der.count <= 64 << 20 else { throw CryptoError(.malformedInput, "CRL DER is empty or larger than 64 MiB") }
        var parsed: OpaquePointer? = nil
        var consumed = 0
        der.withNonNilBytes { buffer in
            guard let base = buffer.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return }
            var cursor: UnsafePointer<UInt8>? = base
            parsed = d2i_X509_CRL(nil, &cursor, buffer.count)
            if let cursor { consumed = cursor - base }
        }
        guard let parsed else { throw .openSSL(.malformedInput, "not a DER X.509 CRL") }
        let box = CRLBox(takingOwnership: parsed)
        guard consumed == der.count else { throw CryptoError(.malformedInput, "\(der.count - consumed) trailing bytes after the CRL") }
        self.der = der
        self.box = box
    }

    /// Parses a PEM `X509 CRL` block.
    public init(pemEncoded pem: String) throws(CryptoError) {
        let blocks = try pemBlocks(pem, label: "X509 CRL")
        guard blocks.count == 1 else { throw CryptoError(.malformedInput, "expected one PEM X509 CRL, found \(blocks.count)") }
        try self.init(derEncoded: blocks[0])
    }

    /// Parses DER, PEM, or hex-encoded DER (Intel PCS/PCCS may serve CRLs as hex text).
    public init(anyEncoding bytes: [UInt8]) throws(CryptoError) {
        let text = String(decoding: bytes.prefix(64), as: UTF8.self)
        if text.contains("-----BEGIN") {
            try self.init(pemEncoded: String(decoding: bytes, as: UTF8.self))
        } else if let first = bytes.first, first != 0x30,
            let decoded = try? Hex.decode(String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
        {
            try self.init(derEncoded: decoded)
        } else {
            try self.init(derEncoded: bytes)
        }
    }

    /// The issuer DN in RFC 2253 form.
    public var issuer: String { nameString(X509_CRL_get_issuer(box.pointer)) }
    /// Whether the CRL's issuer is `certificate`'s subject (X.509 name comparison).
    public func isIssued(bySubjectOf certificate: Certificate) -> Bool {
        X509_NAME_cmp(X509_CRL_get_issuer(box.pointer), X509_get_subject_name(certificate.box.pointer)) == 0
    }
    /// Whether the CRL's issuer is `certificate`'s issuer, i.e. the CRL that covers `certificate`.
    public func isIssued(byIssuerOf certificate: Certificate) -> Bool {
        X509_NAME_cmp(X509_CRL_get_issuer(box.pointer), X509_get_issuer_name(certificate.box.pointer)) == 0
    }
    public var thisUpdate: Date { asn1TimeToDate(X509_CRL_get0_lastUpdate(box.pointer)) ?? .distantFuture }
    public var nextUpdate: Date? { asn1TimeToDate(X509_CRL_get0_nextUpdate(box.pointer)) }

    /// Serial numbers of the revoked certificates (big-endian magnitudes).
    public var revokedSerialNumbers: [[UInt8]] {
        guard let stack = X509_CRL_get_REVOKED(box.pointer) else { return [] }
        var out: [[UInt8]] = []
        for index in 0..<COpenSSL_sk_X509_REVOKED_num(stack) {
            guard let revoked = COpenSSL_sk_X509_REVOKED_value(stack, index),
                let serial = X509_REVOKED_get0_serialNumber(revoked), let bn = ASN1_INTEGER_to_BN(serial, nil)
            else { continue }
            out.append((try? BigNum(takingOwnership: bn).bytes()) ?? [])
        }
        return out
    }

    /// The CRL's own extensions (crlExtensions), in order.
    public var extensions: [Certificate.Extension] {
        var out: [Certificate.Extension] = []
        for index in 0..<X509_CRL_get_ext_count(box.pointer) {
            guard let ext = X509_CRL_get_ext(box.pointer, index) else { continue }
            out.append(
                Certificate.Extension(
                    oid: objectText(X509_EXTENSION_get_object(ext)), critical: X509_EXTENSION_get_critical(ext) == 1,
                    value: stringBytes(X509_EXTENSION_get_data(ext))))
        }
        return out
    }

    /// Whether `certificate`'s serial is listed.
    public func lists(_ certificate: Certificate) -> Bool {
        var entry: OpaquePointer? = nil
        return X509_CRL_get0_by_cert(box.pointer, &entry, certificate.box.pointer) == 1
    }

    /// Whether `issuer`'s key verifies the CRL's signature.
    public func isSigned(by issuer: Certificate) -> Bool {
        guard let key = X509_get0_pubkey(issuer.box.pointer) else { return false }
        let ok = X509_CRL_verify(box.pointer, key) == 1
        _ = drainOpenSSLErrors()
        return ok
    }
}
