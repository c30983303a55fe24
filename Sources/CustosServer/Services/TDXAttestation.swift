public import CustosAudit
public import CustosCrypto
public import CustosKBS
public import CustosPolicy
public import CustosStore
public import CustosTDX
public import Foundation
public import Logging
import Synchronization

/// Why an attestation did not produce a token. Routes map it: the KBS routes to Trustee's error bodies, `/v1` to
/// problems.
public struct AttestationFailure: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The request is malformed (JSON shape, base64, key): KBS `SerdeError`, `/v1` 400.
        case malformed
        /// The evidence does not verify or is not bound to the session: KBS `AttestationError`, `/v1` 422.
        case rejected
        /// The service cannot decide now (no collateral, no root, no policy): 503.
        case unavailable
    }
    public let kind: Kind
    public let message: String
    /// The failed check's code (`nonceMismatch`, `reportDataMismatch`, a TDXError code…).
    public let code: String

    public init(_ kind: Kind, _ code: String, _ message: String) {
        self.kind = kind
        self.code = code
        self.message = message
    }
    public var description: String { "\(code): \(message)" }
}

/// What a successful attestation gives.
public struct AttestationOutcome: Sendable {
    public let token: String
    public let attested: KBSSessions.Attested
    public let appraisalID: String
    public let status: EARStatus
    public let auditIndex: UInt64
}

/// TDX attestation (issue 11 §2): nonce → REPORTDATA binding → init-data/MRCONFIGID → quote verification against
/// Intel's chain and collateral → CCEL replay → claims → the appraisal policy with the tenant's reference values →
/// appraisal record + audit entry → EAR. The cheap binding checks come before any signature is verified.
public final class TDXAttestationService: Sendable {
    let store: any Store
    let policies: PolicyRegistry
    let audit: AuditRecorder
    let collateral: any CollateralProvider
    let verifier: QuoteVerifier?
    let tokens: TokenKeyRing
    let referenceValues: ReferenceValueCache
    let issuer: String
    let tokenLifetime: Int64
    let anchorsLabel: String
    let allowDebug: Bool
    let metrics: ServiceMetrics?
    let logger: Logger
    /// Tenants seen to exist. Tenants are never deleted (the store has no such operation), so a tenant found once
    /// stays valid; only existence is cached, unknown names are looked up every time. Saves one database read (and
    /// its thread hops) per attestation. Bounded: cleared when it exceeds 100,000 names.
    private let knownTenants = Mutex<Set<String>>([])

    public init(
        store: any Store, policies: PolicyRegistry, audit: AuditRecorder, collateral: any CollateralProvider, anchors: TrustAnchors,
        tokens: TokenKeyRing, referenceValues: ReferenceValueCache, issuer: String, tokenLifetime: Int64, allowDebug: Bool = false,
        metrics: ServiceMetrics? = nil, logger: Logger
    ) {
        self.store = store
        self.policies = policies
        self.audit = audit
        self.collateral = collateral
        self.verifier = anchors.tdxRoot.map { QuoteVerifier(trustedRoot: $0, cache: VerificationCache()) }
        self.tokens = tokens
        self.referenceValues = referenceValues
        self.issuer = issuer
        self.tokenLifetime = tokenLifetime
        self.anchorsLabel = anchors.label
        self.allowDebug = allowDebug
        self.metrics = metrics
        self.logger = logger
    }

    /// The EAR issuer with the current key.
    func earIssuer() throws(AttestationFailure) -> EARIssuer {
        do { return try EARIssuer(signingKey: tokens.current, issuer: issuer, lifetime: tokenLifetime) } catch {
            throw AttestationFailure(.unavailable, "tokenKey", "the token key is unusable: \(error)")
        }
    }

    /// Verifies a Bearer EAR made by this service (signature with a published key, `exp`, `iss`/`aud`).
    public func verifyToken(_ token: String, now: Date) throws(KBSError) -> KBSSessions.Attested {
        let keys = tokens.publishedKeys(now: now, tokenLifetime: TimeInterval(tokenLifetime))
        let verified = try EARVerifier(keys: keys, issuer: issuer).verify(token, at: Int64(now.timeIntervalSince1970)).get()
        guard let cpu = verified.claims.submods["cpu0"], let tenant = verified.claims.tenant else {
            throw KBSError(.tokenVerifierError, "the token has no cpu0 appraisal or no tenant")
        }
        // The token carries a summary of the claims (guest-sized members by digest, no UKI claims): a release rule on
        // claims reads the appraisal it names from the store, as for a session; only a token naming no appraisal is
        // judged on what it carries.
        let appraisalID = verified.claims.extensions["custos.appraisal_id"]?.stringValue
        // (Not a ternary: `nil` there would become JSONValue.null through its nil literal.)
        var carried: JSONValue?
        if appraisalID == nil { carried = cpu.annotatedEvidence ?? .object([:]) }
        return KBSSessions.Attested(
            tenant: tenant, teePubkey: verified.teePubkey, status: cpu.status, claims: carried,
            appraisalID: appraisalID, policy: cpu.appraisalPolicyID,
            expires: Date(timeIntervalSince1970: Double(verified.claims.expiresAt)))
    }

    /// The audit event type of an appraisal with `status` (service.md §11.1).
    static func auditType(_ status: EARStatus) -> String {
        switch status {
        case .affirming: "attestation.affirmed"
        case .warning: "attestation.warning"
        case .contraindicated, .none: "attestation.contraindicated"
        }
    }

    /// Appraises `attestation` for the challenge `nonce` (already consumed by the caller).
    public func attest(
        _ attestation: KBSAttestation, nonce: String, hash: KBSHashAlgorithm, workloadID: String?, requestID: String?, now: Date
    ) async throws(AttestationFailure) -> AttestationOutcome {
        // 1. The nonce, then the binding: both before anything expensive.
        guard constantTimeEqual(Array(attestation.runtimeData.nonce.utf8), Array(nonce.utf8)) else {
            throw AttestationFailure(.rejected, "nonceMismatch", "runtime-data.nonce is not this session's nonce")
        }
        let evidence: TDXPrimaryEvidence
        do { evidence = try TDXPrimaryEvidence(json: attestation.teeEvidence.primaryEvidence) } catch {
            throw AttestationFailure(.malformed, "malformedEvidence", error.reason)
        }
        let quote: Quote
        do { quote = try Quote(parsing: evidence.quote) } catch {
            throw AttestationFailure(.rejected, error.code.name, "the quote does not parse: \(error)")
        }
        do { try KBSBinding.check(reportData: quote.body.reportData, against: attestation, hash: hash) } catch {
            throw AttestationFailure(.rejected, "reportDataMismatch", error.reason)
        }
        var initData: InitData? = nil
        if let body = attestation.initData {
            do { initData = try InitData(body) } catch { throw AttestationFailure(.malformed, "malformedInitData", error.message) }
            guard let initData, constantTimeEqual(initData.mrConfigID, quote.body.mrConfigID) else {
                throw AttestationFailure(.rejected, "initDataMismatch", "the init-data digest is not the TD's MRCONFIGID")
            }
        }
        let tenant = initData?.tenant ?? Bootstrap.defaultTenant

        // 2. Quote verification against Intel's chain and the platform's collateral.
        guard let verifier else {
            throw AttestationFailure(.unavailable, "noTrustAnchor", "the Intel SGX Root CA is not installed (custos certs install)")
        }
        let platform: PCKPlatform
        do { platform = try verifier.pckPlatform(of: quote) } catch {
            throw AttestationFailure(.rejected, error.code.name, "the PCK certificate: \(error)")
        }
        let platformCollateral: Collateral
        do { platformCollateral = try await collateral.collateral(for: platform, now: now) } catch {
            throw AttestationFailure(.unavailable, "collateralUnavailable", error.message)
        }
        // Labelled by the collateral's cache key: the FMSPC, with `-processor` for a Processor CA platform.
        metrics?.setCollateralAge(fmspc: platform.cacheKey, seconds: now.timeIntervalSince(platformCollateral.tcbInfo.issueDate))
        // Collateral out of its validity is the platform's state, not the evidence's fault: the service cannot decide
        // (503) and the evidence may be fine once the collateral is refreshed. Checked on the collateral alone, so that
        // an expired certificate of the quote's own PCK chain stays a rejection. (Verified collateral is cached: the
        // verification below does not check it again.)
        do { _ = try verifier.verifyCollateral(platformCollateral, at: now) } catch {
            if error.code == .collateralExpired || error.code == .collateralNotYetValid {
                throw AttestationFailure(.unavailable, error.code.name, "the platform's collateral is not valid now: \(error)")
            }
        }
        let verified: VerifiedQuote
        switch verifier.verify(
            parsed: quote, collateral: platformCollateral, at: now, options: VerificationOptions(allowDebug: allowDebug))
        {
        case .verified(let result): verified = result
        case .rejected(let error): throw AttestationFailure(.rejected, error.code.name, "the quote does not verify: \(error)")
        }
        // The tenant named by init-data must exist: checked only now, on a verified quote, so that no one without a
        // genuine TD can learn which tenants exist from the answer. A store that cannot answer is "cannot decide".
        if !knownTenants.withLock({ $0.contains(tenant) }) {
            do { _ = try await store.tenant(id: tenant) } catch  where error.code == .notFound {
                throw AttestationFailure(.rejected, "unknownTenant", "the init-data names tenant \"\(tenant)\", which does not exist")
            } catch {
                throw AttestationFailure(.unavailable, "store", "the tenant \"\(tenant)\" cannot be looked up: \(error.reason)")
            }
            knownTenants.withLock { known in
                if known.count >= 100_000 { known.removeAll() }
                known.insert(tenant)
            }
        }

        // 3. The event log, when sent, must replay to the quote's RTMRs.
        var eventLog: EventLog? = nil
        if let bytes = evidence.ccEventlog {
            do { eventLog = try EventLog(parsing: bytes) } catch {
                throw AttestationFailure(.rejected, error.code.name, "the CC event log does not parse: \(error)")
            }
        }
        let runtimeClaims: JSONValue = [
            "nonce": .string(attestation.runtimeData.nonce), "tee-pubkey": attestation.runtimeData.teePubkeyJSON,
            "additional-evidence": .string(attestation.teeEvidence.additionalEvidence),
        ]
        let claims = TDXClaims.document(
            verified, at: now, eventLog: eventLog, initDataClaims: initData?.claims, runtimeDataClaims: runtimeClaims)
        if eventLog != nil, claims.value(atPath: "tdx.eventlog.rtmrs_match") != .bool(true) {
            throw AttestationFailure(.rejected, "eventLogMismatch", "the CC event log does not replay to the quote's RTMRs")
        }

        // 4. Appraisal.
        let set = policies.current
        guard let policy = set.appraisalPolicy(tee: "tdx") else {
            throw AttestationFailure(.unavailable, "noPolicy", "no TDX appraisal policy is loaded")
        }
        let tenantSets: [CustosPolicy.ReferenceValueSet]
        do { tenantSets = try await referenceValues.sets(tenant: tenant, names: policy.referenceValueNames, now: now) } catch {
            throw AttestationFailure(.unavailable, "store", "the reference values cannot be read")
        }
        let result = policy.evaluate(claims: claims, referenceValues: set.referenceValues(overriddenBy: tenantSets), at: now)
        let status = EARStatus(rawValue: result.status.rawValue) ?? .none
        let appraisalID = Appraisal.newID()
        let tokenID = UUID().uuidString.lowercased()
        let teeKeyThumbprint = attestation.runtimeData.teePubkey.thumbprintBase64URL
        let evidenceDigest = Digest.sha256(evidence.quote + (evidence.ccEventlog ?? []))
        let workload = workloadID ?? Hex.encode(quote.body.mrTD).prefix(16).description
        let trustVector = result.trustVector.earValue
        let summary: JSONValue = [
            "id": .string(appraisalID), "policy": .string(result.policy), "status": .string(result.status.rawValue),
            "trust_vector": trustVector, "tcb_status": .string(verified.tcbStatus.rawValue),
        ]
        let policySHA = result.policy.split(separator: ":").last.map(String.init) ?? ""
        let policyID = result.policy.split(separator: "@").first.map(String.init) ?? result.policy
        let record = Appraisal(
            id: appraisalID, tenantId: tenant, workloadId: workload, tee: "tdx", createdAt: now,
            status: AppraisalStatus(rawValue: result.status.rawValue) ?? .none, policyId: policyID, policySHA256: policySHA,
            trustVector: trustVector, claims: claims, trace: .array(result.trace.map(\.jsonValue)), tokenJTI: tokenID,
            evidenceSHA256: evidenceDigest)
        let insert: StoreWrite
        do { insert = try store.appraisalInsert(record) } catch {
            logger.error("appraisal refused by the store: \(error)")
            throw AttestationFailure(.unavailable, "store", "the appraisal cannot be stored")
        }
        // The appraisal row and its audit entry commit in one transaction (and one group-commit fsync): neither
        // exists without the other.
        let auditIndex: UInt64
        do {
            auditIndex = try await audit.record(
                Self.auditType(status), tenant: tenant,
                actor: ["kind": "tee", "tee": "tdx", "key_jkt": .string(teeKeyThumbprint)],
                object: [
                    "workload": .string(workload), "evidence_sha256": .string(Hex.encode(evidenceDigest)), "token_jti": .string(tokenID),
                    "anchors": .string(anchorsLabel),
                ],
                appraisal: summary, requestID: requestID, time: now, alongside: insert)
        } catch { throw AttestationFailure(.unavailable, "audit", "the audit log cannot record the appraisal") }

        // 5. The EAR.
        let annotated = EARSubmod.trusteeAnnotatedEvidence(
            tdxClaims: claims["tdx"] ?? .object([:]), runtimeData: attestation.runtimeData,
            additionalEvidence: attestation.teeEvidence.additionalEvidence, reportDataHex: Hex.encode(quote.body.reportData),
            initDataHex: Hex.encode(quote.body.mrConfigID), initDataClaims: initData?.claims)
        let vector: TrustworthinessVector
        do {
            var values: [String: Int] = [:]
            for (claim, value) in result.trustVector.values { values[claim.earName] = Int(value) }
            vector = try TrustworthinessVector(values)
        } catch { throw AttestationFailure(.unavailable, "trustVector", "\(error)") }
        let submod = EARSubmod(
            status: status, trustVector: vector, appraisalPolicyID: result.policy, annotatedEvidence: annotated,
            extensions: [:])
        let issued: (token: String, claims: EARClaims)
        do {
            issued = try earIssuer().issue(
                submods: ["cpu0": submod], nonce: nonce, auditLog: audit.log.origin, auditIndex: Int64(auditIndex), tenant: tenant,
                extensions: ["custos.appraisal_id": .string(appraisalID), "custos.anchors": .string(anchorsLabel)],
                now: Int64(now.timeIntervalSince1970), tokenID: tokenID)
        } catch let error as AttestationFailure { throw error } catch {
            throw AttestationFailure(.unavailable, "token", "the token cannot be issued: \(error)")
        }
        let attested = KBSSessions.Attested(
            tenant: tenant, teePubkey: attestation.runtimeData.teePubkey, status: status, claims: nil,
            appraisalID: appraisalID, policy: result.policy, expires: Date(timeIntervalSince1970: Double(issued.claims.expiresAt)))
        return AttestationOutcome(token: issued.token, attested: attested, appraisalID: appraisalID, status: status, auditIndex: auditIndex)
    }
}
