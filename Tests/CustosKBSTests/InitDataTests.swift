import CustosCrypto
import CustosKBS
import Foundation
import Testing

/// Init-data (service.md §4.3): the TOML subset, its digest into MRCONFIGID, and what it refuses.
@Suite struct InitDataTests {
    @Test func parsesTheCoCoTOMLSubsetAndDigestsTheBody() throws {
        let body = """
            # init-data
            version = "0.1.0"
            algorithm = "sha256"
            count = 1_000

            [data]
            tenant = 'acme'
            "policy.rego" = "x"
            """
        // Quoted keys (basic, with escapes, and literal), as CoCo's init-data names its files (guest.md §4.7).
        let quoted = try InitData(KBSInitData(format: "toml", body: body))
        #expect(quoted.claims["data"]?["policy.rego"] == "x" && quoted.tenant == "acme")
        let coco = #"""
            algorithm = "sha384"
            version = "0.1.0"
            [data]
            "aa.toml" = '''
            [token_configs]
            '''
            'cdh.toml'    = '''
            socket = 'unix:///run/cdh.sock'
            '''
            "a = b" = 'key with an equals sign'
            "esc\"aped" = 1
            """#
        let cocoData = try InitData(KBSInitData(format: "toml", body: coco))
        #expect(cocoData.claims["data"]?["aa.toml"] == "[token_configs]\n")
        #expect(cocoData.claims["data"]?["cdh.toml"] == "socket = 'unix:///run/cdh.sock'\n")
        #expect(cocoData.claims["data"]?["a = b"] == "key with an equals sign")
        #expect(cocoData.claims["data"]?["esc\"aped"] == 1)
        #expect(cocoData.mrConfigID == Digest.sha384(Array(coco.utf8)))
        for refused in [#""" = 1"#, #""open = 1"#, #""k" 1"#, #""k\u0041" = 1"#, #"'k' = 1"# + "\n" + #""k" = 2"#] {
            #expect(throws: InitData.Invalid.self, "\(refused)") { try InitData(KBSInitData(format: "toml", body: refused)) }
        }
        let accepted = """
            version = "0.1.0"
            algorithm = "sha256"
            count = 1_000
            debug = false

            [data]
            tenant = 'acme'
            policy = '''
            package agent_policy
            default allow = true
            '''
            escaped = "a\\tb\\"c"
            """
        let initData = try InitData(KBSInitData(format: "toml", body: accepted))
        #expect(initData.tenant == "acme")
        #expect(initData.algorithm == .sha256)
        // MRCONFIGID: the SHA-256 of the exact body, zero-padded to 48 bytes (computed here with the digest alone).
        #expect(initData.mrConfigID == Digest.sha256(Array(accepted.utf8)) + [UInt8](repeating: 0, count: 16))
        #expect(initData.claims["count"] == 1000)
        let edges = try InitData(KBSInitData(format: "toml", body: "a = 9007199254740991\nb = -9007199254740991\n"))
        #expect(edges.claims["a"] == .integer(9_007_199_254_740_991) && edges.claims["b"] == .integer(-9_007_199_254_740_991))
        #expect(initData.claims["debug"] == false)
        #expect(initData.claims["data"]?["policy"] == "package agent_policy\ndefault allow = true\n")
        #expect(initData.claims["data"]?["escaped"] == "a\tb\"c")
        // TOML's other newline, CR LF: the same claims (multi-line strings read with LF line ends), and the digest of
        // the exact bytes sent.
        let crlf = accepted.replacingOccurrences(of: "\n", with: "\r\n") + "\r\n"
        #expect(crlf.utf8.filter { $0 == 0x0D }.count == accepted.utf8.filter { $0 == 0x0A }.count + 1)
        let fromCRLF = try InitData(KBSInitData(format: "toml", body: crlf))
        #expect(fromCRLF.claims == initData.claims)
        #expect(fromCRLF.mrConfigID == Digest.sha256(Array(crlf.utf8)) + [UInt8](repeating: 0, count: 16))
    }

    @Test(arguments: [
        "a = [1, 2]", "a = 1.5", "[[array]]\nb = 1", "a = \"unterminated", "a = '''open", "x = 1\nx = 2", "[t]\n[t]", "a.b = 1",
        "algorithm = \"md5\"", "a = \"\\u0041\"",
        // A lone CR is not a TOML newline.
        "a = 1\rb = 2", "a = true\r",
        // Integers beyond JSON's exact range, Int64.min among them (abs(Int64.min) trapped: a guest could stop the service).
        "a = -9223372036854775808", "a = -9_223_372_036_854_775_808", "a = 9223372036854775807", "a = 9007199254740992",
    ])
    func refusesWhatItDoesNotSupport(_ body: String) {
        #expect(throws: InitData.Invalid.self) { try InitData(KBSInitData(format: "toml", body: body)) }
    }

    @Test func refusesOtherFormats() {
        #expect(throws: InitData.Invalid.self) { try InitData(KBSInitData(format: "json", body: "{}")) }
    }
}
