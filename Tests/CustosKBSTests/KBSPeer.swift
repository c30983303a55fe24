import CustosCrypto
import CustosTestSupport
import Foundation
import Testing

/// Runs `scripts/jose/peer.py` (jwcrypto, PyJWT) in the venv `scripts/jose/setup-venv.sh` builds.
///
/// Without python3-venv or PyPI the interop tests are skipped, unless `CUSTOS_REQUIRE_ALL=1`, when they run and
/// fail on the missing peer.
enum KBSPeer {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    static let python: Result<String, any Error> = Result {
        let script = TestData.packageRoot.appendingPathComponent("scripts/jose/setup-venv.sh").path
        let (status, out, err) = try run("/bin/sh", [script])
        guard status == 0, let path = out.split(separator: "\n").last.map(String.init), !path.isEmpty else {
            throw Failure(description: "could not build the jwcrypto/PyJWT venv (exit \(status)): \(err)")
        }
        return path
    }

    static var shouldRun: Bool { ProcessInfo.processInfo.environment["CUSTOS_REQUIRE_ALL"] == "1" || (try? python.get()) != nil }

    static let skipReason: Comment = "jwcrypto/PyJWT peer unavailable (python3-venv or PyPI missing); CUSTOS_REQUIRE_ALL=1 makes this fail"

    /// Runs a batch of requests; returns one result object per request.
    static func call(_ requests: [JSONValue]) throws -> [[String: JSONValue]] {
        let python = try Self.python.get()
        let input = FileManager.default.temporaryDirectory.appendingPathComponent("custos-kbs-\(UUID().uuidString).json")
        try Data(CanonicalJSON.encode(.array(requests))).write(to: input)
        defer { try? FileManager.default.removeItem(at: input) }
        let script = TestData.packageRoot.appendingPathComponent("scripts/jose/peer.py").path
        let (status, out, err) = try run(python, [script, input.path])
        guard status == 0 else { throw Failure(description: "peer.py exited \(status): \(err)") }
        guard case .object(let response) = try JSONValue.parse(out), case .array(let results)? = response["results"],
            results.count == requests.count
        else { throw Failure(description: "unexpected peer output: \(out)") }
        return results.map { $0.objectValue ?? [:] }
    }

    static func run(_ executable: String, _ arguments: [String]) throws -> (Int32, String, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let directory = FileManager.default.temporaryDirectory
        let outURL = directory.appendingPathComponent("custos-kbs-out-\(UUID().uuidString)")
        let errURL = directory.appendingPathComponent("custos-kbs-err-\(UUID().uuidString)")
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
}
