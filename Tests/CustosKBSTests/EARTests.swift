import CustosCrypto
import CustosKBS
import CustosTestSupport
import Foundation
import Testing

/// EAR tokens: issue, verify, and every refusal the issue lists; PyJWT and jwcrypto as independent verifiers.
@Suite struct EARTests {
    static let issuerName = "https://attest.example"

    struct Fixture {
        let issuer: EARIssuer
        let teeKey: JWEDecryptionKey
        let runtime: KBSRuntimeData
        let submods: [String: EARSubmod]
        var keySet: JSONWebKeySet { JSONWebKeySet(keys: [issuer.publicJWK]) }
        var verifier: EARVerifier { EARVerifier(keys: keySet, issuer: EARTests.issuerName) }

        init(curve: ECCurve = .p256, issuerName: String = EARTests.issuerName) throws {
            issuer = try EARIssuer(signingKey: ECPrivateKey(generating: curve), issuer: issuerName, verifierBuild: "custos-test 0.1")
            teeKey = .ec(try ECPrivateKey(generating: .p256))
            runtime = KBSRuntimeData(nonce: "q5b2o1l1+0aXz6yHk0Jm2cYc1R0JH4m2aN7Vq8xQy8E=", teePubkey: teeKey.publicJWK)
            let evidence = EARSubmod.trusteeAnnotatedEvidence(
                tdxClaims: ["quote": ["body": ["mr_td": "00ff", "rtmr_0": "11"]], "tcb_status": "UpToDate", "advisory_ids": []],
                runtimeData: runtime, reportDataHex: "ab", initDataHex: "cd")
            let vector = try TrustworthinessVector(["configuration": 2, "executables": 3, "hardware": 2])
            submods = [
                "cpu0": EARSubmod(
                    status: vector.status, trustVector: vector,
                    appraisalPolicyID: "policy:tdx-prod@sha256:" + String(repeating: "a", count: 64), annotatedEvidence: evidence)
            ]
        }

        func issue(now: Int64) throws -> (token: String, claims: EARClaims) {
            try issuer.issue(
                submods: submods, nonce: runtime.nonce, auditLog: "custos.example/log", auditIndex: 10423, tenant: "tenant-a", now: now)
        }
    }

    static let now: Int64 = 1_790_000_000

    @Test func issueAndVerify() throws {
        let fixture = try Fixture()
        let (token, claims) = try fixture.issue(now: Self.now)
        #expect(token.utf8.count < EARIssuer.maximumTokenBytes)
        let jws = try CompactJWS(parsing: token)
        #expect(jws.algorithm == .es256)
        #expect(jws.header["typ"] == "JWT")
        #expect(jws.keyID == JSONWebKey(.ec(fixture.issuer.signingKey.publicKey)).thumbprintBase64URL)
        #expect(claims.expiresAt - claims.issuedAt == 300)
        #expect(claims.submods["cpu0"]?.status == .affirming)

        let verified = try fixture.verifier.verify(token, at: Self.now).get()
        #expect(verified.claims == claims)
        #expect(verified.teePubkey.hasSameKey(as: fixture.teeKey.publicJWK))
        #expect(verified.claims.auditIndex == 10423)
        #expect(verified.claims.nonce == fixture.runtime.nonce)
        // The TEE key sits where Trustee's KBS looks for it.
        let payload = try JSONValue.parse(jws.payload)
        #expect(
            payload.value(atPath: "submods.cpu0.ear.veraison.annotated-evidence.runtime_data_claims.tee-pubkey")
                == fixture.runtime.teePubkeyJSON)
        #expect(try fixture.verifier.verify(token, at: Self.now + 299).get().keyID == fixture.issuer.keyID)

        // A secret released to the token's key decrypts only with the TEE's private key.
        let jwe = try KBSResourceRelease.encrypt(SecretBytes(Array("s3cret".utf8)), for: verified)
        #expect(try KBSResourceRelease.decrypt(responseBody: jwe.jsonBytes, with: fixture.teeKey).unsafeCopy() == Array("s3cret".utf8))
        #expect(throws: KBSError(.jweError, "")) {
            try KBSResourceRelease.decrypt(responseBody: jwe.jsonBytes, with: .ec(ECPrivateKey(generating: .p256)))
        }
    }

    static func failures(_ result: EARVerificationResult) -> [EARFailure] {
        if case .rejected(let failures) = result { return failures }
        return []
    }

    @Test func expiredAndNotYetValid() throws {
        let fixture = try Fixture()
        let (token, _) = try fixture.issue(now: Self.now)
        #expect(
            Self.failures(fixture.verifier.verify(token, at: Self.now + 300)) == [.expired(expiresAt: Self.now + 300, now: Self.now + 300)])
        #expect(Self.failures(fixture.verifier.verify(token, at: Self.now - 1)) == [.notYetValid(notBefore: Self.now, now: Self.now - 1)])
        let lenient = EARVerifier(keys: fixture.keySet, issuer: Self.issuerName, leeway: 5)
        #expect(try lenient.verify(token, at: Self.now + 304).get().claims.expiresAt == Self.now + 300)
        #expect(Self.failures(lenient.verify(token, at: Self.now + 305)) == [.expired(expiresAt: Self.now + 300, now: Self.now + 305)])
        #expect(throws: KBSError(.tokenVerifierError, "")) { try fixture.verifier.verify(token, at: Self.now + 3600).get() }
    }

    @Test func tamperedClaimsAreRefused() throws {
        let fixture = try Fixture()
        let (token, claims) = try fixture.issue(now: Self.now)
        let parts = token.split(separator: ".").map(String.init)
        var changes: [EARClaims] = []
        var c = claims
        c.submods["cpu0"]?.status = .contraindicated
        changes.append(c)
        c = claims
        c.expiresAt += 3600
        changes.append(c)
        c = claims
        c.submods["cpu0"]?.annotatedEvidence = EARSubmod.trusteeAnnotatedEvidence(
            tdxClaims: [:],
            runtimeData: KBSRuntimeData(nonce: "n", teePubkey: JWEDecryptionKey.ec(try ECPrivateKey(generating: .p256)).publicJWK))
        changes.append(c)
        for changed in changes {
            let forged = parts[0] + "." + Base64URL.encode(CanonicalJSON.encode(changed.jsonValue)) + "." + parts[2]
            #expect(Self.failures(fixture.verifier.verify(forged, at: Self.now)) == [.signatureInvalid])
        }
    }

    @Test func otherIssuersAndUnknownKeys() throws {
        let fixture = try Fixture()
        let stranger = try Fixture(issuerName: "https://evil.example")
        let (foreign, _) = try stranger.issue(now: Self.now)
        // Signed by a key that is not in our set.
        #expect(Self.failures(fixture.verifier.verify(foreign, at: Self.now)) == [.unknownKeyID(stranger.issuer.keyID)])
        // Even with the key trusted, the issuer and audience are wrong.
        let both = EARVerifier(keys: JSONWebKeySet(keys: [fixture.issuer.publicJWK, stranger.issuer.publicJWK]), issuer: Self.issuerName)
        #expect(
            Self.failures(both.verify(foreign, at: Self.now)) == [
                .wrongIssuer("https://evil.example"), .wrongAudience("https://evil.example"),
            ])
        // A token whose kid is missing.
        let (token, claims) = try fixture.issue(now: Self.now)
        let noKid = try CompactJWS.sign(
            payload: CanonicalJSON.encode(claims.jsonValue), extraHeader: ["typ": "JWT"], key: fixture.issuer.signingKey)
        #expect(Self.failures(fixture.verifier.verify(noKid, at: Self.now)) == [.unknownKeyID(nil)])
        // Another audience.
        let elsewhere = EARVerifier(keys: fixture.keySet, issuer: Self.issuerName, audience: "https://kbs.other")
        #expect(Self.failures(elsewhere.verify(token, at: Self.now)) == [.wrongAudience(Self.issuerName)])
    }

    @Test func algorithmAttacksAreRefused() throws {
        let fixture = try Fixture()
        let (token, claims) = try fixture.issue(now: Self.now)
        let payload = Base64URL.encode(CanonicalJSON.encode(claims.jsonValue))
        func header(_ alg: String) -> String {
            Base64URL.encode(CanonicalJSON.encode(["alg": .string(alg), "typ": "JWT", "kid": .string(fixture.issuer.keyID)]))
        }
        // alg none, with and without a signature.
        for forged in [header("none") + "." + payload + ".", header("none") + "." + payload + "." + token.split(separator: ".")[2]] {
            let failures = Self.failures(fixture.verifier.verify(forged, at: Self.now))
            #expect(failures.count == 1)
            if case .algorithmRefused = failures.first {} else { Issue.record("alg none: \(failures)") }
        }
        // HS256 keyed with the public key's JSON (the classic confusion attack).
        let input = header("HS256") + "." + payload
        let mac = HMAC.authenticationCode(.sha256, key: CanonicalJSON.encode(fixture.issuer.publicJWK.jsonValue), data: Array(input.utf8))
        let hs = Self.failures(fixture.verifier.verify(input + "." + Base64URL.encode(mac), at: Self.now))
        if case .algorithmRefused = hs.first {} else { Issue.record("HS256: \(hs)") }
        // ES384 claimed for a P-256 key.
        let es384Key = try ECPrivateKey(generating: .p384)
        let es384 = try CompactJWS.sign(
            payload: CanonicalJSON.encode(claims.jsonValue), extraHeader: ["typ": "JWT", "kid": .string(fixture.issuer.keyID)],
            key: es384Key)
        let mismatch = Self.failures(fixture.verifier.verify(es384, at: Self.now))
        if case .algorithmRefused = mismatch.first {} else { Issue.record("ES384 on a P-256 key: \(mismatch)") }
        // A verifier that allows only ES384 refuses ES256.
        let strict = EARVerifier(keys: fixture.keySet, issuer: Self.issuerName, allowedAlgorithms: [.es384])
        if case .algorithmRefused = Self.failures(strict.verify(token, at: Self.now)).first {} else { Issue.record("ES256 not refused") }
        // Garbage.
        if case .malformed = Self.failures(fixture.verifier.verify("not.a.token", at: Self.now)).first {
        } else {
            Issue.record("garbage accepted")
        }
    }

    @Test func retiredKeysStillVerifyAndES384Works() throws {
        let old = try Fixture()
        let current = try Fixture(curve: .p384)
        let set = JSONWebKeySet(keys: [current.issuer.publicJWK, old.issuer.publicJWK])
        let verifier = EARVerifier(
            keys: try JSONWebKeySet(json: JSONValue.parse(CanonicalJSON.encode(set.jsonValue))), issuer: Self.issuerName)
        let (oldToken, _) = try old.issue(now: Self.now)
        let (newToken, _) = try current.issue(now: Self.now)
        #expect(try verifier.verify(oldToken, at: Self.now).get().keyID == old.issuer.keyID)
        #expect(try verifier.verify(newToken, at: Self.now).get().keyID == current.issuer.keyID)
        #expect(try CompactJWS(parsing: newToken).algorithm == .es384)
        // Once the retired key leaves the set, its tokens are refused.
        let rotated = EARVerifier(keys: JSONWebKeySet(keys: [current.issuer.publicJWK]), issuer: Self.issuerName)
        #expect(Self.failures(rotated.verify(oldToken, at: Self.now)) == [.unknownKeyID(old.issuer.keyID)])
    }

    @Test func teeKeyIsRequiredAndFoundAtTrusteePaths() throws {
        let fixture = try Fixture()
        var bare = fixture.submods
        bare["cpu0"]?.annotatedEvidence = ["tdx": [:]]
        let (noKey, _) = try fixture.issuer.issue(submods: bare, now: Self.now)
        let failures = Self.failures(fixture.verifier.verify(noKey, at: Self.now))
        if case .teeKeyInvalid = failures.first {} else { Issue.record("token without TEE key: \(failures)") }
        // Trustee's last fallback path: a top-level tee-pubkey.
        let (topLevel, claims) = try fixture.issuer.issue(
            submods: bare, extensions: ["tee-pubkey": fixture.runtime.teePubkeyJSON], now: Self.now)
        #expect(claims.teePubkeyJSON == fixture.runtime.teePubkeyJSON)
        #expect(try fixture.verifier.verify(topLevel, at: Self.now).get().teePubkey.hasSameKey(as: fixture.teeKey.publicJWK))
    }

    @Test func tokensStayUnderEightKiB() throws {
        let fixture = try Fixture()
        var big = fixture.submods
        big["cpu0"]?.extensions["ear.raw-evidence"] = .string(String(repeating: "A", count: 8192))
        #expect(throws: KBSError(.tokenVerifierError, "")) { try fixture.issuer.issue(submods: big, now: Self.now) }
        #expect(throws: KBSError(.tokenVerifierError, "")) {
            try EARIssuer(signingKey: ECPrivateKey(generating: .p521), issuer: Self.issuerName)
        }
    }

    /// AR4SI tiers as service.md §5.1 tabulates them.
    @Test(arguments: [
        (0, EARStatus.none), (1, .none), (-1, .none), (2, .affirming), (31, .affirming), (-2, .affirming), (-32, .affirming),
        (32, .warning), (95, .warning), (-33, .warning), (-96, .warning), (96, .contraindicated), (127, .contraindicated),
        (-97, .contraindicated), (-128, .contraindicated),
    ])
    func trustTiers(value: Int, tier: EARStatus) {
        #expect(EARStatus(claimValue: value) == tier)
    }

    @Test func trustVectorStatusIsTheWorstTier() throws {
        #expect(try TrustworthinessVector(["hardware": 2, "executables": 33]).status == .warning)
        #expect(try TrustworthinessVector(["hardware": 97, "executables": 3]).status == .contraindicated)
        #expect(try TrustworthinessVector([:]).status == EARStatus.none)
        #expect(throws: KBSError.self) { try TrustworthinessVector(["bogus": 1]) }
        #expect(throws: KBSError.self) { try TrustworthinessVector(["hardware": 200]) }
    }
}

/// The same tokens checked by PyJWT (claims, exp, iss, aud against the JWKS) and jwcrypto (signature).
@Suite(.enabled(if: JOSEPeer.shouldRun, Comment(rawValue: JOSEPeer.skipReason)))
struct EARInteropTests {
    @Test(arguments: [ECCurve.p256, .p384])
    func pyJWTAndJwcryptoVerifyOurTokens(curve: ECCurve) throws {
        let fixture = try EARTests.Fixture(curve: curve)
        let now = Int64(Date().timeIntervalSince1970)
        let (token, claims) = try fixture.issue(now: now)
        let jwks = fixture.keySet.jsonValue
        var forged = Array(token.utf8)
        let dot = try #require(forged.firstIndex(of: UInt8(ascii: ".")))
        forged[dot + 5] = forged[dot + 5] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        let other = try EARTests.Fixture(curve: curve, issuerName: "https://evil.example")
        let (foreign, _) = try other.issue(now: now)
        let alg = JWSAlgorithm(curve: curve).rawValue
        let results = try JOSEPeer.call([
            [
                "op": "jwt_verify", "token": .string(token), "jwks": jwks, "issuer": .string(EARTests.issuerName),
                "audience": .string(EARTests.issuerName),
            ],
            ["op": "jws_verify", "token": .string(token), "jwk": fixture.issuer.publicJWK.jsonValue, "alg": .string(alg)],
            [
                "op": "jwt_verify", "token": .string(String(decoding: forged, as: UTF8.self)), "jwks": jwks,
                "issuer": .string(EARTests.issuerName),
                "audience": .string(EARTests.issuerName),
            ],
            [
                "op": "jwt_verify", "token": .string(foreign), "jwks": JSONWebKeySet(keys: [other.issuer.publicJWK]).jsonValue,
                "issuer": .string(EARTests.issuerName), "audience": .string(EARTests.issuerName),
            ],
        ])
        #expect(results[0]["claims"] == claims.jsonValue, "\(results[0])")
        #expect(results[1]["payload_b64u"] == .string(Base64URL.encode(CanonicalJSON.encode(claims.jsonValue))), "\(results[1])")
        #expect(results[2]["error"] != nil)
        #expect(results[3]["error"] != nil)
    }
}

/// The whole KBS exchange without HTTP, with jwcrypto as the guest that decrypts the released secret.
@Suite(.enabled(if: JOSEPeer.shouldRun, Comment(rawValue: JOSEPeer.skipReason)))
struct KBSExchangeInteropTests {
    enum GuestKey: String, CaseIterable, Sendable {
        case p256, p384, p521, rsa
    }

    @Test(arguments: GuestKey.allCases)
    func guestDecryptsTheReleasedSecretWithJwcrypto(kind: GuestKey) throws {
        let issuer = try EARIssuer(signingKey: ECPrivateKey(generating: .p256), issuer: EARTests.issuerName)
        let now = Int64(Date().timeIntervalSince1970)
        // Guest: /auth, then a key and the runtime data bound into REPORTDATA.
        let request = try KBSRequest(jsonBytes: CanonicalJSON.encode(KBSRequest(tee: .tdx).jsonValue))
        try request.checkSupported()
        let challenge = try KBSChallenge(jsonBytes: CanonicalJSON.encode(KBSChallenge.generate().jsonValue))
        let guestKey: JWEDecryptionKey
        let peerKey: (String, JSONValue)
        switch kind {
        case .p256, .p384, .p521:
            let curve: ECCurve = kind == .p256 ? .p256 : kind == .p384 ? .p384 : .p521
            let key = try ECPrivateKey(generating: curve)
            guestKey = .ec(key)
            guard case .object(var members) = guestKey.publicJWK.jsonValue else { return }
            members["d"] = .string(Base64URL.encode(key.rawScalar.unsafeCopy()))
            members["alg"] = nil
            peerKey = ("jwk", .object(members))
        case .rsa:
            let key = try RSAPrivateKey(generatingBits: 2048)
            guestKey = .rsa(key)
            peerKey = ("pem", .string(try key.pkcs8PEM()))
        }
        let runtime = KBSRuntimeData(nonce: challenge.nonce, teePubkey: guestKey.publicJWK)
        let attestationBody = CanonicalJSON.encode(
            KBSAttestation(runtimeData: runtime, teeEvidence: KBSTEEEvidence(primaryEvidence: ["quote": "AAAA", "cc_eventlog": .null]))
                .jsonValue)
        let reportData = KBSBinding.reportData(
            nonce: challenge.nonce, teePubkey: guestKey.publicJWK.jsonValue, additionalEvidence: "",
            hash: try challenge.selectedHashAlgorithm())

        // Server: parse, check the binding (the quote would carry `reportData`), issue the token.
        let attestation = try KBSAttestation(jsonBytes: attestationBody)
        try KBSBinding.check(reportData: reportData, against: attestation)
        let evidence = EARSubmod.trusteeAnnotatedEvidence(tdxClaims: ["tcb_status": "UpToDate"], runtimeData: attestation.runtimeData)
        let (token, _) = try issuer.issue(submods: ["cpu0": EARSubmod(status: .affirming, annotatedEvidence: evidence)], now: now)
        let response = try KBSAttestationResponse(jsonBytes: CanonicalJSON.encode(KBSAttestationResponse(token: token).jsonValue))

        // Resource request with the token as Bearer: verify, encrypt to the token's TEE key.
        let verifier = EARVerifier(keys: JSONWebKeySet(keys: [issuer.publicJWK]), issuer: EARTests.issuerName)
        let verified = try verifier.verify(response.token, at: now + 10).get()
        let secret = try SecureRandom.bytes(48)
        let jwe = try KBSResourceRelease.encrypt(SecretBytes(secret), for: verified)

        // Guest: jwcrypto decrypts; so does our own agent-side code.
        let results = try JOSEPeer.call([
            ["op": "jwe_decrypt", peerKey.0: peerKey.1, "jwe": .string(String(decoding: jwe.jsonBytes, as: UTF8.self))]
        ])
        #expect(results[0]["plaintext_b64u"] == .string(Base64URL.encode(secret)), "\(results[0])")
        #expect(try KBSResourceRelease.decrypt(responseBody: jwe.jsonBytes, with: guestKey).unsafeCopy() == secret)
    }
}
