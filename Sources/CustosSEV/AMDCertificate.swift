public import CustosCrypto

/// An AMD-format certificate: the ARK (AMD Root Key) or ASK (AMD SEV Signing Key) of one product line.
///
/// Layout (SEV API spec 55766 Appendix C, as mirrored by sev-tool `sevapi.h`; sev.md §1.1), little-endian:
///
/// | off | size | field |
/// |---|---|---|
/// | 0x00 | 4 | VERSION = 1 |
/// | 0x04 | 16 | KEY_ID |
/// | 0x14 | 16 | CERTIFYING_ID (ARK: its own KEY_ID; ASK: the ARK's) |
/// | 0x24 | 4 | KEY_USAGE: 0x00 ARK, 0x13 ASK |
/// | 0x28 | 16 | RESERVED |
/// | 0x38 | 4 | PUBEXP_SIZE in bits (= MODULUS_SIZE) |
/// | 0x3C | 4 | MODULUS_SIZE in bits: 2048 or 4096 |
/// | 0x40 | P/8 | PUBEXP, little-endian |
/// | 0x40+P/8 | M/8 | MODULUS, little-endian |
/// | 0x40+P/8+M/8 | M/8 | SIGNATURE, little-endian RSASSA-PSS |
///
/// The signed bytes run from offset 0 to the end of MODULUS. The published Naples ARK lacks its signature
/// (AMDESE/AMDSEV#17): such a certificate parses with ``signature`` `nil` and is only accepted as a trust anchor
/// when its body is one of the pinned ARK bodies (``ProductLine/arkBodySHA256``).
public struct AMDCertificate: Sendable, Equatable {
    /// The KEY_USAGE values.
    public enum KeyUsage: UInt32, Sendable, Codable {
        case ark = 0x00
        case ask = 0x13
    }

    public let version: UInt32
    public let keyID: [UInt8]
    public let certifyingID: [UInt8]
    public let keyUsage: KeyUsage
    /// Modulus size in bits (2048 or 4096).
    public let modulusBits: Int
    /// The RSA public key (numbers converted to big-endian for OpenSSL).
    public let publicKey: RSAPublicKey
    /// The signed bytes: offset 0 to the end of MODULUS.
    public let body: [UInt8]
    /// The signature, little-endian as stored; nil for a body-only certificate (the Naples ARK quirk).
    public let signatureLittleEndian: [UInt8]?

    /// Parses an ARK or ASK.
    /// - Parameter bytes: 832 or 1600 bytes (a whole certificate), or 576 or 1088 bytes (a body without signature).
    /// - Throws: ``SEVError`` with `.truncated`, `.unsupportedVersion`, `.invalidValue`, `.lengthOverflow` or
    ///   `.trailingBytes` and the byte offset.
    public init(bytes: [UInt8]) throws(SEVError) {
        var reader = ByteReader(bytes)
        version = try reader.readUInt32LE(field: "VERSION")
        guard version == 1 else { throw SEVError(.unsupportedVersion, "AMD certificate version \(version), expected 1", offset: 0) }
        keyID = try reader.readBytes(16, field: "KEY_ID")
        certifyingID = try reader.readBytes(16, field: "CERTIFYING_ID")
        let usage = try reader.readUInt32LE(field: "KEY_USAGE")
        guard let keyUsage = KeyUsage(rawValue: usage) else {
            throw SEVError(.invalidValue, "KEY_USAGE 0x\(String(usage, radix: 16)) is neither ARK (0x0) nor ASK (0x13)", offset: 0x24)
        }
        self.keyUsage = keyUsage
        _ = try reader.readBytes(16, field: "RESERVED")
        let pubexpBits = try reader.readUInt32LE(field: "PUBEXP_SIZE")
        let modulusBits = try reader.readUInt32LE(field: "MODULUS_SIZE")
        guard modulusBits == 2048 || modulusBits == 4096 else {
            throw SEVError(.invalidValue, "MODULUS_SIZE \(modulusBits) bits is not 2048 or 4096", offset: 0x3C)
        }
        // virtee/sev requires PUBEXP_SIZE == MODULUS_SIZE; every AMD root has it.
        guard pubexpBits == modulusBits else {
            throw SEVError(.invalidValue, "PUBEXP_SIZE \(pubexpBits) differs from MODULUS_SIZE \(modulusBits)", offset: 0x38)
        }
        self.modulusBits = Int(modulusBits)
        let size = Int(modulusBits) / 8
        let exponent = try reader.readBytes(size, field: "PUBEXP")
        let modulus = try reader.readBytes(size, field: "MODULUS")
        body = Array(bytes[0..<reader.offset])
        if reader.remaining == 0 {
            signatureLittleEndian = nil
        } else {
            signatureLittleEndian = try reader.readBytes(size, field: "SIGNATURE")
            try reader.expectEnd("AMD certificate")
        }
        let n = bigEndianTrimmed(fromLittleEndian: modulus)
        let e = bigEndianTrimmed(fromLittleEndian: exponent)
        guard n.count * 8 > Int(modulusBits) - 8, !e.isEmpty else {
            throw SEVError(.invalidValue, "modulus is shorter than \(modulusBits) bits or exponent is zero", offset: 0x40 + size)
        }
        do { publicKey = try RSAPublicKey(modulus: n, exponent: e) } catch {
            throw SEVError(.invalidValue, "RSA key rejected: \(error)", offset: 0x40)
        }
    }

    /// The whole certificate bytes (body ‖ signature when present).
    public var bytes: [UInt8] { body + (signatureLittleEndian ?? []) }

    /// The hash that goes with the key size: SHA-256 for RSA-2048 (Naples), SHA-384 for RSA-4096.
    public var digestAlgorithm: DigestAlgorithm { modulusBits == 2048 ? .sha256 : .sha384 }

    /// What `sevctl verify` prints: the hash of ``body`` with ``digestAlgorithm``.
    public var displayHash: [UInt8] { Digest.hash(digestAlgorithm, body) }

    /// The PSS parameters of this key's signatures: MGF1 with the same hash, salt = digest length.
    var pssPadding: RSAPadding { .pss(mgf1: digestAlgorithm, saltLength: digestAlgorithm.byteCount) }

    /// Whether this key made `signatureLittleEndian` over `message` (RSASSA-PSS, §1.1).
    ///
    /// The stored signature is little-endian: it is reversed to big-endian and left-padded to the modulus length.
    public func isValidSignature(littleEndian signature: [UInt8], over message: [UInt8]) -> Bool {
        let size = modulusBits / 8
        // An RSA-2048 ASK's signature in a 0x200-byte SEV slot: only the first 256 bytes count (sev.md §1.2).
        guard signature.count >= size else { return false }
        let bigEndian = Array(signature[0..<size].reversed())
        return publicKey.isValidSignature(bigEndian, for: message, digest: digestAlgorithm, padding: pssPadding)
    }

    /// Whether `issuer` signed this certificate.
    /// - Throws: `.signatureMissing` for a body-only certificate; `.signatureInvalid` when it does not verify.
    public func verifySignature(by issuer: AMDCertificate) throws(SEVError) {
        guard let signature = signatureLittleEndian else {
            throw SEVError(.signatureMissing, "the \(keyUsage) certificate has no signature (576/1088-byte body only)")
        }
        guard issuer.modulusBits == modulusBits else {
            throw SEVError(.signatureInvalid, "issuer key is RSA-\(issuer.modulusBits), certificate is RSA-\(modulusBits)")
        }
        guard issuer.isValidSignature(littleEndian: signature, over: body) else {
            throw SEVError(
                .signatureInvalid, "RSA-PSS \(issuer.digestAlgorithm) signature does not verify under key \(Hex.encode(issuer.keyID))")
        }
    }

    /// This certificate with `signature` attached (completes a body-only Naples ARK with its published signature).
    public func attaching(signatureLittleEndian signature: [UInt8]) throws(SEVError) -> AMDCertificate {
        guard signatureLittleEndian == nil else { throw SEVError(.invalidParameter, "certificate already has a signature") }
        return try AMDCertificate(bytes: body + signature)
    }
}

// MARK: - Product lines

/// An AMD EPYC product line, named as AMD names its ARK/ASK downloads.
public struct ProductLine: Hashable, Sendable, Codable, CustomStringConvertible {
    public let name: String
    public init(_ name: String) { self.name = name }
    public var description: String { name }

    public static let naples = ProductLine("naples")
    public static let rome = ProductLine("rome")
    public static let milan = ProductLine("milan")
    public static let genoa = ProductLine("genoa")
    public static let turin = ProductLine("turin")

    /// The product lines AMD publishes SEV roots for, oldest first (the order the CEK is tried in).
    public static let allPublished: [ProductLine] = [.naples, .rome, .milan, .genoa, .turin]

    /// SHA-256 of each published ARK's *body*: what a body-only ARK (the Naples quirk) must hash to.
    public static let arkBodySHA256: [ProductLine: String] = [
        .naples: "8efddcaaf84990cf6354d93637be270220cf15797332b3d918c3b8cc77349f31"
    ]

    /// The display hashes `sevctl verify` prints for the published roots (sev.md §1.1 table).
    public static let publishedDisplayHashes: [ProductLine: (ark: String, ask: String)] = [
        .naples: (
            "8efddcaaf84990cf6354d93637be270220cf15797332b3d918c3b8cc77349f31",
            "5dff2a2a4dd59dc095d73a26af28be523192ade830bdd35bacdd81ee75584c45"
        ),
        .rome: (
            "3d2c1157c29ef7bd4207fc0c8b08db080e579ceba267f8c93bec8dce73f5a5e2e60d959ac37ea82176c1a0c61ae203ed",
            "d8cd9d1798c311c96e009a91552f17b4ddc4886a064ec933697734965b9ab29db803c79604e2725658f0861bfaf09ad4"
        ),
        .milan: (
            "569da618dfe64015c343db6d975e77b72fdeacd16edd02d9d09b889b8f0f1d91ffa5dfbd86f7ac574a1a7883b7a1e737",
            "95cba79ba3c77daea79f741bade8156a50b1c59f6d6fda104d16dd264729f5ee8989522f3711fc7c84719921ceb31bc0"
        ),
        .genoa: (
            "b66e16ff0ebeed57f0c4dffa154872c4156f2e5b1c2f4e66e58fc37f1d2a60d31a342ecb6430a9b2510a970c75c37926",
            "9fa6db577758411b576cfcdc3c2f0851e60f0c69ffdcb6301ad2f7864f91e829f62925888464d9d285612eb03b3fc63d"
        ),
        .turin: (
            "712a28007da1097e8c4fd3a2e8655012b27e04042323a0a30e111fc0cf698961040c6fc3ff2053abe70432cfef411a0e",
            "9ae10c44573f0c0dee8044a89ee1ba5acd8f3909651fd3c96bfec3d4419c1bd60d7d9a35d42509c3a71e307b0f60c1d1"
        ),
    ]
}

/// The ARK/ASK pair of one product line, as the guest owner pins them.
public struct AMDRoots: Sendable, Equatable {
    public let productLine: ProductLine
    public let ark: AMDCertificate
    public let ask: AMDCertificate

    public init(productLine: ProductLine, ark: AMDCertificate, ask: AMDCertificate) {
        self.productLine = productLine
        self.ark = ark
        self.ask = ask
    }

    /// Parses both certificates.
    public init(productLine: ProductLine, ark: [UInt8], ask: [UInt8]) throws(SEVError) {
        self.init(productLine: productLine, ark: try AMDCertificate(bytes: ark), ask: try AMDCertificate(bytes: ask))
    }

    /// Splits AMD's downloadable `ask_ark_<line>.cert` (ASK ‖ ARK).
    public init(productLine: ProductLine, askArk bytes: [UInt8]) throws(SEVError) {
        var split: Int? = nil
        for size in [832, 1600] where bytes.count > size {
            if (try? AMDCertificate(bytes: Array(bytes[0..<size])))?.keyUsage == .ask { split = size }
        }
        guard let split else { throw SEVError(.invalidValue, "not ASK ‖ ARK: no ASK certificate at the start", offset: 0) }
        try self.init(productLine: productLine, ark: Array(bytes[split...]), ask: Array(bytes[0..<split]))
    }

    /// Verifies ARK self-signature and ARK → ASK (sev.md §1.1 "How to verify").
    ///
    /// A body-only ARK (Naples quirk) is accepted only when its body hash is pinned in
    /// ``ProductLine/arkBodySHA256`` for this product line.
    /// - Throws: ``SEVError`` naming the broken link in its reason.
    public func verify() throws(SEVError) {
        do throws(ChainFailure) { try verifyLinks() } catch { throw error.error }
    }

    /// As ``verify()``, with the link that broke.
    public func verifyLinks() throws(ChainFailure) {
        func fail(_ link: ChainLink, _ code: SEVError.Code, _ reason: String) -> ChainFailure {
            ChainFailure(link: link, error: SEVError(code, "\(link.rawValue) (\(productLine)): \(reason)"))
        }
        guard ark.keyUsage == .ark else { throw fail(.arkSelfSignature, .chainMismatch, "KEY_USAGE is \(ark.keyUsage), expected ARK") }
        guard ark.certifyingID == ark.keyID else {
            throw fail(
                .arkSelfSignature, .chainMismatch,
                "CERTIFYING_ID \(Hex.encode(ark.certifyingID)) is not its own KEY_ID \(Hex.encode(ark.keyID))")
        }
        if ark.signatureLittleEndian == nil {
            guard let pinned = ProductLine.arkBodySHA256[productLine], Hex.encode(Digest.sha256(ark.body)) == pinned else {
                throw fail(.arkSelfSignature, .signatureMissing, "the ARK has no signature and its body is not a pinned ARK body")
            }
        } else {
            do throws(SEVError) { try ark.verifySignature(by: ark) } catch { throw fail(.arkSelfSignature, error.code, error.reason) }
        }
        guard ask.keyUsage == .ask else { throw fail(.askByARK, .chainMismatch, "KEY_USAGE is \(ask.keyUsage), expected ASK (0x13)") }
        guard ask.certifyingID == ark.keyID else {
            throw fail(
                .askByARK, .chainMismatch,
                "ASK CERTIFYING_ID \(Hex.encode(ask.certifyingID)) is not the ARK's KEY_ID \(Hex.encode(ark.keyID))")
        }
        do throws(SEVError) { try ask.verifySignature(by: ark) } catch { throw fail(.askByARK, error.code, error.reason) }
    }
}
