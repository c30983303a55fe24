import CustosCrypto
import Foundation

/// Checks on caller-supplied identifiers and values before they reach SQL or sealing. Every failure is
/// ``StoreError/Code-swift.struct/invalidInput`` naming the field.
enum StoreValidation {
    static let maxSecretBytes = 64 * 1024
    static let maxPathBytes = 512

    /// Tenant ids: `[a-z0-9][a-z0-9._-]{0,62}`.
    static func tenantId(_ id: String) throws(StoreError) {
        let bytes = Array(id.utf8)
        guard (1...63).contains(bytes.count), let first = bytes.first, isLowerAlnum(first),
            bytes.allSatisfy({ isLowerAlnum($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") })
        else { throw StoreError(.invalidInput, "tenant id must match [a-z0-9][a-z0-9._-]{0,62}") }
    }

    /// A name segment: `[A-Za-z0-9._-]{1,128}`, not `.` or `..`.
    static func name(_ name: String, field: String) throws(StoreError) {
        let bytes = Array(name.utf8)
        guard (1...128).contains(bytes.count), name != ".", name != "..", bytes.allSatisfy(isSegmentByte) else {
            throw StoreError(.invalidInput, "\(field) must be 1…128 characters of [A-Za-z0-9._-]")
        }
    }

    /// Secret paths: `/`-separated segments of `[A-Za-z0-9._-]`, none empty, `.` or `..`; at most 512 bytes
    /// (KBS `repo/type/tag` fits).
    static func secretPath(_ path: String) throws(StoreError) {
        guard (1...maxPathBytes).contains(path.utf8.count) else {
            throw StoreError(.invalidInput, "secret path must be 1…\(maxPathBytes) bytes")
        }
        for segment in path.split(separator: "/", omittingEmptySubsequences: false) {
            guard !segment.isEmpty, segment != ".", segment != "..", segment.utf8.allSatisfy(isSegmentByte) else {
                throw StoreError(.invalidInput, "secret path must be /-separated segments of [A-Za-z0-9._-] (no empty, . or .. segments)")
            }
        }
    }

    static func secretValue(_ value: SecretBytes) throws(StoreError) {
        guard (1...maxSecretBytes).contains(value.count) else {
            throw StoreError(.invalidInput, "a secret value must be 1…\(maxSecretBytes) bytes, got \(value.count)")
        }
    }

    /// Free text: at most `max` UTF-8 bytes, no control characters.
    static func text(_ text: String, field: String, max: Int, allowEmpty: Bool) throws(StoreError) {
        guard text.utf8.count <= max, allowEmpty || !text.isEmpty else {
            throw StoreError(.invalidInput, "\(field) must be \(allowEmpty ? 0 : 1)…\(max) bytes")
        }
        guard !text.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw StoreError(.invalidInput, "\(field) must not contain control characters")
        }
    }

    static func appraisal(_ appraisal: Appraisal) throws(StoreError) {
        try name(appraisal.id, field: "appraisal id")
        try tenantId(appraisal.tenantId)
        try Appraisal.checkWorkloadID(appraisal.workloadId)
        try text(appraisal.tee, field: "tee", max: 32, allowEmpty: false)
        try text(appraisal.policyId, field: "policy id", max: 256, allowEmpty: false)
        guard appraisal.policySHA256.utf8.count == 64, appraisal.policySHA256.utf8.allSatisfy(isLowerHex) else {
            throw StoreError(.invalidInput, "policy sha256 must be 64 lowercase hex digits")
        }
        if let jti = appraisal.tokenJTI { try text(jti, field: "token jti", max: 128, allowEmpty: false) }
        guard appraisal.evidenceSHA256.count == 32 else {
            throw StoreError(.invalidInput, "evidence sha256 must be 32 bytes, got \(appraisal.evidenceSHA256.count)")
        }
    }

    private static func isLowerAlnum(_ b: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(b) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b)
    }

    private static func isSegmentByte(_ b: UInt8) -> Bool {
        isLowerAlnum(b) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(b) || b == UInt8(ascii: ".") || b == UInt8(ascii: "_")
            || b == UInt8(ascii: "-")
    }

    private static func isLowerHex(_ b: UInt8) -> Bool {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(b)
    }
}

/// Bearer tokens: `custos_<base64url(32 random bytes)>` (256 bits), stored only as SHA-256 of the whole token text.
public enum APIToken {
    public static let prefix = "custos_"
    /// 32 bytes in unpadded base64url.
    static let encodedLength = 43

    /// A fresh token.
    static func generate() throws(StoreError) -> String {
        var bytes: [UInt8]
        do { bytes = try SecureRandom.bytes(32) } catch { throw StoreError(.sealing, "cannot generate a token: \(error)") }
        defer { secureZero(&bytes) }
        return prefix + Base64.urlEncode(bytes)
    }

    /// Whether `token` has the shape of a Custos token (prefix, 43 base64url characters).
    public static func isWellFormed(_ token: String) -> Bool {
        guard token.hasPrefix(prefix) else { return false }
        let body = token.utf8.dropFirst(prefix.utf8.count)
        return body.count == encodedLength
            && body.allSatisfy { b in
                (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(b) || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(b)
                    || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b) || b == UInt8(ascii: "-") || b == UInt8(ascii: "_")
            }
    }

    /// SHA-256 of the token's UTF-8 text: what the `credential` table stores and is looked up by.
    public static func hash(_ token: String) -> [UInt8] { Digest.sha256(Array(token.utf8)) }
}

extension Appraisal {
    /// A workload id the store accepts: 1…256 bytes of UTF-8 without control characters. Routes check it before they
    /// consume anything (a challenge, a launch), so that a bad id is a 400 and not a failure after the work.
    /// - Throws: ``StoreError/Code-swift.struct/invalidInput``.
    public static func checkWorkloadID(_ id: String) throws(StoreError) {
        try StoreValidation.text(id, field: "workload id", max: 256, allowEmpty: false)
    }
}
