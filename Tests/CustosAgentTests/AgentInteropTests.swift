import CustosCrypto
import CustosTestSupport
import Foundation
import Testing

/// The Python KBS of scripts/agent (jwcrypto), run in the JOSE peers' venv (scripts/jose/setup-venv.sh: jwcrypto and
/// PyJWT).
enum AgentPeer {
    static var python: Result<String, any Error> { JOSEPeer.python }
    static var shouldRun: Bool { AgentTestConditions.ready && (JOSEPeer.requireAll || (try? python.get()) != nil) }
    static let skipReason =
        "the Python KBS peer (jwcrypto venv) or the testdata/binary is unavailable; CUSTOS_REQUIRE_ALL=1 makes this fail"
}

/// The agent against an independent KBS written in Python (scripts/agent/kbs_peer.py): the peer checks the byte
/// shapes of every request (member sets, base64 flavours, the REPORTDATA binding read from the quote) and releases
/// the secret as a jwcrypto JWE, which the agent must open.
@Suite(.serialized, .enabled(if: AgentPeer.shouldRun, Comment(rawValue: AgentPeer.skipReason)))
struct AgentInteropTests {
    struct Case: Sendable, CustomStringConvertible {
        let teeKey: String
        let selectHash: String?
        let initData: Bool
        /// The peer spells the selected hash in upper case (`SHA512`).
        var upperCaseHash = false
        /// The peer answers the first N resource GETs with a 503.
        var failResource = 0
        var description: String {
            "\(teeKey) \(selectHash ?? "default hash")\(upperCaseHash ? " (upper case)" : "") \(initData ? "with" : "without") init-data"
                + (failResource > 0 ? ", \(failResource) resource 503s" : "")
        }
    }

    static let cases = [
        Case(teeKey: "P-256", selectHash: nil, initData: false), Case(teeKey: "P-384", selectHash: "sha512", initData: true),
        Case(teeKey: "RSA", selectHash: "sha256", initData: false),
        // A transient 503 on the resource GET is retried on the same session; the hash name is case-insensitive.
        Case(teeKey: "P-256", selectHash: "sha512", initData: false, upperCaseHash: true, failResource: 2),
    ]

    @Test(.timeLimit(.minutes(10)), arguments: cases)
    func agentCompletesTheFlowAgainstThePythonKBS(_ testCase: Case) throws {
        let python = try AgentPeer.python.get()
        let guest = try FakeGuest(spec: try ServiceProcess.spec())
        defer { guest.cleanUp() }
        var random = SeededRandom("interop \(testCase)")
        let secret = (0..<48).map { _ in UInt8.random(in: 0...255, using: &random) }
        let secretFile = guest.directory.appendingPathComponent("peer-secret")
        try Data(secret).write(to: secretFile)
        let log = guest.directory.appendingPathComponent("peer-log.jsonl")
        var arguments = [
            TestData.packageRoot.appendingPathComponent("scripts/agent/kbs_peer.py").path, "--secret", secretFile.path, "--resource",
            "default/key/disk", "--log", log.path,
        ]
        if let hash = testCase.selectHash { arguments += ["--select-hash", hash] }
        if testCase.upperCaseHash { arguments += ["--upper-case-hash"] }
        if testCase.failResource > 0 { arguments += ["--fail-resource", String(testCase.failResource)] }
        var agentArguments = [
            "fetch", "--url", "", "--resource", "default/key/disk", "--out", guest.output.path, "--tee-key", testCase.teeKey,
        ]
        if testCase.initData {
            let toml = guest.directory.appendingPathComponent("init-data.toml")
            try Data("algorithm = \"sha384\"\nversion = \"0.1.0\"\n\n[data]\ntenant = 'default'\n".utf8).write(to: toml)
            arguments += ["--expect-init-data", toml.path]
            agentArguments += ["--init-data", toml.path]
        }
        let peer = try PortProcess(python, arguments)
        defer { peer.stop() }
        agentArguments[2] = "http://127.0.0.1:\(peer.port)"
        let result = try guest.agent(agentArguments)
        let checks = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        #expect(result.status == 0, "\(result.stdout) \(result.stderr) peer: \(checks) \(peer.stderr)")
        let file = guest.output.appendingPathComponent("key/disk").path
        #expect(FileManager.default.contents(atPath: file).map { [UInt8]($0) } == secret)
        let lines = checks.split(separator: "\n").compactMap { try? JSONValue.parse(Array($0.utf8)) }
        let resourceChecks = [String](repeating: "resource", count: testCase.failResource + 1)
        #expect(lines.map { $0["check"]?.stringValue ?? "" } == ["auth", "attest"] + resourceChecks, "\(checks)")
        #expect(lines.filter { $0["ok"] != true }.count == testCase.failResource, "\(checks)")
        let attest = lines.first { $0["check"] == "attest" }?["detail"]?.stringValue ?? ""
        #expect(attest.contains("hash=\(testCase.selectHash ?? "sha384")") && attest.contains("cc_eventlog=base64"), "\(attest)")
    }

    /// The peer denies a resource it does not hold: the agent reports the peer's PolicyDeny at the resource stage.
    @Test(.timeLimit(.minutes(10)))
    func peerDenialIsReported() throws {
        let python = try AgentPeer.python.get()
        let guest = try FakeGuest(spec: try ServiceProcess.spec())
        defer { guest.cleanUp() }
        let secretFile = guest.directory.appendingPathComponent("peer-secret")
        try Data("x".utf8).write(to: secretFile)
        let peer = try PortProcess(
            python,
            [
                TestData.packageRoot.appendingPathComponent("scripts/agent/kbs_peer.py").path, "--secret", secretFile.path, "--resource",
                "default/key/disk", "--log", guest.directory.appendingPathComponent("log").path,
            ])
        defer { peer.stop() }
        let result = try guest.agent([
            "fetch", "--url", "http://127.0.0.1:\(peer.port)", "--resource", "default/key/other", "--out", guest.output.path,
        ])
        #expect(result.status == 1)
        #expect(FakeGuest.error(result)?["code"] == "resourceRejected")
        #expect(FakeGuest.error(result)?["message"]?.stringValue?.contains("PolicyDeny") == true)
    }
}
