public import CustosCrypto
public import Foundation

// MARK: - Tenants and credentials

/// A tenant: every tenant-owned row carries its id, and authorization is scoped by it (service.md §8.4).
public struct Tenant: Sendable, Hashable, Codable {
    /// `[a-z0-9][a-z0-9._-]{0,62}`.
    public let id: String
    public let displayName: String
    public let createdAt: Date

    public init(id: String, displayName: String, createdAt: Date) {
        self.id = id
        self.displayName = displayName
        self.createdAt = createdAt
    }
}

/// What a credential may do (service.md §8.4). The raw values are the wire and database spellings.
public enum Role: String, Sendable, Hashable, Codable, CaseIterable {
    /// Manages tenants and service-wide settings; not bound to a tenant.
    case serviceAdmin = "service-admin"
    /// Manages one tenant's secrets, reference values and credentials.
    case tenantAdmin = "tenant-admin"
    /// Reads one tenant's appraisals and launches.
    case tenantReader = "tenant-reader"
    /// Reads the audit log (service-wide, or one tenant's part of it when bound to a tenant).
    case auditor
    /// A host's launcher: runs SEV launch sessions for one tenant, never sees secrets in plaintext.
    case launcher

    /// Whether a credential with this role must belong to a tenant.
    public var requiresTenant: Bool {
        switch self {
        case .serviceAdmin, .auditor: false
        case .tenantAdmin, .tenantReader, .launcher: true
        }
    }
}

/// A stored credential: its metadata only. The token itself is never stored, only its SHA-256.
public struct Credential: Sendable, Hashable, Codable {
    public let id: String
    /// `nil` only for service-wide roles (``Role/serviceAdmin``, a service-wide ``Role/auditor``).
    public let tenantId: String?
    public let role: Role
    public let label: String
    public let createdAt: Date
    public let expiresAt: Date?
    public let revokedAt: Date?

    public init(
        id: String, tenantId: String?, role: Role, label: String, createdAt: Date, expiresAt: Date?, revokedAt: Date?
    ) {
        self.id = id
        self.tenantId = tenantId
        self.role = role
        self.label = label
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.revokedAt = revokedAt
    }
}

/// A credential just created, with its bearer token: the only time the token exists outside the caller.
public struct IssuedCredential: Sendable {
    public let credential: Credential
    /// `custos_<base64url(32 random bytes)>`; show it once, it cannot be recovered.
    public let token: String
}

/// The outcome of revoking a credential: the credential as it now is, and whether this revocation took effect (false
/// when it had been revoked before: revoking is idempotent and keeps the first time).
public struct CredentialRevocation: Sendable, Hashable {
    public let credential: Credential
    public let tookEffect: Bool

    public init(credential: Credential, tookEffect: Bool) {
        self.credential = credential
        self.tookEffect = tookEffect
    }
}

/// The outcome of looking a bearer token up. Only ``valid(_:)`` authenticates; the others all mean 401.
public enum CredentialLookup: Sendable, Hashable {
    case valid(Credential)
    /// No credential has this token (or the text is not a Custos token at all).
    case unknown
    case revoked(Credential)
    case expired(Credential)
}

// MARK: - Secrets

/// Whether a secret version may still be released.
public enum SecretVersionState: String, Sendable, Hashable, Codable {
    /// Releasable (until its `retireAfter`, when it has one).
    case active
    /// Kept for the record (metadata and ciphertext), never released.
    case retired
}

/// A secret version's metadata; the value itself is only returned by ``Store/openSecret(tenantId:path:version:now:)``.
public struct SecretVersion: Sendable, Hashable, Codable {
    public let tenantId: String
    public let path: String
    /// 1, 2, 3, …; a deleted version's number is never reused.
    public let version: Int64
    public let state: SecretVersionState
    public let createdAt: Date
    /// When an active version stops being releasable (set by a rotation with a grace period).
    public let retireAfter: Date?
    public let retiredAt: Date?

    public init(
        tenantId: String, path: String, version: Int64, state: SecretVersionState, createdAt: Date, retireAfter: Date?,
        retiredAt: Date?
    ) {
        self.tenantId = tenantId
        self.path = path
        self.version = version
        self.state = state
        self.createdAt = createdAt
        self.retireAfter = retireAfter
        self.retiredAt = retiredAt
    }

    /// Whether the version may be released at `now`: active and not past its `retireAfter`.
    public func isReleasable(at now: Date) -> Bool {
        guard state == .active else { return false }
        if let retireAfter { return now < retireAfter }
        return true
    }
}

/// The result of a rotation: the new version and when the earlier versions stop being releasable.
public struct SecretRotation: Sendable, Hashable {
    public let newVersion: SecretVersion
    /// The earlier active versions' retirement time (`now` when no grace period was asked for).
    public let retireAfter: Date
}

/// A secret value opened for release. The plaintext is zeroed when the last copy of ``value`` is dropped.
public struct OpenedSecret: Sendable {
    public let version: SecretVersion
    public let value: SecretBytes
}

/// A release policy's `maxReleasesPerAttestation`: at most `maximum` releases of one path to one appraisal (the
/// cookie session and the Bearer token of one attestation share its appraisal, so they share the count).
public struct ReleaseLimit: Sendable, Hashable {
    public let appraisalID: String
    public let maximum: Int

    public init(appraisalID: String, maximum: Int) {
        self.appraisalID = appraisalID
        self.maximum = maximum
    }
}

// MARK: - Reference values

/// A tenant's named set of reference values (service.md §8.2 `PUT /v1/reference-values/{name}`).
public struct ReferenceValueSet: Sendable, Hashable {
    public let tenantId: String
    public let name: String
    /// Increases by one on every write; the ETag is derived from it.
    public let revision: Int64
    public let values: [JSONValue]
    public let expiresAt: Date?
    /// Where the values came from (a build pipeline, a signed manifest…), as given.
    public let provenance: JSONValue?
    public let updatedAt: Date

    /// The strong ETag (`"<revision>"`) for `If-Match`.
    public var etag: String { "\"\(revision)\"" }

    /// Whether the set is past its expiry at `now`.
    public func isExpired(at now: Date) -> Bool { expiresAt.map { now >= $0 } ?? false }
}

/// The conditional-request headers of a reference-value write (RFC 9110 §13.1.1, §13.1.2). A set's entity tag is its
/// revision in quotes (`"3"`), compared as an exact string: `"03"` or `"+3"` name no revision.
public enum RevisionCondition: Sendable, Hashable {
    /// Write whatever is stored (no condition).
    case any
    /// Only replace an existing set (`If-Match: *`).
    case exists
    /// Only create (`If-None-Match: *`).
    case absent
    /// Only replace one of these revisions (`If-Match: "2", "3"`); empty when every tag listed was weak or named no
    /// revision, so that nothing matches.
    case revisions(Set<Int64>)
    /// Only write when the stored set is at none of these revisions (`If-None-Match: "2"`; weak tags count).
    case noneOf(Set<Int64>)

    /// Only replace this revision (`If-Match: "<revision>"`).
    public static func revision(_ revision: Int64) -> RevisionCondition { .revisions([revision]) }

    /// Parses an `If-Match` header value: `*` → ``exists``, a list of entity tags → ``revisions(_:)`` (strong
    /// comparison: a weak tag `W/"3"` never matches).
    /// - Throws: ``StoreError/Code-swift.struct/invalidInput`` when the value is not `*` or an entity-tag list.
    public init(ifMatch header: String) throws(StoreError) {
        guard let tags = try Self.tags(header, field: "If-Match") else {
            self = .exists
            return
        }
        self = .revisions(Set(tags.filter { !$0.weak }.compactMap { Self.revision(named: $0.opaque) }))
    }

    /// Parses an `If-None-Match` header value: `*` → ``absent``, a list of entity tags → ``noneOf(_:)`` (weak
    /// comparison).
    /// - Throws: ``StoreError/Code-swift.struct/invalidInput`` when the value is not `*` or an entity-tag list.
    public init(ifNoneMatch header: String) throws(StoreError) {
        guard let tags = try Self.tags(header, field: "If-None-Match") else {
            self = .absent
            return
        }
        self = .noneOf(Set(tags.compactMap { Self.revision(named: $0.opaque) }))
    }

    /// Whether a write may go ahead when the stored set is at `current` (nil: there is none).
    public func holds(current: Int64?) -> Bool {
        switch self {
        case .any: true
        case .exists: current != nil
        case .absent: current == nil
        case .revisions(let allowed): current.map(allowed.contains) ?? false
        case .noneOf(let refused): current.map { !refused.contains($0) } ?? true
        }
    }

    /// The revision an entity tag's opaque text names: canonical decimal digits only (the tag is compared as a
    /// string with the one the service sends).
    static func revision(named opaque: Substring) -> Int64? {
        guard let revision = Int64(opaque), revision >= 1, String(revision) == opaque else { return nil }
        return revision
    }

    /// The entity tags of a header value, or nil for `*`.
    static func tags(_ header: String, field: String) throws(StoreError) -> [(weak: Bool, opaque: Substring)]? {
        let invalid = StoreError(.invalidInput, "\(field) must be * or a list of entity tags such as \"3\"")
        let value = header.trimmingCharacters(in: .whitespaces)
        if value == "*" { return nil }
        var tags: [(weak: Bool, opaque: Substring)] = []
        var rest = Substring(value)
        while true {
            // Empty list elements are allowed (RFC 9110 §5.6.1.2: `"1", , "2"`, a trailing comma).
            rest = rest.drop { $0 == " " || $0 == "\t" || $0 == "," }
            if rest.isEmpty, !tags.isEmpty { return tags }
            let weak = rest.hasPrefix("W/")
            if weak { rest = rest.dropFirst(2) }
            guard rest.first == "\"" else { throw invalid }
            rest = rest.dropFirst()
            guard let close = rest.firstIndex(of: "\"") else { throw invalid }
            let opaque = rest[..<close]
            guard opaque.unicodeScalars.allSatisfy({ $0.value == 0x21 || (0x23...0x7E).contains($0.value) }) else { throw invalid }
            tags.append((weak, opaque))
            rest = rest[rest.index(after: close)...].drop { $0 == " " || $0 == "\t" }
            if rest.isEmpty { return tags }
            guard rest.first == "," else { throw invalid }
            rest = rest.dropFirst()
        }
    }
}

// MARK: - Appraisals

/// The AR4SI/EAR overall status of an appraisal (service.md §5.1).
public enum AppraisalStatus: String, Sendable, Hashable, Codable, CaseIterable {
    case affirming
    case warning
    case contraindicated
    case none
}

/// One appraisal of evidence: what was claimed, which policy judged it, and what it decided.
public struct Appraisal: Sendable, Hashable {
    public let id: String
    public let tenantId: String
    public let workloadId: String
    /// `tdx`, `sev`, `sev-es`.
    public let tee: String
    public let createdAt: Date
    public let status: AppraisalStatus
    public let policyId: String
    /// Lowercase hex SHA-256 of the policy's content (`policy_id@sha256`).
    public let policySHA256: String
    public let trustVector: JSONValue
    public let claims: JSONValue
    /// `[{rule, claim, expected, actual, result}]`.
    public let trace: JSONValue
    /// The issued token's `jti`, when a token was issued.
    public let tokenJTI: String?
    /// SHA-256 of the evidence as received (32 bytes).
    public let evidenceSHA256: [UInt8]

    public init(
        id: String = Appraisal.newID(), tenantId: String, workloadId: String, tee: String, createdAt: Date,
        status: AppraisalStatus, policyId: String, policySHA256: String, trustVector: JSONValue, claims: JSONValue,
        trace: JSONValue, tokenJTI: String?, evidenceSHA256: [UInt8]
    ) {
        self.id = id
        self.tenantId = tenantId
        self.workloadId = workloadId
        self.tee = tee
        self.createdAt = createdAt
        self.status = status
        self.policyId = policyId
        self.policySHA256 = policySHA256
        self.trustVector = trustVector
        self.claims = claims
        self.trace = trace
        self.tokenJTI = tokenJTI
        self.evidenceSHA256 = evidenceSHA256
    }

    /// A fresh random id (`apr_` + 16 random bytes in hex), known before the insert so the audit entry can name it.
    public static func newID() -> String { "apr_" + StoreIDs.randomHex(16) }
}

/// A filter and page of ``Store/listAppraisals(_:)`` (`GET /v1/appraisals?workload=&since=&status=`).
public struct AppraisalQuery: Sendable, Hashable {
    public static let maximumLimit = 1000
    public var tenantId: String
    public var workloadId: String?
    /// Only appraisals created at or after this time.
    public var since: Date?
    public var status: AppraisalStatus?
    /// Only appraisals of this TEE (`tdx`, `sev`, `sev-es`).
    public var tee: String?
    /// Only appraisals created at or before this time.
    public var until: Date?
    /// 1 … ``maximumLimit``.
    public var limit: Int
    /// The ``AppraisalPage/nextCursor`` of the previous page; opaque to callers.
    public var cursor: String?

    public init(
        tenantId: String, workloadId: String? = nil, since: Date? = nil, status: AppraisalStatus? = nil, tee: String? = nil,
        until: Date? = nil, limit: Int = 100, cursor: String? = nil
    ) {
        self.tenantId = tenantId
        self.workloadId = workloadId
        self.since = since
        self.status = status
        self.tee = tee
        self.until = until
        self.limit = limit
        self.cursor = cursor
    }
}

/// A page of appraisals, newest first.
public struct AppraisalPage: Sendable, Hashable {
    public let items: [Appraisal]
    /// Pass as ``AppraisalQuery/cursor`` for the next (older) page; `nil` on the last page.
    public let nextCursor: String?
}

// MARK: - SEV launches

/// The state of a measured SEV/SEV-ES launch: created → measured → allowed/denied → injected.
public enum LaunchState: String, Sendable, Hashable, Codable {
    case created
    case measured
    case allowed
    case denied
    case injected
}

/// What ``Store/createLaunch(_:)`` needs.
public struct NewLaunch: Sendable {
    public var id: String
    public var tenantId: String
    public var workloadId: String
    /// `sev` or `sev-es`.
    public var tee: String
    public var policyId: String
    public var guestPolicy: UInt32
    public var createdAt: Date
    public var expiresAt: Date
    /// Launch-session secrets the service needs again at injection (TEK/TIK); sealed at rest like a secret and
    /// erased when the launch is injected or denied.
    public var sessionSecret: SecretBytes?

    public init(
        id: String = "lch_" + StoreIDs.randomHex(16), tenantId: String, workloadId: String, tee: String, policyId: String,
        guestPolicy: UInt32, createdAt: Date, expiresAt: Date, sessionSecret: SecretBytes? = nil
    ) {
        self.id = id
        self.tenantId = tenantId
        self.workloadId = workloadId
        self.tee = tee
        self.policyId = policyId
        self.guestPolicy = guestPolicy
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.sessionSecret = sessionSecret
    }
}

/// A launch record (`GET /v1/launches/{id}`).
public struct Launch: Sendable, Hashable {
    public let id: String
    public let tenantId: String
    public let workloadId: String
    public let tee: String
    public let policyId: String
    public let guestPolicy: UInt32
    public let state: LaunchState
    public let createdAt: Date
    public let expiresAt: Date
    /// The 48-byte launch measurement, once recorded (exactly once).
    public let measurement: [UInt8]?
    public let measuredAt: Date?
    public let decidedAt: Date?
    public let appraisalId: String?
    public let decisionReason: String?
    public let injectedAt: Date?
}

// MARK: - Ids

/// Random identifiers for rows.
public enum StoreIDs {
    /// `count` random bytes as lowercase hex. Falls back to a UUID's bytes if the DRBG fails (ids are not secrets).
    public static func randomHex(_ count: Int) -> String {
        if let bytes = try? SecureRandom.bytes(count) { return Hex.encode(bytes) }
        return Hex.encode(withUnsafeBytes(of: UUID().uuid) { Array($0) }.prefix(count))
    }
}
