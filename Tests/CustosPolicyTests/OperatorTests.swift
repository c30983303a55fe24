import CustosCrypto
import Foundation
import Testing

@testable import CustosPolicy

/// Every operator on every claim type, each with a passing and a failing case. Expected results are read off the
/// claims below by hand.
@Suite struct OperatorTests {
    static let claimsText = """
        {"tdx": {"tcb_status": "UpToDate", "advisory_ids": ["INTEL-SA-00837", "INTEL-SA-00960"],
                 "tcb_date": "2024-03-13T00:00:00Z",
                 "quote": {"header": {"tee_type": "81000000"},
                           "body": {"tcb_svn": "06010300000000000000000000000000", "mr_td": "aabb"}},
                 "td_attributes": {"debug": false}, "eventlog": {"boot_applications": []}},
         "sev": {"api_version": "1.51", "build_id": 15, "guest_policy": {"api_major": 0}},
         "init_data_claims": {"workload": "db-01", "replicas": 3}}
        """

    static let referenceSets: [String: ReferenceValueSet] = [
        "mr_td": ReferenceValueSet(name: "mr_td", values: ["ccdd", "aabb"]),
        "other": ReferenceValueSet(name: "other", values: ["ccdd"]),
        "advisories": ReferenceValueSet(name: "advisories", values: ["INTEL-SA-00837", "INTEL-SA-00960", "INTEL-SA-01010"]),
    ]

    static let cases: [(condition: String, passes: Bool)] = [
        // equals / notEquals on strings, booleans, integers, hex, open claims.
        ("{ claim: tdx.tcb_status, equals: UpToDate }", true),
        ("{ claim: tdx.tcb_status, equals: OutOfDate }", false),
        ("{ claim: tdx.td_attributes.debug, equals: false }", true),
        ("{ claim: tdx.td_attributes.debug, equals: true }", false),
        ("{ claim: sev.build_id, equals: 15 }", true),
        ("{ claim: sev.build_id, equals: 16 }", false),
        ("{ claim: tdx.quote.header.tee_type, equals: \"81000000\" }", true),
        ("{ claim: init_data_claims.replicas, equals: 3 }", true),
        ("{ claim: init_data_claims.workload, equals: db-02 }", false),
        ("{ claim: tdx.tcb_status, notEquals: OutOfDate }", true),
        ("{ claim: tdx.tcb_status, notEquals: UpToDate }", false),
        ("{ claim: tdx.advisory_ids, equals: [INTEL-SA-00837, INTEL-SA-00960] }", true),
        ("{ claim: tdx.advisory_ids, equals: [] }", false),
        // in / notIn on scalars, and on lists (every element / no element).
        ("{ claim: tdx.tcb_status, in: [UpToDate, SWHardeningNeeded] }", true),
        ("{ claim: tdx.tcb_status, in: [OutOfDate] }", false),
        ("{ claim: sev.build_id, in: [15, 16] }", true),
        ("{ claim: tdx.tcb_status, notIn: [OutOfDate, Revoked] }", true),
        ("{ claim: tdx.tcb_status, notIn: [UpToDate] }", false),
        ("{ claim: tdx.advisory_ids, in: [INTEL-SA-00837, INTEL-SA-00960, INTEL-SA-01010] }", true),
        ("{ claim: tdx.advisory_ids, in: [INTEL-SA-00837] }", false),
        ("{ claim: tdx.advisory_ids, notIn: [INTEL-SA-01010] }", true),
        ("{ claim: tdx.advisory_ids, notIn: [INTEL-SA-00960] }", false),
        // An empty list claim: in and notIn hold vacuously (documented); inRef and notEquals: [] require an element.
        ("{ claim: tdx.eventlog.boot_applications, in: [aabb] }", true),
        ("{ claim: tdx.eventlog.boot_applications, notIn: [aabb] }", true),
        ("{ claim: tdx.eventlog.boot_applications, inRef: mr_td }", false),
        ("{ claim: tdx.eventlog.boot_applications, notEquals: [] }", false),
        ("{ claim: tdx.advisory_ids, notEquals: [] }", true),
        // inRef on a hex claim and on a list claim.
        ("{ claim: tdx.quote.body.mr_td, inRef: mr_td }", true),
        ("{ claim: tdx.quote.body.mr_td, inRef: other }", false),
        ("{ claim: tdx.advisory_ids, inRef: advisories }", true),
        // Ordering: integers.
        ("{ claim: sev.build_id, greaterOrEquals: 15 }", true),
        ("{ claim: sev.build_id, greaterOrEquals: 16 }", false),
        ("{ claim: sev.build_id, lessOrEquals: 15 }", true),
        ("{ claim: sev.build_id, lessOrEquals: 14 }", false),
        // Dotted versions: 1.51 > 1.6 (numbers, not text), 1.51 = 1.51.0.
        ("{ claim: sev.api_version, greaterOrEquals: \"1.6\" }", true),
        ("{ claim: sev.api_version, greaterOrEquals: \"1.52\" }", false),
        ("{ claim: sev.api_version, lessOrEquals: \"1.51.0\" }", true),
        ("{ claim: sev.api_version, lessOrEquals: \"1.50\" }", false),
        // RFC 3339 dates: full-date, date-time, offsets (01:00+02:00 is 23:00Z the day before).
        ("{ claim: tdx.tcb_date, greaterOrEquals: \"2024-03-13\" }", true),
        ("{ claim: tdx.tcb_date, greaterOrEquals: \"2024-03-13T00:00:01Z\" }", false),
        ("{ claim: tdx.tcb_date, greaterOrEquals: \"2024-03-13T01:00:00+02:00\" }", true),
        ("{ claim: tdx.tcb_date, lessOrEquals: \"2024-03-12T23:59:59.5Z\" }", false),
        ("{ claim: tdx.tcb_date, greaterOrEquals: 2024-01-01T00:00:00Z }", true),
        // Hex SVNs: byte by byte (06 01 03 …).
        ("{ claim: tdx.quote.body.tcb_svn, greaterOrEquals: \"05010300000000000000000000000000\" }", true),
        ("{ claim: tdx.quote.body.tcb_svn, greaterOrEquals: \"06020000000000000000000000000000\" }", false),
        ("{ claim: tdx.quote.body.tcb_svn, lessOrEquals: \"06010300000000000000000000000000\" }", true),
        ("{ claim: tdx.quote.body.tcb_svn, lessOrEquals: \"07000400000000000000000000000000\" }", false),
        // exists.
        ("{ claim: tdx.tcb_status, exists: true }", true),
        ("{ claim: tdx.fmspc, exists: true }", false),
        ("{ claim: tdx.fmspc, exists: false }", true),
        ("{ claim: runtime_data_claims, exists: false }", true),
        // matches is anchored.
        ("{ claim: init_data_claims.workload, matches: \"db-[0-9]+\" }", true),
        ("{ claim: init_data_claims.workload, matches: \"db\" }", false),
        ("{ claim: init_data_claims.workload, matches: \"b-0\" }", false),
        ("{ claim: tdx.tcb_status, matches: \"UpToDate|SWHardeningNeeded\" }", true),
        // Combinators.
        ("{ allOf: [ { claim: tdx.tcb_status, equals: UpToDate }, { claim: sev.build_id, equals: 15 } ] }", true),
        ("{ allOf: [ { claim: tdx.tcb_status, equals: UpToDate }, { claim: sev.build_id, equals: 16 } ] }", false),
        ("{ anyOf: [ { claim: tdx.tcb_status, equals: OutOfDate }, { claim: sev.build_id, equals: 15 } ] }", true),
        ("{ anyOf: [ { claim: tdx.tcb_status, equals: OutOfDate }, { claim: sev.build_id, equals: 16 } ] }", false),
        ("{ not: { claim: tdx.td_attributes.debug, equals: true } }", true),
        ("{ not: { claim: tdx.td_attributes.debug, equals: false } }", false),
        // A missing claim fails every operator but `exists: false`, including notEquals / notIn / not-less.
        ("{ claim: tdx.fmspc, notEquals: \"00\" }", false),
        ("{ claim: tdx.fmspc, notIn: [\"00\"] }", false),
        ("{ claim: tdx.platform_tcb_status, equals: UpToDate }", false),
        ("{ claim: init_data_claims.missing, matches: \".*\" }", false),
        // ... and `not` does not turn it into a pass: an undecided leaf fails whatever encloses it (it used to pass
        // under `not`, so `not: {claim: tdx.tcb_status, in: [Revoked]}` allowed evidence with no TCB status).
        ("{ not: { claim: tdx.fmspc, equals: \"00\" } }", false),
        ("{ not: { claim: tdx.platform_tcb_status, in: [Revoked, OutOfDate] } }", false),
        ("{ not: { not: { claim: tdx.fmspc, equals: \"00\" } } }", false),
        ("{ not: { anyOf: [ { claim: tdx.fmspc, equals: \"00\" }, { claim: sev.build_id, equals: 16 } ] } }", false),
        // Whatever the missing claim is, allOf [missing, false] is false: its negation holds.
        ("{ not: { allOf: [ { claim: tdx.fmspc, equals: \"00\" }, { claim: sev.build_id, equals: 16 } ] } }", true),
        ("{ anyOf: [ { not: { claim: tdx.fmspc, exists: true } }, { claim: sev.build_id, equals: 16 } ] }", true),
        // A claim not in the ordering's form, `matches` on a non-string, a declared set absent at evaluation time.
        ("{ not: { claim: init_data_claims.workload, greaterOrEquals: 3 } }", false),
        ("{ not: { claim: init_data_claims.replicas, matches: \"x\" } }", false),
        ("{ not: { claim: tdx.quote.body.mr_td, inRef: absent } }", false),
        ("{ claim: tdx.quote.body.mr_td, inRef: absent }", false),
    ]

    @Test("operators", arguments: cases)
    func evaluate(condition: String, passes: Bool) throws {
        let text = Fixture.appraisal(condition, references: ["mr_td", "other", "advisories", "absent"])
        let set = try Fixture.load([("t.yaml", text)])
        let policy = try #require(set.policy(id: "t")?.appraisal)
        let result = policy.evaluate(claims: try Fixture.json(Self.claimsText), referenceValues: Self.referenceSets, at: Fixture.now)
        #expect(result.trustVector[.hardware] == (passes ? 2 : 97), "\(condition)")
        #expect(result.decision == (passes ? .allow : .deny))
        #expect(!result.trace.isEmpty)
    }

    @Test("a missing claim is traced as missing, never as null")
    func missingClaim() throws {
        let set = try Fixture.load([("t.yaml", Fixture.appraisal("{ claim: tdx.fmspc, notEquals: \"00\" }"))])
        let result = try #require(set.policy(id: "t")?.appraisal).evaluate(claims: ["tdx": [:]], referenceValues: [:], at: Fixture.now)
        #expect(
            result.trace == [
                TraceLine(rule: "hardware", claim: "tdx.fmspc", operator: "notEquals", expected: "00", actual: .missing, passed: false)
            ])
        #expect(result.trace.first?.jsonValue["actual"] == "missing")
        // A claim that is present with the value null is reported as null.
        let withNull = try #require(set.policy(id: "t")?.appraisal).evaluate(
            claims: ["tdx": ["fmspc": nil]], referenceValues: [:], at: Fixture.now)
        #expect(withNull.trace.first?.actual == .value(.null))
    }

    /// A trace line reads as its operator: `not(equals)` passes when the claim differs; an undecided leaf fails.
    @Test("negated leaves are traced with the result of the negation")
    func negatedTrace() throws {
        let condition =
            "{ allOf: [ { not: { claim: tdx.tcb_status, equals: OutOfDate } }, { not: { claim: tdx.fmspc, equals: \"00\" } } ] }"
        let set = try Fixture.load([("t.yaml", Fixture.appraisal(condition))])
        let result = try #require(set.policy(id: "t")?.appraisal).evaluate(
            claims: try Fixture.json(Self.claimsText), referenceValues: [:], at: Fixture.now)
        #expect(
            result.trace == [
                TraceLine(
                    rule: "hardware", claim: "tdx.tcb_status", operator: "not(equals)", expected: "OutOfDate", actual: .value("UpToDate"),
                    passed: true),
                TraceLine(rule: "hardware", claim: "tdx.fmspc", operator: "not(equals)", expected: "00", actual: .missing, passed: false),
            ])
        #expect(result.decision == .deny)
    }

    @Test("dates: RFC 3339 forms parse to the right instants")
    func dates() {
        // 2024-03-13T00:00:00Z = 1710288000 (date -u -d 2024-03-13 +%s).
        #expect(OrderedValue.parseDate("2024-03-13") == 1_710_288_000)
        #expect(OrderedValue.parseDate("2024-03-13T00:00:00Z") == 1_710_288_000)
        #expect(OrderedValue.parseDate("2024-03-13T02:00:00+02:00") == 1_710_288_000)
        #expect(OrderedValue.parseDate("2024-03-12T19:00:00-05:00") == 1_710_288_000)
        #expect(OrderedValue.parseDate("2024-03-13T00:00:00.25Z") == 1_710_288_000.25)
        // 2000-02-29 exists (leap), 1900-02-29 does not; 1970-01-01 is 0.
        #expect(OrderedValue.parseDate("2000-02-29") == 951_782_400)
        #expect(OrderedValue.parseDate("1900-02-29") == nil)
        #expect(OrderedValue.parseDate("1970-01-01T00:00:00Z") == 0)
        for bad in ["2024-13-01", "2024-03-13T24:00:00Z", "2024-03-13T00:00:00", "2024-03-13 00:00:00Z", "20240313", "2024-03-13Tx"] {
            #expect(OrderedValue.parseDate(bad) == nil, "\(bad)")
        }
    }

    @Test("versions and hex SVNs parse as their forms")
    func forms() {
        #expect(OrderedValue.parseVersion("1.51") == [1, 51])
        #expect(OrderedValue.parseVersion("6.2.2") == [6, 2, 2])
        #expect(OrderedValue.parseVersion("1") == nil)
        #expect(OrderedValue.parseVersion("1..2") == nil)
        #expect(OrderedValue.parseHex("0a0B") == [0x0a, 0x0b])
        #expect(OrderedValue.parseHex("abc") == nil)
        #expect(OrderedValue.parseString("15") == .hexSVN([0x15]))
    }
}
