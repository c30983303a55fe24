public import CustosCrypto

// MARK: - Protocol constants

/// KBS protocol 0.4.0 as Trustee's KBS and guest-components' `kbs_protocol` speak it (service.md §4).
public enum KBSProtocol {
    /// The only protocol version accepted (Trustee requires `=0.4.0`).
    public static let version = "0.4.0"
    /// The session cookie name set by `/auth` and `/attest`.
    public static let sessionCookieName = "kbs-session-id"
    /// The nonce length in bytes (before base64).
    public static let nonceByteCount = 32
    /// The largest `/auth` body accepted.
    public static let maximumRequestBytes = 64 * 1024
    /// The largest `/attest` body accepted (quote + CCEL + init-data, base64).
    public static let maximumAttestationBytes = 16 * 1024 * 1024
}

/// The TEE names of KBS protocol 0.4.0 (kbs_types `Tee`).
public enum KBSTEE: String, Sendable, CaseIterable, Hashable {
    case azSnpVtpm = "az-snp-vtpm"
    case azTdxVtpm = "az-tdx-vtpm"
    case nvidia, sev, sgx, snp, tdx, cca, csv, se, hygondcu, tpm, sample, sampledevice
}

/// The hash algorithms a client can bind its runtime data with (`supported-hash-algorithms`,
/// `selected-hash-algorithm`); SHA-384 when the challenge selects none.
public enum KBSHashAlgorithm: String, Sendable, CaseIterable, Hashable {
    case sha256, sha384, sha512

    /// The matching ``DigestAlgorithm``.
    public var digest: DigestAlgorithm {
        switch self {
        case .sha256: .sha256
        case .sha384: .sha384
        case .sha512: .sha512
        }
    }

    /// What a client uses when the challenge names no algorithm (service.md §4.2).
    public static let `default` = KBSHashAlgorithm.sha384
}

// MARK: - Request (client → POST /kbs/v0/auth)

/// `{"version": "0.4.0", "tee": "tdx", "extra-params": …}`.
public struct KBSRequest: Sendable, Equatable {
    /// The version string as sent (checked by ``checkSupported(tees:)``, not by parsing, so that the refusal can
    /// name it).
    public let version: String
    /// The `tee` value as sent.
    public let teeName: String
    /// `extra-params` as sent (an object, or `""` from some clients).
    public let extraParams: JSONValue

    public init(version: String = KBSProtocol.version, tee: KBSTEE, extraParams: JSONValue = .object([:])) {
        self.version = version
        self.teeName = tee.rawValue
        self.extraParams = extraParams
    }

    /// Parses the `/auth` body.
    /// - Throws: ``KBSError`` `SerdeError` naming the field.
    public init(jsonBytes: some Collection<UInt8>) throws(KBSError) {
        try self.init(json: WireJSON.parse(jsonBytes, what: "KBS request", maximumBytes: KBSProtocol.maximumRequestBytes))
    }

    /// Reads the `/auth` body from parsed JSON.
    /// - Throws: ``KBSError`` `SerdeError` naming the field.
    public init(json: JSONValue) throws(KBSError) {
        let members = try WireJSON.object(json, field: "request")
        version = try WireJSON.string(members, "version", in: "")
        teeName = try WireJSON.string(members, "tee", in: "")
        extraParams = members["extra-params"] ?? .object([:])
    }

    /// The TEE, if the name is one of protocol 0.4.0's.
    public var tee: KBSTEE? { KBSTEE(rawValue: teeName) }

    /// The hash algorithms the client lists in `extra-params.supported-hash-algorithms` that Custos knows, in order.
    public var supportedHashAlgorithms: [KBSHashAlgorithm] {
        guard case .array(let names)? = extraParams["supported-hash-algorithms"] else { return [] }
        return names.compactMap { $0.stringValue.flatMap { KBSHashAlgorithm(rawValue: $0.lowercased()) } }
    }

    /// Checks the version (exactly 0.4.0) and that the TEE is one the server verifies.
    /// - Throws: ``KBSError`` `AttestationError` (401) with a message naming what is wrong, e.g. that `sev` is not
    ///   verified over KBS.
    public func checkSupported(tees: Set<KBSTEE> = [.tdx]) throws(KBSError) {
        guard version == KBSProtocol.version else {
            throw KBSError(
                .attestationError, "KBS protocol version \"\(version)\" is not supported; this server speaks \(KBSProtocol.version)",
                field: "version")
        }
        guard let tee else { throw KBSError(.attestationError, "unknown TEE \"\(teeName)\"", field: "tee") }
        guard tees.contains(tee) else {
            let names = tees.map(\.rawValue).sorted().joined(separator: ", ")
            throw KBSError(.attestationError, "TEE \"\(teeName)\" is not verified by this KBS (supported: \(names))", field: "tee")
        }
    }

    public var jsonValue: JSONValue { ["version": .string(version), "tee": .string(teeName), "extra-params": extraParams] }
}

// MARK: - Challenge (server → client)

/// `{"nonce": "<base64 of 32 random bytes>", "extra-params": …}`.
public struct KBSChallenge: Sendable, Equatable {
    /// The nonce as sent: standard base64 of ``KBSProtocol/nonceByteCount`` random bytes. The binding hashes this
    /// text, not the decoded bytes.
    public let nonce: String
    /// `""` (Trustee's generic challenge) or `{"selected-hash-algorithm": …}`.
    public let extraParams: JSONValue

    public init(nonce: String, extraParams: JSONValue = "") {
        self.nonce = nonce
        self.extraParams = extraParams
    }

    /// A fresh challenge with a random nonce; `selectedHash` is announced in `extra-params` when given.
    public static func generate(selectedHash: KBSHashAlgorithm? = nil) throws(CryptoError) -> KBSChallenge {
        let nonce = Base64.encode(try SecureRandom.bytes(KBSProtocol.nonceByteCount))
        guard let selectedHash else { return KBSChallenge(nonce: nonce) }
        return KBSChallenge(nonce: nonce, extraParams: ["selected-hash-algorithm": .string(selectedHash.rawValue)])
    }

    /// Parses a challenge (for clients).
    public init(jsonBytes: some Collection<UInt8>) throws(KBSError) {
        try self.init(json: WireJSON.parse(jsonBytes, what: "KBS challenge", maximumBytes: KBSProtocol.maximumRequestBytes))
    }

    /// Reads a challenge from parsed JSON.
    public init(json: JSONValue) throws(KBSError) {
        let members = try WireJSON.object(json, field: "challenge")
        nonce = try WireJSON.string(members, "nonce", in: "")
        extraParams = members["extra-params"] ?? ""
    }

    /// The hash the client must bind with: `extra-params.selected-hash-algorithm`, else SHA-384.
    /// - Throws: ``KBSError`` when the server selected an algorithm this code does not know.
    public func selectedHashAlgorithm() throws(KBSError) -> KBSHashAlgorithm {
        guard let value = extraParams["selected-hash-algorithm"] else { return .default }
        // Case-insensitive, as guest.md §4.2 reads Trustee (`SHA384` is sha384).
        guard let name = value.stringValue, let algorithm = KBSHashAlgorithm(rawValue: name.lowercased()) else {
            throw KBSError(.serdeError, "unknown selected-hash-algorithm \(value)", field: "extra-params.selected-hash-algorithm")
        }
        return algorithm
    }

    public var jsonValue: JSONValue { ["nonce": .string(nonce), "extra-params": extraParams] }
}

// MARK: - Attestation (client → POST /kbs/v0/attest)

/// `init-data`: `{"format": "toml", "body": "<plaintext>"}`.
public struct KBSInitData: Sendable, Equatable {
    public let format: String
    public let body: String

    public init(format: String, body: String) {
        self.format = format
        self.body = body
    }

    public var jsonValue: JSONValue { ["format": .string(format), "body": .string(body)] }
}

/// `runtime-data`: `{"nonce": …, "tee-pubkey": <JWK>}`.
public struct KBSRuntimeData: Sendable, Equatable {
    public let nonce: String
    /// The key exactly as sent: the binding hashes this JSON, members and all (`alg` included).
    public let teePubkeyJSON: JSONValue
    /// The key, parsed strictly (EC P-256/P-384/P-521 or RSA ≥ 2048 bits).
    public let teePubkey: JSONWebKey

    /// From a key the client made; ``teePubkeyJSON`` is its ``JSONWebKey/jsonValue``.
    public init(nonce: String, teePubkey: JSONWebKey) {
        self.nonce = nonce
        self.teePubkey = teePubkey
        self.teePubkeyJSON = teePubkey.jsonValue
    }

    init(json: JSONValue, field: String) throws(KBSError) {
        let members = try WireJSON.object(json, field: field)
        nonce = try WireJSON.string(members, "nonce", in: field)
        guard let key = members["tee-pubkey"] else {
            throw KBSError(.serdeError, "missing required member \"tee-pubkey\"", field: field + ".tee-pubkey")
        }
        teePubkeyJSON = key
        do throws(CryptoError) {
            teePubkey = try JSONWebKey(json: key)
        } catch {
            throw KBSError(.attestationError, "tee-pubkey is not an acceptable key: \(error.reason)", field: field + ".tee-pubkey")
        }
    }

    public var jsonValue: JSONValue { ["nonce": .string(nonce), "tee-pubkey": teePubkeyJSON] }
}

/// `tee-evidence`: `{"primary_evidence": {…}, "additional_evidence": "<JSON text or empty>"}`.
public struct KBSTEEEvidence: Sendable, Equatable {
    /// The TEE's own evidence (for TDX see ``TDXPrimaryEvidence``).
    public let primaryEvidence: JSONValue
    /// A *string* holding JSON (other devices' evidence), or `""`. A missing member reads as `""`.
    public let additionalEvidence: String

    public init(primaryEvidence: JSONValue, additionalEvidence: String = "") {
        self.primaryEvidence = primaryEvidence
        self.additionalEvidence = additionalEvidence
    }

    init(json: JSONValue, field: String) throws(KBSError) {
        let members = try WireJSON.object(json, field: field)
        guard let primary = members["primary_evidence"] else {
            throw KBSError(.serdeError, "missing required member \"primary_evidence\"", field: field + ".primary_evidence")
        }
        primaryEvidence = primary
        additionalEvidence = try WireJSON.optionalString(members, "additional_evidence", in: field) ?? ""
        guard additionalEvidence.utf8.count <= Self.maximumAdditionalEvidenceBytes else {
            throw KBSError(
                .serdeError, "additional_evidence exceeds \(Self.maximumAdditionalEvidenceBytes) bytes",
                field: field + ".additional_evidence")
        }
    }

    /// The largest additional evidence accepted (other devices' evidence, e.g. a GPU's report and certificates); the
    /// appraisal stores it, so a guest cannot make the service keep a request's whole megabyte.
    public static let maximumAdditionalEvidenceBytes = 64 * 1024

    public var jsonValue: JSONValue { ["primary_evidence": primaryEvidence, "additional_evidence": .string(additionalEvidence)] }
}

/// TDX `primary_evidence`: `{"quote": "<base64 TD quote>", "cc_eventlog": "<base64 CCEL>" | null}`.
public struct TDXPrimaryEvidence: Sendable, Equatable {
    /// The largest quote accepted (a v4/v5 quote with its PCK chain is under 16 KiB).
    public static let maximumQuoteBytes = 256 * 1024

    public let quote: [UInt8]
    public let ccEventlog: [UInt8]?

    public init(quote: [UInt8], ccEventlog: [UInt8]?) {
        self.quote = quote
        self.ccEventlog = ccEventlog
    }

    /// Reads the TDX evidence out of ``KBSTEEEvidence/primaryEvidence``.
    /// - Throws: ``KBSError`` `SerdeError` for a missing or non-base64 member.
    public init(json: JSONValue) throws(KBSError) {
        let field = "tee-evidence.primary_evidence"
        let members = try WireJSON.object(json, field: field)
        let quoteText = try WireJSON.string(members, "quote", in: field)
        quote = try StandardBase64.decode(quoteText, field: field + ".quote")
        guard !quote.isEmpty, quote.count <= Self.maximumQuoteBytes else {
            throw KBSError(.serdeError, "quote must be 1 to \(Self.maximumQuoteBytes) bytes, is \(quote.count)", field: field + ".quote")
        }
        if let log = try WireJSON.optionalString(members, "cc_eventlog", in: field) {
            ccEventlog = try StandardBase64.decode(log, field: field + ".cc_eventlog")
        } else {
            ccEventlog = nil
        }
    }

    public var jsonValue: JSONValue {
        ["quote": .string(Base64.encode(quote)), "cc_eventlog": ccEventlog.map { .string(Base64.encode($0)) } ?? .null]
    }
}

/// The `/attest` body.
public struct KBSAttestation: Sendable, Equatable {
    public let initData: KBSInitData?
    public let runtimeData: KBSRuntimeData
    public let teeEvidence: KBSTEEEvidence

    public init(initData: KBSInitData? = nil, runtimeData: KBSRuntimeData, teeEvidence: KBSTEEEvidence) {
        self.initData = initData
        self.runtimeData = runtimeData
        self.teeEvidence = teeEvidence
    }

    /// Parses the `/attest` body (at most ``KBSProtocol/maximumAttestationBytes``).
    /// - Throws: ``KBSError`` `SerdeError` naming the field, or `AttestationError` for an unacceptable
    ///   `tee-pubkey` (a private key, RSA below 2048 bits, a point off its curve, …).
    public init(jsonBytes: some Collection<UInt8>) throws(KBSError) {
        try self.init(json: WireJSON.parse(jsonBytes, what: "KBS attestation", maximumBytes: KBSProtocol.maximumAttestationBytes))
    }

    /// Reads the `/attest` body from parsed JSON.
    /// - Throws: as ``init(jsonBytes:)``.
    public init(json: JSONValue) throws(KBSError) {
        let members = try WireJSON.object(json, field: "attestation")
        guard let runtime = members["runtime-data"] else {
            throw KBSError(.serdeError, "missing required member \"runtime-data\"", field: "runtime-data")
        }
        guard let evidence = members["tee-evidence"] else {
            throw KBSError(.serdeError, "missing required member \"tee-evidence\"", field: "tee-evidence")
        }
        runtimeData = try KBSRuntimeData(json: runtime, field: "runtime-data")
        teeEvidence = try KBSTEEEvidence(json: evidence, field: "tee-evidence")
        if let initValue = members["init-data"], initValue != .null {
            let initMembers = try WireJSON.object(initValue, field: "init-data")
            initData = KBSInitData(
                format: try WireJSON.string(initMembers, "format", in: "init-data"),
                body: try WireJSON.string(initMembers, "body", in: "init-data"))
        } else {
            initData = nil
        }
    }

    public var jsonValue: JSONValue {
        var members: [String: JSONValue] = ["runtime-data": runtimeData.jsonValue, "tee-evidence": teeEvidence.jsonValue]
        if let initData { members["init-data"] = initData.jsonValue }
        return .object(members)
    }
}

/// The `/attest` response: `{"token": "<EAR JWT>"}`.
public struct KBSAttestationResponse: Sendable, Equatable {
    public let token: String

    public init(token: String) { self.token = token }

    public init(jsonBytes: some Collection<UInt8>) throws(KBSError) {
        try self.init(json: WireJSON.parse(jsonBytes, what: "KBS attestation response", maximumBytes: KBSProtocol.maximumRequestBytes * 4))
    }

    /// Reads the `/attest` response from parsed JSON.
    public init(json: JSONValue) throws(KBSError) {
        let members = try WireJSON.object(json, field: "response")
        token = try WireJSON.string(members, "token", in: "")
    }

    public var jsonValue: JSONValue { ["token": .string(token)] }
}

// MARK: - Standard base64 (strict)

/// Standard base64 with padding, as Trustee's clients encode quotes and event logs; nothing else accepted.
enum StandardBase64 {
    static func decode(_ text: String, field: String) throws(KBSError) -> [UInt8] {
        let utf8 = Array(text.utf8)
        guard utf8.count % 4 == 0 else { throw KBSError(.serdeError, "not standard base64 (length \(utf8.count))", field: field) }
        var seenPadding = 0
        for c in utf8 {
            switch c {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "+"), UInt8(ascii: "/"):
                guard seenPadding == 0 else { throw KBSError(.serdeError, "not standard base64 (data after padding)", field: field) }
            case UInt8(ascii: "="):
                seenPadding += 1
                guard seenPadding <= 2 else { throw KBSError(.serdeError, "not standard base64 (too much padding)", field: field) }
            default:
                throw KBSError(.serdeError, "not standard base64 (character \(c))", field: field)
            }
        }
        do throws(CryptoError) {
            return try Base64.decode(utf8: utf8)
        } catch {
            throw KBSError(.serdeError, "not standard base64: \(error.reason)", field: field)
        }
    }
}
