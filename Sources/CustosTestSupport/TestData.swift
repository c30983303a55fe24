public import Foundation

/// Locates the vendor test data (`$CUSTOS_TESTDATA`, default `../shared/testdata` from the package root).
///
/// Vendor files are never committed to this repository; tests read them from here and skip with a clear reason
/// when the folder is absent (CI always has it).
public enum TestData {
    /// The testdata root.
    public static var root: URL {
        if let env = ProcessInfo.processInfo.environment["CUSTOS_TESTDATA"], !env.isEmpty {
            return URL(fileURLWithPath: env)
        }
        return packageRoot.appendingPathComponent("../shared/testdata").standardized
    }

    /// The package root (the folder holding Package.swift), found from this source file's location.
    public static var packageRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    /// Whether the testdata folder exists.
    public static var isAvailable: Bool { FileManager.default.fileExists(atPath: root.appendingPathComponent("tdx").path) }

    /// Why vendor-data tests are skipped, for `.enabled(if:_:)` traits.
    public static let skipReason = "vendor testdata not found: set CUSTOS_TESTDATA or place it at ../shared/testdata"

    /// The URL of a file under the testdata root.
    public static func url(_ relativePath: String) -> URL { root.appendingPathComponent(relativePath) }

    /// The bytes of a file under the testdata root.
    public static func bytes(_ relativePath: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: url(relativePath)))
    }

    /// The text of a file under the testdata root.
    public static func text(_ relativePath: String) throws -> String {
        String(decoding: try bytes(relativePath), as: UTF8.self)
    }
}
