import CustosAnchors
import CustosCLI
import CustosCrypto
import CustosTDX
import CustosTestSupport
import Foundation
import Testing

/// The peer results in `tdx/expected.json` (dcap-qvl 0.7.0), the only source of expected values for the real data.
struct ExpectedPair: Decodable, Sendable, CustomTestStringConvertible {
    struct Outcome: Decodable, Sendable {
        let result: String
        let status: String?
        let advisory_ids: [String]?
        let error: String?
        let now: Int?
        let offset: Int?
    }
    struct Parsed: Decodable, Sendable {
        let version: Int
        let fmspc: String
        /// dcap-qvl's name of the CA that issued the PCK certificate (`platform` / `processor`).
        let pck_ca: String
        let tee_tcb_svn, mr_seam, mr_signer_seam, seam_attributes, td_attributes, xfam, mr_td: String
        let mr_config_id, mr_owner, mr_owner_config, rt_mr0, rt_mr1, rt_mr2, rt_mr3, report_data: String
        let pck_ext: PCK
        struct PCK: Decodable, Sendable {
            let ppid, cpu_svn, pce_id, fmspc: String
            let pce_svn, sgx_type: Int
        }
    }
    struct Layout: Decodable, Sendable {
        let signed_len, sig_data_len, qe_report_off, qe_auth_len, inner_cert_type, inner_cert_size, pem_off, end, total: Int
        let body_descriptor: BodyDescriptor?
        struct BodyDescriptor: Decodable, Sendable { let type, size: Int }
    }
    let id: String
    let quote: String
    let collateral: String
    let now: Int
    let parsed: Parsed
    let layout: Layout
    let valid: Outcome
    let expired: Outcome
    let not_yet_valid: Outcome
    let flip_quote_signature: Outcome
    let flip_td_report_body: Outcome
    let flip_pck_cert: Outcome
    let flip_qe_report: Outcome
    let flip_attestation_key: Outcome
    let flip_header_user_data: Outcome

    var testDescription: String { id }
    var time: Date { Date(timeIntervalSince1970: TimeInterval(now)) }
    var collateralDirectory: String { (collateral as NSString).deletingLastPathComponent }
}

struct ExpectedEventLog: Decodable, Sendable {
    let log: String
    let table: String?
    let quote: String
    let events: Int
    let event_types: [[EventTypeEntry]]
    let replayed: [String]
    let quote_rtmrs: [String]?
    let match: [Bool]

    enum EventTypeEntry: Decodable, Sendable, Equatable {
        case int(Int)
        case string(String)
        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let value = try? container.decode(Int.self) { self = .int(value) } else { self = .string(try container.decode(String.self)) }
        }
    }
}

struct Expected: Decodable, Sendable {
    let pairs: [ExpectedPair]
    let eventlog: [ExpectedEventLog]
}

enum Fixtures {
    static let expected: Expected? = {
        guard TestData.isAvailable, let bytes = try? TestData.bytes("tdx/expected.json") else { return nil }
        return try? JSONDecoder().decode(Expected.self, from: Data(bytes))
    }()

    /// Why `expected.json` does not decode (nil when it does or when there is no test data): a test requires it, so
    /// a schema change cannot leave every parametrised test with zero cases.
    static var expectedDecodingError: String? {
        guard TestData.isAvailable, let bytes = try? TestData.bytes("tdx/expected.json") else { return nil }
        do {
            _ = try JSONDecoder().decode(Expected.self, from: Data(bytes))
            return nil
        } catch { return "\(error)" }
    }

    static var pairs: [ExpectedPair] { expected?.pairs ?? [] }

    static func quote(_ path: String) throws -> [UInt8] { try TestData.bytes("tdx/" + path) }

    static func collateral(_ path: String) throws -> Collateral {
        try TDXCollateralLoader.load(path: TestData.url("tdx/" + path).path)
    }

    /// The Intel SGX Root CA from testdata (the same certificate the anchor store pins).
    static func intelRoot() throws -> Certificate {
        try Certificate(derEncoded: TestData.bytes("tdx/root/intel_sgx_root_ca.der"))
    }

    static func verifier(cache: VerificationCache? = nil) throws -> QuoteVerifier {
        QuoteVerifier(trustedRoot: try intelRoot(), cache: cache)
    }
}
