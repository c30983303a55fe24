public import CustosCrypto
public import Foundation

/// A named set of reference values (`mr_td`, `rtmr_1`, `snp_launch_measurement`, …): the values a claim may take,
/// until when they may be used, and where they came from.
///
/// Sets come from `Policies/ReferenceValues/*.yaml` and, at run time, from the service's per-tenant store; policies
/// name them in `inRef` conditions.
public struct ReferenceValueSet: Sendable, Hashable {
    public let name: String
    public let values: [JSONValue]
    /// After this instant the set must not be used: `inRef` against it fails (`actual: expired reference set …`).
    public let expires: Date?
    /// Where the values came from (build id, signer, pipeline…), free-form.
    public let provenance: JSONValue?
    public let description: String?
    /// The file that defined the set (relative to the policy directory), or `nil` for a set from the store.
    public let file: String?
    /// Defined by a file marked `examples: true` (sample measurements of public images, not a deployment's own).
    public let isExample: Bool

    private let lookup: Set<JSONValue>

    public init(
        name: String, values: [JSONValue], expires: Date? = nil, provenance: JSONValue? = nil, description: String? = nil,
        file: String? = nil, isExample: Bool = false
    ) {
        self.name = name
        self.values = values
        self.expires = expires
        self.provenance = provenance
        self.description = description
        self.file = file
        self.isExample = isExample
        self.lookup = Set(values)
    }

    /// Whether the set may no longer be used at `time`.
    public func isExpired(at time: Date) -> Bool { expires.map { $0 <= time } ?? false }

    /// Whether `value` is one of the set's values.
    public func contains(_ value: JSONValue) -> Bool { lookup.contains(value) }

    public static func == (lhs: ReferenceValueSet, rhs: ReferenceValueSet) -> Bool {
        lhs.name == rhs.name && lhs.values == rhs.values && lhs.expires == rhs.expires && lhs.provenance == rhs.provenance
            && lhs.description == rhs.description && lhs.file == rhs.file
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(name)
        hasher.combine(values)
    }
}
