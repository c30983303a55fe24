public import CustosCrypto
public import Foundation

/// Runs `scripts/jose/peer.py` in the venv that `scripts/jose/setup-venv.sh` builds (`.build-venv-jose/`).
///
/// Without python3-venv or PyPI the interop tests are skipped, unless `CUSTOS_REQUIRE_ALL=1`, when they run and
/// fail on the missing peer.
public enum JOSEPeer {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    public static let python: Result<String, any Error> = Result {
        let script = TestData.packageRoot.appendingPathComponent("scripts/jose/setup-venv.sh").path
        let (status, out, err) = try run("/bin/sh", [script])
        guard status == 0, let path = out.split(separator: "\n").last.map(String.init), !path.isEmpty else {
            throw Failure(description: "could not build the jwcrypto/PyJWT venv (exit \(status)): \(err)")
        }
        return path
    }

    public static var requireAll: Bool { ProcessInfo.processInfo.environment["CUSTOS_REQUIRE_ALL"] == "1" }

    /// Whether the interop tests run: the peer is there, or its absence must fail them.
    public static var shouldRun: Bool { requireAll || (try? python.get()) != nil }

    public static let skipReason = "jwcrypto/PyJWT peer unavailable (python3-venv or PyPI missing); CUSTOS_REQUIRE_ALL=1 makes this fail"

    /// Runs a batch of requests; returns one result object per request.
    public static func call(_ requests: [JSONValue]) throws -> [[String: JSONValue]] {
        let python = try Self.python.get()
        let input = FileManager.default.temporaryDirectory.appendingPathComponent("custos-jose-\(UUID().uuidString).json")
        try Data(CanonicalJSON.encode(.array(requests))).write(to: input)
        defer { try? FileManager.default.removeItem(at: input) }
        let script = TestData.packageRoot.appendingPathComponent("scripts/jose/peer.py").path
        let (status, out, err) = try run(python, [script, input.path])
        guard status == 0 else { throw Failure(description: "peer.py exited \(status): \(err)") }
        // PyJWT returns claims as Python ints; the strict parser accepts integers only, which is what our tokens hold.
        guard case .object(let response) = try JSONValue.parse(out), case .array(let results)? = response["results"],
            results.count == requests.count
        else { throw Failure(description: "unexpected peer output: \(out)") }
        return results.map { $0.objectValue ?? [:] }
    }

    public static func run(_ executable: String, _ arguments: [String]) throws -> (Int32, String, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let directory = FileManager.default.temporaryDirectory
        let outURL = directory.appendingPathComponent("custos-jose-out-\(UUID().uuidString)")
        let errURL = directory.appendingPathComponent("custos-jose-err-\(UUID().uuidString)")
        FileManager.default.createFile(atPath: outURL.path, contents: nil)
        FileManager.default.createFile(atPath: errURL.path, contents: nil)
        defer {
            try? FileManager.default.removeItem(at: outURL)
            try? FileManager.default.removeItem(at: errURL)
        }
        process.standardOutput = try FileHandle(forWritingTo: outURL)
        process.standardError = try FileHandle(forWritingTo: errURL)
        try process.run()
        process.waitUntilExit()
        let out = String(decoding: try Data(contentsOf: outURL), as: UTF8.self)
        let err = String(decoding: try Data(contentsOf: errURL), as: UTF8.self)
        return (process.terminationStatus, out, err)
    }

    /// A private EC key as a JWK for the peer (with `d`).
    public static func privateJWK(_ key: ECPrivateKey) -> JSONValue {
        guard case .object(var members) = JSONWebKey(.ec(key.publicKey)).jsonValue else { return .null }
        members["d"] = .string(Base64URL.encode(key.rawScalar.unsafeCopy()))
        return .object(members)
    }

    /// The string member `name` of a result, or the peer's error as a test failure.
    public static func string(_ result: [String: JSONValue], _ name: String) throws -> String {
        guard let value = result[name]?.stringValue else {
            throw Failure(description: "peer returned no \(name): \(result["error"]?.stringValue ?? "\(result)")")
        }
        return value
    }
}
