public import CustosCrypto
public import Foundation

/// A compiled condition: a test of one claim, a required appraisal status (release policies), or a combinator.
indirect enum Condition: Sendable {
    case test(ClaimTest)
    case status(TrustTier)
    case allOf([Condition])
    case anyOf([Condition])
    case not(Condition)

    /// Whether evaluating the condition reads a claim (a `test` anywhere in it).
    var readsClaims: Bool {
        switch self {
        case .test: true
        case .status: false
        case .allOf(let conditions), .anyOf(let conditions): conditions.contains { $0.readsClaims }
        case .not(let condition): condition.readsClaims
        }
    }
}

/// `{ claim: <path>, <operator>: <operand> }`.
struct ClaimTest: Sendable {
    let claim: String
    /// `claim` split at dots, for the fast lookup.
    let components: [String]
    let op: Operator
    let location: SourceLocation
}

enum Operator: Sendable {
    case equals(JSONValue)
    case notEquals(JSONValue)
    case isIn([JSONValue])
    case notIn([JSONValue])
    case inRef(String)
    case lessOrEquals(OrderedValue, JSONValue)
    case greaterOrEquals(OrderedValue, JSONValue)
    case exists(Bool)
    case matches(AnchoredRegex)

    static let names = ["equals", "notEquals", "in", "notIn", "inRef", "lessOrEquals", "greaterOrEquals", "exists", "matches"]

    var name: String {
        switch self {
        case .equals: return "equals"
        case .notEquals: return "notEquals"
        case .isIn: return "in"
        case .notIn: return "notIn"
        case .inRef: return "inRef"
        case .lessOrEquals: return "lessOrEquals"
        case .greaterOrEquals: return "greaterOrEquals"
        case .exists: return "exists"
        case .matches: return "matches"
        }
    }

    /// The operand as the trace shows it.
    var expected: JSONValue {
        switch self {
        case .equals(let value), .notEquals(let value): return value
        case .isIn(let values), .notIn(let values): return .array(values)
        case .inRef(let name): return .string(name)
        case .lessOrEquals(_, let text), .greaterOrEquals(_, let text): return text
        case .exists(let flag): return .bool(flag)
        case .matches(let regex): return .string(regex.pattern)
        }
    }
}

/// An anchored regular expression (`matches`): the whole claim must match.
///
/// `NSRegularExpression` is immutable after init and documented as safe to use from several threads at once, so
/// this wrapper is `@unchecked Sendable`.
final class AnchoredRegex: @unchecked Sendable {
    let pattern: String
    private let regex: NSRegularExpression

    /// Longest pattern accepted.
    static let maximumLength = 1024

    init?(_ pattern: String) {
        guard pattern.utf8.count <= Self.maximumLength,
            let regex = try? NSRegularExpression(pattern: "\\A(?:" + pattern + ")\\z", options: [])
        else { return nil }
        self.pattern = pattern
        self.regex = regex
    }

    func matches(_ text: String) -> Bool {
        let range = NSRange(text.startIndex..<text.endIndex, in: text)
        return regex.firstMatch(in: text, options: [], range: range) != nil
    }
}

// MARK: - Results

/// Allow or deny. Evaluation is default-deny: anything not explicitly allowed is denied.
public enum PolicyDecision: String, Sendable, Hashable {
    case allow
    case deny
}

/// One evaluated condition: which rule, which claim, what was expected, what the evidence had, and the result.
public struct TraceLine: Sendable, Hashable {
    /// What the evidence had for the claim.
    public enum Actual: Sendable, Hashable {
        case value(JSONValue)
        /// The claims document does not have the claim.
        case missing
        /// The `inRef` set is neither in the policy files nor among the sets passed to `evaluate`.
        case missingReferenceSet(String)
        /// The `inRef` set has expired at the evaluation time.
        case expiredReferenceSet(String)

        /// The value the trace prints: the claim's JSON value, or a string saying what was missing.
        public var jsonValue: JSONValue {
            switch self {
            case .value(let value): return value
            case .missing: return "missing"
            case .missingReferenceSet(let name): return .string("missing reference set \(name)")
            case .expiredReferenceSet(let name): return .string("expired reference set \(name)")
            }
        }
    }

    /// The rule the condition belongs to (`hardware`, `executables[1]`, `allow`, `secret tenant-a/disk/root-key`).
    public let rule: String
    /// The claim path (`tdx.quote.body.mr_td`), or `status` for a status condition.
    public let claim: String
    /// The operator, `not(…)` when under a `not`.
    public let `operator`: String
    public let expected: JSONValue
    public let actual: Actual
    /// Whether this condition held (before any enclosing `not`).
    public let passed: Bool

    public init(rule: String, claim: String, operator: String, expected: JSONValue, actual: Actual, passed: Bool) {
        self.rule = rule
        self.claim = claim
        self.operator = `operator`
        self.expected = expected
        self.actual = actual
        self.passed = passed
    }

    /// `{"rule", "claim", "operator", "expected", "actual", "result": "pass"|"fail"}`.
    public var jsonValue: JSONValue {
        .object([
            "rule": .string(rule), "claim": .string(claim), "operator": .string(`operator`), "expected": expected,
            "actual": actual.jsonValue, "result": passed ? "pass" : "fail",
        ])
    }
}

/// What evaluating a policy gives: the decision, the AR4SI trust vector and status, and the trace.
public struct PolicyResult: Sendable, Hashable {
    public let decision: PolicyDecision
    /// The appraisal status (worst tier of the set trust claims); for a release policy, the status it was given.
    public let status: TrustTier
    public let trustVector: TrustVector
    public let trace: [TraceLine]
    /// The policy's content-addressed reference, `id@sha256:<hex>`.
    public let policy: String

    /// `{decision, status, trustVector, policy, trace}`.
    public var jsonValue: JSONValue {
        .object([
            "decision": .string(decision.rawValue), "status": .string(status.rawValue), "trustVector": trustVector.jsonValue,
            "policy": .string(policy), "trace": .array(trace.map(\.jsonValue)),
        ])
    }
}

// MARK: - Evaluation

/// Evaluates conditions against one claims document. Total: no loops beyond the policy's own (finite) tree, no I/O.
struct Evaluator {
    let claims: JSONValue
    let referenceValues: [String: ReferenceValueSet]
    let time: Date
    /// The appraisal status a release policy's `status` conditions check.
    let status: TrustTier?
    var trace: [TraceLine] = []

    init(claims: JSONValue, referenceValues: [String: ReferenceValueSet], time: Date, status: TrustTier? = nil) {
        self.claims = claims
        self.referenceValues = referenceValues
        self.time = time
        self.status = status
        trace.reserveCapacity(16)
    }

    /// Evaluates every leaf (no short-circuit), so the trace explains the whole rule.
    ///
    /// `negated` is the leaf's polarity (under an odd number of `not`). A leaf that cannot be decided (a missing claim,
    /// a missing or expired reference set, a claim not in the ordering's form, `matches` on a non-string) takes the
    /// value that makes the enclosing condition fail: false at even polarity, true at odd. So `not` never turns
    /// missing evidence into a pass (`not: {claim: tdx.tcb_status, in: [Revoked]}` fails when there is no
    /// `tcb_status`), while `not: {allOf: [missing, false]}` still holds, as it does whatever the missing claim is.
    /// A trace line's `passed` is the result of the leaf as its operator reads (`not(equals)` passes when the claim is
    /// not equal); an undecided leaf always reads `passed: false`.
    mutating func evaluate(_ condition: Condition, rule: String, negated: Bool = false) -> Bool {
        switch condition {
        case .allOf(let conditions):
            var result = true
            for inner in conditions where !evaluate(inner, rule: rule, negated: negated) { result = false }
            return result
        case .anyOf(let conditions):
            var result = false
            for inner in conditions where evaluate(inner, rule: rule, negated: negated) { result = true }
            return result
        case .not(let inner):
            return !evaluate(inner, rule: rule, negated: !negated)
        case .status(let required):
            let actual = status ?? .none
            let passed = actual.meets(required)
            trace.append(
                TraceLine(
                    rule: rule, claim: "status", operator: negated ? "not(status)" : "status", expected: .string(required.rawValue),
                    actual: .value(.string(actual.rawValue)), passed: passed != negated))
            return passed
        case .test(let test):
            let (decided, actual) = check(test)
            let value = decided ?? negated
            trace.append(
                TraceLine(
                    rule: rule, claim: test.claim, operator: negated ? "not(\(test.op.name))" : test.op.name, expected: test.op.expected,
                    actual: actual, passed: decided.map { $0 != negated } ?? false))
            return value
        }
    }

    /// Finds a claim: object keys step by step; a key that itself holds dots falls back to the general lookup.
    func lookup(_ test: ClaimTest) -> JSONValue? {
        var current = claims
        var found = true
        for component in test.components {
            guard case .object(let members) = current, let next = members[component] else {
                found = false
                break
            }
            current = next
        }
        if found { return current }
        return claims.value(atPath: test.claim)
    }

    /// The leaf's result, or nil when it cannot be decided (see ``evaluate(_:rule:negated:)``).
    func check(_ test: ClaimTest) -> (Bool?, TraceLine.Actual) {
        guard let value = lookup(test) else {
            if case .exists(let wanted) = test.op { return (!wanted, .missing) }
            return (nil, .missing)
        }
        let actual = TraceLine.Actual.value(value)
        switch test.op {
        case .exists(let wanted): return (wanted, actual)
        case .equals(let expected): return (value == expected, actual)
        case .notEquals(let expected): return (value != expected, actual)
        case .isIn(let list):
            if case .array(let elements) = value { return (elements.allSatisfy { list.contains($0) }, actual) }
            return (list.contains(value), actual)
        case .notIn(let list):
            if case .array(let elements) = value { return (!elements.contains { list.contains($0) }, actual) }
            return (!list.contains(value), actual)
        case .inRef(let name):
            guard let set = referenceValues[name] else { return (nil, .missingReferenceSet(name)) }
            if set.isExpired(at: time) { return (nil, .expiredReferenceSet(name)) }
            if case .array(let elements) = value { return (!elements.isEmpty && elements.allSatisfy { set.contains($0) }, actual) }
            return (set.contains(value), actual)
        case .lessOrEquals(let bound, _):
            guard let claim = bound.sameForm(value) else { return (nil, actual) }
            return (OrderedValue.holds(claim, bound, greater: false), actual)
        case .greaterOrEquals(let bound, _):
            guard let claim = bound.sameForm(value) else { return (nil, actual) }
            return (OrderedValue.holds(claim, bound, greater: true), actual)
        case .matches(let regex):
            guard case .string(let text) = value else { return (nil, actual) }
            return (regex.matches(text), actual)
        }
    }
}
