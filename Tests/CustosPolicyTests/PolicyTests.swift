import CustosCrypto
import Foundation
import Testing

@testable import CustosPolicy

@Suite struct HashTests {
    /// Expected: `hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(',', ':')))` in Python over the same
    /// policy written as a Python dict (ASCII strings and integers only, where that is RFC 8785).
    static let expected = "20172379b72c8b77d1ff62ac196f768679961c2455eae8a1531b5628ad119205"

    static let block = """
        apiVersion: custos/v1
        kind: AppraisalPolicy
        id: hash-test
        tee: tdx
        referenceValues:
          - mr_td
        trustVector:
          hardware:
            value: 2
            else: 97
            when:
              allOf:
                - claim: tdx.tcb_status
                  equals: UpToDate
                - claim: tdx.quote.body.mr_td
                  inRef: mr_td
                - claim: sev.build_id
                  greaterOrEquals: -3
        """

    /// The same policy: flow style, other key order, comments, quoting, a hex integer.
    static let flow = """
        # comment
        id: "hash-test"   # quoted
        kind: 'AppraisalPolicy'
        trustVector: { hardware: { when: { allOf: [ { equals: UpToDate, claim: tdx.tcb_status },
            { inRef: "mr_td", claim: tdx.quote.body.mr_td }, { claim: sev.build_id, greaterOrEquals: -0x3 } ] }, else: 97, value: 0x2 } }
        referenceValues: [ mr_td ]
        tee: tdx
        apiVersion: "custos/v1"
        """

    @Test("the hash is SHA-256 of the RFC 8785 form, whatever the formatting")
    func stable() throws {
        let a = try PolicySet.parsePolicy(yaml: Self.block, file: "a.yaml")
        let b = try PolicySet.parsePolicy(yaml: Self.flow, file: "b.yaml")
        #expect(a.sha256 == Self.expected)
        #expect(b.sha256 == Self.expected)
        #expect(a.reference == "hash-test@sha256:\(Self.expected)")
        // Any change of meaning changes it.
        let changed = try PolicySet.parsePolicy(yaml: Self.block.replacingOccurrences(of: "else: 97", with: "else: 96"), file: "c.yaml")
        #expect(changed.sha256 != Self.expected)
        // The result names the policy by its reference.
        let result = try #require(a.appraisal).evaluate(claims: [:], referenceValues: [:], at: Fixture.now)
        #expect(result.policy == a.reference)
    }
}

@Suite struct EvaluationTests {
    static let policy = """
        apiVersion: custos/v1
        kind: AppraisalPolicy
        id: eval
        tee: tdx
        referenceValues: [mr_td, rtmr_1]
        trustVector:
          hardware:
            value: 2
            else: 97
            when:
              allOf:
                - { claim: tdx.tcb_status, equals: UpToDate }
                - { claim: tdx.quote.body.mr_td, inRef: mr_td }
          executables:
            rules:
              - { value: 3, when: { claim: tdx.quote.body.rtmr_1, inRef: rtmr_1 } }
              - { value: 33, when: { claim: tdx.quote.body.rtmr_1, exists: true } }
            else: 99
        """

    static let claims: JSONValue = ["tdx": ["tcb_status": "UpToDate", "quote": ["body": ["mr_td": "aa", "rtmr_1": "bb"]]]]

    static func evaluate(_ claims: JSONValue, _ sets: [String: ReferenceValueSet], at time: Date = Fixture.now) throws -> PolicyResult {
        let set = try Fixture.load([("eval.yaml", policy)])
        return try #require(set.policy(id: "eval")?.appraisal).evaluate(claims: claims, referenceValues: sets, at: time)
    }

    static let sets: [String: ReferenceValueSet] = [
        "mr_td": ReferenceValueSet(name: "mr_td", values: ["aa"]), "rtmr_1": ReferenceValueSet(name: "rtmr_1", values: ["bb"]),
    ]

    @Test("affirming claims give allow, the trust vector and a full trace")
    func affirming() throws {
        let result = try Self.evaluate(Self.claims, Self.sets)
        #expect(result.decision == .allow)
        #expect(result.status == .affirming)
        #expect(result.trustVector.values == [.hardware: 2, .executables: 3])
        #expect(
            result.trace == [
                TraceLine(
                    rule: "executables[0]", claim: "tdx.quote.body.rtmr_1", operator: "inRef", expected: "rtmr_1", actual: .value("bb"),
                    passed: true),
                TraceLine(
                    rule: "hardware", claim: "tdx.tcb_status", operator: "equals", expected: "UpToDate", actual: .value("UpToDate"),
                    passed: true),
                TraceLine(
                    rule: "hardware", claim: "tdx.quote.body.mr_td", operator: "inRef", expected: "mr_td", actual: .value("aa"),
                    passed: true),
            ])
        // The JSON shape of `custos policy eval --json`.
        let json = result.jsonValue
        #expect(json["decision"] == "allow")
        #expect(json["status"] == "affirming")
        #expect(json["trustVector"]?["hardware"] == 2)
        #expect(json["trustVector"]?["configuration"] == 0)
        #expect(json["trace"]?.arrayValue?.first?["result"] == "pass")
        #expect(json["policy"]?.stringValue?.hasPrefix("eval@sha256:") == true)
    }

    @Test("later rules apply when earlier ones fail; the worst tier wins")
    func tiers() throws {
        var sets = Self.sets
        sets["rtmr_1"] = ReferenceValueSet(name: "rtmr_1", values: ["cc"])
        let result = try Self.evaluate(Self.claims, sets)
        #expect(result.trustVector.values == [.hardware: 2, .executables: 33])
        #expect(result.status == .warning)
        #expect(result.decision == .deny)
        #expect(result.trace.map(\.rule) == ["executables[0]", "executables[1]", "hardware", "hardware"])
    }

    @Test("default deny: empty claims are contraindicated, with every failure traced as missing")
    func emptyClaims() throws {
        let result = try Self.evaluate([:], Self.sets)
        #expect(result.decision == .deny)
        #expect(result.status == .contraindicated)
        #expect(result.trustVector.values == [.hardware: 97, .executables: 99])
        #expect(result.trace.allSatisfy { !$0.passed && $0.actual == .missing })
        #expect(result.trace.count == 4)
    }

    @Test("a missing or expired reference set fails its condition and says so")
    func missingReferenceValues() throws {
        let missing = try Self.evaluate(Self.claims, [:])
        #expect(missing.decision == .deny)
        #expect(missing.trace.contains { $0.actual == .missingReferenceSet("mr_td") && !$0.passed })
        #expect(missing.trace.first { $0.claim == "tdx.quote.body.mr_td" }?.jsonValue["actual"] == "missing reference set mr_td")
        var sets = Self.sets
        sets["mr_td"] = ReferenceValueSet(name: "mr_td", values: ["aa"], expires: Fixture.now.addingTimeInterval(-1))
        let expired = try Self.evaluate(Self.claims, sets)
        #expect(expired.trustVector[.hardware] == 97)
        #expect(expired.trace.contains { $0.actual == .expiredReferenceSet("mr_td") })
        // Still valid one second before expiry.
        let before = try Self.evaluate(Self.claims, sets, at: Fixture.now.addingTimeInterval(-2))
        #expect(before.trustVector[.hardware] == 2)
    }

    @Test("AR4SI tiers as in rust-ear")
    func tierRanges() {
        let expected: [(Int8, TrustTier)] = [
            (0, .none), (1, .none), (-1, .none), (2, .affirming), (31, .affirming), (-2, .affirming), (-32, .affirming),
            (32, .warning), (95, .warning), (-33, .warning), (-96, .warning), (96, .contraindicated), (127, .contraindicated),
            (-97, .contraindicated), (-128, .contraindicated),
        ]
        for (value, tier) in expected { #expect(TrustTier(value: value) == tier, "\(value)") }
        #expect(TrustVector().status == .none)
        #expect(TrustVector([.hardware: 2, .configuration: 0]).status == .affirming)
        #expect(TrustVector([.hardware: 2, .executables: 33, .configuration: 96]).status == .contraindicated)
        #expect(TrustVector([.instanceIdentity: 2]).earValue["instance-identity"] == 2)
        // draft-ietf-rats-ar4si §2.3.3 as EAR names them.
        #expect(
            TrustClaim.allCases.map(\.earName) == [
                "instance-identity", "configuration", "executables", "file-system", "hardware", "runtime-opaque", "storage-opaque",
                "sourced-data",
            ])
    }
}

@Suite struct ReleaseAndLaunchTests {
    static let release = """
        apiVersion: custos/v1
        kind: ReleasePolicy
        id: tenant-a-release
        tenant: tenant-a
        default: deny
        secrets:
          - path: tenant-a/disk/root-key
            maxReleasesPerAttestation: 1
            allow:
              allOf:
                - { status: affirming }
                - { claim: init_data_claims.workload, equals: db-01 }
          - path: tenant-a/config/*
            allow: { status: warning }
        """

    static let launch = """
        apiVersion: custos/v1
        kind: LaunchPolicy
        id: sev-test
        tee: sev-es
        referenceValues: [digest]
        allow:
          allOf:
            - { claim: sev.launch_digest, inRef: digest }
            - { claim: sev.guest_policy.nodbg, equals: true }
            - { claim: sev.api_version, greaterOrEquals: "0.17" }
        """

    @Test("release: exact paths, prefixes, status and claims; anything else denied")
    func release() throws {
        let set = try Fixture.load([("r.yaml", Self.release)])
        let policy = try #require(set.releasePolicy(tenant: "tenant-a"))
        let claims: JSONValue = ["init_data_claims": ["workload": "db-01"]]
        func decide(_ path: String, _ status: TrustTier, _ claims: JSONValue = claims) -> PolicyDecision {
            policy.evaluate(path: path, status: status, claims: claims, referenceValues: [:], at: Fixture.now).decision
        }
        #expect(decide("tenant-a/disk/root-key", .affirming) == .allow)
        // Only the root key's rule reads a claim; the config prefix needs the status alone, an unknown path nothing.
        #expect(policy.needsClaims(path: "tenant-a/disk/root-key"))
        #expect(!policy.needsClaims(path: "tenant-a/config/app"))
        #expect(!policy.needsClaims(path: "tenant-a/other"))
        #expect(decide("tenant-a/disk/root-key", .warning) == .deny)
        #expect(decide("tenant-a/disk/root-key", .affirming, ["init_data_claims": ["workload": "db-02"]]) == .deny)
        #expect(decide("tenant-a/config/app", .warning) == .allow)
        #expect(decide("tenant-a/config/app", .affirming) == .allow)
        #expect(decide("tenant-a/config/app", .contraindicated) == .deny)
        #expect(decide("tenant-a/config/app", .none) == .deny)
        let other = policy.evaluate(path: "tenant-a/other", status: .affirming, claims: claims, referenceValues: [:], at: Fixture.now)
        #expect(other.decision == .deny)
        #expect(other.trace.map(\.rule) == ["default"])
        #expect(policy.secret(for: "tenant-a/disk/root-key")?.maxReleasesPerAttestation == 1)
    }

    @Test("launch: allow only when every condition holds")
    func launch() throws {
        let set = try Fixture.load([("l.yaml", Self.launch)])
        let policy = try #require(set.policy(id: "sev-test")?.launch)
        let sets = ["digest": ReferenceValueSet(name: "digest", values: ["00ff"])]
        let good: JSONValue = ["sev": ["launch_digest": "00ff", "guest_policy": ["nodbg": true], "api_version": "0.24"]]
        #expect(policy.evaluate(claims: good, referenceValues: sets, at: Fixture.now).decision == .allow)
        let old: JSONValue = ["sev": ["launch_digest": "00ff", "guest_policy": ["nodbg": true], "api_version": "0.16"]]
        #expect(policy.evaluate(claims: old, referenceValues: sets, at: Fixture.now).decision == .deny)
        #expect(policy.evaluate(claims: good, referenceValues: [:], at: Fixture.now).decision == .deny)
    }
}
