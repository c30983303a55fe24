public import CustosAnchors
public import CustosCrypto
public import CustosSEV
public import Foundation

/// The vendor roots the service verifies evidence against: Intel's SGX Root CA for TDX quotes and AMD's ARK/ASK
/// pairs for SEV platform chains. Pinned anchors come from the certs directory (checked against their SHA-256
/// pins); `--tdx-root` / `--sev-roots` replace them with test anchors, and then ``isTest`` is true and every token
/// and audit entry says so.
public struct TrustAnchors: Sendable {
    /// The TDX root, or `nil` when it is not installed (TDX attestation then answers 503 and `/readyz` says why).
    public let tdxRoot: Certificate?
    /// The AMD roots that are installed (or the test roots).
    public let sevRoots: [AMDRoots]
    public let isTest: Bool
    /// Why an anchor is missing, for `/readyz` and the start-up log.
    public let problems: [String]

    public init(tdxRoot: Certificate?, sevRoots: [AMDRoots], isTest: Bool, problems: [String] = []) {
        self.tdxRoot = tdxRoot
        self.sevRoots = sevRoots
        self.isTest = isTest
        self.problems = problems
    }

    /// `"pinned"` or `"test"`: what tokens and audit entries name.
    public var label: String { isTest ? "test" : "pinned" }

    /// Loads the anchors `configuration` names. Missing pinned anchors are problems, not errors (the service still
    /// serves the rest); an unreadable test anchor is an error (the operator asked for it explicitly).
    public static func load(_ configuration: ServerConfiguration) throws -> TrustAnchors {
        var problems: [String] = []
        let store = try? AnchorStore(directory: URL(fileURLWithPath: configuration.certsDirectory))
        var tdxRoot: Certificate? = nil
        if let path = configuration.tdxRootOverride {
            do { tdxRoot = try Certificate(derOrPEM: Array(try Data(contentsOf: URL(fileURLWithPath: path)))) } catch {
                throw ConfigurationError("--tdx-root \(path): \(error)")
            }
        } else if let store {
            do { tdxRoot = try store.intelRootCA() } catch { problems.append("Intel SGX Root CA: \(error)") }
        } else {
            problems.append("no anchor manifest in \(configuration.certsDirectory)")
        }
        var sevRoots: [AMDRoots] = []
        if let directory = configuration.sevRootsOverride {
            sevRoots = try loadSEVRoots(directory: directory)
        } else if let store {
            for line in ProductLine.allPublished {
                do {
                    sevRoots.append(
                        try AMDRoots(
                            productLine: line, ark: try store.load("amd-\(line.name)-ark"), ask: try store.load("amd-\(line.name)-ask")))
                } catch { problems.append("AMD \(line.name) roots: \(error)") }
            }
        }
        return TrustAnchors(tdxRoot: tdxRoot, sevRoots: sevRoots, isTest: configuration.usesTestAnchors, problems: problems)
    }

    /// Test roots: `DIR/ark.cert` + `DIR/ask.cert` (one line, named after the folder), or `DIR/<line>/{ark,ask}.cert`.
    static func loadSEVRoots(directory: String) throws -> [AMDRoots] {
        let manager = FileManager.default
        func pair(_ folder: String, _ line: ProductLine) throws -> AMDRoots {
            do {
                return try AMDRoots(
                    productLine: line, ark: Array(try Data(contentsOf: URL(fileURLWithPath: "\(folder)/ark.cert"))),
                    ask: Array(try Data(contentsOf: URL(fileURLWithPath: "\(folder)/ask.cert"))))
            } catch { throw ConfigurationError("--sev-roots \(folder): \(error)") }
        }
        if manager.fileExists(atPath: "\(directory)/ark.cert") {
            return [try pair(directory, ProductLine(URL(fileURLWithPath: directory).lastPathComponent))]
        }
        let lines = ProductLine.allPublished.filter { manager.fileExists(atPath: "\(directory)/\($0.name)/ark.cert") }
        guard !lines.isEmpty else {
            throw ConfigurationError("--sev-roots \(directory) has neither ark.cert/ask.cert nor <line>/ subfolders")
        }
        return try lines.map { try pair("\(directory)/\($0.name)", $0) }
    }
}
