import CustosCrypto
import CustosSEV
import CustosTestSupport
import Foundation
import Testing

@testable import CustosCLI
@testable import CustosPolicy
@testable import CustosTDX

/// Every leaf path of a claims document (objects walked; arrays and scalars are leaves).
func leafPaths(_ value: JSONValue, prefix: String = "") -> [String] {
    guard case .object(let members) = value else { return [prefix] }
    return members.flatMap { leafPaths($0.value, prefix: prefix.isEmpty ? $0.key : prefix + "." + $0.key) }
}

/// The claims of the real quotes in `$CUSTOS_TESTDATA`, checked against the peer's parse (`tdx/expected.json`,
/// dcap-qvl 0.7.0), and evaluated by the shipped default TDX policy.
@Suite(.enabled(if: TestData.isAvailable, "\(TestData.skipReason)"))
struct RealQuoteClaimsTests {
    struct Pair: Sendable, CustomTestStringConvertible {
        let id: String
        let quote: String
        let collateral: String
        let now: Int
        var testDescription: String { id }
    }

    /// The pairs dcap-qvl accepts (`"valid": {"result": "accepted"}` in expected.json).
    static let pairs = [
        Pair(id: "P01", quote: "quotes/q01_dcapqvl_tdx_v4.bin", collateral: "collateral/c1_dcapqvl_2025-06_B0C06F", now: 1_751_328_000),
        Pair(id: "P06", quote: "quotes/q06_gotdx_v5_sample.bin", collateral: "collateral/c2_dcapqvl_2026-02_90C06F", now: 1_772_323_200),
    ]

    /// The peer's record of a pair. expected.json holds timing fractions, so it is read with JSONSerialization and
    /// converted (strings and integers kept; fractions become strings; only strings and integers are compared).
    static func expected(_ id: String) throws -> JSONValue {
        func convert(_ value: Any) -> JSONValue {
            if let text = value as? String { return .string(text) }
            if let number = value as? NSNumber {
                let double = number.doubleValue
                return double.rounded() == double && abs(double) < 9e15 ? .integer(number.int64Value) : .string(number.stringValue)
            }
            if let array = value as? [Any] { return .array(array.map(convert)) }
            if let object = value as? [String: Any] { return .object(object.mapValues(convert)) }
            return .null
        }
        let document = convert(try JSONSerialization.jsonObject(with: Data(try TestData.bytes("tdx/expected.json"))))
        return try #require(document["pairs"]?.arrayValue?.first { $0["id"] == .string(id) })
    }

    static func claims(_ pair: Pair) throws -> (JSONValue, Date) {
        let root = try Certificate(derOrPEM: try TestData.bytes("tdx/root/intel_sgx_root_ca.pem"))
        let collateral = try TDXCollateralLoader.load(path: TestData.url("tdx/" + pair.collateral).path)
        let time = Date(timeIntervalSince1970: TimeInterval(pair.now))
        let result = QuoteVerifier(trustedRoot: root).verify(
            quote: try TestData.bytes("tdx/" + pair.quote), collateral: collateral, at: time)
        let verified = try #require(result.verifiedQuote)
        return (TDXClaims.document(verified, at: time), time)
    }

    @Test("claims match the peer's parse of the quote", arguments: pairs)
    func claimsMatchPeer(pair: Pair) throws {
        let (claims, _) = try Self.claims(pair)
        let expected = try Self.expected(pair.id)
        let parsed = try #require(expected["parsed"])
        let body = "tdx.quote.body."
        let mapping: [(String, String)] = [
            ("mr_td", "mr_td"), ("xfam", "xfam"), ("td_attributes", "td_attributes"), ("tcb_svn", "tee_tcb_svn"), ("mr_seam", "mr_seam"),
            ("mrsigner_seam", "mr_signer_seam"), ("seam_attributes", "seam_attributes"), ("mr_config_id", "mr_config_id"),
            ("mr_owner", "mr_owner"), ("mr_owner_config", "mr_owner_config"), ("rtmr_0", "rt_mr0"), ("rtmr_1", "rt_mr1"),
            ("rtmr_2", "rt_mr2"), ("rtmr_3", "rt_mr3"), ("report_data", "report_data"),
        ]
        for (ours, peers) in mapping {
            #expect(claims.value(atPath: body + ours) == parsed[peers], "\(ours)")
        }
        #expect(claims["report_data"] == parsed["report_data"])
        #expect(claims["init_data"] == parsed["mr_config_id"])
        #expect(claims.value(atPath: "tdx.fmspc")?.stringValue == parsed["fmspc"]?.stringValue?.lowercased())
        // Header fields as little-endian hex (Trustee): version 4 → "0400", TEE type 0x81 → "81000000".
        let header = try #require(expected["layout"]?["header"])
        let version = try #require(header["version"]?.integerValue)
        #expect(claims.value(atPath: "tdx.quote.header.version") == .string(String(format: "%02x00", version)))
        #expect(claims.value(atPath: "tdx.quote.header.tee_type") == "81000000")
        #expect(claims.value(atPath: "tdx.quote.header.att_key_type") == "0200")
        #expect(claims.value(atPath: "tdx.quote.header.vendor_id") == header["qe_vendor_id"])
        #expect(claims.value(atPath: "tdx.quote.type") == .string(version == 4 ? "TD10" : "TD15"))
        // The peer's verdict.
        #expect(claims.value(atPath: "tdx.tcb_status") == expected["valid"]?["status"])
        #expect(claims.value(atPath: "tdx.advisory_ids") == expected["valid"]?["advisory_ids"])
        #expect(claims.value(atPath: "tdx.collateral_expiration_status") == "0")
        // td_attributes 0000001000000000: byte 3 = 0x10 → bit 28 (SEPT_VE_DISABLE) only.
        #expect(parsed["td_attributes"] == "0000001000000000")
        #expect(claims.value(atPath: "tdx.td_attributes.debug") == false)
        #expect(claims.value(atPath: "tdx.td_attributes.septve_disable") == true)
        #expect(claims.value(atPath: "tdx.td_attributes.perfmon") == false)
        // Every path is one the policy language knows.
        for path in leafPaths(claims) { #expect(ClaimSchema.type(of: path) != nil, "\(path)") }
    }

    @Test("the shipped default TDX policy affirms the sample quotes", arguments: pairs)
    func defaultPolicy(pair: Pair) throws {
        let (claims, time) = try Self.claims(pair)
        let set = try PolicySet.load(directory: Fixture.policiesDirectory, at: time)
        let loaded = try #require(set.policy(id: "tdx-default"))
        let result = try #require(loaded.evaluate(claims: claims, referenceValues: set.referenceValues, at: time))
        #expect(result.decision == .allow)
        #expect(result.status == .affirming)
        #expect(result.trustVector.values == [.hardware: 2, .configuration: 2, .executables: 3])
        #expect(result.trace.count == 10)
        #expect(!result.trace.contains { !$0.passed })
        // Without the example reference values: default deny, and the trace says which sets are missing.
        let bare = try #require(loaded.evaluate(claims: claims, referenceValues: [:], at: time))
        #expect(bare.decision == .deny)
        #expect(bare.status == .contraindicated)
        #expect(bare.trustVector.values == [.hardware: 97, .configuration: 36, .executables: 33])
        #expect(
            Set(bare.trace.compactMap { if case .missingReferenceSet(let name) = $0.actual { name } else { nil } })
                == ["mr_td", "xfam", "mr_config_id", "rtmr_1", "rtmr_2"])
    }

    @Test("tdx verify --json prints the claims, and policy eval reads that output", .enabled(if: CustosExecutable.isBuilt))
    func verifyFeedsEval() throws {
        let pair = Self.pairs[0]
        let verify = try CustosExecutable.run([
            "tdx", "verify", "--quote", TestData.url("tdx/" + pair.quote).path, "--collateral", TestData.url("tdx/" + pair.collateral).path,
            "--at", "2025-07-01T00:00:00Z", "--root", TestData.url("tdx/root/intel_sgx_root_ca.pem").path, "--json",
        ])
        #expect(verify.status == 0)
        let output = try JSONValue.parse(Array(verify.stdout.utf8))
        let (expectedClaims, _) = try Self.claims(pair)
        #expect(output["claims"] == expectedClaims)
        #expect(output["verified"] == true)
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("custos-verify-\(UUID()).json")
        try Data(verify.stdout.utf8).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let eval = try CustosExecutable.run([
            "policy", "eval", "--policies", Fixture.policiesDirectory.path, "--policy", "tdx-default", "--claims", file.path, "--at",
            "2025-07-01T00:00:00Z", "--json",
        ])
        #expect(eval.status == 0, "\(eval.stderr)")
        let result = try JSONValue.parse(Array(eval.stdout.utf8))
        #expect(result["decision"] == "allow")
        #expect(result["status"] == "affirming")
        #expect(result["trustVector"]?["hardware"] == 2)
        #expect(result["trace"]?.arrayValue?.count == 10)
        #expect(result["trace"]?.arrayValue?.first?["actual"] != nil)
    }
}

@Suite struct SEVClaimsTests {
    @Test("SEV claims: guest policy bits, API version, schema")
    func sevClaims() throws {
        // Policy 0x30007: NODBG, NOKS, ES (bits 0-2), minimum API major 3 (bits 16-23), minor 0.
        let claims = SEVClaims.document(
            launchDigest: [0xab, 0xcd], policy: GuestPolicy(rawValue: 0x3_0007),
            version: FirmwareVersion(apiMajor: 1, apiMinor: 51, buildID: 15),
            generation: "milan",
            inputs: LaunchInputs(firmware: Array("abc".utf8), cmdline: "console=ttyS0", policy: GuestPolicy(rawValue: 7)))
        #expect(claims.value(atPath: "sev.launch_digest") == "abcd")
        #expect(claims.value(atPath: "sev.guest_policy.nodbg") == true)
        #expect(claims.value(atPath: "sev.guest_policy.noks") == true)
        #expect(claims.value(atPath: "sev.guest_policy.es") == true)
        #expect(claims.value(atPath: "sev.guest_policy.nosend") == false)
        #expect(claims.value(atPath: "sev.guest_policy.api_major") == 3)
        #expect(claims.value(atPath: "sev.api_version") == "1.51")
        #expect(claims.value(atPath: "sev.build_id") == 15)
        #expect(claims.value(atPath: "sev.platform.generation") == "milan")
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        #expect(claims.value(atPath: "sev.inputs.firmware_sha256") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        for path in leafPaths(claims) { #expect(ClaimSchema.type(of: path) != nil, "\(path)") }
        // The shipped SEV-ES policy denies without reference values, and allows with the digest as a set.
        let set = try PolicySet.load(directory: Fixture.policiesDirectory, at: Fixture.now)
        let policy = try #require(set.policy(id: "sev-es-default")?.launch)
        #expect(policy.evaluate(claims: claims, referenceValues: set.referenceValues, at: Fixture.now).decision == .deny)
        let digest = ReferenceValueSet(name: "sev_es_launch_digest", values: ["abcd"])
        let allowed = policy.evaluate(claims: claims, referenceValues: ["sev_es_launch_digest": digest], at: Fixture.now)
        #expect(allowed.decision == .allow)
        #expect(allowed.status == .affirming)
    }
}

@Suite struct ShippedPoliciesTests {
    @Test("Policies/ loads, lists the three defaults, and the release default needs affirming")
    func shipped() throws {
        let set = try PolicySet.load(directory: Fixture.policiesDirectory, at: Fixture.now)
        #expect(set.policies.map(\.id) == ["release-default", "sev-es-default", "tdx-default"])
        #expect(set.policies.map(\.file) == ["release/default.yaml", "sev-es/default.yaml", "tdx/default.yaml"])
        #expect(Set(set.referenceValues.keys) == ["mr_td", "xfam", "mr_config_id", "rtmr_1", "rtmr_2"])
        let release = try #require(set.releasePolicy(tenant: "default"))
        #expect(
            release.evaluate(path: "any/thing", status: .affirming, claims: [:], referenceValues: [:], at: Fixture.now).decision == .allow)
        #expect(release.evaluate(path: "any/thing", status: .warning, claims: [:], referenceValues: [:], at: Fixture.now).decision == .deny)
        // Each listed hash is the hash of that file alone.
        for policy in set.policies {
            let text = try String(contentsOf: Fixture.policiesDirectory.appendingPathComponent(policy.file), encoding: .utf8)
            #expect(try PolicySet.parsePolicy(yaml: text, file: policy.file).sha256 == policy.sha256)
        }
        // After the example reference values expire (2030-12-31), the TDX default policy no longer loads.
        let later = Date(timeIntervalSince1970: 1_924_992_000)  // 2031-01-01
        #expect(throws: PolicyLoadError.self) { try PolicySet.load(directory: Fixture.policiesDirectory, at: later) }
    }
}

/// `tdx.eventlog.*` from a real CCEL and its quote (expected.json: 43 events, all four RTMRs match).
@Suite(.enabled(if: TestData.isAvailable, "\(TestData.skipReason)"))
struct EventLogClaimsTests {
    @Test("event-log claims of the COS-113 quote")
    func eventLog() throws {
        let quote = try Quote(parsing: TestData.bytes("tdx/quotes/q10_gotdx_cos113_v4.bin"))
        let log = try EventLog(parsing: TestData.bytes("tdx/eventlog/gotdx_ccel_data.dat"))
        let claims = TDXClaims.eventLogClaims(log, quote: quote)
        #expect(claims["rtmrs_match"] == true)
        // The peer counts 43 measured events; the log also holds the Spec ID header event (index 0).
        #expect(claims["event_count"] == 44)
        #expect(claims["boot_applications"]?.arrayValue?.isEmpty == false)
        for path in leafPaths(["tdx": ["eventlog": claims]]) { #expect(ClaimSchema.type(of: path) != nil, "\(path)") }
        // Against another quote's RTMRs the replay does not match.
        let other = try Quote(parsing: TestData.bytes("tdx/quotes/q01_dcapqvl_tdx_v4.bin"))
        #expect(TDXClaims.eventLogClaims(log, quote: other)["rtmrs_match"] == false)
    }
}
