public import CustosAudit
public import CustosCrypto
public import CustosKBS
public import CustosPolicy
public import CustosStore
public import Foundation
public import Logging

/// Why a secret was not released.
public struct ReleaseFailure: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The release policy says no (or the resource is another tenant's): KBS `PolicyDeny`, `/v1` 403 or 404.
        case denied
        /// The policy would allow it but there is no releasable version: KBS 401 `PluginInternalError`, `/v1` 404.
        case notFound
        /// Encryption to the TEE key failed (refused key type): KBS `JweError`, `/v1` 400.
        case jwe
        /// The service cannot decide now: 503.
        case unavailable
    }
    public let kind: Kind
    public let message: String
    public let appraisalID: String?
    public var description: String { message }
}

/// Releases a tenant's secret to an attested TEE (issue 11 §2): the tenant's ReleasePolicy decides on the
/// appraisal's status and claims; the secret goes out as a flattened JWE to the TEE key the token names, so a stolen
/// cookie or token yields only ciphertext. Every release and every denial is an audit entry naming the appraisal
/// and the policy.
public final class SecretReleaseService: Sendable {
    let store: any Store
    let policies: PolicyRegistry
    let audit: AuditRecorder
    let referenceValues: ReferenceValueCache
    let logger: Logger

    public init(store: any Store, policies: PolicyRegistry, audit: AuditRecorder, referenceValues: ReferenceValueCache, logger: Logger) {
        self.store = store
        self.policies = policies
        self.audit = audit
        self.referenceValues = referenceValues
        self.logger = logger
    }

    public func release(
        tenant: String, path: String, to attested: KBSSessions.Attested, requestID: String?, now: Date
    ) async throws(ReleaseFailure) -> FlattenedJWE {
        let keyThumbprint = attested.teeKeyThumbprint
        let actor: JSONValue = ["kind": "tee", "tee": "tdx", "key_jkt": .string(keyThumbprint)]
        func deny(_ reason: String, policy: String?, audited: Bool = true) async throws(ReleaseFailure) -> Never {
            if audited {
                var object: [String: JSONValue] = ["path": .string(path), "reason": .string(reason)]
                if let policy { object["policy"] = .string(policy) }
                // The attested tenant's log: a request for another tenant's repository is that tenant's event too,
                // but naming the other tenant would write into its log on an outsider's say-so.
                do {
                    try await audit.record(
                        "secret.denied", tenant: attested.tenant, actor: actor, object: .object(object),
                        appraisal: appraisalSummary(attested),
                        requestID: requestID, time: now)
                } catch { throw ReleaseFailure(kind: .unavailable, message: "the audit log cannot record the denial", appraisalID: nil) }
            }
            throw ReleaseFailure(kind: .denied, message: reason, appraisalID: attested.appraisalID)
        }
        guard tenant == attested.tenant else {
            try await deny("the token is for tenant \(attested.tenant), not \(tenant)", policy: nil)
        }
        let set = policies.current
        guard let policy = set.releasePolicy(tenant: tenant) else {
            try await deny("tenant \(tenant) has no release policy (default deny)", policy: nil)
        }
        let tenantSets: [CustosPolicy.ReferenceValueSet]
        do { tenantSets = try await referenceValues.sets(tenant: tenant, names: policy.referenceValueNames, now: now) } catch {
            throw ReleaseFailure(kind: .unavailable, message: "the reference values cannot be read", appraisalID: nil)
        }
        let claims: JSONValue
        if let carried = attested.claims {
            claims = carried
        } else if !policy.needsClaims(path: path) {
            // A rule on the status alone (the default `affirming`): the appraisal's claims are not read back.
            claims = .object([:])
        } else if let appraisalID = attested.appraisalID {
            do { claims = try await store.appraisal(tenantId: tenant, id: appraisalID).claims } catch {
                throw ReleaseFailure(kind: .unavailable, message: "the appraisal \(appraisalID) cannot be read", appraisalID: appraisalID)
            }
        } else {
            claims = .object([:])
        }
        let result = policy.evaluate(
            path: path, status: TrustTier(rawValue: attested.status.rawValue) ?? .none, claims: claims,
            referenceValues: set.referenceValues(overriddenBy: tenantSets), at: now)
        guard result.decision == .allow else {
            let failed = result.trace.first { !$0.passed }.map { "\($0.rule): \($0.claim) \($0.operator)" } ?? "no rule allows it"
            try await deny("the release policy denies \(path) (\(failed))", policy: result.policy)
        }
        // maxReleasesPerAttestation: counted per appraisal (cookie and Bearer token of one attestation share it) in
        // the transaction that opens the secret.
        var limit: ReleaseLimit? = nil
        if let maximum = policy.secret(for: path)?.maxReleasesPerAttestation {
            guard let appraisalID = attested.appraisalID else {
                try await deny(
                    "the release policy allows \(path) \(maximum) time(s) per attestation, and this token names no appraisal",
                    policy: result.policy)
            }
            limit = ReleaseLimit(appraisalID: appraisalID, maximum: maximum)
        }
        // The JWE is prepared first (ephemeral key agreement, wrapped content key): every refusal of the TEE key
        // happens before anything is read or recorded. Then the secret is opened and its release recorded in one
        // transaction (the entry names exactly the version that goes out, and no secret leaves unrecorded); sealing
        // it (AES-GCM) is all that is left afterwards.
        let teePubkey: JSONWebKey
        do { teePubkey = try attested.teePubkey() } catch {
            throw ReleaseFailure(kind: .jwe, message: error.reason, appraisalID: attested.appraisalID)
        }
        let sealer: FlattenedJWE.Sealer
        do { sealer = try KBSResourceRelease.sealer(to: teePubkey) } catch {
            throw ReleaseFailure(kind: .jwe, message: error.reason, appraisalID: attested.appraisalID)
        }
        let object: [String: JSONValue] = [
            "path": .string(path), "policy": .string(result.policy), "alg": .string(sealer.keyAlgorithm.rawValue),
        ]
        let event = AuditEvent(
            time: now, tenant: tenant, type: .secretReleased, actor: actor, object: .object(object),
            appraisal: appraisalSummary(attested), requestId: requestID)
        let opening: Result<OpenedSecret, StoreError>
        do {
            opening = try await audit.record(after: store.secretOpening(tenantId: tenant, path: path, now: now, limit: limit)) { opening in
                guard case .success(let opened) = opening else { return nil }
                var released = event
                released.object = .object(object.merging(["version": .integer(opened.version.version)]) { $1 })
                return released
            }.value
        } catch { throw ReleaseFailure(kind: .unavailable, message: "the audit log cannot record the release", appraisalID: nil) }
        let opened: OpenedSecret
        switch opening {
        case .success(let value): opened = value
        case .failure(let error) where error.code == .releaseLimit:
            try await deny("the release policy's maxReleasesPerAttestation is reached: \(error.reason)", policy: result.policy)
        case .failure(let error) where error.code == .notFound:
            throw ReleaseFailure(kind: .notFound, message: "no releasable secret at \(path)", appraisalID: attested.appraisalID)
        case .failure(let error):
            logger.error("secret open failed: \(error)")
            throw ReleaseFailure(kind: .unavailable, message: "the secret cannot be opened", appraisalID: nil)
        }
        let jwe: FlattenedJWE
        do { jwe = try sealer.seal(opened.value) } catch {
            // AES-GCM under a fresh key failed after the release was recorded: an OpenSSL failure, not a decision.
            logger.error("sealing a recorded release failed: \(error)")
            throw ReleaseFailure(kind: .unavailable, message: "the secret cannot be sealed", appraisalID: attested.appraisalID)
        }
        return jwe
    }

    func appraisalSummary(_ attested: KBSSessions.Attested) -> JSONValue {
        var summary: [String: JSONValue] = ["status": .string(attested.status.rawValue)]
        if let id = attested.appraisalID { summary["id"] = .string(id) }
        if let policy = attested.policy { summary["policy"] = .string(policy) }
        return .object(summary)
    }
}
