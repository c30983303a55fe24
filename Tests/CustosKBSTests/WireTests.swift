import CustosCrypto
import CustosKBS
import Foundation
import Testing

/// KBS 0.4.0 wire shapes (service.md §4.2) and Trustee's error bodies.
@Suite struct WireTests {
    static func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    @Test func requestFromAGuest() throws {
        let request = try KBSRequest(
            jsonBytes: Self.bytes(
                #"{"version":"0.4.0","tee":"tdx","extra-params":{"supported-hash-algorithms":["sha256","sha384","sha512"]}}"#))
        try request.checkSupported()
        #expect(request.tee == .tdx)
        #expect(request.supportedHashAlgorithms == [.sha256, .sha384, .sha512])
        #expect(try KBSRequest(jsonBytes: CanonicalJSON.encode(request.jsonValue)) == request)
    }

    @Test func requestRefusals() throws {
        let sev = try KBSRequest(jsonBytes: Self.bytes(#"{"version":"0.4.0","tee":"sev","extra-params":""}"#))
        let error = #expect(throws: KBSError(.attestationError, "")) { try sev.checkSupported() }
        #expect(error?.field == "tee")
        #expect(error?.httpStatus() == 401)
        #expect(error?.reason.contains("sev") == true)
        // The exact Trustee body.
        let body = try #require(error).errorBody
        #expect(body.jsonValue["type"] == "https://github.com/confidential-containers/kbs/errors/AttestationError")
        #expect(try KBSErrorBody(json: JSONValue.parse(body.jsonBytes)) == body)

        #expect(throws: KBSError(.attestationError, "")) {
            try KBSRequest(jsonBytes: Self.bytes(#"{"version":"0.4.0","tee":"snp"}"#)).checkSupported()
        }
        let old = #expect(throws: KBSError(.attestationError, "")) {
            try KBSRequest(jsonBytes: Self.bytes(#"{"version":"0.1.1","tee":"tdx"}"#)).checkSupported()
        }
        #expect(old?.field == "version")
        #expect(throws: KBSError(.attestationError, "")) {
            try KBSRequest(jsonBytes: Self.bytes(#"{"version":"0.4.0","tee":"quantum"}"#)).checkSupported()
        }
        let missing = #expect(throws: KBSError(.serdeError, "")) { try KBSRequest(jsonBytes: Self.bytes(#"{"version":"0.4.0"}"#)) }
        #expect(missing?.field == "tee")
        #expect(throws: KBSError(.serdeError, "")) { try KBSRequest(jsonBytes: Self.bytes(#"{"version":"0.4.0","tee":7}"#)) }
        #expect(throws: KBSError(.serdeError, "")) {
            try KBSRequest(jsonBytes: Self.bytes(#"{"version":"0.4.0","tee":"tdx","tee":"tdx"}"#))
        }
        #expect(throws: KBSError(.serdeError, "")) { try KBSRequest(jsonBytes: Self.bytes("[]")) }
        #expect(throws: KBSError(.serdeError, "")) {
            try KBSRequest(jsonBytes: [UInt8](repeating: 0x20, count: KBSProtocol.maximumRequestBytes + 1))
        }
    }

    @Test func challenge() throws {
        let challenge = try KBSChallenge.generate()
        #expect(try Base64.decode(challenge.nonce).count == 32)
        #expect(challenge.nonce.hasSuffix("="))
        #expect(challenge.extraParams == "")
        #expect(try challenge.selectedHashAlgorithm() == .sha384)
        #expect(try KBSChallenge.generate().nonce != challenge.nonce)
        let parsed = try KBSChallenge(jsonBytes: CanonicalJSON.encode(challenge.jsonValue))
        #expect(parsed == challenge)
        let selected = try KBSChallenge.generate(selectedHash: .sha512)
        #expect(try KBSChallenge(jsonBytes: CanonicalJSON.encode(selected.jsonValue)).selectedHashAlgorithm() == .sha512)
        #expect(throws: KBSError(.serdeError, "")) {
            try KBSChallenge(nonce: "x", extraParams: ["selected-hash-algorithm": "md5"]).selectedHashAlgorithm()
        }
        // The name is case-insensitive (guest.md §4.2), in a challenge and in a client's list.
        #expect(try KBSChallenge(nonce: "x", extraParams: ["selected-hash-algorithm": "SHA384"]).selectedHashAlgorithm() == .sha384)
        #expect(try KBSChallenge(nonce: "x", extraParams: ["selected-hash-algorithm": "Sha512"]).selectedHashAlgorithm() == .sha512)
        let listed = KBSRequest(tee: .tdx, extraParams: ["supported-hash-algorithms": ["SHA256", "sha384", "md5"]])
        #expect(listed.supportedHashAlgorithms == [.sha256, .sha384])
    }

    static let attestationBody = """
        {"init-data":{"format":"toml","body":"algorithm = \\"sha384\\"\\nversion = \\"0.1.0\\"\\n"},
         "runtime-data":{"nonce":"q5b2o1l1+0aXz6yHk0Jm2cYc1R0JH4m2aN7Vq8xQy8E=",
            "tee-pubkey":{"kty":"EC","crv":"P-256","alg":"ECDH-ES+A256KW","x":"gI0GAILBdu7T53akrFmMyGcsF3n5dO7MmwNBHKW5SV0","y":"SLW_xSffzlPWrHEVI30DHM_4egVwt3NQqeUD7nMFpps"}},
         "tee-evidence":{"primary_evidence":{"quote":"BAACAIEAAAA=","cc_eventlog":"AQID"},"additional_evidence":"{\\"gpu\\":{}}"}}
        """

    @Test func attestation() throws {
        let attestation = try KBSAttestation(jsonBytes: Self.bytes(Self.attestationBody))
        #expect(attestation.initData == KBSInitData(format: "toml", body: "algorithm = \"sha384\"\nversion = \"0.1.0\"\n"))
        #expect(attestation.runtimeData.nonce == "q5b2o1l1+0aXz6yHk0Jm2cYc1R0JH4m2aN7Vq8xQy8E=")
        #expect(attestation.runtimeData.teePubkey.algorithm == "ECDH-ES+A256KW")
        #expect(attestation.teeEvidence.additionalEvidence == "{\"gpu\":{}}")
        let tdx = try TDXPrimaryEvidence(json: attestation.teeEvidence.primaryEvidence)
        #expect(tdx.quote == [0x04, 0x00, 0x02, 0x00, 0x81, 0x00, 0x00, 0x00])
        #expect(tdx.ccEventlog == [1, 2, 3])
        #expect(try KBSAttestation(jsonBytes: CanonicalJSON.encode(attestation.jsonValue)) == attestation)
        // Without init-data and additional_evidence.
        let minimal = try KBSAttestation(
            jsonBytes: Self.bytes(
                #"{"runtime-data":{"nonce":"n","tee-pubkey":{"kty":"EC","crv":"P-256","x":"gI0GAILBdu7T53akrFmMyGcsF3n5dO7MmwNBHKW5SV0","y":"SLW_xSffzlPWrHEVI30DHM_4egVwt3NQqeUD7nMFpps"}},"tee-evidence":{"primary_evidence":{"quote":"AAAA"}}}"#
            ))
        #expect(minimal.initData == nil)
        #expect(minimal.teeEvidence.additionalEvidence == "")
        #expect(try TDXPrimaryEvidence(json: minimal.teeEvidence.primaryEvidence).ccEventlog == nil)
    }

    /// `init(json:)` (one parse shared by several readers, as the fuzz harness does) reads what `init(jsonBytes:)`
    /// reads and refuses what it refuses, naming the same field; only the byte entry point has a size limit.
    @Test func parsedValueEntryPoints() throws {
        let bodies = [
            Self.bytes(Self.attestationBody), Self.replacing(#""nonce":"#, with: #""nonc":"#),
            Self.replacing("runtime-data", with: "runtime_data"), Self.bytes(#"{"version":"0.4.0","tee":"tdx"}"#),
            Self.bytes(#"{"nonce":"bm9uY2U=","extra-params":""}"#), Self.bytes(#"{"token":"a.b.c"}"#), Self.bytes("[]"),
        ]
        func same<T: Equatable>(
            _ bytes: [UInt8], _ fromBytes: ([UInt8]) throws(KBSError) -> T, _ fromJSON: (JSONValue) throws(KBSError) -> T
        ) throws {
            let json = try JSONValue.parse(bytes)
            switch (Result { () throws(KBSError) in try fromBytes(bytes) }, Result { () throws(KBSError) in try fromJSON(json) }) {
            case (.success(let a), .success(let b)): #expect(a == b)
            case (.failure(let a), .failure(let b)): #expect(a.code == b.code && a.field == b.field && a.reason == b.reason)
            case (let a, let b): Issue.record("\(T.self): bytes gave \(a), parsed value gave \(b)")
            }
        }
        var accepted = 0
        for body in bodies {
            try same(body, KBSAttestation.init(jsonBytes:), KBSAttestation.init(json:))
            try same(body, KBSRequest.init(jsonBytes:), KBSRequest.init(json:))
            try same(body, KBSChallenge.init(jsonBytes:), KBSChallenge.init(json:))
            try same(body, KBSAttestationResponse.init(jsonBytes:), KBSAttestationResponse.init(json:))
            accepted +=
                [
                    (try? KBSAttestation(json: JSONValue.parse(body))) != nil, (try? KBSRequest(json: JSONValue.parse(body))) != nil,
                    (try? KBSChallenge(json: JSONValue.parse(body))) != nil,
                    (try? KBSAttestationResponse(json: JSONValue.parse(body))) != nil,
                ].filter { $0 }.count
        }
        #expect(accepted == 4)  // one body of each type
        let large =
            Self.bytes(#"{"version":"0.4.0","tee":"tdx","extra-params":""#) + [UInt8](repeating: 0x61, count: 70_000) + Self.bytes(#""}"#)
        #expect(throws: KBSError(.serdeError, "")) { try KBSRequest(jsonBytes: large) }
        #expect(try KBSRequest(json: JSONValue.parse(large)).tee == .tdx)
    }

    static func replacing(_ old: String, with new: String) -> [UInt8] {
        Array(attestationBody.replacingOccurrences(of: old, with: new).utf8)
    }

    @Test func attestationRefusals() throws {
        let field = #expect(throws: KBSError(.serdeError, "")) {
            try KBSAttestation(jsonBytes: Self.replacing("runtime-data", with: "runtime_data"))
        }
        #expect(field?.field == "runtime-data")
        let nonce = #expect(throws: KBSError(.serdeError, "")) {
            try KBSAttestation(jsonBytes: Self.replacing(#""nonce":"#, with: #""nonc":"#))
        }
        #expect(nonce?.field == "runtime-data.nonce")
        #expect(throws: KBSError(.serdeError, "")) {
            try KBSAttestation(
                jsonBytes: Self.replacing(#""additional_evidence":"{\"gpu\":{}}""#, with: #""additional_evidence":{"gpu":{}}"#))
        }
        // An unacceptable key: private member, wrong curve, off the curve.
        let privateKey = #expect(throws: KBSError(.attestationError, "")) {
            try KBSAttestation(
                jsonBytes: Self.replacing(#""alg":"ECDH-ES+A256KW","#, with: #""d":"0_NxaRPUMQoAJt50Gz8YiTr8gRTwyEaCumd-MToTmIo","#))
        }
        #expect(privateKey?.field == "runtime-data.tee-pubkey")
        #expect(throws: KBSError(.attestationError, "")) { try KBSAttestation(jsonBytes: Self.replacing(#""P-256""#, with: #""P-384""#)) }
        #expect(throws: KBSError(.attestationError, "")) {
            try KBSAttestation(
                jsonBytes: Self.replacing(
                    "SLW_xSffzlPWrHEVI30DHM_4egVwt3NQqeUD7nMFpps", with: "SLW_xSffzlPWrHEVI30DHM_4egVwt3NQqeUD7nMFppA"))
        }
        // Quote encodings.
        let attestation = try KBSAttestation(jsonBytes: Self.replacing("BAACAIEAAAA=", with: "BAACAIEAAAA"))
        #expect(throws: KBSError(.serdeError, "")) { try TDXPrimaryEvidence(json: attestation.teeEvidence.primaryEvidence) }
        for bad in ["BAAC-IEAAAA=", "BAACAIEA AAA", "BAACAIE=AAA=", ""] {
            let parsed = try KBSAttestation(jsonBytes: Self.replacing("BAACAIEAAAA=", with: bad))
            #expect(throws: KBSError(.serdeError, ""), "\(bad)") { try TDXPrimaryEvidence(json: parsed.teeEvidence.primaryEvidence) }
        }
        // Every prefix of a valid body is refused with a typed error.
        let body = Self.bytes(Self.attestationBody)
        for length in 0..<body.count {
            #expect(throws: KBSError.self) { try KBSAttestation(jsonBytes: body.prefix(length)) }
        }
    }

    @Test func errorStatusesAndBodies() throws {
        #expect(KBSError(.invalidRequestPath, "x").httpStatus() == 404)
        #expect(KBSError(.pluginNotFound, "x").httpStatus() == 404)
        #expect(KBSError(.policyDeny, "x").httpStatus() == 401)
        #expect(KBSError(.policyDeny, "x").httpStatus(policyDenyStatus: 403) == 403)
        #expect(KBSError(.tokenNotFound, "x").httpStatus() == 401)
        let body = KBSError(.policyDeny, "Access denied by policy").errorBody
        #expect(
            String(decoding: body.jsonBytes, as: UTF8.self)
                == #"{"detail":"Access denied by policy","type":"https://github.com/confidential-containers/kbs/errors/PolicyDeny"}"#)
        let parsed = try KBSErrorBody(
            json: JSONValue.parse(
                #"{"type":"https://github.com/confidential-containers/kbs/errors/AdminAuth","detail":"Admin auth error"}"#))
        #expect(parsed.kind == "AdminAuth")
        #expect(throws: KBSError(.serdeError, "")) { try KBSErrorBody(json: ["type": 1, "detail": "x"]) }
    }
}
