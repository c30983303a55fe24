import CustosCrypto
import CustosKBS
import CustosPolicy
import Foundation

/// The harnesses for the parsers the service added (issues 10–12): policy YAML, JOSE (JWK, JWS, JWE), the shared
/// JSON parser and canonicalizer, the KBS wire types and EAR tokens.
///
/// The JOSE and EAR harnesses verify or decrypt against fixed keys (``FuzzKeys``) so that well-formed inputs reach
/// the signature and key-unwrap code; `CUSTOS_FUZZ_WRITE_SEEDS=DIR` makes the binary write seeds made with those
/// keys (``writeSeeds(to:)``) instead of fuzzing.
extension Harness {
    // MARK: - Policies

    /// A fixed time for loading and evaluating (reference-value expiry is checked against it).
    static let policyTime = Date(timeIntervalSince1970: 1_751_328_000)  // 2025-07-01T00:00:00Z

    /// Claims shaped like `custos tdx verify`'s, so that conditions of the shipped policies find their claims.
    static let policyClaims: JSONValue = [
        "tdx": [
            "quote": [
                "header": ["tee_type": "81000000", "vendor_id": "939a7233f79c4ca9940a0db3957f0607"],
                "body": ["mr_td": "00", "xfam": "e702060000000000", "rtmr_1": "00"],
            ],
            "tcb_status": "UpToDate", "collateral_expiration_status": "0", "td_attributes": ["debug": false],
        ],
        "sev": ["policy": ["debug": false], "api_major": 1],
    ]

    /// The strict YAML loader as `custos policy hash` runs it on one file (`PolicySet.parsePolicy`) and as `custos
    /// policy lint` and the server run it on a set (`PolicySet.load(sources:)`). An input without a NUL byte is one
    /// file for `parsePolicy`; with one, the NUL splits it into the two files of a set (a reference-values file and a
    /// policy reading it; `X NUL` is a set of one). One entry point per input: the two paths share the YAML reader,
    /// and parsing every input twice halved the rate. Whatever loads is evaluated.
    static func policyYAML(_ data: [UInt8]) {
        let parts = data.split(separator: 0, maxSplits: 1, omittingEmptySubsequences: false)
        var sources: [(file: String, text: String)] = []
        for (index, part) in parts.enumerated() {
            guard let text = String(validating: part, as: UTF8.self) else { return }  // the loader refuses non-UTF-8 first
            sources.append(("fuzz\(index).yaml", text))
        }
        if sources.count == 1 {
            guard let policy = try? PolicySet.parsePolicy(yaml: sources[0].text, file: sources[0].file, at: policyTime) else {
                return
            }
            _ = policy.evaluate(claims: policyClaims, referenceValues: [:], at: policyTime)?.jsonValue
            return
        }
        guard let set = try? PolicySet.load(sources: sources, at: policyTime) else { return }
        for policy in set.policies {
            _ = policy.evaluate(claims: policyClaims, referenceValues: set.referenceValues, at: policyTime)?.jsonValue
            if let release = policy.release {
                for secret in release.secrets.prefix(4) {
                    _ = release.evaluate(
                        path: secret.path, status: .affirming, claims: policyClaims, referenceValues: set.referenceValues, at: policyTime)
                }
            }
        }
        for set in set.referenceValues.values { _ = set.contains("00") }
    }

    // MARK: - JSON

    /// `JSONValue.parse` and RFC 8785 canonicalization. What parses must canonicalize to bytes that parse to the
    /// same value and canonicalize to themselves; anything else is a bug, reported as a crash.
    static func jsonValue(_ data: [UInt8]) {
        guard let value = try? JSONValue.parse(data) else { return }
        let canonical = CanonicalJSON.encode(value)
        guard let again = try? JSONValue.parse(canonical) else { fatalError("canonical JSON does not parse") }
        guard again == value else { fatalError("canonical JSON parses to another value") }
        guard CanonicalJSON.encode(again) == canonical else { fatalError("canonical JSON is not a fixed point") }
        guard (try? CanonicalJSON.canonicalize(data)) == canonical else { fatalError("canonicalize(bytes) differs from encode(parse)") }
    }

    // MARK: - Init-data

    /// Init-data TOML (a guest sends it in `/attest`; `custos launch tdx` reads it from a file): the subset parser
    /// and the MRCONFIGID digest. What parses must be an object with a 48-byte MRCONFIGID whose canonical JSON parses
    /// back to the same value.
    static func kbsInitData(_ data: [UInt8]) {
        guard let text = String(validating: data, as: UTF8.self),
            let initData = try? InitData(KBSInitData(format: "toml", body: text))
        else { return }
        guard case .object = initData.claims, initData.mrConfigID.count == 48 else {
            fatalError("init-data parsed to a non-object or to an MRCONFIGID that is not 48 bytes")
        }
        guard (try? JSONValue.parse(CanonicalJSON.encode(initData.claims))) == initData.claims else {
            fatalError("init-data claims do not round-trip through canonical JSON")
        }
    }

    // MARK: - JOSE

    /// JWK (and JWK Set) parsing into an OpenSSL key, thumbprint and re-encoding.
    static func joseJWK(_ data: [UInt8]) {
        if let key = try? JSONWebKey(jsonBytes: data) {
            _ = key.thumbprintBase64URL
            guard let again = try? JSONWebKey(json: key.jsonValue), again.hasSameKey(as: key) else {
                fatalError("a parsed JWK does not round-trip")
            }
        }
        if let set = try? JSONWebKeySet(jsonBytes: data) { _ = set.jsonValue }
    }

    /// Compact JWS parsing and verification with the fixed key of the header's curve: must reject, never crash.
    static func joseJWS(_ data: [UInt8]) {
        guard let text = String(validating: data, as: UTF8.self), let jws = try? CompactJWS(parsing: text) else { return }
        let key = FuzzKeys.signing(jws.algorithm)
        _ = try? jws.verify(with: JSONWebKey(.ec(key.publicKey)))
        _ = try? jws.verify(with: JSONWebKey(.ec(key.publicKey), algorithm: "ES256"))
    }

    /// Flattened JWE parsing and decryption with the fixed EC or RSA key (what a KBS client does with a resource
    /// response; Custos's JWEs are flattened JSON, not compact): must reject, never crash.
    static func joseJWE(_ data: [UInt8]) {
        guard let jwe = try? FlattenedJWE(jsonBytes: data) else { return }
        switch jwe.keyAlgorithm {
        case .ecdhESA256KW: _ = try? jwe.decrypt(with: .ec(FuzzKeys.ecdh))
        case .rsaOAEP256: _ = try? jwe.decrypt(with: .rsa(FuzzKeys.rsa))
        }
        _ = try? KBSResourceRelease.decrypt(responseBody: data, with: .ec(FuzzKeys.ecdh))
    }

    // MARK: - KBS

    /// The KBS wire types a guest sends (`/auth` request, `/attest` body with its TDX evidence and init-data) and
    /// the ones a client reads (challenge, attestation response), then the REPORTDATA binding over what parsed.
    /// (Init-data TOML has its own harness, `kbs-init-data`.)
    ///
    /// The bytes are parsed once and each type reads the parsed value (`init(json:)`): parsing the same 15–31 KB
    /// attestation body four times, once per `init(jsonBytes:)`, was ~80 % of this harness's time (190–500 exec/s).
    /// The byte entry points add only the size check and the error wrapping; small inputs go through one of them.
    static func kbsJSON(_ data: [UInt8]) {
        if data.count <= 1024, let request = try? KBSRequest(jsonBytes: data) { _ = try? request.checkSupported() }
        guard let json = try? JSONValue.parse(data, maxDepth: 64) else { return }
        if let request = try? KBSRequest(json: json) { _ = try? request.checkSupported() }
        if let challenge = try? KBSChallenge(json: json) { _ = try? challenge.selectedHashAlgorithm() }
        _ = try? KBSAttestationResponse(json: json)
        guard let attestation = try? KBSAttestation(json: json) else { return }
        _ = try? TDXPrimaryEvidence(json: attestation.teeEvidence.primaryEvidence)
        for hash in KBSHashAlgorithm.allCases {
            let reportData = KBSBinding.reportData(for: attestation, hash: hash)
            guard (try? KBSBinding.check(reportData: reportData, against: attestation, hash: hash)) != nil else {
                fatalError("the REPORTDATA binding does not check against itself")
            }
        }
        _ = CanonicalJSON.encode(attestation.jsonValue)
    }

    /// The EAR verifier on arbitrary input. First byte even: the rest is a compact JWT as a client presents it.
    /// Odd: the rest is a claims payload, signed with the fixed issuer key so that the claims checks run too.
    static func earToken(_ data: [UInt8]) {
        guard let mode = data.first else { return }
        let rest = data.dropFirst()
        let token: String
        if mode & 1 == 0 {
            guard let text = String(validating: rest, as: UTF8.self) else { return }
            token = text
        } else {
            guard
                let signed = try? CompactJWS.sign(
                    payload: Array(rest), extraHeader: ["typ": "JWT", "kid": .string(FuzzKeys.earIssuer.keyID)],
                    key: FuzzKeys.signing(.es256))
            else { return }
            token = signed
        }
        switch FuzzKeys.earVerifier.verify(token, at: FuzzKeys.earTime + 10) {
        case .verified(let ear):
            _ = ear.claims.jsonValue
            _ = try? KBSResourceRelease.encrypt(SecretBytes([1, 2, 3]), for: ear)
        case .rejected(let failures): _ = failures.map(\.description)
        }
    }

    // MARK: - Seeds

    /// Writes seeds made with the fixed keys: JWKs, JWSs on every curve, JWEs to both keys, EAR tokens and their
    /// payloads. The shipped policies, the JSON and the KBS bodies come from `scripts/fuzz/seeds.py`.
    static func writeSeeds(to directory: String) throws {
        func put(_ harness: String, _ name: String, _ bytes: [UInt8]) throws {
            let folder = URL(fileURLWithPath: directory).appendingPathComponent(harness)
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            try Data(bytes).write(to: folder.appendingPathComponent(name))
        }
        let ecKeys = JWSAlgorithm.allCases.map { FuzzKeys.signing($0) }
        for (index, key) in ecKeys.enumerated() {
            let jwk = JSONWebKey(.ec(key.publicKey), algorithm: JWSAlgorithm(curve: key.curve).rawValue, keyID: "k\(index)", use: "sig")
            try put("jose-jwk", "ec\(index).json", CanonicalJSON.encode(jwk.jsonValue))
            let token = try CompactJWS.sign(
                payload: Array("{\"seed\":\(index)}".utf8), extraHeader: ["kid": .string("k\(index)")], key: key)
            try put("jose-jws", "es\(index).jws", Array(token.utf8))
        }
        let rsaJWK = FuzzKeys.rsaDecryption.publicJWK
        try put("jose-jwk", "rsa.json", CanonicalJSON.encode(rsaJWK.jsonValue))
        let set = JSONWebKeySet(keys: ecKeys.map { JSONWebKey(.ec($0.publicKey)) } + [rsaJWK])
        try put("jose-jwk", "set.json", CanonicalJSON.encode(set.jsonValue))
        for (name, key) in [("ec", FuzzKeys.ecdhDecryption.publicJWK), ("rsa", rsaJWK)] {
            let jwe = try FlattenedJWE.encrypt(SecretBytes(Array("secret \(name)".utf8)), to: key, extraHeader: ["kid": "k"])
            try put("jose-jwe", "\(name).json", CanonicalJSON.encode(jwe.jsonValue))
        }
        let runtime = KBSRuntimeData(nonce: "bm9uY2U", teePubkey: FuzzKeys.ecdhDecryption.publicJWK)
        let submod = EARSubmod(
            status: .affirming, appraisalPolicyID: "policy:tdx-default",
            annotatedEvidence: EARSubmod.trusteeAnnotatedEvidence(tdxClaims: policyClaims, runtimeData: runtime))
        let (token, claims) = try FuzzKeys.earIssuer.issue(
            submods: ["cpu0": submod], nonce: "bm9uY2U", tenant: "default", now: FuzzKeys.earTime, tokenID: "seed")
        try put("ear-token", "token", [0] + Array(token.utf8))
        try put("ear-token", "claims", [1] + CanonicalJSON.encode(claims.jsonValue))
        try put("json-value", "ear-claims.json", CanonicalJSON.encode(claims.jsonValue))
        try put("kbs-json", "attestation-response.json", CanonicalJSON.encode(["token": .string(token)]))
    }
}

/// The fixed keys of the JOSE and EAR harnesses: EC keys from fixed scalars; the RSA key from the PEM file
/// `CUSTOS_FUZZ_RSA_KEY` names (`scripts/fuzz/run.sh` makes one with openssl), else a fresh one (then the RSA JWE
/// seeds of an earlier run no longer decrypt, which only costs coverage).
enum FuzzKeys {
    static func scalar(_ curve: ECCurve) -> ECPrivateKey {
        let seed = Array("custos fuzz \(curve.rawValue)".utf8)
        let digest: [UInt8]
        switch curve {
        case .p256: digest = Digest.hash(.sha256, seed)
        case .p384: digest = Digest.hash(.sha384, seed)
        case .p521: digest = [0] + Digest.hash(.sha512, seed) + [1]
        }
        guard let key = try? ECPrivateKey(curve: curve, rawScalar: Array(digest.prefix(curve.coordinateByteCount))) else {
            fatalError("fixed \(curve.rawValue) scalar refused")
        }
        return key
    }

    static let p256 = scalar(.p256)
    static let p384 = scalar(.p384)
    static let p521 = scalar(.p521)

    static func signing(_ algorithm: JWSAlgorithm) -> ECPrivateKey {
        switch algorithm {
        case .es256: p256
        case .es384: p384
        case .es512: p521
        }
    }

    static var ecdh: ECPrivateKey { p384 }
    static var ecdhDecryption: JWEDecryptionKey { .ec(ecdh) }

    static let rsa: RSAPrivateKey = {
        if let path = ProcessInfo.processInfo.environment["CUSTOS_FUZZ_RSA_KEY"],
            let pem = try? String(contentsOfFile: path, encoding: .utf8), let key = try? RSAPrivateKey(pem: pem)
        {
            return key
        }
        guard let key = try? RSAPrivateKey(generatingBits: 2048) else { fatalError("cannot make an RSA key") }
        return key
    }()
    static var rsaDecryption: JWEDecryptionKey { .rsa(rsa) }

    static let earTime: Int64 = 1_751_328_000
    static let earIssuer: EARIssuer = {
        guard let issuer = try? EARIssuer(signingKey: p256, issuer: "https://custos.fuzz") else { fatalError("EAR issuer refused") }
        return issuer
    }()
    static let earVerifier = EARVerifier(keys: JSONWebKeySet(keys: [earIssuer.publicJWK]), issuer: "https://custos.fuzz")
}
