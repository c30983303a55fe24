public import CustosCrypto
public import Foundation

// MARK: - Digest

/// The Authenticode image digest (Microsoft "Windows Authenticode Portable Executable Signature Format",
/// § "Calculating the PE Image Hash"), as EDK2's `DxeImageVerificationLib` computes it and as OVMF/TDVF extend it
/// into PCR 4 / RTMR1.
public enum AuthenticodeDigest {
    /// How to treat a file whose size is not a multiple of 8.
    public enum Padding: Sendable, Equatable {
        /// Hash the file as it is (what `pesign -h` and the firmware do for that very file).
        case asIs
        /// Hash it as the signing tools will: zero-padded to 8 bytes before they append the certificate table, so
        /// the unsigned file gives the digest its signed copy will have (spec: "the 8-byte padding rule").
        /// Signed images are never padded.
        case signingAlignment
    }

    /// Computes the Authenticode digest of `image`.
    ///
    /// 1. `[0, CheckSum)`, skip the 4-byte CheckSum;
    /// 2. up to the Certificate Table directory entry, skip its 8 bytes, then up to SizeOfHeaders;
    /// 3. each section with raw data, sorted by PointerToRawData, `SUM = SizeOfHeaders + ΣSizeOfRawData`;
    /// 4. trailing data `[SUM, fileSize − certificateTableSize)`; the certificate table itself is never hashed.
    /// - Parameters:
    ///   - image: a parsed image (its bounds are already checked).
    ///   - algorithm: SHA-256 or SHA-384 in practice (any ``DigestAlgorithm`` works).
    ///   - padding: see ``Padding``.
    /// - Returns: the digest.
    public static func compute(_ image: PEImage, algorithm: DigestAlgorithm, padding: Padding = .asIs) -> [UInt8] {
        var hasher = StreamingDigest(algorithm)
        feed(image, padding: padding) { hasher.update($0) }
        return hasher.finalize()
    }

    /// Computes several digests in one pass over the image.
    public static func compute(_ image: PEImage, algorithms: [DigestAlgorithm], padding: Padding = .asIs) -> [DigestAlgorithm: [UInt8]] {
        var hashers = algorithms.map { StreamingDigest($0) }
        feed(image, padding: padding) { chunk in
            for index in hashers.indices { hashers[index].update(chunk) }
        }
        var out: [DigestAlgorithm: [UInt8]] = [:]
        for hasher in hashers { out[hasher.algorithm] = hasher.finalize() }
        return out
    }

    /// The hashed ranges, in order (for diagnostics and tests).
    static func ranges(_ image: PEImage) -> [Range<Int>] {
        let bytes = image.bytes
        let optional = image.optionalHeader
        let checkSum = optional.offset + OptionalHeader.checkSumOffset
        var out: [Range<Int>] = [0..<checkSum]
        if optional.dataDirectories.count > 4 {
            let directory = optional.offset + optional.certificateDirectoryOffset
            out.append(checkSum + 4..<directory)
            out.append(directory + 8..<optional.sizeOfHeaders)
        } else {
            out.append(checkSum + 4..<optional.sizeOfHeaders)
        }
        // Stable sort by file offset: EDK2 and the Authenticode spec hash in file order, not RVA order.
        let withData = image.sections.enumerated().filter { $0.element.sizeOfRawData > 0 }
            .sorted { ($0.element.pointerToRawData, $0.offset) < ($1.element.pointerToRawData, $1.offset) }
        var sum = optional.sizeOfHeaders
        for (_, section) in withData {
            out.append(section.rawDataRange)
            sum += Int(section.sizeOfRawData)  // ≤ 97 × 2^32: cannot overflow Int on 64-bit
        }
        let end = bytes.count - image.certificateTableSize
        if end > sum { out.append(sum..<end) }
        return out
    }

    private static func feed(_ image: PEImage, padding: Padding, _ update: (ArraySlice<UInt8>) -> Void) {
        for range in ranges(image) where !range.isEmpty { update(image.bytes[range]) }
        if padding == .signingAlignment, !image.isSigned, image.bytes.count % 8 != 0 {
            update(ArraySlice(repeating: 0, count: 8 - image.bytes.count % 8))
        }
    }
}

// MARK: - Embedded signatures

/// One Authenticode signature found in the image's certificate table.
public struct EmbeddedSignature: Sendable {
    /// The index of its `WIN_CERTIFICATE` in the table.
    public let index: Int
    /// The file offset of its `WIN_CERTIFICATE`.
    public let offset: Int
    /// The parsed PKCS #7.
    public let authenticode: AuthenticodeSignature

    /// The digest algorithm the signer used for the image.
    public var digestAlgorithm: DigestAlgorithm { authenticode.digestAlgorithm }

    /// The certificate carried in the message whose issuer and serial match the (first) signer, if present.
    public var signerCertificate: Certificate? {
        guard let signer = authenticode.signedData.signers.first else { return nil }
        return authenticode.signedData.certificates.first { $0.serialNumber == signer.serialNumber && $0.issuer == signer.issuer }
    }
}

extension PEImage {
    /// Decodes every `WIN_CERTIFICATE` of the certificate table as an Authenticode signature.
    /// - Returns: one result per entry, in table order; entries that are not PKCS #7 Authenticode give a
    ///   ``UKIError`` (``UKIError/Code/unsupportedAlgorithm`` or ``UKIError/Code/malformedSignature``).
    public func embeddedSignatures() -> [Result<EmbeddedSignature, UKIError>] {
        certificates.enumerated().map { index, entry in
            guard entry.revision == WinCertificate.revision2, entry.certificateType == WinCertificate.typePKCSSignedData else {
                return .failure(
                    UKIError(
                        .unsupportedAlgorithm,
                        "WIN_CERTIFICATE \(index) at offset \(entry.offset) has revision 0x\(String(entry.revision, radix: 16)) type \(entry.certificateType); only PKCS #7 SignedData (revision 0x200, type 2) is supported"
                    ))
            }
            // osslsigncode counts its zero padding to 8 bytes in dwLength, so the PKCS #7 is followed by zeros inside
            // bCertificate; the DER element's own length says where it ends (EDK2 and osslsigncode read it this way).
            guard let der = Self.derElement(entry.certificate), entry.certificate[der.count...].allSatisfy({ $0 == 0 }) else {
                return .failure(
                    UKIError(
                        .malformedSignature,
                        "WIN_CERTIFICATE \(index) at offset \(entry.offset) does not hold one DER element followed only by zero padding"))
            }
            do throws(CryptoError) {
                return .success(
                    EmbeddedSignature(index: index, offset: entry.offset, authenticode: try AuthenticodeSignature(derEncoded: Array(der))))
            } catch {
                let code: UKIError.Code = error.code == .unsupportedAlgorithm ? .unsupportedAlgorithm : .malformedSignature
                return .failure(UKIError(code, "WIN_CERTIFICATE \(index) at offset \(entry.offset): \(error.reason)"))
            }
        }
    }
}

extension PEImage {
    /// The first DER TLV of `bytes` (definite length, at most 4 length octets), or nil if it does not fit.
    static func derElement(_ bytes: [UInt8]) -> ArraySlice<UInt8>? {
        guard bytes.count >= 2 else { return nil }
        let first = bytes[1]
        var length = 0
        var header = 2
        if first & 0x80 == 0 {
            length = Int(first)
        } else {
            let count = Int(first & 0x7f)
            guard (1...4).contains(count), bytes.count >= 2 + count else { return nil }
            for byte in bytes[2..<2 + count] { length = length << 8 | Int(byte) }
            header += count
        }
        guard length <= bytes.count - header else { return nil }
        return bytes[0..<header + length]
    }
}

// MARK: - Verification

/// A signature that ``AuthenticodeVerifier`` verified. Only the verifier makes these.
public struct VerifiedSignature: Sendable {
    /// The index of the `WIN_CERTIFICATE` that verified.
    public let signatureIndex: Int
    public let digestAlgorithm: DigestAlgorithm
    /// The image's Authenticode digest (equal to the signed one).
    public let imageDigest: [UInt8]
    /// The signer's chain, signer first, ending at one of the trusted certificates.
    public let chain: ValidatedChain

    /// The signer certificate.
    public var signer: Certificate? { chain.leaf }
}

/// Why one signature (or the image as a whole) was rejected.
public struct AuthenticodeFailure: Sendable, Hashable, CustomStringConvertible {
    /// The `WIN_CERTIFICATE` index concerned, or nil for the image as a whole (unsigned, no anchors).
    public let signatureIndex: Int?
    public let error: UKIError

    public var description: String {
        signatureIndex.map { "signature \($0): \(error)" } ?? error.description
    }
}

/// The verdict of ``AuthenticodeVerifier``.
public enum AuthenticodeVerdict: Sendable {
    case verified(VerifiedSignature)
    /// Every signature failed (or there is none); one failure per signature, in table order.
    case rejected([AuthenticodeFailure])

    public var isVerified: Bool {
        if case .verified = self { return true }
        return false
    }
}

/// Events the verifier reports while it works, for the audit log.
public enum AuthenticodeDiagnostic: Hashable, Sendable {
    case signatureFound(index: Int, algorithm: DigestAlgorithm)
    case digestComputed(algorithm: DigestAlgorithm, digest: [UInt8])
    case signatureRejected(index: Int, code: UKIError.Code)
    case signatureVerified(index: Int, signerSubject: String)
}

/// Checks a PE image's Authenticode signatures as UEFI's `db` check does (EDK2 `DxeImageVerificationLib`): the
/// image is allowed when *any* `WIN_CERTIFICATE` holds a PKCS #7 whose committed digest equals the image's
/// Authenticode digest, whose signature verifies, and whose signer is, or chains to, one of the trusted
/// certificates. Validity periods are ignored unless a time is given (UEFI has no trusted clock). `dbx` is not
/// modelled.
public struct AuthenticodeVerifier: Sendable {
    public let trustAnchors: [Certificate]
    public let time: Date?

    /// - Parameters:
    ///   - trustAnchors: the `db` certificates: trusted as the signer itself or as an issuer in its chain.
    ///   - time: when non-nil, certificate validity is checked at that time.
    public init(trustAnchors: [Certificate], time: Date? = nil) {
        self.trustAnchors = trustAnchors
        self.time = time
    }

    /// Verifies `image`.
    /// - Parameters:
    ///   - image: the parsed image.
    ///   - diagnostics: receives each step, in order.
    /// - Returns: ``AuthenticodeVerdict/verified(_:)`` for the first signature that passes, else every failure.
    public func verify(_ image: PEImage, diagnostics: ((AuthenticodeDiagnostic) -> Void)? = nil) -> AuthenticodeVerdict {
        guard !trustAnchors.isEmpty else {
            return .rejected([
                AuthenticodeFailure(signatureIndex: nil, error: UKIError(.noTrustAnchors, "no trusted certificate was given"))
            ])
        }
        guard image.isSigned else {
            return .rejected([
                AuthenticodeFailure(
                    signatureIndex: nil, error: UKIError(.unsigned, "the image has no Authenticode signature (empty certificate table)"))
            ])
        }
        var failures: [AuthenticodeFailure] = []
        var digests: [DigestAlgorithm: [UInt8]] = [:]
        for (index, result) in image.embeddedSignatures().enumerated() {
            let signature: EmbeddedSignature
            switch result {
            case .failure(let error):
                diagnostics?(.signatureRejected(index: index, code: error.code))
                failures.append(AuthenticodeFailure(signatureIndex: index, error: error))
                continue
            case .success(let parsed): signature = parsed
            }
            let algorithm = signature.digestAlgorithm
            diagnostics?(.signatureFound(index: index, algorithm: algorithm))
            guard algorithm != .sha1 else {
                // EDK2 still accepts SHA-1 Authenticode, but we refuse it: collisions are practical.
                let error = UKIError(.unsupportedAlgorithm, "SHA-1 Authenticode signatures are not accepted")
                diagnostics?(.signatureRejected(index: index, code: error.code))
                failures.append(AuthenticodeFailure(signatureIndex: index, error: error))
                continue
            }
            let digest: [UInt8]
            if let cached = digests[algorithm] {
                digest = cached
            } else {
                digest = AuthenticodeDigest.compute(image, algorithm: algorithm)
                digests[algorithm] = digest
                diagnostics?(.digestComputed(algorithm: algorithm, digest: digest))
            }
            do throws(CryptoError) {
                let chain = try signature.authenticode.verify(computedDigest: digest, trustAnchors: trustAnchors, time: time)
                diagnostics?(.signatureVerified(index: index, signerSubject: chain.leaf?.subject ?? ""))
                return .verified(VerifiedSignature(signatureIndex: index, digestAlgorithm: algorithm, imageDigest: digest, chain: chain))
            } catch {
                let mapped = Self.map(error, algorithm: algorithm, digest: digest, signed: signature.authenticode.imageDigest)
                diagnostics?(.signatureRejected(index: index, code: mapped.code))
                failures.append(AuthenticodeFailure(signatureIndex: index, error: mapped))
            }
        }
        return .rejected(failures)
    }

    static func map(_ error: CryptoError, algorithm: DigestAlgorithm, digest: [UInt8], signed: [UInt8]) -> UKIError {
        switch error.code {
        case .digestMismatch where !constantTimeEqual(digest, signed):
            return UKIError(
                .digestMismatch,
                "the image's Authenticode \(algorithm.rawValue) digest \(digest.hexString) differs from the signed \(signed.hexString): the image was modified after signing"
            )
        case .digestMismatch, .signatureInvalid:
            return UKIError(.signatureInvalid, error.description)
        case .malformedInput, .unsupportedAlgorithm:
            return UKIError(.malformedSignature, error.description)
        default:
            // Chain codes: untrusted, expired, bad certificate signature, invalid issuer …
            return UKIError(.untrustedSigner, error.description)
        }
    }
}
