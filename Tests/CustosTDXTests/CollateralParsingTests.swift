import CustosCrypto
import CustosTDX
import CustosTestSupport
import Foundation
import Testing

/// Collateral arrives from a PCS or PCCS over the network and is parsed before any signature is checked, so its
/// parsers face untrusted bytes: every truncation and every byte flip of the real Intel files must give a typed
/// error (or, for a flip that keeps the JSON valid, a rejected verification), never a crash.
@Suite(Requirement.testData)
struct CollateralParsingTests {
    static let directory = "collateral/c1_dcapqvl_2025-06_B0C06F"
    static func file(_ name: String) throws -> [UInt8] { try TestData.bytes("tdx/\(directory)/\(name)") }
    static func text(_ name: String) throws -> String { String(decoding: try file(name), as: UTF8.self) }

    /// Collateral from the PCS files with one of the bodies replaced.
    static func collateral(tcbInfo: [UInt8]? = nil, qeIdentity: [UInt8]? = nil, pckCRL: [UInt8]? = nil, chain: String? = nil)
        throws -> Collateral
    {
        try Collateral(
            tcbInfoBody: tcbInfo ?? file("tcb_info.json"), tcbInfoIssuerChain: chain ?? text("tcb_info_issuer_chain.pem"),
            qeIdentityBody: qeIdentity ?? file("qe_identity.json"), qeIdentityIssuerChain: text("qe_identity_issuer_chain.pem"),
            pckCRL: pckCRL ?? file("pck_crl.der"), pckCRLIssuerChain: text("pck_crl_issuer_chain.pem"),
            rootCACRL: file("root_ca_crl.der"))
    }

    static func isTypedCollateralError(_ body: () throws -> Collateral) -> Bool {
        do {
            _ = try body()
            return false
        } catch let error as TDXError {
            return error.code == .malformedCollateral
        } catch {
            return false
        }
    }

    @Test("the untouched files parse (the baseline the mutations start from)")
    func baseline() throws {
        let collateral = try Self.collateral()
        #expect(Hex.encode(collateral.tcbInfo.fmspc).uppercased() == "B0C06F000000")
        #expect(collateral.qeIdentity.id == "TD_QE")
    }

    @Test("every proper prefix of tcb_info.json, qe_identity.json and collateral.json is malformedCollateral")
    func truncation() throws {
        let tcb = try Self.file("tcb_info.json")
        for length in 0..<tcb.count {
            #expect(Self.isTypedCollateralError { try Self.collateral(tcbInfo: Array(tcb.prefix(length))) }, "tcb_info.json[..<\(length)]")
        }
        let qe = try Self.file("qe_identity.json")
        for length in 0..<qe.count {
            #expect(
                Self.isTypedCollateralError { try Self.collateral(qeIdentity: Array(qe.prefix(length))) }, "qe_identity.json[..<\(length)]")
        }
        let v3 = try Self.file("collateral.json")
        for length in stride(from: 0, to: v3.count, by: 5) {
            #expect(
                Self.isTypedCollateralError { try Collateral(quoteCollateralV3JSON: Array(v3.prefix(length))) },
                "collateral.json[..<\(length)]")
        }
        let crl = try Self.file("pck_crl.der")
        for length in stride(from: 0, to: crl.count, by: 3) {
            #expect(Self.isTypedCollateralError { try Self.collateral(pckCRL: Array(crl.prefix(length))) }, "pck_crl.der[..<\(length)]")
        }
        // A PEM chain cut after a complete block is a shorter chain, which parses and then fails verification.
        let chain = try Self.text("tcb_info_issuer_chain.pem")
        let verifier = QuoteVerifier(trustedRoot: try Certificate(derEncoded: TestData.bytes("tdx/root/intel_sgx_root_ca.der")))
        let time = Date(timeIntervalSince1970: 1_751_328_000)
        for length in stride(from: 0, to: chain.utf8.count - 30, by: 7) {
            let cut = String(decoding: Array(chain.utf8).prefix(length), as: UTF8.self)
            do {
                let collateral = try Self.collateral(chain: cut)
                #expect(collateral.tcbInfoIssuerChain.count == 1, "tcb_info_issuer_chain.pem[..<\(length)]")
                let error = #expect(throws: TDXError.self) { try verifier.verifyCollateral(collateral, at: time) }
                #expect(error?.code == .tcbSigningChainInvalid)
            } catch let error as TDXError {
                #expect(error.code == .malformedCollateral, "tcb_info_issuer_chain.pem[..<\(length)]: \(error)")
            }
        }
    }

    @Test("byte flips in the TCB Info body: a typed parse error, or collateral whose verification fails")
    func flips() throws {
        let tcb = try Self.file("tcb_info.json")
        let verifier = QuoteVerifier(trustedRoot: try Certificate(derEncoded: TestData.bytes("tdx/root/intel_sgx_root_ca.der")))
        let time = Date(timeIntervalSince1970: 1_751_328_000)  // 2025-07-01, inside c1's window
        let original = try Self.collateral()
        _ = try verifier.verifyCollateral(original, at: time)
        var generator = SeededRandom("CollateralParsingTests.flips")
        for _ in 0..<400 {
            var mutated = tcb
            let offset = Int.random(in: 0..<mutated.count, using: &generator)
            mutated[offset] ^= UInt8.random(in: 1...255, using: &generator)
            do {
                let collateral = try Self.collateral(tcbInfo: mutated)
                // Parsed. A flip that leaves the signed bytes and the decoded signature as they were (hex case, e.g.
                // 'a' → 'A') changes nothing signed; any other must fail the signature check.
                if collateral.tcbInfo.signedBytes == original.tcbInfo.signedBytes
                    && collateral.tcbInfo.signature == original.tcbInfo.signature
                {
                    continue
                }
                #expect(throws: TDXError.self, "flip at \(offset) accepted") { try verifier.verifyCollateral(collateral, at: time) }
            } catch let error as TDXError {
                #expect(error.code == .malformedCollateral, "flip at \(offset): \(error)")
            }
        }
    }

    @Test(
        "ill-formed TCB Info fields are malformedCollateral naming the field",
        arguments: [
            ("\"fmspc\":\"B0C06F000000\"", "\"fmspc\":\"B0C06F0000\"", "fmspc"),
            ("\"fmspc\":\"B0C06F000000\"", "\"fmspc\":\"B0C06F00000Z\"", "fmspc"),
            ("\"version\":3", "\"version\":2", "version"),
            ("\"id\":\"TDX\"", "\"id\":\"SGX\"", "TDX v3"),
            ("\"issueDate\":\"", "\"issueDate\":\"x", "issueDate"),
            ("\"pcesvn\":", "\"pcesvn\":1e400,\"x\":", ""),
        ])
    func fields(find: String, replace: String, mentions: String) throws {
        let text = try Self.text("tcb_info.json")
        try #require(text.contains(find), "the fixture no longer contains \(find)")
        let mutated = Array(text.replacingOccurrences(of: find, with: replace).utf8)
        let error = #expect(throws: TDXError.self) { try Self.collateral(tcbInfo: mutated) }
        #expect(error?.code == .malformedCollateral)
        if !mentions.isEmpty { #expect(error?.reason.contains(mentions) == true, "\(error?.reason ?? "")") }
    }
}
