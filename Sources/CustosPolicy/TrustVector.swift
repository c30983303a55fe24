public import CustosCrypto
import Foundation

/// An AR4SI trustworthiness claim (draft-ietf-rats-ar4si §2.3.3), as rust-ear names them.
public enum TrustClaim: String, Sendable, Hashable, CaseIterable, Comparable {
    case instanceIdentity = "instance_identity"
    case configuration
    case executables
    case fileSystem = "file_system"
    case hardware
    case runtimeOpaque = "runtime_opaque"
    case storageOpaque = "storage_opaque"
    case sourcedData = "sourced_data"

    /// The member name in an EAR `ear.trustworthiness-vector` (`instance-identity`, …).
    public var earName: String {
        // Constants: this runs for every claim of every appraisal and token (Foundation's replacingOccurrences was
        // 2 % of a KBS attestation's CPU).
        switch self {
        case .instanceIdentity: "instance-identity"
        case .configuration: "configuration"
        case .executables: "executables"
        case .fileSystem: "file-system"
        case .hardware: "hardware"
        case .runtimeOpaque: "runtime-opaque"
        case .storageOpaque: "storage-opaque"
        case .sourcedData: "sourced-data"
        }
    }

    public static func < (lhs: TrustClaim, rhs: TrustClaim) -> Bool {
        allCases.firstIndex(of: lhs) ?? 0 < allCases.firstIndex(of: rhs) ?? 0
    }
}

/// An AR4SI trust tier; also the appraisal status (`ear.status`), which is the worst tier of the set claims.
public enum TrustTier: String, Sendable, Hashable, CaseIterable, Comparable {
    case none
    case affirming
    case warning
    case contraindicated

    /// The tier of a claim value, as rust-ear assigns it: −1…1 none, 2…31 and −32…−2 affirming, 32…95 and −96…−33
    /// warning, 96…127 and −128…−97 contraindicated.
    public init(value: Int8) {
        switch value {
        case -1...1: self = .none
        case 2...31, -32 ... -2: self = .affirming
        case 32...95, -96 ... -33: self = .warning
        default: self = .contraindicated
        }
    }

    /// rust-ear's order: none < affirming < warning < contraindicated ("worst" is the greatest).
    private var rank: Int {
        switch self {
        case .none: return 0
        case .affirming: return 1
        case .warning: return 2
        case .contraindicated: return 3
        }
    }

    public static func < (lhs: TrustTier, rhs: TrustTier) -> Bool { lhs.rank < rhs.rank }

    /// Whether a status meets `required` for a release or an appraisal decision: `affirming` is met by affirming
    /// only; `warning` by affirming or warning; `contraindicated` by any tier but none. `none` never meets anything
    /// but `none`.
    public func meets(_ required: TrustTier) -> Bool {
        if self == .none { return required == .none }
        if required == .none { return true }
        return self <= required
    }
}

/// An AR4SI trustworthiness vector: the claims a policy set, with their values.
public struct TrustVector: Sendable, Hashable {
    public private(set) var values: [TrustClaim: Int8]

    public init(_ values: [TrustClaim: Int8] = [:]) { self.values = values }

    public subscript(claim: TrustClaim) -> Int8? {
        get { values[claim] }
        set { values[claim] = newValue }
    }

    /// The worst tier of the set claims (`none` when no claim is set).
    public var status: TrustTier { values.values.map(TrustTier.init(value:)).max() ?? .none }

    /// All eight claims (unset ones 0), keyed as in the policy language (`instance_identity`, …).
    public var jsonValue: JSONValue {
        .object(Dictionary(uniqueKeysWithValues: TrustClaim.allCases.map { ($0.rawValue, JSONValue.integer(Int64(values[$0] ?? 0))) }))
    }

    /// All eight claims keyed as in an EAR (`instance-identity`, …).
    public var earValue: JSONValue {
        .object(Dictionary(uniqueKeysWithValues: TrustClaim.allCases.map { ($0.earName, JSONValue.integer(Int64(values[$0] ?? 0))) }))
    }
}
