public import CustosCrypto

// MARK: - AR4SI trustworthiness

/// An EAR appraisal status (AR4SI tiers, service.md §5.1), worst last.
public enum EARStatus: String, Sendable, CaseIterable, Hashable, Comparable {
    case none, affirming, warning, contraindicated

    private var rank: Int {
        switch self {
        case .none: 0
        case .affirming: 1
        case .warning: 2
        case .contraindicated: 3
        }
    }

    public static func < (lhs: EARStatus, rhs: EARStatus) -> Bool { lhs.rank < rhs.rank }

    /// The tier of one trustworthiness claim value (−128…127): −1…1 none, 2…31 and −32…−2 affirming, 32…95 and
    /// −96…−33 warning, 96…127 and −128…−97 contraindicated.
    public init(claimValue value: Int) {
        switch value {
        case -1...1: self = .none
        case 2...31, -32 ... -2: self = .affirming
        case 32...95, -96 ... -33: self = .warning
        default: self = .contraindicated
        }
    }
}

/// The AR4SI trustworthiness vector (`ear.trustworthiness-vector`); unset claims are absent.
public struct TrustworthinessVector: Sendable, Equatable {
    /// The claim names in EAR's JSON serialization.
    public static let claimNames = [
        "instance-identity", "configuration", "executables", "file-system", "hardware", "runtime-opaque", "storage-opaque",
        "sourced-data",
    ]

    /// Claim name → value (−128…127).
    public private(set) var claims: [String: Int]

    /// - Throws: ``KBSError`` for an unknown claim name or a value outside −128…127.
    public init(_ claims: [String: Int] = [:]) throws(KBSError) {
        for (name, value) in claims {
            guard Self.claimNames.contains(name) else {
                throw KBSError(.serdeError, "unknown trustworthiness claim \"\(name)\"", field: "ear.trustworthiness-vector")
            }
            guard (-128...127).contains(value) else {
                throw KBSError(
                    .serdeError, "trustworthiness claim \(name) = \(value) is outside -128...127", field: "ear.trustworthiness-vector")
            }
        }
        self.claims = claims
    }

    init(json: JSONValue, field: String) throws(KBSError) {
        let members = try WireJSON.object(json, field: field)
        var claims: [String: Int] = [:]
        for name in members.keys { claims[name] = Int(try WireJSON.integer(members, name, in: field)) }
        try self.init(claims)
    }

    /// The worst tier of the claims that are set (``EARStatus/none`` when none is).
    public var status: EARStatus { claims.values.map(EARStatus.init(claimValue:)).max() ?? .none }

    public var jsonValue: JSONValue { .object(claims.mapValues { .integer(Int64($0)) }) }
}

// MARK: - Submodule appraisal

/// One `submods` entry: the appraisal of one attester (`cpu0`, `gpu0`, …).
public struct EARSubmod: Sendable, Equatable {
    public var status: EARStatus
    public var trustVector: TrustworthinessVector?
    /// `ear.appraisal-policy-id`, e.g. `policy:tdx-prod@sha256:<hex>`.
    public var appraisalPolicyID: String?
    /// `ear.veraison.annotated-evidence`: Trustee's claim names (`tdx`, `runtime_data_claims`, `init_data`, …).
    public var annotatedEvidence: JSONValue?
    /// Any other members, kept verbatim (`ear.trustee.identifiers`, …).
    public var extensions: [String: JSONValue]

    public init(
        status: EARStatus, trustVector: TrustworthinessVector? = nil, appraisalPolicyID: String? = nil,
        annotatedEvidence: JSONValue? = nil, extensions: [String: JSONValue] = [:]
    ) {
        self.status = status
        self.trustVector = trustVector
        self.appraisalPolicyID = appraisalPolicyID
        self.annotatedEvidence = annotatedEvidence
        self.extensions = extensions
    }

    /// The most bytes (as canonical JSON) of each guest-sized member a token carries verbatim: the additional
    /// evidence and the init-data claims. Larger ones go by digest (service.md §10: keep the token under ~8 KiB, keep
    /// hashes), so that a guest with GPU evidence or a long init-data policy still gets a token; the appraisal keeps
    /// them whole.
    public static let inlineGuestDataBytes = 768

    /// Annotated evidence in Trustee's layout for a TDX appraisal: the TDX claims, the runtime data (with the TEE
    /// key where Trustee's KBS looks for it) and the init-data digest when there is one. An additional evidence over
    /// ``inlineGuestDataBytes`` becomes `additional-evidence-sha384` (hex of its UTF-8), and init-data claims over it
    /// are left out (`init_data`, the digest bound in MRCONFIGID, names them).
    public static func trusteeAnnotatedEvidence(
        tdxClaims: JSONValue, runtimeData: KBSRuntimeData, additionalEvidence: String? = "", reportDataHex: String? = nil,
        initDataHex: String? = nil, initDataClaims: JSONValue? = nil
    ) -> JSONValue {
        var runtime: [String: JSONValue] = ["nonce": .string(runtimeData.nonce), "tee-pubkey": runtimeData.teePubkeyJSON]
        if let additionalEvidence {
            if CanonicalJSON.encode(.string(additionalEvidence)).count <= inlineGuestDataBytes {
                runtime["additional-evidence"] = .string(additionalEvidence)
            } else {
                runtime["additional-evidence-sha384"] = .string(Hex.encode(Digest.sha384(Array(additionalEvidence.utf8))))
            }
        }
        var members: [String: JSONValue] = ["tdx": tdxClaims, "runtime_data_claims": .object(runtime)]
        if let reportDataHex { members["report_data"] = .string(reportDataHex) }
        if let initDataHex { members["init_data"] = .string(initDataHex) }
        if let initDataClaims, CanonicalJSON.encode(initDataClaims).count <= inlineGuestDataBytes {
            members["init_data_claims"] = initDataClaims
        }
        return .object(members)
    }

    static let statusKey = "ear.status"
    static let vectorKey = "ear.trustworthiness-vector"
    static let policyKey = "ear.appraisal-policy-id"
    static let evidenceKey = "ear.veraison.annotated-evidence"

    init(json: JSONValue, field: String) throws(KBSError) {
        var members = try WireJSON.object(json, field: field)
        let statusText = try WireJSON.string(members, Self.statusKey, in: field)
        guard let status = EARStatus(rawValue: statusText) else {
            throw KBSError(.serdeError, "unknown ear.status \"\(statusText)\"", field: field + "." + Self.statusKey)
        }
        self.status = status
        trustVector = try members[Self.vectorKey].map { (v: JSONValue) throws(KBSError) in
            try TrustworthinessVector(json: v, field: field + "." + Self.vectorKey)
        }
        appraisalPolicyID = try WireJSON.optionalString(members, Self.policyKey, in: field)
        annotatedEvidence = members[Self.evidenceKey]
        for key in [Self.statusKey, Self.vectorKey, Self.policyKey, Self.evidenceKey] { members[key] = nil }
        extensions = members
    }

    public var jsonValue: JSONValue {
        var members = extensions
        members[Self.statusKey] = .string(status.rawValue)
        if let trustVector { members[Self.vectorKey] = trustVector.jsonValue }
        if let appraisalPolicyID { members[Self.policyKey] = .string(appraisalPolicyID) }
        if let annotatedEvidence { members[Self.evidenceKey] = annotatedEvidence }
        return .object(members)
    }
}

// MARK: - The EAR claim set (service.md §5, §10)

/// The claims of a Custos EAR token.
///
/// Registered claims (`iss`, `aud`, `iat`, `nbf`, `exp`, `jti`), EAT's `eat_profile` and `eat_nonce`, EAR's
/// `ear.verifier-id` and `submods`, and Custos's `attest.audit`, `attest.tenant` and `attest.collateral`. Members
/// not named here are kept in ``extensions``.
public struct EARClaims: Sendable, Equatable {
    /// The `eat_profile` Custos issues.
    public static let custosProfile = "tag:custos.dev,2026:attest/ear/v1"

    public var profile: String
    public var issuer: String
    public var audience: String
    public var issuedAt: Int64
    public var notBefore: Int64
    public var expiresAt: Int64
    public var tokenID: String
    /// `eat_nonce`: the challenge nonce, when the token answers one.
    public var nonce: String?
    /// `ear.verifier-id`: `{"developer": …, "build": …}`.
    public var verifierDeveloper: String
    public var verifierBuild: String
    public var submods: [String: EARSubmod]
    /// `attest.audit`: the audit-log origin and the index of the entry that records this appraisal.
    public var auditLog: String?
    public var auditIndex: Int64?
    /// `attest.tenant`.
    public var tenant: String?
    /// `attest.collateral` (TCB evaluation number, earliest expiry, …), verbatim.
    public var collateral: JSONValue?
    /// Other claims, verbatim.
    public var extensions: [String: JSONValue]

    public init(
        profile: String = EARClaims.custosProfile, issuer: String, audience: String, issuedAt: Int64, notBefore: Int64, expiresAt: Int64,
        tokenID: String, nonce: String? = nil, verifierDeveloper: String, verifierBuild: String, submods: [String: EARSubmod],
        auditLog: String? = nil, auditIndex: Int64? = nil, tenant: String? = nil, collateral: JSONValue? = nil,
        extensions: [String: JSONValue] = [:]
    ) {
        self.profile = profile
        self.issuer = issuer
        self.audience = audience
        self.issuedAt = issuedAt
        self.notBefore = notBefore
        self.expiresAt = expiresAt
        self.tokenID = tokenID
        self.nonce = nonce
        self.verifierDeveloper = verifierDeveloper
        self.verifierBuild = verifierBuild
        self.submods = submods
        self.auditLog = auditLog
        self.auditIndex = auditIndex
        self.tenant = tenant
        self.collateral = collateral
        self.extensions = extensions
    }

    private static let known: Set<String> = [
        "eat_profile", "iss", "aud", "iat", "nbf", "exp", "jti", "eat_nonce", "ear.verifier-id", "submods", "attest.audit",
        "attest.tenant", "attest.collateral",
    ]

    /// Parses a claim set; every claim Custos issues is required except `eat_nonce`, `attest.*`.
    /// - Throws: ``KBSError`` `TokenVerifierError` naming the claim.
    public init(json: JSONValue) throws(KBSError) {
        do throws(KBSError) {
            let members = try WireJSON.object(json, field: "claims")
            profile = try WireJSON.string(members, "eat_profile", in: "")
            issuer = try WireJSON.string(members, "iss", in: "")
            audience = try WireJSON.string(members, "aud", in: "")
            issuedAt = try WireJSON.integer(members, "iat", in: "")
            notBefore = try WireJSON.integer(members, "nbf", in: "")
            expiresAt = try WireJSON.integer(members, "exp", in: "")
            tokenID = try WireJSON.string(members, "jti", in: "")
            nonce = try WireJSON.optionalString(members, "eat_nonce", in: "")
            let verifier = try WireJSON.requiredObject(members, "ear.verifier-id", in: "")
            verifierDeveloper = try WireJSON.string(verifier, "developer", in: "ear.verifier-id")
            verifierBuild = try WireJSON.string(verifier, "build", in: "ear.verifier-id")
            let submodMembers = try WireJSON.requiredObject(members, "submods", in: "")
            guard !submodMembers.isEmpty else { throw KBSError(.serdeError, "submods is empty", field: "submods") }
            var submods: [String: EARSubmod] = [:]
            for (name, value) in submodMembers { submods[name] = try EARSubmod(json: value, field: "submods." + name) }
            self.submods = submods
            if let audit = members["attest.audit"] {
                let auditMembers = try WireJSON.object(audit, field: "attest.audit")
                auditLog = try WireJSON.string(auditMembers, "log", in: "attest.audit")
                auditIndex = try WireJSON.integer(auditMembers, "index", in: "attest.audit")
            } else {
                auditLog = nil
                auditIndex = nil
            }
            tenant = try WireJSON.optionalString(members, "attest.tenant", in: "")
            collateral = members["attest.collateral"]
            extensions = members.filter { !Self.known.contains($0.key) }
        } catch {
            throw KBSError(.tokenVerifierError, "EAR claims: \(error.reason)", field: error.field)
        }
    }

    public var jsonValue: JSONValue {
        var members = extensions
        members["eat_profile"] = .string(profile)
        members["iss"] = .string(issuer)
        members["aud"] = .string(audience)
        members["iat"] = .integer(issuedAt)
        members["nbf"] = .integer(notBefore)
        members["exp"] = .integer(expiresAt)
        members["jti"] = .string(tokenID)
        if let nonce { members["eat_nonce"] = .string(nonce) }
        members["ear.verifier-id"] = ["developer": .string(verifierDeveloper), "build": .string(verifierBuild)]
        members["submods"] = .object(submods.mapValues(\.jsonValue))
        if let auditLog, let auditIndex { members["attest.audit"] = ["log": .string(auditLog), "index": .integer(auditIndex)] }
        if let tenant { members["attest.tenant"] = .string(tenant) }
        if let collateral { members["attest.collateral"] = collateral }
        return .object(members)
    }

    /// The TEE key, at the first of Trustee KBS's paths that holds one (service.md §4.4):
    /// `submods.cpu0."ear.veraison.annotated-evidence".runtime_data_claims.tee-pubkey`,
    /// `tdx.attester_runtime_data.tee-pubkey`, `customized_claims.runtime_data.tee-pubkey`, `tee-pubkey`.
    public var teePubkeyJSON: JSONValue? {
        let claims = jsonValue
        let paths: [[String]] = [
            ["submods", "cpu0", EARSubmod.evidenceKey, "runtime_data_claims", "tee-pubkey"],
            ["tdx", "attester_runtime_data", "tee-pubkey"],
            ["customized_claims", "runtime_data", "tee-pubkey"],
            ["tee-pubkey"],
        ]
        for path in paths {
            var node: JSONValue? = claims
            for key in path { node = node?[key] }
            if let node, node != .null { return node }
        }
        return nil
    }

    /// The worst status over all submodules.
    public var overallStatus: EARStatus { submods.values.map(\.status).max() ?? .none }
}
