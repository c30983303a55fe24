public import CustosPolicy
public import Foundation
public import Logging
import Synchronization

/// The active policies of the service: loaded from the policies directory at start, replaced atomically by
/// ``reload(at:)`` (`POST /v1/policies:reload`). A failed reload changes nothing.
public final class PolicyRegistry: Sendable {
    public let directory: URL
    private let state: Mutex<PolicySet>

    /// Loads `directory`; a policy folder with any problem refuses to start the service.
    public init(directory: URL, at time: Date = Date()) throws(PolicyLoadError) {
        self.directory = directory
        self.state = Mutex(try PolicySet.load(directory: directory, at: time))
    }

    public init(set: PolicySet, directory: URL) {
        self.directory = directory
        self.state = Mutex(set)
    }

    /// The policies in force now.
    public var current: PolicySet { state.withLock { $0 } }

    /// Re-reads the directory and swaps the set in one step; on error the old set stays.
    @discardableResult
    public func reload(at time: Date = Date()) throws(PolicyLoadError) -> PolicySet {
        let fresh = try load(at: time)
        install(fresh)
        return fresh
    }

    /// Reads the directory without putting the set in force (see ``install(_:)``).
    public func load(at time: Date = Date()) throws(PolicyLoadError) -> PolicySet {
        try PolicySet.load(directory: directory, at: time)
    }

    /// Puts `set` in force.
    public func install(_ set: PolicySet) { state.withLock { $0 = set } }

    /// Runs `body` (a reload: load, record, install) unless another one is running, in which case it returns nil:
    /// two reloads never interleave, so the audit log's order of `policy.loaded` entries is the order the sets went
    /// into force.
    public func exclusively<T: Sendable>(_ body: () async throws -> T) async throws -> T? {
        let acquired = reloading.withLock { busy -> Bool in
            if busy { return false }
            busy = true
            return true
        }
        guard acquired else { return nil }
        defer { reloading.withLock { $0 = false } }
        return try await body()
    }
    private let reloading = Mutex(false)
}

extension PolicyRegistry {
    /// Logs a warning naming the loaded example reference sets (files marked `examples: true`), if any.
    public static func warnAboutExamples(_ set: PolicySet, logger: Logger) {
        let examples = set.exampleSets
        guard !examples.isEmpty else { return }
        let files = Set(examples.compactMap(\.file)).sorted().joined(separator: ", ")
        logger.warning(
            "example reference values are loaded (\(examples.map(\.name).joined(separator: ", ")) from \(files)): they match public images; replace them, or store each tenant's sets, before the service holds a real secret"
        )
    }
}

extension PolicySet {
    /// The appraisal policy for evidence of `tee` (`tdx`): the one with id `<tee>-default` when present, else the
    /// first appraisal policy for that TEE (ids sort, so the choice is stable).
    public func appraisalPolicy(tee: String) -> AppraisalPolicy? {
        let candidates = policies.filter { $0.kind == .appraisal && $0.tee == tee }
        return (candidates.first { $0.id == "\(tee)-default" } ?? candidates.first)?.appraisal
    }

    /// The launch policy for `tee` (`sev`, `sev-es`): `<tee>-default` when present, else the first.
    public func launchPolicy(tee: String) -> LaunchPolicy? {
        let candidates = policies.filter { $0.kind == .launch && $0.tee == tee }
        return (candidates.first { $0.id == "\(tee)-default" } ?? candidates.first)?.launch
    }

    /// The reference values an evaluation for `tenant` sees: the policy folder's sets, overridden by the tenant's
    /// own sets of the same name from the store.
    public func referenceValues(overriddenBy tenantSets: [CustosPolicy.ReferenceValueSet]) -> [String: CustosPolicy.ReferenceValueSet] {
        var merged = referenceValues
        for set in tenantSets { merged[set.name] = set }
        return merged
    }
}
