import CustosCrypto
import CustosPolicy
import CustosSEV
import CustosStore
import Foundation
import HTTPTypes
import Synchronization

// MARK: - Requests

/// A parsed `POST /v1/launches` body (service.md §7, §8.2; issue 11 §4).
struct LaunchRequest: Sendable {
    /// One secret the launch injects: the EFI secret-table GUID the guest reads it under and the tenant's secret path.
    struct SecretReference: Sendable, Hashable {
        let guid: EFIGUID
        let path: String
    }

    let workloadID: String
    /// `sev` or `sev-es`.
    let tee: String
    let guestPolicy: GuestPolicy
    let platform: PlatformCertificates
    let secrets: [SecretReference]
    /// The `tenant` member (service-admin only).
    let tenant: String?

    static let members: Set<String> = ["workload_id", "tee", "guest_policy", "platform", "secrets", "tenant"]

    /// Parses and checks the body; every problem is a 400 naming the member.
    init(_ body: [String: JSONValue]) throws {
        try HTTPJSON.checkKeys(body, allowed: Self.members)
        workloadID = try HTTPJSON.string(body, "workload_id")
        do { try Appraisal.checkWorkloadID(workloadID) } catch { throw Problem.badRequest("\"workload_id\": \(error.reason)") }
        tee = try HTTPJSON.string(body, "tee")
        guard tee == "sev" || tee == "sev-es" else { throw Problem.badRequest("\"tee\" must be \"sev\" or \"sev-es\"") }
        guard let rawPolicy = body["guest_policy"]?.integerValue, let policyBits = UInt32(exactly: rawPolicy) else {
            throw Problem.badRequest("\"guest_policy\" must be an integer 0…4294967295")
        }
        guestPolicy = GuestPolicy(rawValue: policyBits)
        guard !guestPolicy.hasReservedBits else { throw Problem.badRequest("\"guest_policy\" sets reserved bits 6–15") }
        // The ES bit decides which launch flow the firmware runs; it must agree with the TEE the policy is chosen by.
        guard guestPolicy.isEncryptedState == (tee == "sev-es") else {
            throw Problem.badRequest("\"guest_policy\" bit 2 (ES) must be \(tee == "sev-es" ? "set" : "clear") for tee \"\(tee)\"")
        }
        platform = try Self.platform(body["platform"])
        secrets = try Self.secrets(body["secrets"])
        tenant = try HTTPJSON.optionalString(body, "tenant")
    }

    /// `platform: {pdh, cert_chain}`: libvirt's base64 `pdh` and `cert-chain` (PEK ‖ OCA ‖ CEK), or `cert_chain` as
    /// an object of base64 `pek`, `oca`, `cek` (`ask`/`ark` are accepted and ignored: the roots are ours).
    static func platform(_ value: JSONValue?) throws -> PlatformCertificates {
        guard case .object(let members)? = value else { throw Problem.badRequest("\"platform\" must be an object {pdh, cert_chain}") }
        try HTTPJSON.checkKeys(members, allowed: ["pdh", "cert_chain"])
        let pdh = try base64(members, "pdh", field: "platform.pdh")
        let chain: [UInt8]
        switch members["cert_chain"] {
        case .string?:
            chain = try base64(members, "cert_chain", field: "platform.cert_chain")
        case .object(let parts)?:
            try HTTPJSON.checkKeys(parts, allowed: ["pek", "oca", "cek", "ask", "ark"])
            chain =
                try base64(parts, "pek", field: "platform.cert_chain.pek") + base64(parts, "oca", field: "platform.cert_chain.oca")
                + base64(parts, "cek", field: "platform.cert_chain.cek")
        default:
            throw Problem.badRequest("\"platform.cert_chain\" must be base64 (PEK ‖ OCA ‖ CEK) or an object {pek, oca, cek}")
        }
        do { return try PlatformCertificates(pdh: pdh, certChain: chain) } catch {
            throw Problem(
                .badRequest, "bad-request", "platform: \(error.reason)",
                extensions: error.offset.map { ["offset": .integer(Int64($0))] } ?? [:])
        }
    }

    /// `secrets: [{guid, path}]`: 1…64 entries with distinct GUIDs (`luks-key` names GRUB's disk-key GUID).
    static func secrets(_ value: JSONValue?) throws -> [SecretReference] {
        guard case .array(let entries)? = value, !entries.isEmpty, entries.count <= SecretTable.maxEntries else {
            throw Problem.badRequest("\"secrets\" must be an array of 1…\(SecretTable.maxEntries) {guid, path} objects")
        }
        var references: [SecretReference] = []
        for (index, entry) in entries.enumerated() {
            guard case .object(let members) = entry else { throw Problem.badRequest("secrets[\(index)] must be an object {guid, path}") }
            try HTTPJSON.checkKeys(members, allowed: ["guid", "path"])
            let name = try HTTPJSON.string(members, "guid")
            let guid: EFIGUID
            do { guid = try SecretEntry.guid(named: name) } catch {
                throw Problem.badRequest("secrets[\(index)].guid must be a GUID or \"luks-key\": \(error.reason)")
            }
            let path = try HTTPJSON.string(members, "path")
            guard !path.isEmpty, path.utf8.count <= 512 else { throw Problem.badRequest("secrets[\(index)].path must be 1…512 bytes") }
            references.append(SecretReference(guid: guid, path: path))
        }
        guard Set(references.map(\.guid)).count == references.count else { throw Problem.badRequest("secret GUIDs must be distinct") }
        return references
    }

    static func base64(_ members: [String: JSONValue], _ key: String, field: String) throws -> [UInt8] {
        guard case .string(let text)? = members[key] else { throw Problem.badRequest("\"\(field)\" must be a base64 string") }
        do { return try Base64.decode(text) } catch { throw Problem.badRequest("\"\(field)\" is not valid base64") }
    }
}

/// A parsed `POST /v1/launches/{id}/measurement` body.
struct MeasurementRequest: Sendable {
    /// Where the expected launch digest comes from.
    enum Expected: Sendable {
        /// The digest the host says it launched (`firmware_digest`, hex, as `custos sev measure` prints it); the MAC
        /// proves the firmware measured exactly this, and the launch policy then judges it.
        case digest([UInt8])
        /// A reference-value set whose values (hex launch digests) are tried in turn (`reference`).
        case reference(String)
    }

    /// MEASURE(32) ‖ MNONCE(16) as LAUNCH_MEASURE returns it (libvirt `sev-measurement`).
    let measurement: [UInt8]
    let version: FirmwareVersion
    let expected: Expected
    let vcpus: Int?
    let vcpuType: String?
    let guestPolicy: UInt32?

    static let members: Set<String> = [
        "measurement_b64", "api_major", "api_minor", "build_id", "vcpus", "vcpu_type", "firmware_digest", "reference", "guest_policy",
    ]

    init(_ body: [String: JSONValue]) throws {
        try HTTPJSON.checkKeys(body, allowed: Self.members)
        let text = try HTTPJSON.string(body, "measurement_b64")
        do { measurement = try Base64.decode(text) } catch { throw Problem.badRequest("\"measurement_b64\" is not valid base64") }
        guard measurement.count == 48 else {
            throw Problem.badRequest("\"measurement_b64\" must decode to 48 bytes (MEASURE ‖ MNONCE), got \(measurement.count)")
        }
        func byte(_ key: String) throws -> UInt8 {
            guard let value = body[key]?.integerValue, let byte = UInt8(exactly: value) else {
                throw Problem.badRequest("\"\(key)\" must be an integer 0…255")
            }
            return byte
        }
        version = FirmwareVersion(apiMajor: try byte("api_major"), apiMinor: try byte("api_minor"), buildID: try byte("build_id"))
        switch (try HTTPJSON.optionalString(body, "firmware_digest"), try HTTPJSON.optionalString(body, "reference")) {
        case (let hex?, nil):
            guard hex.count == 64, let digest = try? Hex.decode(hex), digest.count == 32 else {
                throw Problem.badRequest("\"firmware_digest\" must be the 32-byte launch digest in hex")
            }
            expected = .digest(digest)
        case (nil, let name?):
            guard !name.isEmpty, name.utf8.count <= 128 else { throw Problem.badRequest("\"reference\" must be a reference-set name") }
            expected = .reference(name)
        default:
            throw Problem.badRequest("exactly one of \"firmware_digest\" and \"reference\" is required")
        }
        if let value = body["vcpus"], value != .null {
            guard let count = value.integerValue, (1...Int64(LaunchDigest.maxVCPUs)).contains(count) else {
                throw Problem.badRequest("\"vcpus\" must be an integer 1…\(LaunchDigest.maxVCPUs)")
            }
            vcpus = Int(count)
        } else {
            vcpus = nil
        }
        vcpuType = try HTTPJSON.optionalString(body, "vcpu_type")
        if let vcpuType, vcpuType.isEmpty || vcpuType.utf8.count > 64 { throw Problem.badRequest("\"vcpu_type\" must be 1…64 bytes") }
        if let value = body["guest_policy"], value != .null {
            guard let raw = value.integerValue, let bits = UInt32(exactly: raw) else {
                throw Problem.badRequest("\"guest_policy\" must be an integer 0…4294967295")
            }
            guestPolicy = bits
        } else {
            guestPolicy = nil
        }
    }
}

// MARK: - The sealed session record

/// What the service keeps of a launch session until injection, sealed in the launch row (``NewLaunch/sessionSecret``):
/// `0x01 ‖ TEK(16) ‖ TIK(16) ‖ JCS({generation, secrets: [{guid, path}]})`.
///
/// The secret references ride in the sealed record (not in a column) so they are bound to the launch by the
/// sealing AAD and erased with the keys; they name paths, never values.
struct LaunchSessionRecord: Sendable {
    static let format: UInt8 = 1
    let keys: TransportKeys
    let generation: String
    let secrets: [LaunchRequest.SecretReference]

    var sealed: SecretBytes {
        let document: JSONValue = [
            "generation": .string(generation),
            "secrets": .array(secrets.map { ["guid": .string($0.guid.description), "path": .string($0.path)] }),
        ]
        let json = CanonicalJSON.encode(document)
        // One allocation of the final size: growing the array would free buffers holding the keys unzeroed.
        var bytes: [UInt8] = []
        bytes.reserveCapacity(1 + keys.tek.count + keys.tik.count + json.count)
        bytes.append(Self.format)
        keys.tek.withBytes { bytes += $0 }
        keys.tik.withBytes { bytes += $0 }
        bytes += json
        let secret = SecretBytes(bytes)
        secureZero(&bytes)
        return secret
    }

    init(keys: TransportKeys, generation: String, secrets: [LaunchRequest.SecretReference]) {
        self.keys = keys
        self.generation = generation
        self.secrets = secrets
    }

    /// Opens a stored record; anything unexpected is a 500 (the row was written by this code).
    init(opening sealed: SecretBytes) throws {
        var bytes = sealed.unsafeCopy()
        defer { secureZero(&bytes) }
        guard bytes.count > 33, bytes[0] == Self.format else { throw Problem.internalError() }
        do {
            keys = try TransportKeys(tek: SecretBytes(Array(bytes[1..<17])), tik: SecretBytes(Array(bytes[17..<33])))
        } catch { throw Problem.internalError() }
        guard let document = try? JSONValue.parse(Array(bytes[33...])), let generation = document["generation"]?.stringValue,
            let entries = document["secrets"]?.arrayValue
        else { throw Problem.internalError() }
        self.generation = generation
        secrets = try entries.map { entry in
            guard let text = entry["guid"]?.stringValue, let guid = try? EFIGUID(text), let path = entry["path"]?.stringValue else {
                throw Problem.internalError()
            }
            return LaunchRequest.SecretReference(guid: guid, path: path)
        }
    }
}

// MARK: - The service

/// The SEV/SEV-ES measured launch (service.md §7): the launcher on the host only relays blobs; the platform chain
/// check, the TEK/TIK, the measurement check, the policy decision and the secret packet all happen here.
struct LaunchService: Sendable {
    let store: any Store
    let audit: AuditRecorder
    let policies: PolicyRegistry
    let anchors: TrustAnchors
    /// The tenants' stored reference values (the cache the TDX path and the admin routes' writes share).
    let referenceValues: ReferenceValueCache
    /// How long a launch may wait for its measurement.
    static let lifetime: TimeInterval = 600
    /// At most this many digests of a reference set are tried against one measurement (each is one HMAC).
    static let maxCandidates = 4096
    /// The launches whose measurement is being decided now, so that a retry of the same measurement (see
    /// ``measure(_:launchID:tenant:principal:requestID:evidenceSHA256:now:)``) never runs beside the attempt it
    /// repeats. One service process owns the data directory (``DataDirectoryLock``), so memory is enough.
    let deciding = DecidingLaunches()

    /// What ``create(_:tenant:principal:requestID:now:)`` returns to the launcher.
    struct Created: Sendable {
        let launch: Launch
        let godh: [UInt8]
        let session: [UInt8]
    }

    /// What ``measure(_:launchID:tenant:principal:requestID:evidenceSHA256:now:)`` decided.
    enum Decision: Sendable {
        case allowed(appraisalID: String, header: [UInt8], data: [UInt8])
        case denied(appraisalID: String, reason: String)
    }

    // MARK: Create

    /// Verifies the platform chain to the AMD roots first, then builds the session, seals TEK/TIK and the secret
    /// references in a new launch record and audits `launch.created`.
    func create(_ request: LaunchRequest, tenant: String, principal: Principal, requestID: String?, now: Date) async throws -> Created {
        guard !anchors.sevRoots.isEmpty else {
            throw Problem.unavailable("no AMD root keys are installed (custos certs install)", retryAfter: 300)
        }
        let chain: ValidatedPlatformChain
        switch SEVChainVerifier.verify(request.platform, roots: anchors.sevRoots) {
        case .verified(let verified): chain = verified
        case .rejected(let failure):
            throw Problem.unprocessable("the platform certificate chain does not verify to the AMD roots: \(failure)")
        }
        guard let policy = policies.current.launchPolicy(tee: request.tee) else {
            throw Problem.unavailable("no LaunchPolicy for tee \"\(request.tee)\" is loaded", retryAfter: 60)
        }
        // The launcher names the secrets, but it is the host: the tenant's ReleasePolicy must list each path (default
        // deny), and decides again on the launch's appraisal when it is measured.
        if !request.secrets.isEmpty {
            guard let release = policies.current.releasePolicy(tenant: tenant) else {
                throw Problem(
                    .forbidden, "policy-denied", "tenant \(tenant) has no release policy (default deny): no secret can be injected")
            }
            for (index, secret) in request.secrets.enumerated() where release.secret(for: secret.path) == nil {
                throw Problem(
                    .forbidden, "policy-denied",
                    "secrets[\(index)]: the release policy \(release.id) of tenant \(tenant) does not list \"\(secret.path)\" (default deny)"
                )
            }
        }
        // Every named secret must exist now (its releasable version is chosen at injection).
        for (index, secret) in request.secrets.enumerated() {
            do { _ = try await store.listSecretVersions(tenantId: tenant, path: secret.path) } catch {
                throw Problem.badRequest("secrets[\(index)]: tenant \(tenant) has no secret at \"\(secret.path)\"")
            }
        }
        let session: LaunchSession
        do { session = try LaunchSession.make(for: chain, policy: request.guestPolicy) } catch {
            throw Problem.badRequest("the launch session cannot be built: \(error.reason)")
        }
        let record = LaunchSessionRecord(keys: session.transportKeys, generation: chain.productLine.name, secrets: request.secrets)
        let launch = try await mapped {
            try await store.createLaunch(
                NewLaunch(
                    tenantId: tenant, workloadId: request.workloadID, tee: request.tee, policyId: policy.id,
                    guestPolicy: request.guestPolicy.rawValue, createdAt: now, expiresAt: now.addingTimeInterval(Self.lifetime),
                    sessionSecret: record.sealed))
        }
        try await audit.record(
            "launch.created", tenant: tenant, actor: Self.actor(principal),
            object: [
                "launch": .string(launch.id), "workload": .string(launch.workloadId), "tee": .string(launch.tee),
                "guest_policy": .integer(Int64(launch.guestPolicy)), "policy": .string(policy.reference),
                "platform": [
                    "generation": .string(chain.productLine.name), "pdh_sha256": .string(Hex.encode(Digest.sha256(chain.pdh.bytes))),
                ],
                "secrets": Self.secretList(request.secrets), "expires_at": .string(RFC3339.format(launch.expiresAt, milliseconds: true)),
            ],
            requestID: requestID, time: now)
        return Created(launch: launch, godh: session.godh.bytes, session: session.blob.bytes)
    }

    // MARK: Measure

    /// Records the measurement (once), checks its MAC with the launch's TIK against the expected digest, evaluates
    /// the tenant's launch policy, stores the appraisal, audits the decision and, when allowed, builds the secret
    /// packet from the tenant's secrets and erases the session.
    ///
    /// A 503 after the measurement was recorded (a secret, the session or the log that could not be read or written
    /// then) leaves the launch measured and undecided: the launcher retries with the same measurement and the launch
    /// is decided then. A second request while one is being decided is a 409.
    func measure(
        _ request: MeasurementRequest, launchID: String, tenant: String, principal: Principal, requestID: String?,
        evidenceSHA256: [UInt8], now: Date
    ) async throws -> Decision {
        guard deciding.begin(tenant: tenant, launchID: launchID) else {
            throw Problem.conflict("a measurement of launch \(launchID) is being decided")
        }
        defer { deciding.end(tenant: tenant, launchID: launchID) }
        let launch = try await mapped { try await store.launch(tenantId: tenant, id: launchID) }
        if let claimed = request.guestPolicy, claimed != launch.guestPolicy {
            throw Problem.badRequest("\"guest_policy\" \(claimed) is not the launch's \(launch.guestPolicy)")
        }
        // What the decision needs is read before the measurement is recorded: a failure here is a 503 the launcher
        // can retry, not a launch whose one measurement is spent. A tenant's stored set that cannot be read is that
        // failure (it used to be skipped, and the loaded policies' set of the same name used in its place).
        // The policy fixed at creation, by id (a reload that renamed it must not hand the launch to another one).
        let set = policies.current
        guard let policy = set.policy(id: launch.policyId)?.launch, policy.tee == launch.tee else {
            throw Problem.unavailable("the launch policy \(launch.policyId) is no longer loaded", retryAfter: 60)
        }
        let release = set.releasePolicy(tenant: tenant)
        let tenantSets: [CustosPolicy.ReferenceValueSet]
        let setNames = Self.names(policy, request).union(release?.referenceValueNames ?? []).sorted()
        do { tenantSets = try await self.referenceValues.sets(tenant: tenant, names: setNames, now: now) } catch {
            throw Problem.unavailable("the tenant's reference values cannot be read: \(error.reason)", retryAfter: 5)
        }
        let referenceValues = set.referenceValues(overriddenBy: tenantSets)
        // Exactly once: another measurement, one after the decision or one after expiry is a 409 here, before anything
        // is decided; the same one again on an undecided launch is a retry and decides it.
        _ = try await mapped {
            try await store.recordLaunchMeasurement(tenantId: tenant, id: launchID, measurement: request.measurement, now: now)
        }
        let record = try LaunchSessionRecord(
            opening: try await mapped { try await store.openLaunchSessionSecret(tenantId: tenant, id: launchID) })
        let guestPolicy = GuestPolicy(rawValue: launch.guestPolicy)
        let sevMeasurement = Base64.encode(request.measurement)

        // Which expected digest, if any, the firmware's MAC proves.
        var verified: VerifiedMeasurement? = nil
        let expectedDescription: JSONValue
        switch request.expected {
        case .digest(let digest):
            expectedDescription = .string(Hex.encode(digest))
            if case .verified(let measurement) = MeasurementChecker.check(
                sevMeasurement: sevMeasurement, tik: record.keys.tik, version: request.version, policy: guestPolicy, launchDigest: digest)
            {
                verified = measurement
            }
        case .reference(let name):
            expectedDescription = .string("a value of reference set \(name)")
            if let candidates = referenceValues[name], !candidates.isExpired(at: now) {
                for value in candidates.values.prefix(Self.maxCandidates) {
                    guard let hex = value.stringValue, hex.count == 64, let digest = try? Hex.decode(hex) else { continue }
                    if case .verified(let measurement) = MeasurementChecker.check(
                        sevMeasurement: sevMeasurement, tik: record.keys.tik, version: request.version, policy: guestPolicy,
                        launchDigest: digest)
                    {
                        verified = measurement
                        break
                    }
                }
            }
        }

        // Claims and the policy's verdict; an unproven measurement is denied without consulting the policy.
        var claims: JSONValue
        var verdict: Verdict
        if let verified {
            claims = Self.addingInputs(SEVClaims.document(verified, generation: record.generation), request)
            let result = policy.evaluate(claims: claims, referenceValues: referenceValues, at: now)
            verdict = Verdict(
                allowed: result.decision == .allow, status: result.status, trustVector: result.trustVector.jsonValue,
                trace: result.trace.map(\.jsonValue), reason: result.decision == .allow ? nil : Self.denialReason(result))
        } else {
            claims = SEVClaims.document(launchDigest: [], policy: guestPolicy, version: request.version, generation: record.generation)
            claims = Self.addingInputs(Self.removingLaunchDigest(claims), request)
            let line = TraceLine(
                rule: "measurement", claim: "sev.launch_digest", operator: "measures", expected: expectedDescription,
                actual: .value("LAUNCH_MEASURE's MAC does not verify with this launch's TIK for the expected digest"), passed: false)
            verdict = Verdict(
                allowed: false, status: .contraindicated, trustVector: TrustVector([.executables: 99]).jsonValue, trace: [line.jsonValue],
                reason: "the launch measurement does not verify against the expected launch digest")
        }

        // When allowed, build the packet before deciding: a secret that cannot be released turns the launch into a
        // denial, never into an allowed launch without its secret.
        var packet: SecretPacket? = nil
        var released: [JSONValue] = []
        if verdict.allowed, verified != nil, !record.secrets.isEmpty,
            let refusal = Self.releaseRefusal(
                release, tenant: tenant, paths: record.secrets.map(\.path), status: verdict.status, claims: claims,
                referenceValues: referenceValues, now: now)
        {
            verdict.reason = refusal
        } else if verdict.allowed, let verified {
            do {
                var entries: [SecretEntry] = []
                for reference in record.secrets {
                    let opened = try await store.openSecret(tenantId: tenant, path: reference.path, version: nil, now: now)
                    entries.append(SecretEntry(guid: reference.guid, data: opened.value))
                    released.append([
                        "guid": .string(reference.guid.description), "path": .string(reference.path),
                        "version": .integer(opened.version.version),
                    ])
                }
                // The host's firmware image is not at hand: the table must fit the AmdSev builds' 3 KiB secret area
                // (a larger one would overrun the kernel-hashes table after it, and Linux's efi_secret refuses it).
                packet = try SecretPacket(
                    table: try SecretTable(entries: entries), keys: record.keys, measurement: verified,
                    firmwareSecretArea: OVMFFooter.Area(base: 0, size: UInt32(SecretTable.ovmfSecretAreaSize)))
            } catch let error as StoreError where error.code == .notFound {
                verdict.reason = "a secret of the launch cannot be released: \(error.reason)"
            } catch let error as StoreError {
                // Not a verdict on the launch: the store could not open a secret (busy, unsealing). No decision is
                // recorded; the launch stays measured and is erased with the stale ones.
                throw Problem.unavailable("a secret of the launch cannot be read now: \(error.reason)", retryAfter: 5)
            } catch let error as SEVError {
                verdict.reason = "the secret packet cannot be built: \(error.reason)"
            }
        }
        let reason = verdict.reason
        let allowed = packet != nil
        let appraisal = Appraisal(
            tenantId: tenant, workloadId: launch.workloadId, tee: launch.tee, createdAt: now,
            status: AppraisalStatus(rawValue: verdict.status.rawValue) ?? .none, policyId: policy.id,
            policySHA256: Self.sha256(of: policy.reference), trustVector: verdict.trustVector, claims: claims,
            trace: .array(verdict.trace), tokenJTI: nil, evidenceSHA256: evidenceSHA256)
        let summary: JSONValue = [
            "id": .string(appraisal.id), "policy": .string(policy.reference), "status": .string(appraisal.status.rawValue),
        ]
        var object: [String: JSONValue] = [
            "launch": .string(launchID), "workload": .string(launch.workloadId), "tee": .string(launch.tee),
            "measurement_verified": .bool(verified != nil),
            "firmware": [
                "api_version": .string("\(request.version.apiMajor).\(request.version.apiMinor)"),
                "build_id": .integer(Int64(request.version.buildID)),
            ],
        ]
        if let verified { object["launch_digest"] = .string(Hex.encode(verified.launchDigest)) }
        if let reason { object["reason"] = .string(reason) }
        let decided = try audit.event(
            allowed ? "launch.measurement.allowed" : "launch.measurement.denied", tenant: tenant, actor: Self.actor(principal),
            object: .object(object), appraisal: summary, requestID: requestID, time: now)
        // The appraisal, the launch's decision and its audit entry commit in one transaction: none of them exists
        // without the others. An allowed launch also records its injected state (which erases the session secret) and
        // that entry in the same transaction, so a decision is never recorded whose packet the host did not receive.
        let decision = try await mapped {
            try store.appraisalInsert(appraisal).then(
                store.launchDecision(tenantId: tenant, id: launchID, allowed: allowed, appraisalId: appraisal.id, reason: reason, now: now))
        }
        guard let packet else {
            try await audit.record(decided, alongside: decision)
            return .denied(appraisalID: appraisal.id, reason: reason ?? "denied")
        }
        let injected = try audit.event(
            "launch.secret.injected", tenant: tenant, actor: Self.actor(principal),
            object: ["launch": .string(launchID), "workload": .string(launch.workloadId), "secrets": .array(released)],
            appraisal: summary, requestID: requestID, time: now)
        let injection = try await mapped { try decision.then(store.launchInjection(tenantId: tenant, id: launchID, now: now)) }
        try await audit.record([decided, injected], alongside: injection)
        return .allowed(appraisalID: appraisal.id, header: packet.header, data: packet.ciphertext)
    }

    // MARK: Helpers

    /// The set of launches being decided (``deciding``).
    final class DecidingLaunches: Sendable {
        private let ids = Mutex<Set<String>>([])
        /// False when `launchID` of `tenant` is being decided already; else marks it.
        func begin(tenant: String, launchID: String) -> Bool { ids.withLock { $0.insert(tenant + "/" + launchID).inserted } }
        func end(tenant: String, launchID: String) { _ = ids.withLock { $0.remove(tenant + "/" + launchID) } }
    }

    /// Why the tenant's ReleasePolicy refuses the launch's secrets on its appraisal (`status`, `claims`), or nil when
    /// it allows every one; `maxReleasesPerAttestation` counts the paths the launch names (one appraisal per launch).
    static func releaseRefusal(
        _ release: ReleasePolicy?, tenant: String, paths: [String], status: TrustTier, claims: JSONValue,
        referenceValues: [String: CustosPolicy.ReferenceValueSet], now: Date
    ) -> String? {
        guard let release else { return "tenant \(tenant) has no release policy (default deny)" }
        var counts: [String: Int] = [:]
        for path in paths {
            counts[path, default: 0] += 1
            let result = release.evaluate(path: path, status: status, claims: claims, referenceValues: referenceValues, at: now)
            guard result.decision == .allow else {
                let failed = result.trace.first { !$0.passed }.map { "\($0.rule): \($0.claim) \($0.operator)" } ?? "no rule allows it"
                return "the release policy \(release.id) denies \(path) (\(failed))"
            }
            if let maximum = release.secret(for: path)?.maxReleasesPerAttestation, counts[path, default: 0] > maximum {
                return "the release policy \(release.id) allows \(path) \(maximum) time(s) per attestation; the launch names it more often"
            }
        }
        return nil
    }

    /// The outcome of the checks, before the secret packet is built.
    struct Verdict {
        let allowed: Bool
        let status: TrustTier
        let trustVector: JSONValue
        let trace: [JSONValue]
        var reason: String?
    }

    static func names(_ policy: LaunchPolicy, _ request: MeasurementRequest) -> Set<String> {
        var names = Set(policy.referenceValueNames)
        if case .reference(let name) = request.expected { names.insert(name) }
        return names
    }

    static func actor(_ principal: Principal) -> JSONValue {
        ["kind": .string(principal.role.rawValue), "credential": .string(principal.credentialID)]
    }

    static func secretList(_ secrets: [LaunchRequest.SecretReference]) -> JSONValue {
        .array(secrets.map { ["guid": .string($0.guid.description), "path": .string($0.path)] })
    }

    /// The lowercase hex after `@sha256:` of a policy reference.
    static func sha256(of reference: String) -> String {
        guard let range = reference.range(of: "@sha256:") else { return "" }
        return String(reference[range.upperBound...])
    }

    static func denialReason(_ result: PolicyResult) -> String {
        let failed = result.trace.filter { !$0.passed }.map { "\($0.rule): \($0.claim)" }
        return failed.isEmpty
            ? "the launch policy denied the launch (status \(result.status.rawValue))" : "failed " + failed.joined(separator: ", ")
    }

    /// `sev.inputs.vcpus` / `sev.inputs.vcpu_type` as the launcher reported them.
    static func addingInputs(_ claims: JSONValue, _ request: MeasurementRequest) -> JSONValue {
        guard case .object(var top) = claims, case .object(var sev)? = top["sev"] else { return claims }
        var inputs = sev["inputs"]?.objectValue ?? [:]
        if let vcpus = request.vcpus { inputs["vcpus"] = .integer(Int64(vcpus)) }
        if let vcpuType = request.vcpuType { inputs["vcpu_type"] = .string(vcpuType) }
        if !inputs.isEmpty { sev["inputs"] = .object(inputs) }
        top["sev"] = .object(sev)
        return .object(top)
    }

    static func removingLaunchDigest(_ claims: JSONValue) -> JSONValue {
        guard case .object(var top) = claims, case .object(var sev)? = top["sev"] else { return claims }
        sev["launch_digest"] = nil
        top["sev"] = .object(sev)
        return .object(top)
    }
}
