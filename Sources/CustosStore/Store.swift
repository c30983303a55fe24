public import CustosCrypto
public import Foundation
public import GRDB

/// The durable state the service needs, small enough that a PostgreSQL implementation can follow (the scale-out
/// issue); ``SQLiteStore`` is the embedded default.
///
/// Every tenant-owned operation takes the tenant id and never crosses it: a row of another tenant is
/// ``StoreError/Code-swift.struct/notFound``. Times are passed in (`now`), so callers and tests decide the clock.
/// All methods throw only ``StoreError``.
public protocol Store: Sendable {
    // MARK: Tenants

    /// Creates a tenant and its data-encryption key.
    /// - Throws: `invalidInput` for a malformed id, `conflict` if it exists.
    func createTenant(id: String, displayName: String, now: Date) async throws(StoreError) -> Tenant
    /// ``createTenant(id:displayName:now:)`` as a step of another writer's transaction (as
    /// ``secretPut(tenantId:path:value:now:)``): the service records the tenant and its audit entry together.
    func tenantCreation(id: String, displayName: String, now: Date) -> StoreStep<Result<Tenant, StoreError>>
    /// - Throws: `notFound`.
    func tenant(id: String) async throws(StoreError) -> Tenant
    func listTenants() async throws(StoreError) -> [Tenant]

    // MARK: Credentials

    /// Creates a credential with a fresh 256-bit token; only the token's SHA-256 is stored.
    /// - Throws: `invalidInput` when the role needs a tenant and none is given (or a service-admin is given one),
    ///   `notFound` for an unknown tenant.
    func createCredential(tenantId: String?, role: Role, label: String, expiresAt: Date?, now: Date) async throws(StoreError)
        -> IssuedCredential
    /// Looks a bearer token up by its SHA-256.
    func lookupCredential(token: String, now: Date) async throws(StoreError) -> CredentialLookup
    /// Revokes a credential (idempotent: the first revocation time is kept).
    /// - Throws: `notFound`.
    func revokeCredential(id: String, now: Date) async throws(StoreError) -> Credential
    /// ``createCredential(tenantId:role:label:expiresAt:now:)`` and ``revokeCredential(id:now:)`` as steps of another
    /// writer's transaction (as ``secretPut(tenantId:path:value:now:)``); the revocation says whether it took effect.
    func credentialIssue(tenantId: String?, role: Role, label: String, expiresAt: Date?, now: Date)
        -> StoreStep<Result<IssuedCredential, StoreError>>
    func credentialRevocation(id: String, now: Date) -> StoreStep<Result<CredentialRevocation, StoreError>>
    /// A tenant's credentials, or the service-wide ones when `tenantId` is nil.
    func listCredentials(tenantId: String?) async throws(StoreError) -> [Credential]

    // MARK: Secrets

    /// Stores a new version of the secret at `path` (creating the secret on first use), sealed under the tenant's key.
    func putSecret(tenantId: String, path: String, value: SecretBytes, now: Date) async throws(StoreError) -> SecretVersion
    /// Stores a new version and schedules every earlier active version to retire at `retireAfter` (now when nil).
    func rotateSecret(tenantId: String, path: String, value: SecretBytes, retireAfter: Date?, now: Date) async throws(StoreError)
        -> SecretRotation
    /// Retires one version now: it stays listed but is never released again.
    func retireSecretVersion(tenantId: String, path: String, version: Int64, now: Date) async throws(StoreError) -> SecretVersion
    /// Deletes one version's row, ciphertext included; its number is never reused.
    func deleteSecretVersion(tenantId: String, path: String, version: Int64) async throws(StoreError)
    /// ``putSecret(tenantId:path:value:now:)``, ``rotateSecret(tenantId:path:value:retireAfter:now:)`` and
    /// ``deleteSecretVersion(tenantId:path:version:)`` as steps another writer of the same database runs inside its
    /// own transaction (the service records each change and its audit entry together). A step that fails writes
    /// nothing (its own savepoint) and its value carries the store's error (the deletion's value is the version).
    func secretPut(tenantId: String, path: String, value: SecretBytes, now: Date) -> StoreStep<Result<SecretVersion, StoreError>>
    func secretRotation(
        tenantId: String, path: String, value: SecretBytes, retireAfter: Date?, now: Date
    ) -> StoreStep<Result<SecretRotation, StoreError>>
    func secretVersionDeletion(tenantId: String, path: String, version: Int64) -> StoreStep<Result<Int64, StoreError>>
    /// The versions of a secret, metadata only, oldest first.
    func listSecretVersions(tenantId: String, path: String) async throws(StoreError) -> [SecretVersion]
    /// Opens the latest releasable version (`version == nil`) or the given one, if releasable at `now`.
    /// - Throws: `notFound` when there is no such (releasable) version, `sealing` when the ciphertext fails to open.
    func openSecret(tenantId: String, path: String, version: Int64?, now: Date) async throws(StoreError) -> OpenedSecret
    /// ``openSecret(tenantId:path:version:now:)`` (the newest releasable version) as a step another writer of the
    /// same database runs inside its own transaction: the service opens the secret and records its release in one
    /// transaction. The step's value carries the store's refusal (`notFound`, `corrupted`) instead of throwing it.
    ///
    /// With a `limit`, the step counts the release against it in the same transaction: once `maximum` releases of
    /// this path to this appraisal have been made, the value is `releaseLimit` and nothing is opened or counted.
    func secretOpening(tenantId: String, path: String, now: Date, limit: ReleaseLimit?) -> StoreStep<Result<OpenedSecret, StoreError>>

    // MARK: Reference values

    /// Writes a named set under an `If-Match` condition and returns it with its new revision.
    /// - Throws: `preconditionFailed` when the condition does not hold.
    func putReferenceValues(
        tenantId: String, name: String, values: [JSONValue], expiresAt: Date?, provenance: JSONValue?,
        condition: RevisionCondition, now: Date
    ) async throws(StoreError) -> ReferenceValueSet
    /// ``putReferenceValues(tenantId:name:values:expiresAt:provenance:condition:now:)`` as a step of another writer's
    /// transaction (as ``secretPut(tenantId:path:value:now:)``).
    func referenceValuesPut(
        tenantId: String, name: String, values: [JSONValue], expiresAt: Date?, provenance: JSONValue?, condition: RevisionCondition,
        now: Date
    ) -> StoreStep<Result<ReferenceValueSet, StoreError>>
    /// - Throws: `notFound`.
    func referenceValues(tenantId: String, name: String) async throws(StoreError) -> ReferenceValueSet

    // MARK: Appraisals

    /// Inserts an appraisal.
    func insertAppraisal(_ appraisal: Appraisal) async throws(StoreError)
    /// The insert of `appraisal` as a write another writer of the same database runs inside its own transaction: the
    /// audit log commits an appraisal and its audit entry together (one group commit, and never one without the other).
    /// - Throws: `invalidInput` for an unfit appraisal (checked now, before any transaction).
    func appraisalInsert(_ appraisal: Appraisal) throws(StoreError) -> StoreWrite
    /// - Throws: `notFound` (also for another tenant's appraisal).
    func appraisal(tenantId: String, id: String) async throws(StoreError) -> Appraisal
    /// Newest first, filtered, in pages.
    func listAppraisals(_ query: AppraisalQuery) async throws(StoreError) -> AppraisalPage
    /// Whether `tenantId` has an appraisal created before `cutoff` (read from the `(tenant_id, created_at)` index).
    func hasAppraisals(tenantId: String, createdBefore cutoff: Date) async throws(StoreError) -> Bool
    /// Deletes at most `limit` of `tenantId`'s appraisals created before `cutoff` in one transaction; returns how many
    /// went (fewer than `limit`: none are left). Retention; audit entries keep naming the ids.
    func deleteAppraisals(tenantId: String, createdBefore cutoff: Date, limit: Int) async throws(StoreError) -> Int
    /// Deletes `tenantId`'s release counts (`maxReleasesPerAttestation`) first made before `cutoff`: a release is
    /// counted after its appraisal was made, so they belong to appraisals made before it. Returns how many went.
    func deleteReleaseCounts(tenantId: String, firstBefore cutoff: Date) async throws(StoreError) -> Int

    // MARK: SEV launches

    func createLaunch(_ launch: NewLaunch) async throws(StoreError) -> Launch
    /// Records the launch measurement: exactly once, while the launch is `created` and unexpired. The same measurement
    /// again while the launch is `measured` and undecided (its decision failed before it was recorded) returns the
    /// launch unchanged, to be decided again, while its session secret is kept.
    /// - Throws: `conflict` for another measurement, any after the decision, or an expired launch (HTTP 409).
    func recordLaunchMeasurement(tenantId: String, id: String, measurement: [UInt8], now: Date) async throws(StoreError) -> Launch
    /// Records the decision on a measured launch.
    func decideLaunch(tenantId: String, id: String, allowed: Bool, appraisalId: String?, reason: String?, now: Date)
        async throws(StoreError) -> Launch
    /// The decision as a write another writer of the same database runs in its own transaction (the service commits
    /// the appraisal, the decision and its audit entry together).
    /// - Throws: `invalidInput` for an unfit reason (checked now); the write throws `notFound` or `conflict`.
    func launchDecision(tenantId: String, id: String, allowed: Bool, appraisalId: String?, reason: String?, now: Date)
        throws(StoreError) -> StoreWrite
    /// Marks an allowed launch as injected and erases its session secret.
    func markLaunchInjected(tenantId: String, id: String, now: Date) async throws(StoreError) -> Launch
    /// ``markLaunchInjected(tenantId:id:now:)`` as a write another writer runs in its own transaction.
    func launchInjection(tenantId: String, id: String, now: Date) -> StoreWrite
    func launch(tenantId: String, id: String) async throws(StoreError) -> Launch
    /// The sealed launch-session secret of a launch that is not yet injected or denied.
    func openLaunchSessionSecret(tenantId: String, id: String) async throws(StoreError) -> SecretBytes
}

/// A write to a store's database, run by another writer of the same database inside its own transaction (see
/// ``Store/appraisalInsert(_:)``). ``database`` names the database, so that a writer of another one refuses it.
public struct StoreWrite: Sendable {
    /// The identity of the database connection (pool) the write belongs to.
    public let database: ObjectIdentifier
    /// The write; throws ``StoreError`` (`conflict`, `notFound`) or a database error.
    public let body: @Sendable (Database) throws -> Void

    public init(database: ObjectIdentifier, body: @escaping @Sendable (Database) throws -> Void) {
        self.database = database
        self.body = body
    }

    /// This write, then `next`, in the same transaction.
    /// - Throws: `invalidInput` when `next` is for another database.
    public func then(_ next: StoreWrite) throws(StoreError) -> StoreWrite {
        guard next.database == database else { throw StoreError(.invalidInput, "the two writes are for different databases") }
        let first = body
        return StoreWrite(database: database) { db in
            try first(db)
            try next.body(db)
        }
    }
}

/// A step of another writer's transaction on a store's database that produces a value (see
/// ``Store/secretOpening(tenantId:path:now:limit:)``). ``database`` names the database, so that a writer of another one
/// refuses it.
public struct StoreStep<Value: Sendable>: Sendable {
    /// The identity of the database connection (pool) the step belongs to.
    public let database: ObjectIdentifier
    /// The step; throws a database error.
    public let body: @Sendable (Database) throws -> Value

    public init(database: ObjectIdentifier, body: @escaping @Sendable (Database) throws -> Value) {
        self.database = database
        self.body = body
    }
}
