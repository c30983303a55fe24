import CustosCrypto
import Foundation
import GRDB
import Testing

@testable import CustosStore

@Suite struct SecretTests {
    @Test func versionsArePutRotatedRetiredAndDeleted() async throws {
        let dir = try TemporaryDirectory()
        let store = try await Fixtures.store(in: dir)
        let t0 = Fixtures.t0
        let v1 = try await store.putSecret(tenantId: "acme", path: "p", value: Fixtures.secret("one"), now: t0)
        let v2 = try await store.putSecret(tenantId: "acme", path: "p", value: Fixtures.secret("two"), now: t0)
        #expect(v1.version == 1 && v2.version == 2)
        #expect(try await store.openSecret(tenantId: "acme", path: "p", version: nil, now: t0).value == Fixtures.secret("two"))
        #expect(try await store.openSecret(tenantId: "acme", path: "p", version: 1, now: t0).value == Fixtures.secret("one"))

        // Rotate with a 60 s grace: v1 and v2 stay releasable until then, v3 is the latest.
        let rotation = try await store.rotateSecret(
            tenantId: "acme", path: "p", value: Fixtures.secret("three"), retireAfter: t0.addingTimeInterval(60), now: t0)
        #expect(rotation.newVersion.version == 3)
        #expect(
            try await store.openSecret(tenantId: "acme", path: "p", version: 2, now: t0.addingTimeInterval(59)).value
                == Fixtures.secret("two"))
        await #expect(throws: StoreError(.notFound, "")) {
            _ = try await store.openSecret(tenantId: "acme", path: "p", version: 2, now: t0.addingTimeInterval(60))
        }
        // Retire v3 now: the latest releasable falls back to… nothing after the grace period.
        let retired = try await store.retireSecretVersion(tenantId: "acme", path: "p", version: 3, now: t0)
        #expect(retired.state == .retired)
        #expect(try await store.openSecret(tenantId: "acme", path: "p", version: nil, now: t0).version.version == 2)
        await #expect(throws: StoreError(.notFound, "")) {
            _ = try await store.openSecret(tenantId: "acme", path: "p", version: nil, now: t0.addingTimeInterval(61))
        }

        // Delete v3; the next version is 4, never a reused 3.
        try await store.deleteSecretVersion(tenantId: "acme", path: "p", version: 3)
        await #expect(throws: StoreError(.notFound, "")) { try await store.deleteSecretVersion(tenantId: "acme", path: "p", version: 3) }
        let v4 = try await store.putSecret(tenantId: "acme", path: "p", value: Fixtures.secret("four"), now: t0)
        #expect(v4.version == 4)
        let listed = try await store.listSecretVersions(tenantId: "acme", path: "p")
        #expect(listed.map(\.version) == [1, 2, 4])
        #expect(listed.map(\.state) == [.active, .active, .active])
        #expect(listed[0].retireAfter == t0.addingTimeInterval(60))
    }

    @Test func secretsAreScopedByTenant() async throws {
        let dir = try TemporaryDirectory()
        let store = try await Fixtures.store(in: dir, tenants: ["acme", "globex"])
        _ = try await store.putSecret(tenantId: "acme", path: "p", value: Fixtures.secret("acme's"), now: Fixtures.t0)
        await #expect(throws: StoreError(.notFound, "")) {
            _ = try await store.openSecret(tenantId: "globex", path: "p", version: nil, now: Fixtures.t0)
        }
        await #expect(throws: StoreError(.notFound, "")) { _ = try await store.listSecretVersions(tenantId: "globex", path: "p") }
        await #expect(throws: StoreError(.notFound, "")) {
            _ = try await store.putSecret(tenantId: "nobody", path: "p", value: Fixtures.secret("x"), now: Fixtures.t0)
        }
    }

    @Test(arguments: ["", "/a", "a/", "a//b", "a/../b", "..", "a b", "a\u{0}b", String(repeating: "a", count: 513)])
    func malformedPathsAreRefused(path: String) async throws {
        let dir = try TemporaryDirectory()
        let store = try await Fixtures.store(in: dir)
        await #expect(throws: StoreError(.invalidInput, "")) {
            _ = try await store.putSecret(tenantId: "acme", path: path, value: Fixtures.secret("x"), now: Fixtures.t0)
        }
    }

    @Test func emptyAndOversizedValuesAreRefused() async throws {
        let dir = try TemporaryDirectory()
        let store = try await Fixtures.store(in: dir)
        for size in [0, 64 * 1024 + 1] {
            await #expect(throws: StoreError(.invalidInput, "")) {
                _ = try await store.putSecret(
                    tenantId: "acme", path: "p", value: SecretBytes([UInt8](repeating: 1, count: size)), now: Fixtures.t0)
            }
        }
    }
}

@Suite struct TenantAndCredentialTests {
    @Test func tenantsAreCreatedOnceWithValidIds() async throws {
        let dir = try TemporaryDirectory()
        let store = try await Fixtures.store(in: dir)
        await #expect(throws: StoreError(.conflict, "")) { _ = try await store.createTenant(id: "acme", displayName: "", now: Fixtures.t0) }
        for bad in ["", "Acme", "-acme", "a/b", String(repeating: "a", count: 64)] {
            await #expect(throws: StoreError(.invalidInput, "")) {
                _ = try await store.createTenant(id: bad, displayName: "", now: Fixtures.t0)
            }
        }
        #expect(try await store.listTenants().map(\.id) == ["acme"])
        #expect(try await store.tenant(id: "acme").displayName == "Acme")
        await #expect(throws: StoreError(.notFound, "")) { _ = try await store.tenant(id: "globex") }
    }

    @Test func tokensAre256BitsStoredOnlyAsSHA256() async throws {
        let dir = try TemporaryDirectory()
        let store = try await Fixtures.store(in: dir)
        let issued = try await store.createCredential(tenantId: "acme", role: .tenantAdmin, label: "ci", expiresAt: nil, now: Fixtures.t0)
        #expect(issued.token.hasPrefix("custos_") && issued.token.count == 7 + 43)
        let raw = try Base64.decode(issued.token.dropFirst(7))
        #expect(raw.count == 32)
        let stored = try await store.pool.read { db in try Data.fetchOne(db, sql: "SELECT token_sha256 FROM credential") }
        #expect(try #require(stored) == Data(Digest.sha256(Array(issued.token.utf8))))
        _ = try await store.pool.writeWithoutTransaction { db in try db.checkpoint(.truncate) }
        for file in ["custos.sqlite", "custos.sqlite-wal"] {
            #expect(!Fixtures.file(dir.path(file), contains: Array(issued.token.utf8)))
            #expect(!Fixtures.file(dir.path(file), contains: raw))
        }
        // The hash of a fixed token, from Python's hashlib, matches the store's hashing.
        #expect(
            Hex.encode(APIToken.hash("custos_" + String(repeating: "A", count: 43)))
                == "2800f1f1583089e14ca95af8d67f69715d967d91168b0eff6fdb45c3f913e9ca")
    }

    @Test func lookupDistinguishesValidRevokedExpiredAndUnknown() async throws {
        let dir = try TemporaryDirectory()
        let store = try await Fixtures.store(in: dir)
        let t0 = Fixtures.t0
        let admin = try await store.createCredential(tenantId: nil, role: .serviceAdmin, label: "", expiresAt: nil, now: t0)
        let reader = try await store.createCredential(
            tenantId: "acme", role: .tenantReader, label: "", expiresAt: t0.addingTimeInterval(3600), now: t0)
        guard case .valid(let found) = try await store.lookupCredential(token: admin.token, now: t0) else {
            Issue.record("service admin token not valid")
            return
        }
        #expect(found == admin.credential && found.tenantId == nil && found.role == .serviceAdmin)
        #expect(try await store.lookupCredential(token: reader.token, now: t0.addingTimeInterval(3599)) == .valid(reader.credential))
        #expect(try await store.lookupCredential(token: reader.token, now: t0.addingTimeInterval(3600)) == .expired(reader.credential))
        let revoked = try await store.revokeCredential(id: reader.credential.id, now: t0.addingTimeInterval(10))
        #expect(try await store.lookupCredential(token: reader.token, now: t0) == .revoked(revoked))
        // Revoking again keeps the first time.
        #expect(try await store.revokeCredential(id: reader.credential.id, now: t0.addingTimeInterval(20)).revokedAt == revoked.revokedAt)
        for unknown in ["", "custos_", "Bearer x", "custos_" + String(repeating: "A", count: 43), admin.token + "x"] {
            #expect(try await store.lookupCredential(token: unknown, now: t0) == .unknown)
        }
        #expect(try await store.listCredentials(tenantId: "acme").map(\.id) == [reader.credential.id])
        #expect(try await store.listCredentials(tenantId: nil).map(\.id) == [admin.credential.id])
    }

    @Test func rolesAreSpelledAsTheSpecSaysAndScopedByTenant() async throws {
        #expect(Role.allCases.map(\.rawValue) == ["service-admin", "tenant-admin", "tenant-reader", "auditor", "launcher"])
        let dir = try TemporaryDirectory()
        let store = try await Fixtures.store(in: dir)
        for role in [Role.tenantAdmin, .tenantReader, .launcher] {
            await #expect(throws: StoreError(.invalidInput, "")) {
                _ = try await store.createCredential(tenantId: nil, role: role, label: "", expiresAt: nil, now: Fixtures.t0)
            }
        }
        await #expect(throws: StoreError(.invalidInput, "")) {
            _ = try await store.createCredential(tenantId: "acme", role: .serviceAdmin, label: "", expiresAt: nil, now: Fixtures.t0)
        }
        await #expect(throws: StoreError(.notFound, "")) {
            _ = try await store.createCredential(tenantId: "globex", role: .launcher, label: "", expiresAt: nil, now: Fixtures.t0)
        }
        _ = try await store.createCredential(tenantId: nil, role: .auditor, label: "global", expiresAt: nil, now: Fixtures.t0)
        _ = try await store.createCredential(tenantId: "acme", role: .auditor, label: "acme", expiresAt: nil, now: Fixtures.t0)
    }
}

@Suite struct ReferenceValueTests {
    @Test func writesFollowIfMatch() async throws {
        let dir = try TemporaryDirectory()
        let store = try await Fixtures.store(in: dir)
        let t0 = Fixtures.t0
        let values: [JSONValue] = [["mr_td": "aa"], ["mr_td": "bb"]]
        let first = try await store.putReferenceValues(
            tenantId: "acme", name: "tdx-prod", values: values, expiresAt: t0.addingTimeInterval(86400),
            provenance: ["builder": "ci", "run": 42], condition: .absent, now: t0)
        #expect(first.revision == 1 && first.etag == "\"1\"")
        await #expect(throws: StoreError(.preconditionFailed, "")) {
            _ = try await store.putReferenceValues(
                tenantId: "acme", name: "tdx-prod", values: [], expiresAt: nil, provenance: nil, condition: .absent, now: t0)
        }
        await #expect(throws: StoreError(.preconditionFailed, "")) {
            _ = try await store.putReferenceValues(
                tenantId: "acme", name: "tdx-prod", values: [], expiresAt: nil, provenance: nil, condition: .revision(7), now: t0)
        }
        let second = try await store.putReferenceValues(
            tenantId: "acme", name: "tdx-prod", values: [["mr_td": "cc"]], expiresAt: nil, provenance: nil,
            condition: try RevisionCondition(ifMatch: first.etag), now: t0)
        #expect(second.revision == 2)
        let read = try await store.referenceValues(tenantId: "acme", name: "tdx-prod")
        #expect(read == second)
        #expect(read.values == [["mr_td": "cc"]] && read.provenance == nil && !read.isExpired(at: t0))
        let third = try await store.putReferenceValues(
            tenantId: "acme", name: "tdx-prod", values: values, expiresAt: t0, provenance: ["a": [1, 2]], condition: .any, now: t0)
        #expect(try await store.referenceValues(tenantId: "acme", name: "tdx-prod") == third)
        #expect(third.isExpired(at: t0))
        await #expect(throws: StoreError(.notFound, "")) { _ = try await store.referenceValues(tenantId: "acme", name: "other") }
        for header in ["", ",", "1", "\"1", "\"1\" \"2\"", "W/1", "\"a b\""] {
            #expect(throws: StoreError(.invalidInput, ""), "\(header)") { _ = try RevisionCondition(ifMatch: header) }
            #expect(throws: StoreError(.invalidInput, ""), "\(header)") { _ = try RevisionCondition(ifNoneMatch: header) }
        }
        // RFC 9110: `*`, lists, strong comparison for If-Match (weak tags and non-canonical numbers name nothing).
        #expect(try RevisionCondition(ifMatch: " * ") == .exists)
        #expect(try RevisionCondition(ifNoneMatch: "*") == .absent)
        #expect(try RevisionCondition(ifMatch: #""x", "0", "03", W/"1", "2" ,"5""#) == .revisions([2, 5]))
        #expect(try RevisionCondition(ifNoneMatch: #"W/"1", "4""#) == .noneOf([1, 4]))
        #expect(try RevisionCondition(ifMatch: #""1", , "2","#) == .revisions([1, 2]))
        #expect(RevisionCondition.exists.holds(current: 1) && !RevisionCondition.exists.holds(current: nil))
        #expect(RevisionCondition.absent.holds(current: nil) && !RevisionCondition.absent.holds(current: 3))
        #expect(!RevisionCondition.revisions([]).holds(current: 1) && !RevisionCondition.revision(1).holds(current: nil))
        #expect(RevisionCondition.noneOf([1]).holds(current: nil) && !RevisionCondition.noneOf([1]).holds(current: 1))
    }
}

@Suite struct AppraisalTests {
    @Test func insertGetAndListWithFiltersAndCursorPaging() async throws {
        let dir = try TemporaryDirectory()
        let store = try await Fixtures.store(in: dir, tenants: ["acme", "globex"])
        var inserted: [Appraisal] = []
        for i in 0..<25 {
            let appraisal = Fixtures.appraisal(
                workload: i % 2 == 0 ? "wl-even" : "wl-odd", at: TimeInterval(i), status: i % 5 == 0 ? .contraindicated : .affirming)
            try await store.insertAppraisal(appraisal)
            inserted.append(appraisal)
        }
        try await store.insertAppraisal(Fixtures.appraisal(tenant: "globex", at: 100))
        #expect(try await store.appraisal(tenantId: "acme", id: inserted[3].id) == inserted[3])
        await #expect(throws: StoreError(.notFound, "")) { _ = try await store.appraisal(tenantId: "globex", id: inserted[3].id) }
        await #expect(throws: StoreError(.conflict, "")) { try await store.insertAppraisal(inserted[0]) }

        // All of acme's, newest first, in pages of 10.
        var seen: [Appraisal] = []
        var cursor: String?
        var pages = 0
        repeat {
            let page = try await store.listAppraisals(AppraisalQuery(tenantId: "acme", limit: 10, cursor: cursor))
            seen += page.items
            cursor = page.nextCursor
            pages += 1
        } while cursor != nil
        #expect(pages == 3)
        #expect(seen == inserted.reversed())

        let odd = try await store.listAppraisals(AppraisalQuery(tenantId: "acme", workloadId: "wl-odd"))
        #expect(odd.items.count == 12 && odd.nextCursor == nil && odd.items.allSatisfy { $0.workloadId == "wl-odd" })
        let since = try await store.listAppraisals(AppraisalQuery(tenantId: "acme", since: Fixtures.t0.addingTimeInterval(20)))
        #expect(since.items.map(\.id) == inserted[20...].reversed().map(\.id))
        let bad = try await store.listAppraisals(AppraisalQuery(tenantId: "acme", status: .contraindicated))
        #expect(bad.items.map(\.id) == [20, 15, 10, 5, 0].map { inserted[$0].id })
        #expect(try await store.listAppraisals(AppraisalQuery(tenantId: "globex")).items.count == 1)

        // TEE and the end of the range are store filters too: pages hold only matches, and the cursor pages on.
        var sev: [Appraisal] = []
        for i in 30..<33 {
            let appraisal = Fixtures.appraisal(at: TimeInterval(i), tee: "sev-es")
            try await store.insertAppraisal(appraisal)
            sev.append(appraisal)
        }
        #expect(try await store.listAppraisals(AppraisalQuery(tenantId: "acme", tee: "sev-es")).items == sev.reversed())
        var until = AppraisalQuery(tenantId: "acme", limit: 4)
        until.tee = "tdx"
        until.until = Fixtures.t0.addingTimeInterval(10)
        var early: [Appraisal] = []
        cursor = nil
        repeat {
            until.cursor = cursor
            let page = try await store.listAppraisals(until)
            #expect(page.items.count == 4 || page.nextCursor == nil)
            early += page.items
            cursor = page.nextCursor
        } while cursor != nil
        #expect(early == inserted[0...10].reversed())
        var window = AppraisalQuery(tenantId: "acme", since: Fixtures.t0.addingTimeInterval(24))
        window.until = Fixtures.t0.addingTimeInterval(31)
        #expect(try await store.listAppraisals(window).items.map(\.id) == [sev[1].id, sev[0].id, inserted[24].id])

        for query in [
            AppraisalQuery(tenantId: "acme", limit: 0), AppraisalQuery(tenantId: "acme", cursor: "x1"),
            AppraisalQuery(tenantId: "acme", cursor: "c-1"),
        ] {
            await #expect(throws: StoreError(.invalidInput, "")) { _ = try await store.listAppraisals(query) }
        }
    }

    /// `since`/`until` listings (with and without a workload, a status, paging) match a filter of every appraisal,
    /// when creation times do not rise with insertion order (the seq bounds come from the time index, not from seqs).
    @Test func timeRangesMatchAFilterOfEveryAppraisal() async throws {
        let dir = try TemporaryDirectory()
        let store = try await Fixtures.store(in: dir, tenants: ["acme", "globex"])
        var rng = SystemRandomNumberGenerator()
        var all: [Appraisal] = []
        for i in 0..<120 {
            let appraisal = Fixtures.appraisal(
                tenant: i % 4 == 0 ? "globex" : "acme", workload: i % 3 == 0 ? "wl-a" : "wl-b",
                at: TimeInterval(i + Int.random(in: -30...30, using: &rng)), status: i % 5 == 0 ? .warning : .affirming)
            try await store.insertAppraisal(appraisal)
            all.append(appraisal)
        }
        for _ in 0..<30 {
            let low = Fixtures.t0.addingTimeInterval(TimeInterval(Int.random(in: -40...160, using: &rng)))
            let high = low.addingTimeInterval(TimeInterval(Int.random(in: 0...60, using: &rng)))
            for (since, until) in [(low, nil), (nil, high), (low, high)] as [(Date?, Date?)] {
                for (workload, status) in [(nil, nil), ("wl-a", nil), (nil, AppraisalStatus.warning)] as [(String?, AppraisalStatus?)] {
                    let expected = all.reversed().filter { item in
                        item.tenantId == "acme" && (since.map { item.createdAt >= $0 } ?? true)
                            && (until.map { item.createdAt <= $0 } ?? true)
                            && (workload.map { item.workloadId == $0 } ?? true) && (status.map { item.status == $0 } ?? true)
                    }.map(\.id)
                    var query = AppraisalQuery(tenantId: "acme", workloadId: workload, since: since, status: status, until: until, limit: 7)
                    var got: [String] = []
                    repeat {
                        let page = try await store.listAppraisals(query)
                        got += page.items.map(\.id)
                        query.cursor = page.nextCursor
                    } while query.cursor != nil
                    #expect(got == expected, "since \(String(describing: since)) until \(String(describing: until)) \(workload ?? "-")")
                }
            }
        }
    }

    @Test func malformedAppraisalsAreRefusedBeforeSQL() async throws {
        let dir = try TemporaryDirectory()
        let store = try await Fixtures.store(in: dir)
        let good = Fixtures.appraisal()
        let badHash = Appraisal(
            tenantId: "acme", workloadId: "w", tee: "tdx", createdAt: Fixtures.t0, status: .none, policyId: "p", policySHA256: "XYZ",
            trustVector: [:], claims: [:], trace: [], tokenJTI: nil, evidenceSHA256: good.evidenceSHA256)
        let badEvidence = Appraisal(
            tenantId: "acme", workloadId: "w", tee: "tdx", createdAt: Fixtures.t0, status: .none, policyId: "p",
            policySHA256: good.policySHA256, trustVector: [:], claims: [:], trace: [], tokenJTI: nil, evidenceSHA256: [1, 2])
        for appraisal in [badHash, badEvidence] {
            await #expect(throws: StoreError(.invalidInput, "")) { try await store.insertAppraisal(appraisal) }
        }
        await #expect(throws: StoreError(.notFound, "")) { try await store.insertAppraisal(Fixtures.appraisal(tenant: "nobody")) }
        #expect(try await store.listAppraisals(AppraisalQuery(tenantId: "acme")).items.isEmpty)
    }
}

@Suite struct LaunchTests {
    static func newLaunch(expiresIn: TimeInterval = 300, secret: SecretBytes? = nil) -> NewLaunch {
        NewLaunch(
            tenantId: "acme", workloadId: "vm-1", tee: "sev-es", policyId: "sev-es-prod", guestPolicy: 0x05, createdAt: Fixtures.t0,
            expiresAt: Fixtures.t0.addingTimeInterval(expiresIn), sessionSecret: secret)
    }

    @Test func stateMachineRunsCreatedMeasuredAllowedInjected() async throws {
        let dir = try TemporaryDirectory()
        let store = try await Fixtures.store(in: dir)
        let tek = SecretBytes(Array(repeating: 0x42, count: 32))
        let created = try await store.createLaunch(Self.newLaunch(secret: tek))
        #expect(created.state == .created && created.measurement == nil && created.guestPolicy == 5)
        #expect(try await store.openLaunchSessionSecret(tenantId: "acme", id: created.id) == tek)
        await #expect(throws: StoreError(.conflict, "")) {
            _ = try await store.decideLaunch(
                tenantId: "acme", id: created.id, allowed: true, appraisalId: nil, reason: nil, now: Fixtures.t0)
        }
        let measurement = [UInt8](repeating: 0xAB, count: 48)
        let measured = try await store.recordLaunchMeasurement(tenantId: "acme", id: created.id, measurement: measurement, now: Fixtures.t0)
        #expect(measured.state == .measured && measured.measurement == measurement)
        // Exactly one measurement per launch: another is a conflict; the same one again while undecided is the retry of
        // a decision that failed, and leaves the launch as it was.
        var other = measurement
        other[47] ^= 1
        await #expect(throws: StoreError(.conflict, "")) {
            _ = try await store.recordLaunchMeasurement(tenantId: "acme", id: created.id, measurement: other, now: Fixtures.t0)
        }
        let retried = try await store.recordLaunchMeasurement(
            tenantId: "acme", id: created.id, measurement: measurement, now: Fixtures.t0.addingTimeInterval(5))
        #expect(retried == measured)
        #expect(try await store.openLaunchSessionSecret(tenantId: "acme", id: created.id) == tek)
        let allowed = try await store.decideLaunch(
            tenantId: "acme", id: created.id, allowed: true, appraisalId: "apr_1", reason: nil, now: Fixtures.t0)
        #expect(allowed.state == .allowed && allowed.appraisalId == "apr_1")
        // Once decided, not even the same measurement is taken again.
        await #expect(throws: StoreError(.conflict, "")) {
            _ = try await store.recordLaunchMeasurement(tenantId: "acme", id: created.id, measurement: measurement, now: Fixtures.t0)
        }
        // The decision erases TEK/TIK, allowed or not (the packet was built before it).
        await #expect(throws: StoreError(.notFound, "")) { _ = try await store.openLaunchSessionSecret(tenantId: "acme", id: created.id) }
        let injected = try await store.markLaunchInjected(tenantId: "acme", id: created.id, now: Fixtures.t0)
        #expect(injected.state == .injected && injected.injectedAt == Fixtures.t0)
        await #expect(throws: StoreError(.notFound, "")) { _ = try await store.openLaunchSessionSecret(tenantId: "acme", id: created.id) }
        await #expect(throws: StoreError(.conflict, "")) {
            _ = try await store.markLaunchInjected(tenantId: "acme", id: created.id, now: Fixtures.t0)
        }
        #expect(try await store.launch(tenantId: "acme", id: created.id) == injected)
        await #expect(throws: StoreError(.notFound, "")) { _ = try await store.launch(tenantId: "globex", id: created.id) }
    }

    /// A launch never measured, or stuck `measured` because its decision failed, does not keep its session secret:
    /// the next launch or measurement erases it (at expiry, or an hour after it for a measured one, which until then
    /// may be retried with its measurement).
    @Test func staleSessionSecretsAreErasedByLaterLaunches() async throws {
        let dir = try TemporaryDirectory()
        let store = try await Fixtures.store(in: dir)
        let tek = SecretBytes(Array(repeating: 0x17, count: 32))
        let unmeasured = try await store.createLaunch(Self.newLaunch(expiresIn: 60, secret: tek))
        let stuck = try await store.createLaunch(Self.newLaunch(expiresIn: 60, secret: tek))
        _ = try await store.recordLaunchMeasurement(
            tenantId: "acme", id: stuck.id, measurement: Array(repeating: 1, count: 48), now: Fixtures.t0.addingTimeInterval(30))
        func later(_ seconds: TimeInterval) -> NewLaunch {
            var launch = Self.newLaunch(secret: tek)
            launch.createdAt = Fixtures.t0.addingTimeInterval(seconds)
            launch.expiresAt = launch.createdAt.addingTimeInterval(300)
            return launch
        }
        // Before expiry nothing is touched.
        _ = try await store.createLaunch(later(59))
        #expect(try await store.openLaunchSessionSecret(tenantId: "acme", id: unmeasured.id) == tek)
        #expect(try await store.openLaunchSessionSecret(tenantId: "acme", id: stuck.id) == tek)
        // At expiry the unmeasured one goes; the measured one waits out the grace period.
        _ = try await store.createLaunch(later(60))
        await #expect(throws: StoreError(.notFound, "")) {
            _ = try await store.openLaunchSessionSecret(tenantId: "acme", id: unmeasured.id)
        }
        #expect(try await store.openLaunchSessionSecret(tenantId: "acme", id: stuck.id) == tek)
        // Within the grace period the stuck launch's measurement may be retried; after it, its keys are gone and so is
        // the retry.
        #expect(
            try await store.recordLaunchMeasurement(
                tenantId: "acme", id: stuck.id, measurement: Array(repeating: 1, count: 48), now: Fixtures.t0.addingTimeInterval(61)
            ).state == .measured)
        _ = try await store.createLaunch(later(60 + SQLiteStore.staleLaunchGrace))
        await #expect(throws: StoreError(.notFound, "")) { _ = try await store.openLaunchSessionSecret(tenantId: "acme", id: stuck.id) }
        await #expect(throws: StoreError(.conflict, "")) {
            _ = try await store.recordLaunchMeasurement(
                tenantId: "acme", id: stuck.id, measurement: Array(repeating: 1, count: 48),
                now: Fixtures.t0.addingTimeInterval(60 + SQLiteStore.staleLaunchGrace))
        }
        // A measurement of a live launch sweeps as well.
        let another = try await store.createLaunch(later(7200))
        let pending = try await store.createLaunch(later(7200 + 299))
        _ = try await store.recordLaunchMeasurement(
            tenantId: "acme", id: pending.id, measurement: Array(repeating: 2, count: 48), now: Fixtures.t0.addingTimeInterval(7200 + 300))
        await #expect(throws: StoreError(.notFound, "")) { _ = try await store.openLaunchSessionSecret(tenantId: "acme", id: another.id) }
        #expect(try await store.launch(tenantId: "acme", id: another.id).state == .created)
    }

    @Test func deniedAndExpiredLaunches() async throws {
        let dir = try TemporaryDirectory()
        let store = try await Fixtures.store(in: dir)
        let denied = try await store.createLaunch(Self.newLaunch(secret: SecretBytes([1, 2, 3])))
        _ = try await store.recordLaunchMeasurement(
            tenantId: "acme", id: denied.id, measurement: Array(repeating: 0, count: 48), now: Fixtures.t0)
        let decided = try await store.decideLaunch(
            tenantId: "acme", id: denied.id, allowed: false, appraisalId: nil, reason: "measurement mismatch", now: Fixtures.t0)
        #expect(decided.state == .denied && decided.decisionReason == "measurement mismatch")
        await #expect(throws: StoreError(.notFound, "")) { _ = try await store.openLaunchSessionSecret(tenantId: "acme", id: denied.id) }
        await #expect(throws: StoreError(.conflict, "")) {
            _ = try await store.markLaunchInjected(tenantId: "acme", id: denied.id, now: Fixtures.t0)
        }

        let expired = try await store.createLaunch(Self.newLaunch(expiresIn: 10))
        await #expect(throws: StoreError(.conflict, "")) {
            _ = try await store.recordLaunchMeasurement(
                tenantId: "acme", id: expired.id, measurement: Array(repeating: 0, count: 48), now: Fixtures.t0.addingTimeInterval(10))
        }
        await #expect(throws: StoreError(.invalidInput, "")) {
            _ = try await store.recordLaunchMeasurement(tenantId: "acme", id: expired.id, measurement: [1], now: Fixtures.t0)
        }
        #expect(try await store.launch(tenantId: "acme", id: expired.id).state == .created)
        var duplicate = Self.newLaunch()
        duplicate.id = expired.id
        await #expect(throws: StoreError(.conflict, "")) { _ = try await store.createLaunch(duplicate) }
        var badTee = Self.newLaunch()
        badTee.tee = "tdx"
        await #expect(throws: StoreError(.invalidInput, "")) { _ = try await store.createLaunch(badTee) }
    }
}
