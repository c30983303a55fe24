public import CustosCrypto
public import Foundation

/// The kinds of policy file (`kind:`).
public enum PolicyKind: String, Sendable, Hashable, CaseIterable {
    /// Evidence claims → AR4SI trust vector and status (TDX appraisal).
    case appraisal = "AppraisalPolicy"
    /// SEV/SEV-ES launch claims → allow or deny the launch.
    case launch = "LaunchPolicy"
    /// Per tenant: which secret paths need which status and claims.
    case release = "ReleasePolicy"
}

/// How one trust claim gets its value: the first branch whose condition holds, else `elseValue`.
struct TrustRule: Sendable {
    struct Branch: Sendable {
        let value: Int8
        let when: Condition
    }
    let claim: TrustClaim
    let branches: [Branch]
    let elseValue: Int8

    func evaluate(_ evaluator: inout Evaluator) -> Int8 {
        for (index, branch) in branches.enumerated() {
            let label = branches.count == 1 ? claim.rawValue : "\(claim.rawValue)[\(index)]"
            if evaluator.evaluate(branch.when, rule: label) { return branch.value }
        }
        return elseValue
    }
}

/// Computes a trust vector from rules; shared by appraisal and launch policies.
private func trustVector(_ rules: [TrustRule], _ evaluator: inout Evaluator) -> TrustVector {
    var vector = TrustVector()
    for rule in rules { vector[rule.claim] = rule.evaluate(&evaluator) }
    return vector
}

/// An appraisal policy: evidence claims → AR4SI trust vector, status, and a decision (allow when the status meets
/// `accept`, `affirming` by default).
public struct AppraisalPolicy: Sendable {
    public let id: String
    public let tee: String
    /// The content-addressed reference, `id@sha256:<hex>`.
    public let reference: String
    /// The reference-value set names the policy declares (`referenceValues:`).
    public let referenceValueNames: [String]
    /// The worst status still allowed (`affirming` unless the policy says `accept: warning`).
    public let accept: TrustTier
    let rules: [TrustRule]

    /// Evaluates `claims`. Total and default-deny: a missing claim or reference set fails its condition.
    public func evaluate(claims: JSONValue, referenceValues: [String: ReferenceValueSet], at time: Date) -> PolicyResult {
        var evaluator = Evaluator(claims: claims, referenceValues: referenceValues, time: time)
        let vector = trustVector(rules, &evaluator)
        let status = vector.status
        let allowed = status != .none && status.meets(accept)
        return PolicyResult(
            decision: allowed ? .allow : .deny, status: status, trustVector: vector, trace: evaluator.trace, policy: reference)
    }
}

/// A launch policy (SEV/SEV-ES): the launch is allowed when `allow` holds and, if the policy sets trust claims, the
/// status meets `accept`.
public struct LaunchPolicy: Sendable {
    public let id: String
    public let tee: String
    public let reference: String
    public let referenceValueNames: [String]
    public let accept: TrustTier
    let allow: Condition
    let rules: [TrustRule]

    public func evaluate(claims: JSONValue, referenceValues: [String: ReferenceValueSet], at time: Date) -> PolicyResult {
        var evaluator = Evaluator(claims: claims, referenceValues: referenceValues, time: time)
        let allowed = evaluator.evaluate(allow, rule: "allow")
        let vector = trustVector(rules, &evaluator)
        let status = vector.status
        let statusOK = rules.isEmpty || (status != .none && status.meets(accept))
        return PolicyResult(
            decision: allowed && statusOK ? .allow : .deny, status: status, trustVector: vector, trace: evaluator.trace,
            policy: reference)
    }
}

/// A release policy: per tenant, which secret paths need which appraisal status and claims. Anything not listed is
/// denied (`default: deny`).
public struct ReleasePolicy: Sendable {
    /// One `secrets:` entry.
    public struct Secret: Sendable {
        /// An exact path, or a prefix ending in `*` (`tenant-a/disk/*`).
        public let path: String
        /// How many times one attestation may release it (enforced by the service), if limited.
        public let maxReleasesPerAttestation: Int?
        let allow: Condition

        func matches(_ candidate: String) -> Bool {
            if path.hasSuffix("*") { return candidate.hasPrefix(path.dropLast()) }
            return candidate == path
        }
    }

    public let id: String
    public let tenant: String
    public let reference: String
    public let referenceValueNames: [String]
    public let secrets: [Secret]

    /// The entry that governs `path`: an exact path first, else the longest matching prefix.
    public func secret(for path: String) -> Secret? {
        if let exact = secrets.first(where: { !$0.path.hasSuffix("*") && $0.path == path }) { return exact }
        return secrets.filter { $0.matches(path) }.max { $0.path.count < $1.path.count }
    }

    /// Whether deciding a release of `path` reads any claim (beyond the appraisal's status): when not, a caller may
    /// skip loading the appraisal's claims and pass an empty object.
    public func needsClaims(path: String) -> Bool {
        secret(for: path).map { $0.allow.readsClaims } ?? false
    }

    /// Whether the secret at `path` may be released to evidence with appraisal `status` and `claims`.
    public func evaluate(
        path: String, status: TrustTier, claims: JSONValue, referenceValues: [String: ReferenceValueSet], at time: Date
    ) -> PolicyResult {
        var evaluator = Evaluator(claims: claims, referenceValues: referenceValues, time: time, status: status)
        guard let secret = secret(for: path) else {
            let line = TraceLine(
                rule: "default", claim: "path", operator: "secrets", expected: .array(secrets.map { .string($0.path) }),
                actual: .value(.string(path)), passed: false)
            return PolicyResult(decision: .deny, status: status, trustVector: TrustVector(), trace: [line], policy: reference)
        }
        let allowed = evaluator.evaluate(secret.allow, rule: "secret \(secret.path)")
        return PolicyResult(
            decision: allowed ? .allow : .deny, status: status, trustVector: TrustVector(), trace: evaluator.trace, policy: reference)
    }
}

/// A policy as loaded from a file, with its content address.
public struct LoadedPolicy: Sendable {
    public enum Body: Sendable {
        case appraisal(AppraisalPolicy)
        case launch(LaunchPolicy)
        case release(ReleasePolicy)
    }

    public let id: String
    public let kind: PolicyKind
    /// `tdx`, `sev`, `sev-es`; `nil` for release policies.
    public let tee: String?
    /// The file, relative to the policy directory.
    public let file: String
    /// Hex SHA-256 of the RFC 8785 canonical JSON of the parsed policy.
    public let sha256: String
    /// `id@sha256:<hex>`.
    public var reference: String { "\(id)@sha256:\(sha256)" }
    /// The parsed policy as JSON (what the hash covers).
    public let document: JSONValue
    public let body: Body

    public var appraisal: AppraisalPolicy? {
        if case .appraisal(let policy) = body { return policy }
        return nil
    }

    public var launch: LaunchPolicy? {
        if case .launch(let policy) = body { return policy }
        return nil
    }

    public var release: ReleasePolicy? {
        if case .release(let policy) = body { return policy }
        return nil
    }

    public var referenceValueNames: [String] {
        switch body {
        case .appraisal(let policy): return policy.referenceValueNames
        case .launch(let policy): return policy.referenceValueNames
        case .release(let policy): return policy.referenceValueNames
        }
    }

    /// Evaluates an appraisal or launch policy; a release policy needs ``ReleasePolicy/evaluate(path:status:claims:referenceValues:at:)``
    /// and returns `nil` here.
    public func evaluate(claims: JSONValue, referenceValues: [String: ReferenceValueSet], at time: Date) -> PolicyResult? {
        switch body {
        case .appraisal(let policy): return policy.evaluate(claims: claims, referenceValues: referenceValues, at: time)
        case .launch(let policy): return policy.evaluate(claims: claims, referenceValues: referenceValues, at: time)
        case .release: return nil
        }
    }
}
