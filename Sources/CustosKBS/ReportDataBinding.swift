public import CustosCrypto

// MARK: - REPORTDATA binding (service.md §4.3)

/// How a KBS client binds its nonce and TEE key into the quote's 64-byte REPORTDATA.
///
/// ```
/// rd  = {"additional-evidence": <string>, "nonce": <nonce>, "tee-pubkey": <JWK as sent>}
/// dig = HASH(JCS(rd))                          # RFC 8785; HASH is SHA-384 unless the challenge selects another
/// REPORTDATA = dig ‖ zeros, 64 bytes           # truncated if the digest were longer
/// ```
/// Runtime data for additional devices (a GPU) leaves out `additional-evidence`: pass `nil`.
public enum KBSBinding {
    /// The REPORTDATA size of TDX (and SNP).
    public static let reportDataByteCount = 64

    /// The runtime-data object that is hashed.
    public static func runtimeDataDocument(nonce: String, teePubkey: JSONValue, additionalEvidence: String?) -> JSONValue {
        var members: [String: JSONValue] = ["nonce": .string(nonce), "tee-pubkey": teePubkey]
        if let additionalEvidence { members["additional-evidence"] = .string(additionalEvidence) }
        return .object(members)
    }

    /// The expected REPORTDATA for the given runtime data.
    /// - Parameters:
    ///   - nonce: the challenge nonce text.
    ///   - teePubkey: the JWK exactly as the client sent it.
    ///   - additionalEvidence: the `additional_evidence` string (`""` when there is none), or `nil` to omit the key.
    ///   - hash: the challenge's selected hash (SHA-384 by default).
    public static func reportData(
        nonce: String, teePubkey: JSONValue, additionalEvidence: String?, hash: KBSHashAlgorithm = .default
    ) -> [UInt8] {
        let digest = Digest.hash(
            hash.digest,
            CanonicalJSON.encode(runtimeDataDocument(nonce: nonce, teePubkey: teePubkey, additionalEvidence: additionalEvidence)))
        var out = Array(digest.prefix(reportDataByteCount))
        out += [UInt8](repeating: 0, count: reportDataByteCount - out.count)
        return out
    }

    /// The expected REPORTDATA for an attestation body.
    public static func reportData(for attestation: KBSAttestation, hash: KBSHashAlgorithm = .default) -> [UInt8] {
        reportData(
            nonce: attestation.runtimeData.nonce, teePubkey: attestation.runtimeData.teePubkeyJSON,
            additionalEvidence: attestation.teeEvidence.additionalEvidence, hash: hash)
    }

    /// Checks a quote's REPORTDATA against an attestation, in constant time.
    /// - Throws: ``KBSError`` `AttestationError` when it does not match.
    public static func check(reportData: [UInt8], against attestation: KBSAttestation, hash: KBSHashAlgorithm = .default) throws(KBSError) {
        guard constantTimeEqual(reportData, Self.reportData(for: attestation, hash: hash)) else {
            throw KBSError(
                .attestationError,
                "the quote's REPORTDATA is not \(hash.rawValue) of the runtime data (nonce, tee-pubkey, additional-evidence): "
                    + "the evidence is not bound to this session's nonce and key", field: "tee-evidence.primary_evidence.quote")
        }
    }
}
