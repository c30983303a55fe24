import CustosCrypto
import Foundation
import Testing

@testable import CustosPolicy

/// Strict load: each kind of mistake is rejected with its `file:line:column` (positions counted by hand in the
/// texts below; `Fixture.appraisal` puts the condition on line 10 starting at column 11).
@Suite struct LoadErrorTests {
    static func referenceFile(expires: String = "2030-01-01T00:00:00Z", value: String = "\"aabb\"") -> String {
        """
        apiVersion: custos/v1
        kind: ReferenceValues
        sets:
          mr_td:
            expires: \(expires)
            values: [\(value)]
        """
    }

    static let cases: [(name: String, sources: [(file: String, text: String)], location: String, message: String)] = [
        (
            "unknown top-level key", [("t.yaml", Fixture.appraisal("{ claim: tdx.tcb_status, equals: UpToDate }") + "\ncolour: blue")],
            "t.yaml:11:1",
            "unknown key 'colour'"
        ),
        (
            "wrong operand type", [("t.yaml", Fixture.appraisal("{ claim: tdx.td_attributes.debug, equals: \"false\" }"))], "t.yaml:10:53",
            "needs true or false, not a string"
        ),
        (
            "hex claim given an integer", [("t.yaml", Fixture.appraisal("{ claim: tdx.quote.header.tee_type, equals: 81000000 }"))],
            "t.yaml:10:55", "lowercase hex string"
        ),
        (
            "uppercase hex", [("t.yaml", Fixture.appraisal("{ claim: tdx.quote.body.mr_td, equals: \"AABB\" }"))], "t.yaml:10:50",
            "is lowercase hex"
        ),
        (
            "inRef to an undeclared set",
            [("t.yaml", Fixture.appraisal("{ claim: tdx.quote.body.mr_td, inRef: nope }", references: ["mr_td"]))],
            "t.yaml:10:49", "inRef 'nope' is not declared"
        ),
        (
            "inRef to an expired file set",
            [
                ("t.yaml", Fixture.appraisal("{ claim: tdx.quote.body.mr_td, inRef: mr_td }", references: ["mr_td"])),
                ("rv.yaml", referenceFile(expires: "2025-01-01T00:00:00Z")),
            ], "t.yaml:10:49", "reference set 'mr_td' (rv.yaml:4:3) expired"
        ),
        (
            "reference values unfit for a hex claim",
            [
                ("t.yaml", Fixture.appraisal("{ claim: tdx.quote.body.mr_td, inRef: mr_td }", references: ["mr_td"])),
                ("rv.yaml", referenceFile(value: "\"AABB\"")),
            ], "rv.yaml:6:14", "used for 'tdx.quote.body.mr_td', which is lowercase hex"
        ),
        (
            "unknown claim path", [("t.yaml", Fixture.appraisal("{ claim: tdx.quote.body.mrtd, equals: \"00\" }"))], "t.yaml:10:20",
            "unknown claim 'tdx.quote.body.mrtd'"
        ),
        (
            "duplicate policy id",
            [
                ("a.yaml", Fixture.appraisal("{ claim: tdx.tcb_status, equals: UpToDate }")),
                ("b.yaml", Fixture.appraisal("{ claim: tdx.tcb_status, equals: OutOfDate }")),
            ], "b.yaml:3:5", "duplicate policy id 't'"
        ),
        (
            "duplicate reference set", [("rv1.yaml", referenceFile()), ("rv2.yaml", referenceFile())], "rv2.yaml:4:3",
            "duplicate reference set 'mr_td'"
        ),
        (
            "duplicate YAML key", [("t.yaml", Fixture.appraisal("{ claim: tdx.tcb_status, equals: UpToDate }") + "\nid: u")], "t.yaml:3:1",
            "duplicate key 'id'"
        ),
        ("fraction", [("t.yaml", Fixture.appraisal("{ claim: sev.build_id, equals: 1.5 }"))], "t.yaml:10:42", "is a fraction"),
        (
            "missing required key",
            [("t.yaml", Fixture.appraisal("{ claim: tdx.tcb_status, equals: UpToDate }").replacingOccurrences(of: "tee: tdx\n", with: ""))],
            "t.yaml:1:1", "missing required key 'tee'"
        ),
        (
            "status outside a release policy", [("t.yaml", Fixture.appraisal("{ status: affirming }"))], "t.yaml:10:11",
            "only valid in a ReleasePolicy"
        ),
        (
            "two operators", [("t.yaml", Fixture.appraisal("{ claim: sev.build_id, equals: 1, in: [1] }"))], "t.yaml:10:11",
            "has 2 operators"
        ),
        ("no operator", [("t.yaml", Fixture.appraisal("{ claim: sev.build_id }"))], "t.yaml:10:11", "has no operator"),
        (
            "invalid regex", [("t.yaml", Fixture.appraisal("{ claim: tdx.tcb_status, matches: \"(\" }"))], "t.yaml:10:45",
            "not a valid regular expression"
        ),
        (
            "incomparable ordering", [("t.yaml", Fixture.appraisal("{ claim: tdx.tcb_status, greaterOrEquals: \"abc\" }"))], "t.yaml:10:53",
            "needs an integer or a string that is an RFC 3339 date"
        ),
        (
            "ordering a boolean", [("t.yaml", Fixture.appraisal("{ claim: tdx.td_attributes.debug, lessOrEquals: 1 }"))], "t.yaml:10:59",
            "does not apply"
        ),
        (
            "unknown trust claim",
            [
                (
                    "t.yaml",
                    Fixture.appraisal("{ claim: tdx.tcb_status, equals: UpToDate }").replacingOccurrences(
                        of: "  hardware:", with: "  hardwear:")
                )
            ],
            "t.yaml:7:3", "unknown trust claim 'hardwear'"
        ),
        (
            "trust value out of range",
            [
                (
                    "t.yaml",
                    Fixture.appraisal("{ claim: tdx.tcb_status, equals: UpToDate }").replacingOccurrences(
                        of: "value: 2", with: "value: 200")
                )
            ],
            "t.yaml:8:12", "between -128 and 127"
        ),
        (
            // Int64.min: abs() of it trapped, so a policy file could stop `custos policy lint` and the server's reload.
            "integer at Int64.min",
            [
                (
                    "t.yaml",
                    Fixture.appraisal("{ claim: tdx.tcb_status, equals: UpToDate }").replacingOccurrences(
                        of: "value: 2", with: "value: -9223372036854775808")
                )
            ],
            "t.yaml:8:12", "integer -9223372036854775808 is out of range"
        ),
        ("unknown kind", [("t.yaml", "apiVersion: custos/v1\nkind: Policy\nid: t\n")], "t.yaml:2:7", "unknown kind 'Policy'"),
        (
            "wrong apiVersion",
            [
                (
                    "t.yaml",
                    Fixture.appraisal("{ claim: tdx.tcb_status, equals: UpToDate }").replacingOccurrences(
                        of: "custos/v1", with: "attest/v1")
                )
            ],
            "t.yaml:1:13", "apiVersion must be 'custos/v1'"
        ),
        (
            "release policy that is not default-deny",
            [
                (
                    "r.yaml",
                    "apiVersion: custos/v1\nkind: ReleasePolicy\nid: r\ntenant: a\ndefault: allow\nsecrets:\n  - path: x\n    allow: { status: affirming }\n"
                )
            ],
            "r.yaml:5:10", "default must be 'deny'"
        ),
        ("YAML syntax error", [("t.yaml", "apiVersion: custos/v1\nkind: [AppraisalPolicy\n")], "t.yaml:3:1", "YAML syntax"),
        (
            "anchors and aliases", [("t.yaml", Fixture.appraisal("&c { claim: tdx.tcb_status, equals: UpToDate }"))], "t.yaml:10:11",
            "anchors and aliases are not allowed"
        ),
        (
            "an alias after a comment in a CR LF file",
            [("t.yaml", "apiVersion: custos/v1 # v1\r\nkind: AppraisalPolicy\r\nid: &i t\r\nextra: *i\r\n")], "t.yaml:3:5",
            "anchors and aliases are not allowed"
        ),
        (
            "an alias", [("t.yaml", Fixture.appraisal("{ claim: tdx.tcb_status, equals: UpToDate }") + "\nextra: *c")], "t.yaml:11:8",
            "anchors and aliases are not allowed"
        ),
        (
            "examples not a boolean",
            [("rv.yaml", "apiVersion: custos/v1\nkind: ReferenceValues\nexamples: \"true\"\nsets:\n  mr_td:\n    values: [\"aabb\"]\n")],
            "rv.yaml:3:11", "examples must be true or false, not a string"
        ),
        (
            "a YAML 1.1 base-60 integer", [("t.yaml", Fixture.appraisal("{ claim: tdx.tcb_status, equals: UpToDate }") + "\nextra: 15:15")],
            "t.yaml:11:8", "'15:15' reads as a YAML 1.1 base-60 integer"
        ),
        (
            "a YAML 1.1 octal integer", [("t.yaml", Fixture.appraisal("{ claim: tdx.tcb_status, equals: UpToDate }") + "\nextra: 017")],
            "t.yaml:11:8", "'017' reads as a YAML 1.1 octal integer"
        ),
        (
            "a YAML 1.1 binary integer", [("t.yaml", Fixture.appraisal("{ claim: tdx.tcb_status, equals: UpToDate }") + "\nextra: -0b101")],
            "t.yaml:11:8", "'-0b101' reads as a YAML 1.1 binary integer"
        ),
        (
            "a YAML 1.1 digit-grouped integer",
            [("t.yaml", Fixture.appraisal("{ claim: tdx.tcb_status, equals: UpToDate }") + "\nextra: 1_000")], "t.yaml:11:8",
            "'1_000' reads as a YAML 1.1 digit-grouped integer"
        ),
    ]

    /// The policy-yaml fuzzer's input (2026-12-02): a base-60 integer too large for Int trapped in Yams' conversion and
    /// stopped `custos policy hash`/`lint` and a policy reload. Byte for byte as libFuzzer wrote it.
    @Test("a base-60 integer that overflows is a load error, not a trap")
    func base60OverflowReproducer() {
        let bytes: [UInt8] = [
            0x20, 0x33, 0x33, 0x33, 0x33, 0x33, 0x33, 0x33, 0x37, 0x33, 0x33, 0x33, 0x33, 0x33, 0x33, 0x33, 0x33, 0x31, 0x35, 0x3a,
            0x31, 0x35,
        ]
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(throws: PolicyLoadError.self) {
            try PolicySet.parsePolicy(yaml: text, file: "fuzz.yaml", at: Date(timeIntervalSince1970: 1_800_000_000))
        }
        let problems = Fixture.problems([("fuzz.yaml", text)])
        #expect(problems.contains { $0.message.contains("base-60") }, "got \(problems.map(\.description))")
    }

    @Test("strict-load errors carry file:line:column", arguments: cases)
    func rejected(name: String, sources: [(file: String, text: String)], location: String, message: String) {
        let problems = Fixture.problems(sources)
        let match = problems.first { $0.location.description == location && $0.message.contains(message) }
        #expect(match != nil, "\(name): got \(problems.map(\.description))")
    }

    /// The anchor pre-scan on texts whose positions are counted by hand: every line-end convention YAML has,
    /// multi-byte scalars (columns count scalars, not bytes), quotes, escapes and comments.
    @Test(
        "the anchor/alias scan finds the first token and its line:column",
        arguments: [
            ("a: 1\nb: &x 2\n", "2:4"),
            // CR LF: the comment on line 1 ends at its line (it used to hide the rest of a CR LF file).
            ("a: 1 # note\r\nb: &x 2\r\n", "2:4"),
            ("# note\r\nb: &x 2\r\n", "2:4"),
            ("# note\rb: *x\r", "2:4"),
            ("a: 1\r\n\r\nc: [1, *y]\r\n", "3:8"),
            ("é: &x 1\n", "1:4"),
            ("k: \"日本&x\" \n", nil),
            ("k: 'it''s &x' &y z\n", "1:15"),
            ("k: \"a\\\" &x\" &y z\n", "1:13"),
            ("k: a&b # &c\n", nil),
            ("k: v#&x\n- &z\n", "2:3"),
            ("k: & x\nl: *\n", nil),
            ("k: v\n&a", "2:1"),
            ("k: v\n&", nil),
        ] as [(String, String?)])
    func anchorScan(text: String, expected: String?) {
        let found = YNode.firstAnchorOrAlias(text).map { "\($0.line):\($0.column)" }
        #expect(found == expected, "\(text.debugDescription)")
    }

    @Test("load is all-or-nothing and reports every problem of every file")
    func allOrNothing() throws {
        let good = Fixture.appraisal("{ claim: tdx.tcb_status, equals: UpToDate }", id: "good")
        let bad1 = Fixture.appraisal("{ claim: tdx.nothing, equals: x }", id: "bad1")
        let bad2 = Fixture.appraisal("{ claim: sev.build_id, equals: x }", id: "bad2") + "\nextra: 1"
        let problems = Fixture.problems([("a.yaml", good), ("b.yaml", bad1), ("c.yaml", bad2)])
        #expect(problems.map(\.location.description) == ["b.yaml:10:20", "c.yaml:10:42", "c.yaml:11:1"])
        // The good file alone loads.
        #expect(try Fixture.load([("a.yaml", good)]).policies.map(\.id) == ["good"])
    }

    @Test("a missing directory is an error, not an empty set")
    func missingDirectory() {
        #expect(throws: PolicyLoadError.self) {
            try PolicySet.load(directory: URL(fileURLWithPath: "/nonexistent/policies-\(UUID())"))
        }
    }
}
