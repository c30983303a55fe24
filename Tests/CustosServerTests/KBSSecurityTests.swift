import CustosAudit
import CustosCrypto
import CustosKBS
import CustosServer
import CustosStore
import CustosTDX
import CustosTestSupport
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

/// The security rules of issue 11 §5 and the policy denials, each through real HTTP against the assembled service.
@Suite(.serialized) struct KBSSecurityTests {
    static let secret = Array("tenant secret 0123456789".utf8)

    static let tenantBPolicy = """
        apiVersion: custos/v1
        kind: ReleasePolicy
        id: release-tenant-b
        tenant: tenant-b
        default: deny
        secrets:
          - path: "key/*"
            allow:
              allOf:
                - { status: affirming }
          - path: "pinned/ok"
            allow:
              allOf:
                - { status: affirming }
                - { claim: init_data_claims.data.tenant, equals: tenant-b }
          - path: "pinned/other"
            allow:
              allOf:
                - { status: affirming }
                - { claim: init_data_claims.data.tenant, equals: tenant-c }
          - path: "twice/key"
            maxReleasesPerAttestation: 2
            allow: { status: affirming }
        """

    static func guest(_ fixture: KBSFixture, _ configure: (inout TDXQuoteSpec) -> Void = { _ in }) throws -> TestGuest {
        var spec = KBSFixture.spec()
        configure(&spec)
        return TestGuest(key: .ec(try ECPrivateKey(generating: .p256)), hierarchy: fixture.hierarchy, spec: spec)
    }

    static func kind(_ body: JSONValue) -> String? {
        body["type"]?.stringValue.map { String($0.dropFirst(KBSErrorResponse.typePrefix.count)) }
    }

    static func kind(_ bytes: [UInt8]) -> String? { kind((try? JSONValue.parse(bytes)) ?? .null) }

    @Test func replayedAttestationAndForeignBindingsAreRefused() async throws {
        let fixture = try await KBSFixture.make()
        defer { fixture.cleanUp() }
        try await fixture.app.test(.live) { client in
            try await fixture.provision(client, secret: Self.secret)
            let guest = try Self.guest(fixture)
            // Nonce single use: the same session cannot attest twice, even with fresh, correctly bound evidence.
            let (cookie, nonce) = try #require(try await guest.auth(client))
            let first = try await guest.attest(client, cookie: cookie, body: try guest.attestation(nonce: nonce))
            #expect(first.0 == .ok)
            let replay = try await guest.attest(client, cookie: cookie, body: try guest.attestation(nonce: nonce))
            #expect(replay.0 == .unauthorized)
            #expect(Self.kind(replay.1) == "AttestationError")

            // REPORTDATA bound to another nonce.
            let (cookie2, nonce2) = try #require(try await guest.auth(client))
            let unbound = try await guest.attest(
                client, cookie: cookie2, body: try guest.attestation(nonce: nonce2, bindTo: "another nonce"))
            #expect(unbound.0 == .unauthorized)
            #expect(unbound.1["detail"]?.stringValue?.contains("reportDataMismatch") == true)

            // runtime-data carrying another session's nonce (the quote bound to it): the session is bound to its nonce.
            let (cookie3, _) = try #require(try await guest.auth(client))
            let (_, otherNonce) = try #require(try await guest.auth(client))
            let foreign = try await guest.attest(client, cookie: cookie3, body: try guest.attestation(nonce: otherNonce))
            #expect(foreign.0 == .unauthorized)
            #expect(foreign.1["detail"]?.stringValue?.contains("nonceMismatch") == true)

            // No cookie, an unknown cookie.
            for headers: HTTPFields in [[:], [.cookie: "kbs-session-id=" + String(repeating: "0", count: 32)]] {
                try await client.execute(
                    uri: "/kbs/v0/attest", method: .post, headers: headers,
                    body: ByteBuffer(bytes: CanonicalJSON.encode(try guest.attestation(nonce: nonce)))
                ) {
                    #expect($0.status == .unauthorized)
                    #expect(Self.kind(Array(buffer: $0.body)) == "AttestationError")
                }
            }
        }
    }

    @Test func debugTDsAndUnverifiableQuotesAreRefused() async throws {
        let fixture = try await KBSFixture.make()
        defer { fixture.cleanUp() }
        try await fixture.app.test(.live) { client in
            try await fixture.provision(client, secret: Self.secret)
            for (label, configure) in [
                ("debug TD", { (spec: inout TDXQuoteSpec) in spec.tdAttributes |= 1 }),
                ("a quote with another root", { (spec: inout TDXQuoteSpec) in spec.qeISVSVN = 4 }),
                ("broken QE binding", { (spec: inout TDXQuoteSpec) in spec.breakQEReportData = true }),
            ] as [(String, (inout TDXQuoteSpec) -> Void)] {
                var guest = try Self.guest(fixture, configure)
                if label.hasPrefix("a quote with") {
                    // Another hierarchy: a PCK chain that does not end in the service's root.
                    guest = TestGuest(key: guest.key, hierarchy: try TDXTestHierarchy(), spec: guest.spec)
                }
                let (cookie, nonce) = try #require(try await guest.auth(client))
                let (status, body) = try await guest.attest(client, cookie: cookie, body: try guest.attestation(nonce: nonce))
                #expect(status == .unauthorized, "\(label): \(status)")
                #expect(Self.kind(body) == "AttestationError", "\(label): \(body)")
            }
        }
    }

    @Test func policyDenialsAreAuditedAndAnswered401Or403() async throws {
        for denial in [401, 403] {
            let fixture = try await KBSFixture.make { $0.kbsDenialStatus = denial }
            defer { fixture.cleanUp() }
            try await fixture.app.test(.live) { client in
                try await fixture.provision(client, secret: Self.secret)
                // OutOfDate TCB: the default policy requires UpToDate hardware: contraindicated, no release.
                let outdated = try Self.guest(fixture) {
                    $0.fmspc = KBSFixture.outOfDateFMSPC
                    $0.tcbLevels = [
                        TDXQuoteSpec.level(
                            sgx: [4, 4, 2, 2, 4, 1, 0, 5], pcesvn: 13, tdx: [5, 0, 3], status: "OutOfDate", advisories: ["INTEL-SA-00837"])
                    ]
                }
                // An RTMR with no reference value: unrecognised executables (warning), no release.
                let unknownKernel = try Self.guest(fixture) { $0.rtmrs[1] = [UInt8](repeating: 0x77, count: 48) }
                for (label, guest) in [("OutOfDate", outdated), ("unknown RTMR1", unknownKernel)] {
                    let (cookie, token) = try #require(try await guest.handshake(client), "\(label)")
                    for headers: HTTPFields in [[.cookie: cookie], [.authorization: "Bearer \(token)"]] {
                        let (status, body) = try await guest.resource(client, path: "default/key/disk", headers: headers)
                        #expect(status.code == denial, "\(label): \(status)")
                        #expect(Self.kind(body) == "PolicyDeny", "\(label)")
                    }
                }
                // The counters of /metrics saw the same (each is made once and kept by ServiceMetrics).
                try await client.execute(uri: "/metrics", method: .get) { response in
                    let text = String(buffer: response.body)
                    #expect(text.contains("\ncustos_policy_denials_total 4\n"), "\(text)")
                    #expect(text.contains(#"custos_verifications_total{tee="tdx",result="contraindicated"} 1"#), "\(text)")
                    #expect(text.contains(#"custos_verifications_total{tee="tdx",result="warning"} 1"#), "\(text)")
                }
            }
            // Every denial is an entry that names the appraisal and the policy; no secret bytes anywhere in the log.
            let audit = try #require(fixture.parts.audit)
            let denied = try audit.log.reader.entries(type: "secret.denied", limit: 100).records.map(\.entry)
            #expect(denied.count == 4)
            for entry in denied {
                #expect(entry["appraisal"]?["id"]?.stringValue?.hasPrefix("apr_") == true)
                #expect(entry["object"]?["policy"]?.stringValue?.hasPrefix("release-default@sha256:") == true)
            }
            let contraindicated = try audit.log.reader.entries(type: "attestation.contraindicated", limit: 10).records
            #expect(contraindicated.count == 1)
            #expect(try audit.log.reader.entries(type: "attestation.warning", limit: 10).records.count == 1)
            let all = try audit.log.reader.entries(limit: 1000).records
            let secretHex = Hex.encode(Self.secret)
            for record in all {
                let text = String(decoding: record.body, as: UTF8.self)
                #expect(!text.contains(String(decoding: Self.secret, as: UTF8.self)) && !text.contains(secretHex))
            }
        }
    }

    @Test func tokensAreCheckedAndStolenOnesYieldOnlyCiphertext() async throws {
        let fixture = try await KBSFixture.make()
        defer { fixture.cleanUp() }
        try await fixture.app.test(.live) { client in
            try await fixture.provision(client, secret: Self.secret)
            let alice = try Self.guest(fixture)
            let mallory = try Self.guest(fixture)
            let (aliceCookie, aliceToken) = try #require(try await alice.handshake(client))
            let (_, malloryToken) = try #require(try await mallory.handshake(client))

            // A stolen cookie or token gets the resource, but encrypted to Alice's TEE key: Mallory cannot open it.
            for headers: HTTPFields in [[.cookie: aliceCookie], [.authorization: "Bearer \(aliceToken)"]] {
                let (status, body) = try await mallory.resource(client, path: "default/key/disk", headers: headers)
                #expect(status == .ok)
                #expect(throws: CustosKBS.KBSError.self) { try KBSResourceRelease.decrypt(responseBody: body, with: mallory.key) }
                #expect(try KBSResourceRelease.decrypt(responseBody: body, with: alice.key).unsafeCopy() == Self.secret)
            }
            // Alice's cookie with Mallory's token: two TEE keys, refused.
            let mixed = try await alice.resource(
                client, path: "default/key/disk", headers: [.cookie: aliceCookie, .authorization: "Bearer \(malloryToken)"])
            #expect(mixed.0 == .unauthorized)
            #expect(Self.kind(mixed.1) == "TokenVerifierError")

            // A changed claim (the tenant), a token from another issuer's key, garbage: refused.
            let parts = aliceToken.split(separator: ".").map(String.init)
            var payload = try #require(try JSONValue.parse(Base64URL.decode(parts[1])).objectValue)
            payload["attest.tenant"] = "tenant-b"
            let changed = [parts[0], Base64URL.encode(CanonicalJSON.encode(.object(payload))), parts[2]].joined(separator: ".")
            let otherKey = try ECPrivateKey(generating: .p256)
            let forged = try EARIssuer(signingKey: otherKey, issuer: fixture.parts.configuration.effectiveIssuer)
                .issue(submods: ["cpu0": EARSubmod(status: .affirming)], tenant: "default", now: Int64(Date().timeIntervalSince1970)).token
            for token in [changed, forged, "not.a.token"] {
                let (status, body) = try await alice.resource(
                    client, path: "default/key/disk", headers: [.authorization: "Bearer \(token)"])
                #expect(status == .unauthorized)
                #expect(Self.kind(body) == "TokenVerifierError")
            }
            // No credential at all.
            let none = try await alice.resource(client, path: "default/key/disk", headers: [:])
            #expect(none.0 == .unauthorized)
            #expect(Self.kind(none.1) == "TokenNotFound")
        }
    }

    @Test func unknownSecretsOtherTenantsAndPathsAreRefused() async throws {
        let fixture = try await KBSFixture.make(extraPolicies: [("release-tenant-b.yaml", Self.tenantBPolicy)])
        defer { fixture.cleanUp() }
        try await fixture.app.test(.live) { client in
            try await fixture.provision(client, secret: Self.secret)
            try await client.execute(
                uri: "/v1/tenants", method: .post, headers: fixture.admin, body: ByteBuffer(bytes: CanonicalJSON.encode(["id": "tenant-b"]))
            ) { #expect($0.status == .created) }
            try await fixture.provision(client, tenant: "tenant-b", secret: Array("b's secret".utf8))
            let guest = try Self.guest(fixture)
            let (cookie, _) = try #require(try await guest.handshake(client))
            let unknown = try await guest.resource(client, path: "default/key/none", headers: [.cookie: cookie])
            #expect(unknown.0 == .unauthorized)
            #expect(Self.kind(unknown.1) == "PluginInternalError")
            // The guest attested as tenant default: tenant-b's repository is refused.
            let other = try await guest.resource(client, path: "tenant-b/key/disk", headers: [.cookie: cookie])
            #expect(other.0 == .unauthorized)
            #expect(Self.kind(other.1) == "PolicyDeny")
            for (path, kind) in [
                ("/kbs/v0/resource/default/key", "InvalidRequestPath"), ("/kbs/v0/resource/default", "InvalidRequestPath"),
                ("/kbs/v0/resource/a/b/c/d", "InvalidRequestPath"), ("/kbs/v0/nebula-ca/cert", "PluginNotFound"),
                ("/kbs/v0/pkcs11", "PluginNotFound"),
            ] {
                try await client.execute(uri: path, method: .get, headers: [.cookie: cookie]) {
                    #expect($0.status == .notFound, "\(path)")
                    #expect(Self.kind(Array(buffer: $0.body)) == kind, "\(path)")
                }
            }
            // SEV guests use the launch API; a KBS /auth for them is a clear 401.
            for tee in ["sev", "snp"] { #expect(try await guest.auth(client, tee: tee) == nil) }
        }
    }

    @Test func initDataNamesTheTenantAndMustMatchMRCONFIGID() async throws {
        let fixture = try await KBSFixture.make(extraPolicies: [("release-tenant-b.yaml", Self.tenantBPolicy)])
        defer { fixture.cleanUp() }
        let body = "version = \"0.1.0\"\nalgorithm = \"sha384\"\n\n[data]\ntenant = \"tenant-b\"\n"
        let digest = Digest.sha384(Array(body.utf8))
        try await fixture.app.test(.live) { client in
            // Before tenant-b exists its init-data is refused; the service remembers only tenants that exist, so the
            // same TD is accepted once the tenant is created.
            var early = try Self.guest(fixture) { $0.mrConfigID = digest }
            early.initData = KBSInitData(format: "toml", body: body)
            let (earlyCookie, earlyNonce) = try #require(try await early.auth(client))
            let unknown = try await early.attest(client, cookie: earlyCookie, body: try early.attestation(nonce: earlyNonce))
            #expect(unknown.0 == .unauthorized)
            #expect(unknown.1["detail"]?.stringValue?.contains("unknownTenant") == true)
            // A TD whose quote does not verify learns nothing about which tenants exist: the tenant is looked up only
            // once the quote verifies.
            let otherBody = "version = \"0.1.0\"\nalgorithm = \"sha384\"\n\n[data]\ntenant = \"tenant-x\"\n"
            let unverified = try Self.guest(fixture) { $0.mrConfigID = Digest.sha384(Array(otherBody.utf8)) }
            var forged = TestGuest(key: unverified.key, hierarchy: try TDXTestHierarchy(), spec: unverified.spec)
            forged.initData = KBSInitData(format: "toml", body: otherBody)
            let (forgedCookie, forgedNonce) = try #require(try await forged.auth(client))
            let unverifiable = try await forged.attest(client, cookie: forgedCookie, body: try forged.attestation(nonce: forgedNonce))
            #expect(unverifiable.0 == .unauthorized)
            let detail = unverifiable.1["detail"]?.stringValue ?? ""
            #expect(!detail.contains("unknownTenant") && !detail.contains("tenant-x") && !detail.isEmpty, "\(detail)")
            try await client.execute(
                uri: "/v1/tenants", method: .post, headers: fixture.admin, body: ByteBuffer(bytes: CanonicalJSON.encode(["id": "tenant-b"]))
            ) { #expect($0.status == .created) }
            try await fixture.provision(client, tenant: "tenant-b", secret: Self.secret)
            try await client.execute(
                uri: "/v1/reference-values/tenant-b/mr_config_id", method: .put, headers: fixture.admin,
                body: ByteBuffer(bytes: CanonicalJSON.encode(["values": [.string(Hex.encode(digest))]]))
            ) { #expect($0.status == .ok) }
            var guest = try Self.guest(fixture) { $0.mrConfigID = digest }
            guest.initData = KBSInitData(format: "toml", body: body)
            let (cookie, token) = try #require(try await guest.handshake(client))
            let (status, jwe) = try await guest.resource(client, path: "tenant-b/key/disk", headers: [.cookie: cookie])
            #expect(status == .ok)
            #expect(try KBSResourceRelease.decrypt(responseBody: jwe, with: guest.key).unsafeCopy() == Self.secret)
            let payload = try JSONValue.parse(Base64URL.decode(String(token.split(separator: ".")[1])))
            #expect(payload["attest.tenant"] == "tenant-b")
            #expect(payload["submods"]?["cpu0"]?["ear.veraison.annotated-evidence"]?["init_data_claims"]?["data"]?["tenant"] == "tenant-b")
            // The default tenant's repository is another tenant's now.
            let other = try await guest.resource(client, path: "default/key/disk", headers: [.cookie: cookie])
            #expect(other.0 == .unauthorized)
            // Rules on claims: the release reads the appraisal's claims back from the store.
            for path in ["pinned/ok", "pinned/other"] {
                try await client.execute(
                    uri: "/v1/secrets/tenant-b/\(path)", method: .put, headers: fixture.admin, body: ByteBuffer(bytes: Self.secret)
                ) { #expect($0.status == .created) }
            }
            let pinned = try await guest.resource(client, path: "tenant-b/pinned/ok", headers: [.cookie: cookie])
            #expect(pinned.0 == .ok)
            #expect(try KBSResourceRelease.decrypt(responseBody: pinned.1, with: guest.key).unsafeCopy() == Self.secret)
            let pinnedOther = try await guest.resource(client, path: "tenant-b/pinned/other", headers: [.cookie: cookie])
            #expect(pinnedOther.0 == .unauthorized)
            #expect(Self.kind(pinnedOther.1) == "PolicyDeny")

            // maxReleasesPerAttestation: 2 releases of twice/key per attestation, the session cookie and the Bearer
            // token of that attestation counted together; the third is a policy denial. Another attestation of the same
            // TD has its own count.
            try await client.execute(
                uri: "/v1/secrets/tenant-b/twice/key", method: .put, headers: fixture.admin, body: ByteBuffer(bytes: Self.secret)
            ) { #expect($0.status == .created) }
            #expect(try await guest.resource(client, path: "tenant-b/twice/key", headers: [.cookie: cookie]).0 == .ok)
            #expect(try await guest.resource(client, path: "tenant-b/twice/key", headers: [.authorization: "Bearer \(token)"]).0 == .ok)
            let third = try await guest.resource(client, path: "tenant-b/twice/key", headers: [.cookie: cookie])
            #expect(third.0 == .unauthorized)
            #expect(Self.kind(third.1) == "PolicyDeny")
            let (again, _) = try #require(try await guest.handshake(client))
            #expect(try await guest.resource(client, path: "tenant-b/twice/key", headers: [.cookie: again]).0 == .ok)
            #expect(
                try await guest.resource(client, path: "tenant-b/key/disk", headers: [.cookie: cookie]).0 == .ok,
                "other paths are not limited")
            // Init-data too long to travel in the token (its claims go by digest): a claim rule still decides on the
            // appraisal's whole claims, for the Bearer token as for the cookie.
            let longBody = body + "padding = \"" + String(repeating: "p", count: 2000) + "\"\n"
            let longDigest = Digest.sha384(Array(longBody.utf8))
            try await client.execute(
                uri: "/v1/reference-values/tenant-b/mr_config_id", method: .put, headers: fixture.admin,
                body: ByteBuffer(bytes: CanonicalJSON.encode(["values": [.string(Hex.encode(digest)), .string(Hex.encode(longDigest))]]))
            ) { #expect($0.status == .ok) }
            var long = try Self.guest(fixture) { $0.mrConfigID = longDigest }
            long.initData = KBSInitData(format: "toml", body: longBody)
            let (longCookie, longToken) = try #require(try await long.handshake(client))
            let longPayload = try JSONValue.parse(Base64URL.decode(String(longToken.split(separator: ".")[1])))
            #expect(longPayload["submods"]?["cpu0"]?["ear.veraison.annotated-evidence"]?["init_data_claims"] == nil)
            for headers: HTTPFields in [[.cookie: longCookie], [.authorization: "Bearer \(longToken)"]] {
                let released = try await long.resource(client, path: "tenant-b/pinned/ok", headers: headers)
                #expect(released.0 == .ok, "\(headers.first?.name.rawName ?? ""): \(String(decoding: released.1, as: UTF8.self))")
            }

            // Init-data whose digest is not the TD's MRCONFIGID.
            var liar = try Self.guest(fixture)
            liar.initData = KBSInitData(format: "toml", body: body)
            let (liarCookie, nonce) = try #require(try await liar.auth(client))
            let refused = try await liar.attest(client, cookie: liarCookie, body: try liar.attestation(nonce: nonce))
            #expect(refused.0 == .unauthorized)
            #expect(refused.1["detail"]?.stringValue?.contains("initDataMismatch") == true)
        }
    }

    @Test func sizeLimitsAndMalformedBodies() async throws {
        let fixture = try await KBSFixture.make()
        defer { fixture.cleanUp() }
        try await fixture.app.test(.live) { client in
            let guest = try Self.guest(fixture)
            let (cookie, _) = try #require(try await guest.auth(client))
            // Too large under /kbs/v0: 413 with the KBS error body, not a problem document.
            try await client.execute(
                uri: "/kbs/v0/attest", method: .post, headers: [.cookie: cookie], body: ByteBuffer(repeating: 0x20, count: (1 << 20) + 1)
            ) {
                #expect($0.status == .contentTooLarge)
                #expect($0.headers[.contentType] == "application/json")
                #expect(Self.kind(Array(buffer: $0.body)) == "SerdeError")
            }
            try await client.execute(uri: "/kbs/v0/auth", method: .post, body: ByteBuffer(repeating: 0x20, count: (64 << 10) + 1)) {
                #expect($0.status == .contentTooLarge)
                #expect(Self.kind(Array(buffer: $0.body)) == "SerdeError")
            }
            try await client.execute(uri: "/kbs/v0/auth", method: .post, body: ByteBuffer(string: "{\"version\": ")) {
                #expect($0.status == .unauthorized)
                #expect(Self.kind(Array(buffer: $0.body)) == "SerdeError")
            }
            let (cookie2, _) = try #require(try await guest.auth(client))
            try await client.execute(
                uri: "/kbs/v0/attest", method: .post, headers: [.cookie: cookie2],
                body: ByteBuffer(string: "{\"runtime-data\": 5, \"tee-evidence\": {}}")
            ) {
                #expect($0.status == .unauthorized)
                #expect(Self.kind(Array(buffer: $0.body)) == "SerdeError")
            }
            try await client.execute(uri: "/v1/attestations", method: .post, body: ByteBuffer(string: "[1,")) {
                #expect($0.status == .badRequest)
                #expect($0.headers[.contentType] == "application/problem+json")
            }
            try await client.execute(uri: "/v1/challenges", method: .post, body: ByteBuffer(repeating: 0x20, count: (64 << 10) + 1)) {
                #expect($0.status == .contentTooLarge)
            }
        }
    }

    /// Guest-sized data (another device's evidence, a long init-data policy) is appraised and stored whole but goes
    /// into the token by digest, so the token stays under 8 KiB and the guest still gets one; more than 64 KiB of
    /// additional evidence is refused before anything is verified or recorded.
    @Test func largeGuestDataReachesTheTokenByDigest() async throws {
        let fixture = try await KBSFixture.make()
        defer { fixture.cleanUp() }
        let policy = "package agent_policy\n" + String(repeating: "default allow := true\n", count: 300)
        let body = "algorithm = \"sha384\"\nversion = \"0.1.0\"\n[data]\n\"policy.rego\" = '''\n" + policy + "'''\n"
        let digest = Digest.sha384(Array(body.utf8))
        try await fixture.app.test(.live) { client in
            try await fixture.provision(client, secret: Self.secret)
            try await client.execute(
                uri: "/v1/reference-values/default/mr_config_id", method: .put, headers: fixture.admin,
                body: ByteBuffer(bytes: CanonicalJSON.encode(["values": [.string(Hex.encode(digest))]]))
            ) { #expect($0.status == .ok) }
            var guest = try Self.guest(fixture) { $0.mrConfigID = digest }
            guest.initData = KBSInitData(format: "toml", body: body)
            guest.additionalEvidence = #"{"gpu0":""# + String(repeating: "e", count: 6000) + #""}"#
            let (cookie, token) = try #require(try await guest.handshake(client))
            #expect(token.utf8.count <= EARIssuer.maximumTokenBytes)
            let payload = try JSONValue.parse(Base64URL.decode(String(token.split(separator: ".")[1])))
            let evidence = payload["submods"]?["cpu0"]?["ear.veraison.annotated-evidence"]
            #expect(evidence?["runtime_data_claims"]?["additional-evidence"] == nil)
            #expect(
                evidence?["runtime_data_claims"]?["additional-evidence-sha384"]
                    == .string(Hex.encode(Digest.sha384(Array(guest.additionalEvidence.utf8)))))
            #expect(evidence?["runtime_data_claims"]?["tee-pubkey"] != nil)
            #expect(evidence?["init_data_claims"] == nil && evidence?["init_data"] == .string(Hex.encode(digest)))
            let (status, jwe) = try await guest.resource(client, path: "default/key/disk", headers: [.cookie: cookie])
            #expect(status == .ok)
            #expect(try KBSResourceRelease.decrypt(responseBody: jwe, with: guest.key).unsafeCopy() == Self.secret)
            // The appraisal keeps both whole.
            let appraisalID = try #require(payload["custos.appraisal_id"]?.stringValue)
            try await client.execute(uri: "/v1/appraisals/\(appraisalID)", method: .get, headers: fixture.admin) { response in
                let claims = TestGuest.json(response)["claims"]
                #expect(claims?["init_data_claims"]?["data"]?["policy.rego"] == .string(policy))
                #expect(claims?["runtime_data_claims"]?["additional-evidence"] == .string(guest.additionalEvidence))
            }
            // Small ones stay in the token verbatim.
            var small = try Self.guest(fixture)
            small.additionalEvidence = #"{"gpu0":"short"}"#
            let (_, smallToken) = try #require(try await small.handshake(client))
            let smallPayload = try JSONValue.parse(Base64URL.decode(String(smallToken.split(separator: ".")[1])))
            #expect(
                smallPayload["submods"]?["cpu0"]?["ear.veraison.annotated-evidence"]?["runtime_data_claims"]?["additional-evidence"]
                    == .string(small.additionalEvidence))
            // More than 64 KiB of additional evidence: a SerdeError, and no appraisal.
            var flooding = try Self.guest(fixture)
            flooding.additionalEvidence = String(repeating: "f", count: KBSTEEEvidence.maximumAdditionalEvidenceBytes + 1)
            let (floodCookie, floodNonce) = try #require(try await flooding.auth(client))
            let refused = try await flooding.attest(client, cookie: floodCookie, body: try flooding.attestation(nonce: floodNonce))
            #expect(refused.0 == .unauthorized && Self.kind(refused.1) == "SerdeError")
            let count = try await client.execute(uri: "/v1/appraisals", method: .get, headers: fixture.admin) {
                TestGuest.json($0)["items"]?.arrayValue?.count
            }
            #expect(count == 2)
        }
    }

    /// Collateral that has expired is the platform's state, not the evidence's fault: 503 (cannot decide), so the
    /// guest retries once the collateral is refreshed, rather than 401 as for evidence that does not verify.
    @Test func expiredCollateralIsServiceUnavailable() async throws {
        let fixture = try await KBSFixture.make()
        defer { fixture.cleanUp() }
        var expired = KBSFixture.spec()
        expired.issueDate = RFC3339Seconds.format(Date().addingTimeInterval(-40 * 86_400))
        expired.nextUpdate = RFC3339Seconds.format(Date().addingTimeInterval(-86_400))
        var parts = fixture.parts
        parts.collateral = InMemoryCollateral([try fixture.hierarchy.make(expired).collateral])
        try await CustosService.makeApplication(parts).test(.router) { client in
            try await fixture.provision(client, secret: Self.secret)
            let guest = try Self.guest(fixture)
            let (cookie, nonce) = try #require(try await guest.auth(client))
            let (status, body) = try await guest.attest(client, cookie: cookie, body: try guest.attestation(nonce: nonce))
            #expect(status == .serviceUnavailable, "\(body)")
            #expect(body["detail"]?.stringValue?.contains("collateral") == true, "\(body)")
        }
    }

    @Test func expiredChallengesAreRefused() async throws {
        let fixture = try await KBSFixture.make { $0.challengeLifetimeSeconds = 1 }
        defer { fixture.cleanUp() }
        try await fixture.app.test(.live) { client in
            try await fixture.provision(client, secret: Self.secret)
            let guest = try Self.guest(fixture)
            let (cookie, nonce) = try #require(try await guest.auth(client))
            try await Task.sleep(for: .milliseconds(1500))
            let (status, body) = try await guest.attest(client, cookie: cookie, body: try guest.attestation(nonce: nonce))
            #expect(status == .unauthorized)
            #expect(Self.kind(body) == "AttestationError")
        }
    }

    /// `/kbs/v0/auth` and `/v1/challenges` both make a pending session: one token bucket (`challenge_rate`, bursts of
    /// twice that) limits them together, so a client cannot churn the session table through the unlimited one.
    /// `challenge_rate_per_client`: one client's bucket runs dry while another's does not. Behind a proxy
    /// (`client_address_header: X-Forwarded-For`) the client is the header's last address, so prepending addresses does
    /// not make a new client; without that setting the header is ignored (every request here comes from 127.0.0.1, one
    /// client).
    @Test func oneClientCannotTakeEveryoneElsesSessions() async throws {
        let forwarded = HTTPField.Name("X-Forwarded-For")!
        for trustsHeader in [true, false] {
            let fixture = try await KBSFixture.make {
                $0.challengeRatePerClient = 1
                if trustsHeader { $0.clientAddressHeader = "X-Forwarded-For" }
            }
            defer { fixture.cleanUp() }
            try await fixture.app.test(.live) { client in
                let auth = ByteBuffer(bytes: CanonicalJSON.encode(["version": "0.4.0", "tee": "tdx", "extra-params": .object([:])]))
                func kbsAuth(_ from: String) async throws -> (status: HTTPResponse.Status, kind: String?) {
                    try await client.execute(uri: "/kbs/v0/auth", method: .post, headers: [forwarded: from], body: auth) {
                        ($0.status, Self.kind(Array(buffer: $0.body)))
                    }
                }
                func challenge(_ from: String) async throws -> (status: HTTPResponse.Status, type: String?) {
                    try await client.execute(uri: "/v1/challenges", method: .post, headers: [forwarded: from]) {
                        ($0.status, TestGuest.json($0)["type"]?.stringValue)
                    }
                }
                // Client 10.0.0.1 drains its bucket (2, one back per second), then asks again at once under another
                // first address. A stalled runner can let a refilled token through: up to 20 rounds, one must refuse.
                var drained: (status: HTTPResponse.Status, type: String?)? = nil
                var again: (status: HTTPResponse.Status, kind: String?)? = nil
                for round in 0..<20 where again == nil {
                    for _ in 0..<20 {
                        let answer = try await challenge("10.0.0.1")
                        if answer.status == .tooManyRequests {
                            drained = answer
                            break
                        }
                    }
                    // A new first address every round: were it the client, each round would be a fresh bucket.
                    let answer = try await kbsAuth(trustsHeader ? "203.0.113.\(round), 10.0.0.1" : "10.0.0.1")
                    if answer.status == .tooManyRequests { again = answer }
                }
                #expect(drained?.type == "urn:custos:problem:rate-limited", "\(trustsHeader): 20 challenges at 1/s never refused")
                #expect(again?.kind == "TooManyRequests", "\(trustsHeader): the drained client was let through")
                // Another client: its own bucket behind the proxy; the same client (127.0.0.1) without the setting.
                let other = try await challenge("10.0.0.2")
                if trustsHeader {
                    #expect(other.status == .created)
                } else {
                    var refusedOther = other.status == .tooManyRequests
                    for _ in 0..<20 where !refusedOther { refusedOther = try await challenge("10.0.0.2").status == .tooManyRequests }
                    #expect(refusedOther, "the header was trusted without client_address_header")
                }
            }
        }
    }

    @Test func sessionCreationIsRateLimitedAcrossBothProtocols() async throws {
        let fixture = try await KBSFixture.make { $0.challengeRate = 1 }
        defer { fixture.cleanUp() }
        try await fixture.app.test(.live) { client in
            let auth = ByteBuffer(bytes: CanonicalJSON.encode(["version": "0.4.0", "tee": "tdx", "extra-params": .object([:])]))
            func kbsAuth() async throws -> (status: HTTPResponse.Status, retryAfter: String?, kind: String?) {
                try await client.execute(uri: "/kbs/v0/auth", method: .post, body: auth) {
                    ($0.status, $0.headers[.retryAfter], Self.kind(Array(buffer: $0.body)))
                }
            }
            func challenge() async throws -> (status: HTTPResponse.Status, retryAfter: String?, type: String?) {
                try await client.execute(uri: "/v1/challenges", method: .post) {
                    ($0.status, $0.headers[.retryAfter], TestGuest.json($0)["type"]?.stringValue)
                }
            }
            // The bucket starts full (2) and never holds more: the first two pass whatever the timing.
            #expect(try await kbsAuth().status == .ok)
            #expect(try await challenge().status == .created)
            // Drain through /v1/challenges, then ask /kbs/v0/auth at once. A refill of one token takes a second, so
            // a stalled runner can let the auth through: up to 20 rounds, at least one must be refused.
            var refusedAuth: (status: HTTPResponse.Status, retryAfter: String?, kind: String?)? = nil
            var refusedChallenge: (status: HTTPResponse.Status, retryAfter: String?, type: String?)? = nil
            for _ in 0..<20 where refusedAuth == nil {
                for _ in 0..<20 {
                    let answer = try await challenge()
                    if answer.status == .tooManyRequests {
                        refusedChallenge = answer
                        break
                    }
                }
                let answer = try await kbsAuth()
                if answer.status == .tooManyRequests { refusedAuth = answer }
            }
            let challengeRefusal = try #require(refusedChallenge, "20 challenges at 1/s were never refused")
            #expect(challengeRefusal.type == "urn:custos:problem:rate-limited")
            #expect(Int(challengeRefusal.retryAfter ?? "") ?? 0 >= 1)
            let authRefusal = try #require(refusedAuth, "/kbs/v0/auth was not refused after /v1/challenges drained the bucket")
            #expect(authRefusal.kind == "TooManyRequests")
            #expect(Int(authRefusal.retryAfter ?? "") ?? 0 >= 1)
        }
    }

    /// The native API: challenge → attestation → secret with the EAR; scoping and denial as problems.
    @Test func nativeAPIFlow() async throws {
        let fixture = try await KBSFixture.make()
        defer { fixture.cleanUp() }
        try await fixture.app.test(.live) { client in
            try await fixture.provision(client, secret: Self.secret)
            func attest(_ guest: TestGuest) async throws -> JSONValue {
                let challenge = try await client.execute(uri: "/v1/challenges", method: .post) { response -> JSONValue in
                    #expect(response.status == .created)
                    return TestGuest.json(response)
                }
                let id = try #require(challenge["challenge_id"]?.stringValue)
                let nonce = try #require(challenge["nonce"]?.stringValue)
                let body: JSONValue = [
                    "challenge_id": .string(id), "attestation": try guest.attestation(nonce: nonce), "workload_id": "web-1",
                ]
                return try await client.execute(uri: "/v1/attestations", method: .post, body: ByteBuffer(bytes: CanonicalJSON.encode(body)))
                {
                    var result = TestGuest.json($0)
                    if case .object(var members) = result {
                        members["_status"] = .integer(Int64($0.status.code))
                        members["_challenge"] = .string(id)
                        result = .object(members)
                    }
                    return result
                }
            }
            let guest = try Self.guest(fixture)
            let ok = try await attest(guest)
            #expect(ok["_status"] == 200)
            #expect(ok["status"] == "affirming")
            let token = try #require(ok["token"]?.stringValue)
            let released = try await client.execute(
                uri: "/v1/secrets/default/key/disk", method: .get, headers: [.authorization: "Bearer \(token)"]
            ) { ($0.status, Array(buffer: $0.body)) }
            #expect(released.0 == .ok)
            let opened = try KBSResourceRelease.decrypt(responseBody: released.1, with: guest.key)
            #expect(opened.unsafeCopy() == Self.secret)
            // The challenge id went out in a JSON body: it is no KBS session cookie, attested or not.
            let challengeID = try #require(ok["_challenge"]?.stringValue)
            try await client.execute(
                uri: "/kbs/v0/resource/default/key/disk", method: .get,
                headers: [.cookie: "\(KBSProtocol.sessionCookieName)=\(challengeID)"]
            ) { #expect($0.status == .unauthorized) }
            // Another tenant's secret does not exist for this token.
            try await client.execute(uri: "/v1/secrets/tenant-b/key/disk", method: .get, headers: [.authorization: "Bearer \(token)"]) {
                #expect($0.status == .notFound)
            }
            // An admin token never reads values, but lists versions.
            try await client.execute(uri: "/v1/secrets/default/key/disk", method: .get, headers: fixture.admin) {
                #expect($0.status == .forbidden)
            }
            try await client.execute(uri: "/v1/secrets/default/key/disk/versions", method: .get, headers: fixture.admin) {
                #expect($0.status == .ok)
                #expect(TestGuest.json($0)["versions"]?.arrayValue?.first?["version"] == 1)
                #expect(!String(buffer: $0.body).contains("correct"))
            }
            // Denial: a problem naming the appraisal.
            let outdated = try Self.guest(fixture) { $0.rtmrs[2] = [UInt8](repeating: 0x99, count: 48) }
            let warned = try await attest(outdated)
            #expect(warned["status"] == "warning")
            let warnedToken = try #require(warned["token"]?.stringValue)
            try await client.execute(uri: "/v1/secrets/default/key/disk", method: .get, headers: [.authorization: "Bearer \(warnedToken)"])
            {
                #expect($0.status == .forbidden)
                #expect(TestGuest.json($0)["type"] == "urn:custos:problem:policy-denied")
                #expect(TestGuest.json($0)["appraisal_id"] == warned["appraisal_id"])
            }
            // A workload id the store would refuse is a 400 before the challenge is taken (it used to be a 503 after
            // the challenge was used and the quote verified): the same challenge then succeeds.
            let fresh = try await client.execute(uri: "/v1/challenges", method: .post) { TestGuest.json($0) }
            let freshID = try #require(fresh["challenge_id"]?.stringValue)
            let freshEvidence = try guest.attestation(nonce: try #require(fresh["nonce"]?.stringValue))
            for workload: JSONValue in ["", "tab\there", .string(String(repeating: "w", count: 257))] {
                let badBody: JSONValue = ["challenge_id": .string(freshID), "attestation": freshEvidence, "workload_id": workload]
                try await client.execute(uri: "/v1/attestations", method: .post, body: ByteBuffer(bytes: CanonicalJSON.encode(badBody))) {
                    #expect($0.status == .badRequest, "\(workload)")
                    #expect(TestGuest.json($0)["detail"]?.stringValue?.contains("workload_id") == true)
                }
            }
            let goodBody: JSONValue = ["challenge_id": .string(freshID), "attestation": freshEvidence, "workload_id": "web-2"]
            try await client.execute(uri: "/v1/attestations", method: .post, body: ByteBuffer(bytes: CanonicalJSON.encode(goodBody))) {
                #expect($0.status == .ok)
            }
            // A used challenge: 401 challenge-invalid (service.md §8.2).
            let challenge = try await client.execute(uri: "/v1/challenges", method: .post) { TestGuest.json($0) }
            let id = try #require(challenge["challenge_id"]?.stringValue)
            let nonce = try #require(challenge["nonce"]?.stringValue)
            let body: JSONValue = ["challenge_id": .string(id), "attestation": try guest.attestation(nonce: nonce)]
            for expected: HTTPResponse.Status in [.ok, .unauthorized] {
                try await client.execute(uri: "/v1/attestations", method: .post, body: ByteBuffer(bytes: CanonicalJSON.encode(body))) {
                    #expect($0.status == expected)
                    if expected == .unauthorized {
                        #expect(TestGuest.json($0)["type"]?.stringValue?.hasSuffix("challenge-invalid") == true)
                    }
                }
            }
        }
    }
}
